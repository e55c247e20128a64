"""The ``focusflow`` command: the CLI of the layers below plus the node commands.

Commands that run a node (``devnet``) live here, at the top layer, because
they wire everything; the rest of the CLI lives in ``focusflow.cli``, which
this module extends.
"""

from __future__ import annotations

from pathlib import Path

import typer

from focusflow.cli.main import app
from focusflow.cli.main import main as cli_main
from focusflow.core.home import resolve_home


@app.command("devnet")
def devnet(
    home: Path | None = typer.Option(
        None,
        "--home",
        help="Node home (default: $FOCUSFLOW_HOME or ~/.local/share/focusflow/devnet).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the API listens on."),
    port: int = typer.Option(26657, "--port", min=0, max=65535, help="API port (0: any free one)."),
    block_time: str = typer.Option(
        "1s", "--block-time", help="Time between blocks: 1s, 500ms, 0.2."
    ),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log JSON lines instead of text."),
    da_withhold: float = typer.Option(
        0.0, "--da-withhold", hidden=True, help="Tests only: withhold this part of DA squares."
    ),
) -> None:
    """Start a single-validator devnet (created on first run, resumed later)."""
    from focusflow.node import logs
    from focusflow.node.devnet import parse_duration, run_devnet

    seconds = parse_duration(block_time)
    logs.setup(json_logs)
    run_devnet(
        resolve_home(home), host=host, port=port, block_time=seconds, da_withhold=da_withhold
    )


def main(argv: list[str] | None = None) -> None:
    cli_main(argv)
