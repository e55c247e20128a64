"""Persistence of templates, instances, active blocks and cube state.

One interface, two back ends: PostgreSQL through psycopg 3 when the URL starts
with ``postgresql://`` (or ``postgres://``), else an embedded SQLite file (the
default, ``konomi.sqlite3`` in the working directory). Both use the same tables
and the same upserts; block batches go through ``COPY`` on PostgreSQL.

Block keys are Morton codes (< 2^63, so a signed BIGINT holds them); block hashes
are 64-bit and stored as their two's-complement signed value. Cube rows carry a
version that grows on every save, so a server process can tell that another one
changed a cube and reload it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.konomi.errors import StoreError
from focusflow.konomi.extras import import_extra

if TYPE_CHECKING:
    from focusflow.konomi.cube import CubeState

#: The values of one statement's placeholders, or of one row written.
Params = tuple[object, ...]
#: A row as the database driver returns it (its columns typed by the schema).
Row = tuple[Any, ...]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS konomi_templates (
        id TEXT PRIMARY KEY, name TEXT NOT NULL,
        dx INTEGER NOT NULL, dy INTEGER NOT NULL, dz INTEGER NOT NULL,
        created DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS konomi_instances (
        id TEXT PRIMARY KEY, template_id TEXT NOT NULL REFERENCES konomi_templates(id),
        created DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS konomi_blocks (
        instance_id TEXT NOT NULL REFERENCES konomi_instances(id), key BIGINT NOT NULL,
        value DOUBLE PRECISION NOT NULL, ts DOUBLE PRECISION NOT NULL, hash BIGINT NOT NULL,
        kappa REAL NOT NULL, calls BIGINT NOT NULL, PRIMARY KEY (instance_id, key))""",
    """CREATE TABLE IF NOT EXISTS konomi_cubes (
        id TEXT PRIMARY KEY, state TEXT NOT NULL, version BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS konomi_cube_secrets (
        id TEXT PRIMARY KEY, secret TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS konomi_ledger (
        cube_id TEXT NOT NULL, height BIGINT NOT NULL, entry TEXT NOT NULL,
        PRIMARY KEY (cube_id, height))""",
)
_BLOCK_COLS = "instance_id, key, value, ts, hash, kappa, calls"
_BLOCK_UPDATE = (
    "value = excluded.value, ts = excluded.ts, hash = excluded.hash,"
    " kappa = excluded.kappa, calls = excluded.calls"
)


def _rows(
    instance_id: str,
    keys: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
    hashes: np.ndarray,
    kappas: np.ndarray,
    calls: np.ndarray,
) -> list[Params]:
    return list(
        zip(
            [instance_id] * len(keys),
            np.asarray(keys, np.uint64).view(np.int64).tolist(),
            np.asarray(values, np.float64).tolist(),
            np.asarray(times, np.float64).tolist(),
            np.asarray(hashes, np.uint64).view(np.int64).tolist(),
            np.asarray(kappas, np.float64).tolist(),
            np.asarray(calls, np.int64).tolist(),
            strict=True,
        )
    )


