"""The ``focusflow`` command: the CLI of the layers below plus the node commands.

Commands that run a node (``devnet``) live here, at the top layer, because
they wire everything; the rest of the CLI lives in ``focusflow.cli``, which
this module extends.
"""

from __future__ import annotations

import os

# numpy asks the kernel for transparent huge pages on every large array it
# allocates; where the kernel then compacts memory on each first touch (THP
# "defrag: madvise", as on this project's 2-core VMs), a fresh 64 MB array
# took 0.2 s instead of 0.03 s, and loading a 10^7-link file paid over a
# second of it. Set before numpy is imported; a user's own setting wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

from pathlib import Path
from typing import NoReturn

import typer

from focusflow.cli.main import app
from focusflow.cli.main import main as cli_main
from focusflow.cli.process_exit import run_as_process
from focusflow.core.errors import InvalidParameterError
from focusflow.core.home import resolve_home
from focusflow.node import relay_cmd  # noqa: F401 - registers the relay command
from focusflow.node.faults import FAULT_PLAN_ENV, fault_plan_option


@app.command("devnet")
def devnet(  # noqa: PLR0913 - one option per parameter, as typer takes them
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
    fault_plan: str | None = typer.Option(
        None,
        "--fault-plan",
        envvar=FAULT_PLAN_ENV,
        hidden=True,
        help="Tests only: the faults this node commits, as FaultPlan JSON (focusflow.node.faults).",
    ),
    mempool_txs: int = typer.Option(
        50_000, "--mempool-txs", min=1, help="Most transactions the mempool holds."
    ),
    dns: str | None = typer.Option(
        None,
        "--dns",
        help="Also answer registered names over DNS on this UDP host:port "
        "(TXT records of NAME.focus).",
    ),
    economy: bool = typer.Option(
        False,
        "--economy",
        help="A new home runs the two-token economy: gas in H, rewards, the dev key "
        "a primary dealer (docs/economics.md). An existing home keeps its own.",
    ),
    anvil: bool = typer.Option(
        False,
        "--anvil",
        help="Run as anvil does for hardhat/foundry tests: blocks on demand (one per "
        "transaction, evm_mine), the test accounts unlocked and holding 10,000 ether, "
        "time travel, anvil_setBalance (docs/evm.md). A new home's genesis grants "
        "these dev powers; --block-time is then unused.",
    ),
    focus_model: str | None = typer.Option(
        None,
        "--focus-model",
        help="What a new home's chain commits as focus: blend (the tri-kernel, the "
        "default), free-energy (F's minimiser at --temperature) or local-rule "
        "(docs/focus.md). An existing home keeps its own.",
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", help="The focus model's temperature T (> 0), with --focus-model."
    ),
) -> None:
    """Start a devnet: a network of one validator (created on first run, resumed later)."""
    from focusflow.chain.mempool import MempoolLimits
    from focusflow.node import logs
    from focusflow.node.devnet import parse_duration, run_devnet
    from focusflow.services.dns import DnsSettings

    seconds = parse_duration(block_time)
    focus: dict[str, object] = {}
    if focus_model is not None:
        focus["model"] = focus_model
    if temperature is not None:
        if focus_model is None:
            raise InvalidParameterError("--temperature needs --focus-model")
        focus["temperature"] = temperature
    logs.setup(json_logs)
    run_devnet(
        resolve_home(home),
        host=host,
        port=port,
        block_time=seconds,
        faults=fault_plan_option(fault_plan),
        mempool=MempoolLimits(max_txs=mempool_txs),
        dns=None if dns is None else DnsSettings.parse(dns),
        economy=economy,
        anvil=anvil,
        focus=focus or None,
    )


node_app = typer.Typer(help="Run a validator or a full node of a network.", no_args_is_help=True)
app.add_typer(node_app, name="node")


