"""Starting Konomi servers (and a Redis for them) as child processes on loopback.

The end-to-end tests and ``bench/konomi.py`` both run ``focusflow konomi serve``
in several processes against one database and one Redis; this is the one place
that knows how. Everything binds 127.0.0.1 unless a caller says otherwise.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from focusflow.core.home import TOKEN_BYTES
from focusflow.konomi.guard import ENV_TOKEN


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


def new_token() -> str:
    """A fresh bearer token for servers started here (as long as a token file's)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def serve_process(
    db: str,
    port: int,
    redis: str | None = None,
    dims: str = "100,100,100",
    stderr: int | IO[bytes] | None = None,
    *,
    token: str,
    host: str | None = "127.0.0.1",
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """``focusflow konomi serve`` on host:port in a child process, with ``token`` as
    its bearer token (through $KONOMI_TOKEN, so no file is written). ``host=None``
    leaves the address to the command's default; ``extra`` adds options."""
    cmd = [sys.executable, "-m", "focusflow", "konomi", "serve", "--db", db]
    cmd += ["--port", str(port), "--dims", dims, *extra]
    if host is not None:
        cmd += ["--host", host]
    if redis:
        cmd += ["--redis", redis]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if stderr is None else stderr,
        env={**os.environ, ENV_TOKEN: token},
    )


def redis_process(exe: str, port: int, directory: Path) -> subprocess.Popen[bytes]:
    """A Redis server without persistence on 127.0.0.1:port."""
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return subprocess.Popen(
        [*cmd, "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """Terminate child processes, killing those that do not exit in time, and
    close the pipes they were started with (a caller's ``stderr=PIPE``): once
    a process is gone nothing reads them, and an open pipe is a file descriptor
    held until the garbage collector finds it."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)
        for pipe in (p.stdin, p.stdout, p.stderr):
            if pipe is not None:
                pipe.close()
