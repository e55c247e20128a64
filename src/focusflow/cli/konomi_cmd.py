"""``focusflow konomi``: serve the Konomi grid's APIs, retrain its FemtoLLM weights.

``serve`` runs REST + WebSocket + the web page (or a subset, ``--role``) with
uvicorn; ``--db postgresql://...`` persists to PostgreSQL, anything else (default
``konomi.sqlite3``) to SQLite; ``--redis redis://...`` fans cube events out to
every server process through Redis pub/sub.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from focusflow.core.errors import InvalidParameterError

konomi_app = typer.Typer(
    help="Konomi: the CPU-only agent grid (BlockArray, FemtoLLM, Cube).", no_args_is_help=True
)


@konomi_app.command("serve")
def serve_cmd(
    db: str = typer.Option(
        "konomi.sqlite3", "--db", help="postgresql://... or a SQLite file path."
    ),
    redis: str | None = typer.Option(None, "--redis", help="redis://... for multi-process events."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(3001, "--port", help="Port to bind."),
    role: list[str] = typer.Option(
        ["api", "ws", "web"], "--role", help="What to serve: api, ws, web (repeatable)."
    ),
    dims: str = typer.Option(
        "1000,1000,1000", "--dims", help="Dimensions of the default template (x,y,z)."
    ),
) -> None:
    """Serve the REST API, the cube WebSocket and the web page."""
    import uvicorn

    from focusflow.konomi.api import ROLES, create_app
    from focusflow.konomi.events import open_bus
    from focusflow.konomi.store import open_store
    from focusflow.konomi.system import KonomiSystem

    bad = [r for r in role if r not in ROLES]
    if bad:
        raise InvalidParameterError(f"--role must be one of {', '.join(ROLES)}, got {bad[0]!r}")
    try:
        shape = tuple(int(v) for v in dims.split(","))
    except ValueError:
        raise InvalidParameterError("--dims must be three integers like 1000,1000,1000") from None
    if len(shape) != 3:
        raise InvalidParameterError("--dims needs three integers")
    system = KonomiSystem(store=open_store(db), default_dims=shape)  # type: ignore[arg-type]
    app = create_app(system, open_bus(redis), tuple(role))
    print(f"konomi: serving {', '.join(role)} on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", ws="auto")
    finally:
        system.close()


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
