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
    mempool_txs: int = typer.Option(
        50_000, "--mempool-txs", min=1, help="Most transactions the mempool holds."
    ),
) -> None:
    """Start a devnet: a network of one validator (created on first run, resumed later)."""
    from focusflow.chain.mempool import MempoolLimits
    from focusflow.node import logs
    from focusflow.node.devnet import parse_duration, run_devnet

    seconds = parse_duration(block_time)
    logs.setup(json_logs)
    run_devnet(
        resolve_home(home),
        host=host,
        port=port,
        block_time=seconds,
        da_withhold=da_withhold,
        mempool=MempoolLimits(max_txs=mempool_txs),
    )


node_app = typer.Typer(help="Run a validator of a network.", no_args_is_help=True)
app.add_typer(node_app, name="node")


@node_app.command("start")
def node_start(
    home: Path = typer.Option(..., "--home", help="The validator's home (from `testnet`)."),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log JSON lines instead of text."),
) -> None:
    """Run one validator: QUIC peers, consensus and the REST API, as its config.json says."""
    from focusflow.node import logs
    from focusflow.node.network import run_validator

    logs.setup(json_logs)
    run_validator(home)


@app.command("testnet")
def testnet(
    validators: int = typer.Option(4, "--validators", min=1, max=64, help="How many."),
    home: Path = typer.Option(
        Path("testnet"), "--home", help="Directory for the N homes and testnet.json."
    ),
    base_port: int = typer.Option(
        26700, "--base-port", min=1, max=65000, help="Validator k: QUIC P+2k, API P+2k+1."
    ),
    json_logs: bool = typer.Option(False, "--json-logs", help="Validators log JSON lines."),
    epoch_blocks: int = typer.Option(
        100, "--epoch-blocks", min=1, help="Blocks per epoch (validator set changes)."
    ),
) -> None:
    """Create a shared genesis and N validator homes, run them on loopback until Ctrl-C."""
    from focusflow.node import logs
    from focusflow.node.network import run_testnet

    logs.setup(json_logs)
    run_testnet(
        home, validators, base_port, json_logs=json_logs, params={"epoch_blocks": epoch_blocks}
    )


@node_app.command("init")
def node_init(
    home: Path = typer.Option(..., "--home", help="Directory for the new validator's home."),
    genesis: Path = typer.Option(..., "--genesis", help="The network's genesis.json."),
    p2p: str = typer.Option(..., "--p2p", help="QUIC listen address, host:port."),
    api: str = typer.Option(..., "--api", help="REST API listen address, host:port."),
    peers: list[str] = typer.Option(
        [], "--peer", help="A validator to dial, <node id hex>@host:port (repeat)."
    ),
    name: str = typer.Option("validator", "--name", help="Name shown in logs and testnet.json."),
) -> None:
    """Create a home for a validator that joins an existing network.

    Then fund its address, bond and register it (`focusflow tx validator
    register --home DIR --stake N`) and start it with `focusflow node start`;
    it votes from the first epoch boundary after the registration.
    """
    from focusflow.chain.genesis import Genesis
    from focusflow.node.home import init_validator

    home_obj, key = init_validator(
        home, Genesis.load(genesis), name=name, p2p=p2p, api=api, peers=peers
    )
    typer.echo(f"home:       {home_obj.path}")
    typer.echo(f"address:    {key.address}")
    typer.echo(f"public key: {key.public_key.hex()}")


def main(argv: list[str] | None = None) -> None:
    cli_main(argv)
