"""Starting and stopping a real Ray cluster on loopback for one test module.

The tests start nodes with the ``ray`` command beside this interpreter and stop
only the processes whose command lines name their cluster's GCS address or temp
directory: nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ours(marks: list[str]) -> list[psutil.Process]:
    """The cluster's processes: those whose command line names one of ``marks``."""
    me = psutil.Process().pid
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.info["pid"] == me:
            continue
        line = " ".join(p.info["cmdline"] or [])
        if any(m in line for m in marks):
            found.append(p)
    return found


def stop(marks: list[str]) -> None:
    """Terminate the cluster's processes, and kill those still alive after 5 s."""
    procs = ours(marks)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=5)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=10)


def start_node(args: list[str], env: dict[str, str]) -> None:
    """``ray start`` with ``args``; fails the test with Ray's output when it fails."""
    done = subprocess.run(
        [RAY, "start", *args], env=env, timeout=120, capture_output=True, text=True
    )
    assert done.returncode == 0, f"ray start {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
