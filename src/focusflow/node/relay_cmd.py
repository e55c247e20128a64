"""``focusflow relay``: relay packets between two chains' nodes.

The relayer (``node.relay``) is trusted for nothing: the chains check every
header and proof it carries. It signs its transactions with a key of the
home's keystore (``--key``, as the ``tx`` commands), which pays their fees on
both chains, and logs each thing it relays.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from focusflow.cli.main import app


@app.command("relay")
def relay(
    a: str = typer.Option(..., "--a", help="URL of a node of chain A."),
    b: str = typer.Option(..., "--b", help="URL of a node of chain B."),
    home: Path = typer.Option(..., "--home", help="Home whose keystore holds the relayer's key."),
    key: str = typer.Option("default", "--key", help="Name of the key in the keystore."),
    port_a: str = typer.Option("rank", "--port-a", help="The application port on chain A."),
    port_b: str = typer.Option("rank", "--port-b", help="The application port on chain B."),
    once: bool = typer.Option(False, "--once", help="One pass, then exit."),
    interval: float = typer.Option(
        1.0, "--interval", min=0.1, max=3600, help="Seconds between passes."
    ),
) -> None:
    """Open a connection and an ordered channel between the two ports if none is
    open, then carry packets, acknowledgements and timeouts both ways."""
    from focusflow.cli.common import load_key
    from focusflow.node.relay import HttpEndpoint, Relayer
    from focusflow.node.relay import Path as PortPath

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    signer = load_key(str(home), key)
    ends = HttpEndpoint(a, signer), HttpEndpoint(b, signer)
    try:
        relayer = Relayer(ends[0], ends[1], PortPath(port_a, port_b))
        if once:
            relayer.step()
        else:
            relayer.run(interval)
    finally:
        for end in ends:
            end.close()
