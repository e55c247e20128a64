"""``focusflow konomi``: serve the Konomi grid's APIs, retrain its FemtoLLM weights.

``serve`` runs REST + WebSocket + the web page (or a subset, ``--role``) with
uvicorn; ``--db postgresql://...`` persists to PostgreSQL, anything else (default
``konomi.sqlite3``) to SQLite; ``--redis redis://...`` fans cube events out to
every server process through Redis pub/sub. PostgreSQL and Redis need the
``konomi`` extra (``pip install 'focusflow[konomi]'``); without it those options
fail with ``missing_extra`` and the install line. ``--shards N`` splits the blocks
over N shard actors on Ray (the ``cluster`` extra; ``--cluster host:port`` joins a
running cluster, else a local Ray starts): each owns its blocks and writes them
to the same PostgreSQL database or to a SQLite file of its own
(``konomi.shard3.sqlite3``), and this process routes every request to the owner.

Every POST and WebSocket needs the server's bearer token: ``$KONOMI_TOKEN``
when set (containers share it that way), else the one in ``--token-file``
(default ``konomi.token``, created owner-only with a fresh token when missing).
The server binds loopback unless ``--public`` says it may face the network.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from focusflow.core.errors import InvalidParameterError

if TYPE_CHECKING:
    from focusflow.konomi.system import KonomiSystem

konomi_app = typer.Typer(
    help="Konomi: the CPU-only agent grid (BlockArray, FemtoLLM, Cube).", no_args_is_help=True
)


@konomi_app.command("serve")
def serve_cmd(
    db: str = typer.Option(
        "konomi.sqlite3", "--db", help="postgresql://... or a SQLite file path."
    ),
    redis: str | None = typer.Option(None, "--redis", help="redis://... for multi-process events."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind (loopback unless --public)."
    ),
    public: bool = typer.Option(
        False, "--public", help="Allow a non-loopback --host (e.g. 0.0.0.0 in a container)."
    ),
    token_file: Path = typer.Option(
        Path("konomi.token"),
        "--token-file",
        help="Bearer token file (created 0600 if missing); $KONOMI_TOKEN overrides it.",
    ),
    tokens: Path | None = typer.Option(
        None,
        "--tokens",
        help="Scoped API tokens to take as well (focusflow auth token issue --file FILE "
        "--role konomi); issued and revoked ones count at once.",
    ),
    port: int = typer.Option(3001, "--port", help="Port to bind."),
    role: list[str] = typer.Option(
        ["api", "ws", "web"], "--role", help="What to serve: api, ws, web (repeatable)."
    ),
    dims: str = typer.Option(
        "1000,1000,1000", "--dims", help="Dimensions of the default template (x,y,z)."
    ),
    shards: int = typer.Option(
        0, "--shards", help="Split the blocks over N shard actors on Ray (0: one process)."
    ),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Ray head host:port (or auto) for --shards; else a local Ray."
    ),
    compiled_routing: bool = typer.Option(
        False,
        "--compiled-routing",
        help="With --shards: single-block requests through Ray Compiled Graphs "
        "(about 0.1 ms instead of about 1 ms; each shard then keeps a core busy).",
    ),
) -> None:
    """Serve the REST API, the cube WebSocket and the web page."""
    import uvicorn

    from focusflow.core.home import is_loopback_host
    from focusflow.konomi.api import ROLES, create_app
    from focusflow.konomi.events import open_bus
    from focusflow.konomi.guard import MAX_BODY
    from focusflow.konomi.store import open_store
    from focusflow.konomi.system import KonomiSystem

    if not public and not is_loopback_host(host):
        raise InvalidParameterError(
            f"--host {host} is not a loopback address: add --public to serve the network"
        )
    bad = [r for r in role if r not in ROLES]
    if bad:
        raise InvalidParameterError(f"--role must be one of {', '.join(ROLES)}, got {bad[0]!r}")
    try:
        shape = tuple(int(v) for v in dims.split(","))
    except ValueError:
        raise InvalidParameterError("--dims must be three integers like 1000,1000,1000") from None
    if len(shape) != 3:
        raise InvalidParameterError("--dims needs three integers")
    # The bus first: it needs no connection yet, and a missing redis package is
    # then refused before a token file or a database is touched.
    bus = open_bus(redis)
    token = _server_token(token_file)
    system = (
        _sharded(db, redis, shape, shards, cluster, compiled_routing)
        if shards
        else KonomiSystem(store=open_store(db), default_dims=shape)
    )
    store = None
    if tokens is not None:
        from focusflow.services.auth.tokens import TokenStore

        store = TokenStore(tokens)
    app = create_app(system, bus, tuple(role), token=token, tokens=store)
    print(f"konomi: serving {', '.join(role)} on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", ws="auto", ws_max_size=MAX_BODY)
    finally:
        system.close()


def _sharded(
    db: str,
    redis: str | None,
    shape: tuple[int, ...],
    shards: int,
    cluster: str | None,
    compiled: bool = False,
) -> KonomiSystem:
    """A grid whose blocks live on ``shards`` Ray actors (docs/konomi.md, *Shards*)."""
    from focusflow.focus.shards.cluster import connect
    from focusflow.konomi.shards.actor import RayShards
    from focusflow.konomi.shards.coordinator import Coordinator
    from focusflow.konomi.shards.routing import check_shards
    from focusflow.konomi.shards.state import shard_stores
    from focusflow.konomi.shards.system import ShardedSystem
    from focusflow.konomi.store import open_store

    if shards < 0:
        raise InvalidParameterError("--shards must be 0 (one process) or a shard count")
    count = check_shards(shards)
    ray, _ = connect(cluster, count)
    backend = RayShards.start(ray, count, shard_stores(db), redis, compiled=compiled)
    return ShardedSystem(Coordinator(backend), store=open_store(db), default_dims=shape)


def _server_token(token_file: Path) -> str:
    """$KONOMI_TOKEN, else the token file's token (a new file with a fresh token)."""
    from focusflow.core.home import create_token_file, read_token_file
    from focusflow.konomi.guard import ENV_TOKEN, check_token

    try:
        env = os.environ.get(ENV_TOKEN, "")
        if env:
            return check_token(env.strip())
        if not token_file.exists():
            create_token_file(token_file)
            print(f"konomi: wrote a new token to {token_file}", file=sys.stderr, flush=True)
        return check_token(read_token_file(token_file))
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"no usable Konomi token: {exc}") from None


