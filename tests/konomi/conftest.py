"""Fixtures of the Konomi tests: real PostgreSQL and Redis servers (session-wide)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.konomi.servers import Postgres, Redis


@pytest.fixture(scope="session")
def postgres():
    root = Path(tempfile.mkdtemp(prefix="konomi-pg-"))
    server = Postgres(root)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    root = Path(tempfile.mkdtemp(prefix="konomi-redis-"))
    server = Redis(root)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


_db_counter = [0]


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh database on the session's PostgreSQL server."""
    _db_counter[0] += 1
    return postgres.new_database(f"konomi_t{_db_counter[0]}")
