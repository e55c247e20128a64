"""The ``focusflow`` process ends with its command's status, after Python's
own exit work and without the interpreter's teardown, where Arrow's thread
pools could abort it (``cli.process_exit``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from focusflow.cli.process_exit import status_of
from tests.helpers import ROOT, SHARED_SAMPLE


def test_the_status_of_an_exit_code_is_pythons(capsys: pytest.CaptureFixture[str]) -> None:
    assert status_of(None) == 0
    assert status_of(2) == 2
    assert status_of("bad") == 1
    assert capsys.readouterr().err == "bad\n"


def test_the_process_still_does_pythons_exit_work(tmp_path: Path) -> None:
    """An idle executor (whose workers wait for the threading module's exit
    hook), a thread still working and an atexit handler: the command's error
    comes with its status, the thread finishes, the handler runs, and the
    process does not hang."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import atexit, sys, threading, time\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(2)\n"
        "pool.submit(time.sleep, 0.05)\n"
        f"out = {str(tmp_path)!r}\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    open(out + '/thread', 'w').write('done')\n"
        "threading.Thread(target=late).start()\n"
        "atexit.register(lambda: open(out + '/atexit', 'w').write('ran'))\n"
        "from focusflow.node.main import main\n"
        "main(sys.argv[1:])\n"
    )
    argv = ["query", "datalog", "r(x) :- link(x, _).", "--graph", str(tmp_path / "none.tsv")]
    done = subprocess.run(
        [sys.executable, str(script), *argv, "--output", "r"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("[bad_input_file]")
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_SAMPLE.exists(), reason="the shared bostrom sample is absent")
def test_a_command_that_read_a_file_with_arrow_never_aborts_at_exit() -> None:
    """The bostrom sample's invalid CID stops the command with status 2 right
    after Arrow's threads read the file. With the interpreter's teardown, 7
    of 60 such runs on a loaded 2-core machine died by SIGABRT (status 134)
    instead; the busy loops here load the CPUs the same way."""
    program = "authors(n, c) :- stake(n, _), c = count : { neuron_link(n, _, _) }."
    argv = [sys.executable, "-m", "focusflow", "query", "datalog", program]
    argv += ["--graph", str(SHARED_SAMPLE), "--output", "authors"]
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    statuses = []
    try:
        started = time.monotonic()
        while len(statuses) < 40 and time.monotonic() - started < 600:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
            statuses.append(run.returncode)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert len(statuses) >= 20
    assert set(statuses) == {2}, statuses
