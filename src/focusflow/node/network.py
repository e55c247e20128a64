"""``focusflow node start`` (one validator or full node) and ``focusflow testnet``.

A validator home is a devnet home plus ``config.json`` (its QUIC and API
addresses, its peers, optional consensus timeouts) and ``consensus.wal``. A
full-node home (``home.init_full_node``) has the genesis, a node key and a
config with ``"full": true``: the node dials its peers, block-syncs, follows
consensus, re-executes every block and serves the API, and never signs. The
testnet command creates N validator homes and M full-node homes over one
genesis (home.init_testnet), starts ``focusflow node start --home DIR/vK`` and
``DIR/fJ`` for each, writes ``DIR/testnet.json`` (``{"validators": [{"name",
"api", "pid"}, ...], "full_nodes": [...]}``, and the genesis at
``DIR/genesis.json``) so scripts can find and stop single nodes, and waits;
SIGINT or SIGTERM stops them all. A node that exits meanwhile is reported in one
line naming its log, and with ``--restart`` started again (node.supervisor).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, TypedDict

from focusflow.consensus import Timeouts
from focusflow.core.errors import FocusflowError
from focusflow.core.home import write_private_file
from focusflow.net import NetConfig
from focusflow.net.transport import DEFAULT_DATAGRAM_SIZE
from focusflow.node.bootstrap import bootstrap_extensions
from focusflow.node.ca_signer import ca_extensions
from focusflow.node.devnet import bind, dev_key_of, prepare_kernels
from focusflow.node.engines import snowman_timeouts_of
from focusflow.node.extensions import default_extensions
from focusflow.node.faults import FAULT_PLAN_ENV, FaultPlan
from focusflow.node.home import Home, HomeError, init_testnet, lock_home
from focusflow.node.serve import serve
from focusflow.node.state_sync import Trust, state_sync
from focusflow.node.supervisor import Supervisor
from focusflow.node.validator import MAX_GUESTS, ValidatorRuntime
from focusflow.node.wiring import open_chain

log = logging.getLogger("focusflow.node")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


#: QUIC's least datagram (RFC 9000 §14) and UDP's largest IPv4 payload.
DATAGRAM_RANGE = (1200, 65507)


def net_config_of(config: Mapping[str, object]) -> NetConfig:
    """The QUIC settings a validator's config.json asks for (``max_datagram_size``)."""
    size = config.get("max_datagram_size", DEFAULT_DATAGRAM_SIZE)
    lo, hi = DATAGRAM_RANGE
    if isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi:
        raise HomeError(
            f"config.json: max_datagram_size must be an integer from {lo} to {hi} bytes, "
            f"not {size!r}"
        )
    return NetConfig(max_datagram_size=size)


def run_validator(
    home_path: Path,
    *,
    full: bool = False,
    peers: list[str] | None = None,
    faults: FaultPlan | None = None,
) -> None:
    """Serve the validator or full node at ``home_path`` until SIGINT/SIGTERM.

    ``full`` (or ``"full": true`` in its config) runs it as a full node, which
    never signs; ``peers`` are dialed besides the config's. ``faults``: tests
    only (``focusflow.node.faults``), None on an honest node.
    """
    home = Home(Path(home_path))
    if not home.exists() or not home.config.exists():
        raise HomeError(f"{home.path} is not a node home (no genesis.json or config.json)")
    lock_fd = lock_home(home)
    logging.getLogger("quic").setLevel(logging.WARNING)
    try:
        config = home.load_config()
        full = full or bool(config.get("full"))
        all_peers = list(dict.fromkeys([*config.get("peers", []), *(peers or [])]))
        api_host, api_port = _split(config["api"])
        sock = bind(api_host, api_port)
        genesis = home.load_genesis()
        key = home.load_node_key()
        if full and config.get("state_sync", True) and all_peers:
            # A new full node starts from a verified snapshot when a peer offers
            # one (state_sync returns at once for a store that holds a chain).
            asyncio.run(
                state_sync(
                    home.data,
                    genesis,
                    all_peers,
                    Trust.from_config(config),
                    net_config=net_config_of(config),
                )
            )
        chain = open_chain(home.data, genesis, None if full else key)
        role = "full node" if full else "validator"
        log.info(
            f"{role} home opened",
            extra={
                "fields": {
                    "home": str(home.path),
                    "height": chain.height,
                    "restored_from": chain.restored_from,
                }
            },
        )
        prepare_kernels(genesis.params.focus)
        try:
            p2p_host, p2p_port = _split(config["p2p"])
            runtime = ValidatorRuntime(
                chain,
                key,
                wal_path=home.wal,
                listen=(p2p_host, p2p_port),
                peers=all_peers,
                timeouts=Timeouts(**config.get("timeouts", {})),
                snowman_timeouts=snowman_timeouts_of(config),
                faucet_key=None if full else dev_key_of(home),
                commit_wait=float(config.get("commit_wait", 0.2)),
                net_config=net_config_of(config),
                follow_only=full,
                guests=guests_of(config),
                faults=faults,
            )
            runtime.extensions.extend(default_extensions(config))
            runtime.interchain_apis = interchain_apis_of(config)
            if not full:  # a CA member's duty, where the home holds a share
                account = home.load_account_key()
                runtime.extensions.extend(ca_extensions(home.path, account))
                # the phases from self-signed to CA-issued node certificates
                runtime.extensions.extend(bootstrap_extensions(key, account))

            def ready_fields(api: str) -> dict[str, object]:
                return {
                    "name": config.get("name"),
                    "api": f"{api}/v1/status",
                    "p2p": config["p2p"],
                    "node_id": key.public_key.hex(),
                    "peers": len(all_peers),
                    "height": chain.height,
                }

            serve(runtime, home, sock, ready=f"{role} ready", fields=ready_fields)
        finally:
            # After serve: the worker threads that commit blocks are done.
            chain.close()
            home.clear_node_info()
            sock.close()
            log.info("stopped", extra={"fields": {"height": chain.height}})
    finally:
        os.close(lock_fd)


