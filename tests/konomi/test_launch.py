"""The child-process helpers of focusflow.konomi.launch."""

from __future__ import annotations

import subprocess
import sys

from focusflow.konomi.launch import stop


def test_stop_ends_the_processes_and_closes_their_pipes():
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    running = subprocess.Popen(sleeper, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    exited = subprocess.Popen([sys.executable, "-c", "pass"], stderr=subprocess.PIPE)
    exited.wait(timeout=60)
    stop([running, exited])
    assert running.returncode is not None and exited.returncode == 0
    assert running.stdin.closed and running.stderr.closed and exited.stderr.closed