class Store(ABC):
    """What the grid persists; SQL back ends share everything but the connection."""

    ph = "?"

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @abstractmethod
    def _execute(self, sql: str, params: Params = ()) -> list[Row]: ...

    @abstractmethod
    def _executemany(self, sql: str, rows: list[Params]) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.ph)

    def migrate(self) -> None:
        """Create the tables when missing."""
        for stmt in SCHEMA:
            self._execute(stmt)

    def save_template(
        self, tid: str, name: str, dims: tuple[int, int, int], created: float
    ) -> None:
        """Insert or update a template."""
        self._execute(
            self._sql(
                "INSERT INTO konomi_templates (id, name, dx, dy, dz, created) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name"
            ),
            (tid, name, *dims, created),
        )

    def templates(self) -> list[tuple[str, str, tuple[int, int, int], float]]:
        """All templates as (id, name, dims, created)."""
        rows = self._execute("SELECT id, name, dx, dy, dz, created FROM konomi_templates")
        return [(r[0], r[1], (int(r[2]), int(r[3]), int(r[4])), float(r[5])) for r in rows]

    def save_instance(self, iid: str, template_id: str, created: float) -> None:
        """Insert an instance (idempotent)."""
        self._execute(
            self._sql(
                "INSERT INTO konomi_instances (id, template_id, created) VALUES (?,?,?)"
                " ON CONFLICT (id) DO NOTHING"
            ),
            (iid, template_id, created),
        )

    def instances(self) -> list[tuple[str, str, float]]:
        """All instances as (id, template_id, created)."""
        rows = self._execute("SELECT id, template_id, created FROM konomi_instances")
        return [(r[0], r[1], float(r[2])) for r in rows]

    def save_blocks(
        self,
        instance_id: str,
        keys: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
        hashes: np.ndarray,
        kappas: np.ndarray,
        calls: np.ndarray,
    ) -> None:
        """Upsert a batch of blocks (arrays of equal length)."""
        rows = _rows(instance_id, keys, values, times, hashes, kappas, calls)
        if rows:
            self._save_rows(rows)

    def _save_rows(self, rows: list[Params]) -> None:
        self._executemany(
            self._sql(
                f"INSERT INTO konomi_blocks ({_BLOCK_COLS}) VALUES (?,?,?,?,?,?,?)"
                f" ON CONFLICT (instance_id, key) DO UPDATE SET {_BLOCK_UPDATE}"
            ),
            rows,
        )

    def load_blocks(self, instance_id: str) -> dict[str, np.ndarray]:
        """Every stored block of an instance, as arrays named like the block array's."""
        rows = self._execute(
            self._sql(
                "SELECT key, value, ts, hash, kappa, calls FROM konomi_blocks WHERE instance_id = ?"
            ),
            (instance_id,),
        )
        cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[]] * 6
        return {
            "keys": np.asarray(cols[0], np.int64).view(np.uint64),
            "values": np.asarray(cols[1], np.float64),
            "timestamps": np.asarray(cols[2], np.float64),
            "hashes": np.asarray(cols[3], np.int64).view(np.uint64),
            "kappas": np.asarray(cols[4], np.float32),
            "calls": np.asarray(cols[5], np.int64).astype(np.uint32),
        }

    def save_cube(self, state: CubeState) -> int:
        """Upsert a cube's state; returns its new version."""
        rows = self._execute(
            self._sql(
                "INSERT INTO konomi_cubes (id, state, version) VALUES (?, ?, 1)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                " version = konomi_cubes.version + 1 RETURNING version"
            ),
            (state["id"], json.dumps(state)),
        )
        return int(rows[0][0])

    def load_cube(self, cube_id: str) -> tuple[CubeState, int] | None:
        """A cube's stored state and version, or None."""
        rows = self._execute(
            self._sql("SELECT state, version FROM konomi_cubes WHERE id = ?"), (cube_id,)
        )
        return (json.loads(rows[0][0]), int(rows[0][1])) if rows else None

    def cube_version(self, cube_id: str) -> int | None:
        """The stored version of a cube (cheap check before reloading it)."""
        rows = self._execute(self._sql("SELECT version FROM konomi_cubes WHERE id = ?"), (cube_id,))
        return int(rows[0][0]) if rows else None

    def cube_ids(self) -> list[str]:
        """Ids of all stored cubes."""
        return [r[0] for r in self._execute("SELECT id FROM konomi_cubes")]

    def cube_secret(self, cube_id: str, new: bytes) -> bytes:
        """The secret a cube's vertex keys derive from: the stored one, else ``new``,
        stored now. Every process that shares the store gets the same one."""
        self._execute(
            self._sql(
                "INSERT INTO konomi_cube_secrets (id, secret) VALUES (?, ?)"
                " ON CONFLICT (id) DO NOTHING"
            ),
            (cube_id, new.hex()),
        )
        rows = self._execute(
            self._sql("SELECT secret FROM konomi_cube_secrets WHERE id = ?"), (cube_id,)
        )
        return bytes.fromhex(rows[0][0])

    def append_ledger(self, cube_id: str, height: int, entry: bytes) -> None:
        """Store a ledger entry; StoreError when that height is already taken (another
        process appended first), so a ledger never forks in the store."""
        rows = self._execute(
            self._sql(
                "INSERT INTO konomi_ledger (cube_id, height, entry) VALUES (?, ?, ?)"
                " ON CONFLICT (cube_id, height) DO NOTHING RETURNING height"
            ),
            (cube_id, height, entry.hex()),
        )
        if not rows:
            raise StoreError(f"ledger of cube {cube_id!r}: height {height} is already stored")

    def ledger_entries(self, cube_id: str, start: int = 0, limit: int | None = None) -> list[bytes]:
        """A cube's ledger entries from height ``start`` on (at most ``limit``)."""
        sql = "SELECT entry FROM konomi_ledger WHERE cube_id = ? AND height >= ? ORDER BY height"
        params: Params = (cube_id, start)
        if limit is not None:
            sql += " LIMIT ?"
            params = (cube_id, start, limit)
        return [bytes.fromhex(r[0]) for r in self._execute(self._sql(sql), params)]

    def ledger_height(self, cube_id: str) -> int:
        """The number of stored entries of a cube's ledger."""
        rows = self._execute(
            self._sql("SELECT COUNT(*) FROM konomi_ledger WHERE cube_id = ?"), (cube_id,)
        )
        return int(rows[0][0])