def interchain_apis_of(config: Mapping[str, object]) -> dict[str, list[str]]:
    """config.json's ``interchain_apis``: ``{"<chain id>": ["http://host:port", ...]}``,
    the other chains' APIs in a network of rollups."""
    raw = config.get("interchain_apis", {})
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(u, str) for u in v)
        for k, v in raw.items()
    ):
        raise HomeError('config.json: interchain_apis must be {"<chain id>": ["<url>", ...]}')
    return {k: list(v) for k, v in raw.items()}


def guests_of(config: Mapping[str, object]) -> int:
    """How many non-validator peers (full nodes) config.json lets in at once."""
    guests = config.get("max_guests", MAX_GUESTS)
    if isinstance(guests, bool) or not isinstance(guests, int) or not 0 <= guests <= 1024:
        raise HomeError(
            f"config.json: max_guests must be an integer from 0 to 1024, not {guests!r}"
        )
    return guests


def node_command(home: Path, json_logs: bool) -> list[str]:
    """The command line that runs one validator or full node of a testnet."""
    cmd = [sys.executable, "-m", "focusflow", "node", "start", "--home", str(home)]
    return cmd + (["--json-logs"] if json_logs else [])


def start_validator(
    home: Home, json_logs: bool = False, faults: FaultPlan | None = None
) -> subprocess.Popen[bytes]:
    """Start ``focusflow node start`` for ``home``, logging to ``home/node.log``;
    ``faults``: tests only, the plan the node runs with (``node.faults``)."""
    env = dict(os.environ)
    if faults is not None:
        env[FAULT_PLAN_ENV] = faults.to_json()
    # Every validator must compute focus with the same thread count (and 2 cores
    # are shared by all of them).
    env.setdefault("NUMBA_NUM_THREADS", "1")
    out = open(home.path / "node.log", "ab")  # noqa: SIM115 (the child owns it)
    try:
        return subprocess.Popen(
            node_command(home.path, json_logs),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    finally:
        out.close()


class NodeEntryJson(TypedDict):
    """One node's entry in ``testnet.json``."""

    name: str
    api: str
    pid: int


class NodesJson(TypedDict):
    """``testnet.json``: the testnet's nodes, validators first."""

    validators: list[NodeEntryJson]
    full_nodes: list[NodeEntryJson]


def write_testnet_json(path: Path, homes: list[Home], procs: list[subprocess.Popen[bytes]]) -> None:
    doc: NodesJson = {"validators": [], "full_nodes": []}
    for home, proc in zip(homes, procs, strict=True):
        config = home.load_config()
        kind: Literal["validators", "full_nodes"] = (
            "full_nodes" if config.get("full") else "validators"
        )
        doc[kind].append(
            {"name": config["name"], "api": f"http://{config['api']}", "pid": proc.pid}
        )
    write_private_file(path / "testnet.json", json.dumps(doc, indent=2) + "\n", mode=0o644)


def run_testnet(
    path: Path,
    validators: int,
    base_port: int,
    *,
    json_logs: bool = False,
    params: Mapping[str, object] | None = None,
    full_nodes: int = 0,
    restart: bool = False,
) -> None:
    """Create (or reuse) the testnet at ``path`` and run its validators and full
    nodes until a signal; a node that exits is reported (and, with ``restart``,
    started again: node.supervisor)."""
    if validators < 1:
        raise FocusflowError("--validators must be at least 1")
    if full_nodes < 0:
        raise FocusflowError("--full-nodes must be at least 0")
    homes = init_testnet(path, validators, base_port, params=params, full_nodes=full_nodes)
    # Compile the block kernels once here, before the nodes start: each node
    # would otherwise compile them at once on a fresh machine (about a minute
    # each, all of them sharing the cores), and then each loads the cache.
    prepare_kernels(homes[0].load_genesis().params.focus)
    procs = [start_validator(h, json_logs) for h in homes]
    write_testnet_json(Path(path), homes, procs)
    by_path = {h.path: h for h in homes}
    supervisor = Supervisor(
        [(h.path.name, h.path, p) for h, p in zip(homes, procs, strict=True)],
        lambda home: start_validator(by_path[home], json_logs),
        restart=restart,
        on_restart=lambda: write_testnet_json(Path(path), homes, supervisor.procs),
        now=time.monotonic(),
    )
    log.info(
        "testnet running",
        extra={
            "fields": {
                "validators": validators,
                "full_nodes": full_nodes,
                "testnet_json": str(Path(path) / "testnet.json"),
            }
        },
    )
    run_until_signal(procs, supervisor=supervisor)


def run_until_signal(
    procs: Sequence[subprocess.Popen[bytes]],
    grace_s: float = 20.0,
    supervisor: Supervisor | None = None,
) -> None:
    """Wait for SIGINT or SIGTERM, then stop ``procs``: SIGTERM, ``grace_s`` for
    all of them to exit, SIGKILL for the rest. With a ``supervisor``, it watches
    the nodes meanwhile, and the processes stopped are its current ones."""
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop:
            time.sleep(0.2)
            if supervisor is not None and not stop:
                supervisor.poll(time.monotonic())
    finally:
        if supervisor is not None:
            procs = supervisor.procs
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
