"""Real PostgreSQL and Redis servers for the tests, on loopback ports in a temp dir.

PostgreSQL refuses to run as root, so as root the cluster is created and run as
the ``postgres`` user (the Debian package creates it), else ``nobody``. When the
binaries are missing, the tests fail, except on a non-root machine outside CI,
where they skip with the reason (nothing can be installed there).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from focusflow.konomi.launch import free_port, redis_process, serve_process, stop, wait_port


def _missing(what: str) -> None:
    reason = f"{what} not found (Debian package: ./dev test installs it as root)"
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip(reason)
    pytest.fail(reason)


def pg_bin(name: str) -> str | None:
    """Path of a PostgreSQL server binary (Debian keeps them out of PATH)."""
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


class Postgres:
    """A throw-away PostgreSQL cluster; ``url`` connects to its ``konomi`` database."""

    def __init__(self, root: Path) -> None:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            _missing("PostgreSQL (initdb, pg_ctl)")
        self.pg_ctl = pg_ctl
        self.port = free_port()
        self.dir = root / "pg"
        self.dir.mkdir()
        self.user: str | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user = name
                for p in (root, self.dir):
                    os.chown(p, pw.pw_uid, pw.pw_gid)
                root.chmod(0o755)
                break
            else:
                pytest.fail("running as root without a 'postgres' or 'nobody' user for PostgreSQL")
        data = self.dir / "data"
        self._run(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]
        )
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            [
                pg_ctl,
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(self.dir / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self.data = data
        self.base = f"postgresql://postgres@127.0.0.1:{self.port}"
        self._run(
            [
                pg_bin("createdb") or "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "konomi",
            ]
        )
        self.url = f"{self.base}/konomi"

    def _run(self, cmd: list[str]) -> None:
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")
        if res.returncode != 0:
            log = self.dir / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{' '.join(cmd)} failed: {res.stderr or res.stdout}\n{tail}")

    def new_database(self, name: str) -> str:
        """Create another database on the cluster; returns its URL."""
        import psycopg

        with psycopg.connect(f"{self.base}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.base}/{name}"

    def stop(self) -> None:
        """Stop the server (fast shutdown)."""
        cmd = [self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, capture_output=True, timeout=60, cwd="/")


class Redis:
    """A throw-away Redis server without persistence."""

    def __init__(self, root: Path) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            _missing("redis-server")
        self.port = free_port()
        self.proc = redis_process(exe, self.port, root)
        if not wait_port(self.port, 20):
            self.proc.kill()
            pytest.fail("redis-server did not start listening within 20 s")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Terminate the server."""
        stop([self.proc])


def start_konomi(
    db: Path, token: str, dims: str = "10,10,10", **kw
) -> tuple[subprocess.Popen, int]:
    """A ``focusflow konomi serve`` process on a free loopback port, once it listens:
    ``(process, port)``; the test fails with the server's last words if it does not
    listen within 60 s."""
    port = free_port()
    proc = serve_process(str(db), port, dims=dims, token=token, stderr=subprocess.PIPE, **kw)
    if not wait_port(port, 60):
        proc.kill()
        pytest.fail(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
    return proc, port
