"""How the ``focusflow`` process ends: Python's own exit work, then no teardown.

Arrow's C++ thread pools (the multithreaded CSV reader's) can still be
winding down when the interpreter tears itself down at exit; the pool's
destructor then finds a live worker and calls ``std::terminate``, and the
process dies by SIGABRT ("terminate called without an active exception",
status 134) after the command has done its work and printed its answer or
its error (apache/arrow#34314). Reading the bostrom sample with its invalid
CID, the command that then stops with status 2 aborted in 7 of 60 runs on a
loaded 2-core machine. A script that checks the status would see a crash.

So the console command ends the way the interpreter would, minus the part
that races: it runs the threading module's exit hooks and waits for the
threads that are not daemons (``threading._shutdown``, what the interpreter
calls first), runs the ``atexit`` handlers and flushes stdout and stderr,
then leaves with ``os._exit``, skipping the interpreter's teardown and the
C++ destructors.
Commands that own resources (a node's stores, its sockets) close them
themselves before they return.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def status_of(exit_code: object) -> int:
    """The process status ``SystemExit(exit_code)`` stands for, as Python
    gives it: None is 0, an integer itself, anything else printed to stderr
    and 1."""
    if exit_code is None:
        return 0
    if isinstance(exit_code, int):
        return exit_code
    print(exit_code, file=sys.stderr)
    return 1


def exit_process(status: int) -> NoReturn:
    """End the process with ``status`` after Python's own exit work, without
    the interpreter's teardown (the module docstring says why)."""
    # what the interpreter's own exit runs first: the threading module's exit
    # hooks (which tell idle executor workers to stop), then a join of every
    # thread that is not a daemon
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status & 0xFF)


def run_as_process(main: Callable[[], object]) -> NoReturn:
    """Run a command's ``main`` and end the process with its status."""
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = status_of(exc.code)
    exit_process(status)
