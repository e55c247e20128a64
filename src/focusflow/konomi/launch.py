"""Starting Konomi servers (and a Redis for them) as child processes on loopback.

The end-to-end tests and ``bench/konomi.py`` both run ``focusflow konomi serve``
in several processes against one database and one Redis; this is the one place
that knows how. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60.0) -> bool:
    """Whether something accepts connections on 127.0.0.1:port within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def serve_process(
    db: str, port: int, redis: str | None = None, dims: str = "100,100,100", stderr=None
) -> subprocess.Popen:
    """``focusflow konomi serve`` on 127.0.0.1:port in a child process."""
    cmd = [sys.executable, "-m", "focusflow", "konomi", "serve", "--db", db]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--dims", dims]
    if redis:
        cmd += ["--redis", redis]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if stderr is None else stderr
    )


def redis_process(exe: str, port: int, directory: Path) -> subprocess.Popen:
    """A Redis server without persistence on 127.0.0.1:port."""
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return subprocess.Popen(
        [*cmd, "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    """Terminate child processes, killing those that do not exit in time."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)
