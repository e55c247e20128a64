"""psycopg and redis are the ``konomi`` extra: the CLI's help never loads them, and a
server asked for PostgreSQL or Redis without them names the extra to install.

Each case runs the real ``focusflow`` command in a fresh interpreter. A missing
package is made missing the way Python documents: ``sys.modules[name] = None``
makes ``import name`` raise ImportError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from focusflow.konomi.extras import INSTALL
from focusflow.konomi.guard import ENV_TOKEN
from focusflow.konomi.launch import free_port, new_token, stop, wait_port
from tests.helpers import cli_program

EXTRA_MODULES = ("psycopg", "redis")
#: What `--help` must not load: the extra's packages and Konomi itself.
WATCHED = (*EXTRA_MODULES, "focusflow.konomi")


def _env(with_token: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_TOKEN}
    if with_token:
        env[ENV_TOKEN] = new_token()
    return env


def _focusflow(
    argv: list[str],
    missing: tuple[str, ...] = (),
    report: bool = False,
    with_token: bool = True,
) -> subprocess.CompletedProcess:
    """``focusflow argv`` run to its end in a child interpreter (``cli_program``)."""
    return subprocess.run(
        [sys.executable, "-c", cli_program(argv, missing, WATCHED if report else ())],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(with_token),
    )


def test_help_loads_neither_package():
    for argv in (["--help"], ["konomi", "--help"], ["konomi", "serve", "--help"]):
        res = _focusflow(argv, report=True)
        assert res.returncode == 0, res.stderr
        seen = json.loads(res.stdout.strip().splitlines()[-1])
        assert seen == {"loaded": []}, argv  # neither package, nor Konomi itself


def test_postgres_without_psycopg_names_the_extra():
    port = free_port()
    res = _focusflow(
        ["konomi", "serve", "--db", "postgresql://127.0.0.1:9/konomi", "--port", str(port)],
        missing=("psycopg",),
    )
    assert res.returncode == 2, res.stderr
    assert "psycopg" in res.stderr and INSTALL in res.stderr
    assert res.stderr.rstrip().endswith("[missing_extra]")


def test_redis_without_redis_names_the_extra_and_touches_nothing(tmp_path: Path):
    db = tmp_path / "k.sqlite3"
    token_file = tmp_path / "konomi.token"
    res = _focusflow(
        [
            "konomi",
            "serve",
            "--db",
            str(db),
            "--redis",
            "redis://127.0.0.1:9/0",
            "--token-file",
            str(token_file),
            "--port",
            str(free_port()),
        ],
        missing=("redis",),
        with_token=False,
    )
    assert res.returncode == 2, res.stderr
    assert "'redis'" in res.stderr and INSTALL in res.stderr
    assert res.stderr.rstrip().endswith("[missing_extra]")
    assert not db.exists() and not token_file.exists()


def test_a_sqlite_server_runs_without_the_extra(tmp_path: Path):
    port = free_port()
    argv = ["konomi", "serve", "--db", str(tmp_path / "k.sqlite3"), "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-c", cli_program([*argv, "--dims", "10,10,10"], EXTRA_MODULES)],
        env=_env(with_token=True),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if not wait_port(port, 60):
            proc.kill()
            pytest.fail(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "ok"
    finally:
        stop([proc])