@konomi_app.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", help="Where to write the int8 weights (.npz)."),
    steps: int = typer.Option(4000, "--steps", help="Adam steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and batches."),
) -> None:
    """Retrain FemtoLLM on the shipped corpus (deterministic for a seed on one machine)."""
    from focusflow.konomi.femto_train import save_weights, train

    if steps < 1:
        raise InvalidParameterError("--steps must be at least 1")

    def progress(t: int, loss: float) -> None:
        if t % 500 == 0 or t == steps:
            print(f"step {t}: loss {loss:.4f} nats/byte", file=sys.stderr, flush=True)

    result = train(steps=steps, seed=seed, progress=progress)
    save_weights(result, out)
    print(
        f"wrote {out}: held-out loss {result.eval_loss:.4f} nats/byte"
        f" (uniform {result.uniform_loss:.4f}), {result.seconds:.1f} s"
    )


ledger_app = typer.Typer(
    help="Cube ledgers: verify one from its entries alone, export one from a store.",
    no_args_is_help=True,
)
konomi_app.add_typer(ledger_app, name="ledger")


@ledger_app.command("verify")
def ledger_verify_cmd(
    file: Path = typer.Argument(..., help="A ledger document (JSON: cube_id, entries as hex)."),
    peer: list[str] = typer.Option(
        [], "--peer", help="CUBE_ID=FILE: the ledger of a cross-referenced cube (repeatable)."
    ),
    head: str | None = typer.Option(None, "--head", help="The head hash it must end at (hex)."),
    threads: int | None = typer.Option(
        None, "--threads", help="Verification threads, or processes for a large ledger (cores)."
    ),
) -> None:
    """Verify a cube ledger: links, heights, every signature under the genesis keys,
    the 2/3 rule and the cross-references. Exit 0 when it holds, 3 at the first
    failing entry (its index and code printed)."""
    from focusflow.konomi.errors import LedgerError
    from focusflow.konomi.ledger import read_ledger_file, verify_ledger

    peers = {}
    for item in peer:
        cube_id, sep, path = item.partition("=")
        if not sep or not cube_id or not path:
            raise InvalidParameterError(f"--peer takes CUBE_ID=FILE, got {item!r}")
        peers[cube_id] = read_ledger_file(path)
    try:
        expected = bytes.fromhex(head) if head is not None else None
    except ValueError:
        raise InvalidParameterError("--head must be hex") from None
    entries = read_ledger_file(file)
    try:
        # A command runs in its own process: a large ledger may use worker processes.
        workers = threads if threads is not None else os.cpu_count() or 1
        report = verify_ledger(
            entries, peers, expected_head=expected, threads=threads, processes=workers
        )
    except LedgerError as exc:
        print(f"FAILED at entry {exc.index}: {exc} [{exc.code}]")
        raise typer.Exit(3) from None
    print(
        f"ok: cube {report.cube_id}, {report.entries} entries (height {report.entries - 1}), "
        f"{report.signatures} signatures, head {report.head.hex()}"
        + (f", {report.unchecked_refs} cross-references unchecked" if report.unchecked_refs else "")
    )


@ledger_app.command("export")
def ledger_export_cmd(
    cube: str = typer.Option(..., "--cube", help="The cube's id."),
    db: str = typer.Option(
        "konomi.sqlite3", "--db", help="postgresql://... or a SQLite file path."
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the ledger document (JSON)."),
) -> None:
    """Write a cube's stored ledger as a document ``ledger verify`` reads."""
    import json

    from focusflow.konomi.errors import UnknownCubeError
    from focusflow.konomi.ledger import ledger_document
    from focusflow.konomi.store import open_store

    store = open_store(db)
    try:
        entries = store.ledger_entries(cube)
    finally:
        store.close()
    if not entries:
        raise UnknownCubeError(f"no ledger of cube {cube!r} in {db}")
    out.write_text(json.dumps(ledger_document(cube, entries)) + "\n")
    print(f"wrote {out}: {len(entries)} entries of cube {cube}")