class SQLiteStore(Store):
    """The embedded default: one SQLite file (WAL journal), shared by threads behind a lock."""

    def __init__(self, path: str | Path = "konomi.sqlite3") -> None:
        super().__init__()
        self.path = str(path)
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self.migrate()

    def _execute(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
                rows = cur.fetchall()
                self._conn.commit()
                return rows
            except sqlite3.Error as exc:
                self._conn.rollback()
                raise StoreError(f"SQLite: {exc}") from exc

    def _executemany(self, sql: str, rows: list[Params]) -> None:
        with self._lock:
            try:
                self._conn.executemany(sql, rows)
                self._conn.commit()
            except sqlite3.Error as exc:
                self._conn.rollback()
                raise StoreError(f"SQLite: {exc}") from exc

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()


class PostgresStore(Store):
    """PostgreSQL through psycopg 3 (one autocommit connection behind a lock)."""

    ph = "%s"

    def __init__(self, url: str) -> None:
        super().__init__()
        psycopg = import_extra("psycopg", "PostgreSQL persistence (--db postgresql://...)")
        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        with self._lock:
            self._execute("SELECT pg_advisory_lock(7033)")
            try:
                self.migrate()
            finally:
                self._execute("SELECT pg_advisory_unlock(7033)")

    def _execute(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
            except self._psycopg.Error as exc:
                raise StoreError(f"PostgreSQL: {exc}") from exc

    def _executemany(self, sql: str, rows: list[Params]) -> None:
        """One transaction for the batch: a writer killed mid-batch leaves none of it."""
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    cur.executemany(sql, rows)
            except self._psycopg.Error as exc:
                raise StoreError(f"PostgreSQL: {exc}") from exc

    def _save_rows(self, rows: list[Params]) -> None:
        if len(rows) < 1000:
            super()._save_rows(rows)
            return
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    cur.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS konomi_blocks_in"
                        " (LIKE konomi_blocks) ON COMMIT DELETE ROWS"
                    )
                    with cur.copy(f"COPY konomi_blocks_in ({_BLOCK_COLS}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    cur.execute(
                        f"INSERT INTO konomi_blocks ({_BLOCK_COLS})"
                        f" SELECT {_BLOCK_COLS} FROM konomi_blocks_in"
                        f" ON CONFLICT (instance_id, key) DO UPDATE SET {_BLOCK_UPDATE}"
                    )
            except self._psycopg.Error as exc:
                raise StoreError(f"PostgreSQL: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def open_store(url: str | None) -> Store:
    """PostgreSQL for ``postgresql://`` URLs; otherwise SQLite at the path (or ``sqlite:///path``)."""
    if url and url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    path = (url or "konomi.sqlite3").removeprefix("sqlite:///").removeprefix("sqlite://")
    return SQLiteStore(path)