@node_app.command("start")
def node_start(
    home: Path = typer.Option(..., "--home", help="The node's home (from `testnet`, `node init`)."),
    full: bool = typer.Option(
        False, "--full", help="Run a full node: follow consensus and serve the API, never sign."
    ),
    peers: list[str] = typer.Option(
        [], "--peer", help="A node to dial, <node id hex>@host:port (repeat)."
    ),
    genesis: Path | None = typer.Option(
        None, "--genesis", help="With --full and a new home: the network's genesis.json."
    ),
    p2p: str = typer.Option(
        "127.0.0.1:0", "--p2p", help="With --full and a new home: QUIC listen address."
    ),
    api: str = typer.Option(
        "127.0.0.1:0", "--api", help="With --full and a new home: REST API listen address."
    ),
    trust_height: int | None = typer.Option(
        None, "--trust-height", min=1, help="With --full and a new home: a trusted height."
    ),
    trust_hash: str | None = typer.Option(
        None, "--trust-hash", help="With --full and a new home: the hash of that header (hex)."
    ),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log JSON lines instead of text."),
    fault_plan: str | None = typer.Option(
        None,
        "--fault-plan",
        envvar=FAULT_PLAN_ENV,
        hidden=True,
        help="Tests only: the faults this node commits, as FaultPlan JSON (focusflow.node.faults).",
    ),
) -> None:
    """Run one node, as its config.json says: a validator (QUIC peers, consensus,
    the REST API), or with --full a full node that re-executes every block and
    serves the API without signing. A full node's home is created on first start
    from --genesis, --p2p and --api; --peer adds nodes to dial. A new full node
    starts from the newest snapshot a peer offers that verifies against a header
    certified from genesis (or from --trust-height/--trust-hash), then block-syncs."""
    from focusflow.chain.genesis import Genesis
    from focusflow.node import logs
    from focusflow.node.home import Home, HomeError, init_full_node
    from focusflow.node.network import run_validator

    logs.setup(json_logs)
    if full and not Home(home).exists():
        if genesis is None:
            raise HomeError(f"{home} has no genesis.json: give --genesis FILE to create it")
        if (trust_height is None) != (trust_hash is None):
            raise HomeError("--trust-height and --trust-hash go together")
        trust = (
            {} if trust_height is None else {"trust_height": trust_height, "trust_hash": trust_hash}
        )
        init_full_node(
            home,
            Genesis.load(genesis),
            name=home.name,
            p2p=p2p,
            api=api,
            peers=list(peers),
            settings=trust,
        )
    run_validator(home, full=full, peers=list(peers), faults=fault_plan_option(fault_plan))


@app.command("testnet")
def testnet(  # noqa: PLR0913 - one option per parameter, as typer takes them
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
    full_nodes: int = typer.Option(
        0, "--full-nodes", min=0, max=64, help="Full nodes to run beside the validators."
    ),
    rollups: int = typer.Option(
        0,
        "--rollups",
        min=0,
        max=64,
        help="Run a hub and R rollup chains (N validators each) with a relayer per rollup.",
    ),
    hub_validators: int = typer.Option(
        1, "--hub-validators", min=1, max=64, help="The hub's validators (with --rollups)."
    ),
    merge_interval_ms: int = typer.Option(
        1000, "--merge-interval-ms", min=100, max=600_000, help="The hub merges at most this often."
    ),
    stale_after_ms: int | None = typer.Option(
        None,
        "--stale-after-ms",
        min=100,
        max=3_600_000,
        help="A rollup silent this long is held stale (default: 10 merge intervals).",
    ),
    restart: bool = typer.Option(
        False,
        "--restart",
        help="Start a node that exits again (backoff 1 s doubling, at most 5 times in a row); "
        "without it an exit is only reported.",
    ),
    consensus: str = typer.Option(
        "tendermint",
        "--consensus",
        help="The genesis's consensus engine: tendermint, snowman, or fallback "
        "(Tendermint that polls a stalled height); docs/consensus.md §10.",
    ),
    mempool: str = typer.Option(
        "proposer",
        "--mempool",
        help="How transactions reach blocks: proposer (carried in the proposer's block) or "
        "dag (certified batches that blocks name; Tendermint only); docs/consensus.md §11.",
    ),
) -> None:
    """Create a shared genesis, N validator homes and M full-node homes; run them on
    loopback until Ctrl-C (DIR/testnet.json lists them, DIR/genesis.json is the genesis).

    With --rollups R: a network of rollups instead, a hub chain and R rollup chains,
    each with its genesis and homes under DIR (docs/rollups.md)."""
    from focusflow.consensus.engine import ENGINES, EngineConfig
    from focusflow.core.errors import InvalidParameterError
    from focusflow.node import logs

    if consensus not in ENGINES:
        raise typer.BadParameter(f"--consensus must be one of {', '.join(ENGINES)}")
    try:
        engine = EngineConfig(engine=consensus, mempool=mempool)
    except InvalidParameterError as exc:
        raise typer.BadParameter(str(exc)) from None
    params: dict[str, object] = {"epoch_blocks": epoch_blocks}
    if engine.to_plain():
        params["consensus"] = engine.to_plain()
    logs.setup(json_logs)
    if rollups:
        from focusflow.node.rollup_testnet import run_rollup_testnet

        if full_nodes:
            raise typer.BadParameter("--full-nodes is for a single chain, not with --rollups")
        run_rollup_testnet(
            home,
            rollups,
            validators,
            hub_validators,
            base_port,
            json_logs=json_logs,
            params=params,
            merge_interval_ms=merge_interval_ms,
            stale_after_ms=stale_after_ms,
        )
        return
    from focusflow.node.network import run_testnet

    run_testnet(
        home,
        validators,
        base_port,
        json_logs=json_logs,
        params=params,
        full_nodes=full_nodes,
        restart=restart,
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


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``focusflow`` console command: the CLI, then the process's end
    (``cli.process_exit`` says why it skips the interpreter's teardown)."""
    run_as_process(lambda: cli_main(argv))
