"""A network of rollups on loopback: ``focusflow testnet --rollups R``.

One hub chain and R rollup chains, each a testnet of its own validators
(``init_testnet``) whose genesis carries the same ``interchain`` registry
(``chain.interchain``), and one relayer process per rollup carrying packets
and headers between it and the hub. Every chain funds the same dev key (in
every home's wallet) and each relayer's own key, so one wallet can link on
any rollup and the relayers never share a nonce.

Ports: the hub's validator k listens on ``P + 2k`` (QUIC) and ``P + 2k + 1``
(API); rollup b's validators follow the hub's and each other's in order.
``DIR/testnet.json`` lists them (``{"hub": [...], "rollups": [{"bucket",
"validators": [...]}], "relayers": [...]}``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from focusflow.core.errors import FocusflowError
from focusflow.core.home import write_private_file
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from focusflow.node.devnet import prepare_kernels
from focusflow.node.home import (
    DEV_KEY_NAME,
    POWER_UNIT,
    VALIDATOR_STAKE,
    Home,
    HomeError,
    NetworkKeys,
    init_testnet,
)
from focusflow.node.network import run_until_signal, start_validator

log = logging.getLogger("focusflow.node")

#: Seconds the launcher waits for its processes to stop on Ctrl-C.
STOP_GRACE_S = 20.0


class NodeEntry(TypedDict):
    name: str
    api: str
    pid: int
    home: str


class RollupEntry(TypedDict):
    bucket: int
    chain_id: str
    validators: list[NodeEntry]


class RelayerEntry(TypedDict):
    bucket: int
    pid: int
    home: str


class RollupsJson(TypedDict):
    """``testnet.json`` of a network of rollups."""

    hub: list[NodeEntry]
    hub_chain_id: str
    rollups: list[RollupEntry]
    relayers: list[RelayerEntry]


@dataclass(frozen=True)
class RollupHomes:
    """The homes of a network of rollups: the hub's validators, each rollup's,
    and each rollup's relayer home (a wallet holding its key)."""

    hub: list[Home]
    rollups: list[list[Home]]
    relayers: list[Path]

    def all_nodes(self) -> list[Home]:
        return [*self.hub, *(h for homes in self.rollups for h in homes)]


def _api(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def _ref(
    chain_id: str, keys: list[KeyPair], time_ms: int, bucket: int | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "chain_id": chain_id,
        "genesis_time_ms": time_ms,
        "validators": [
            {"public_key": k.public_key.hex(), "power": VALIDATOR_STAKE // POWER_UNIT} for k in keys
        ],
    }
    return doc if bucket is None else {"bucket": bucket, **doc}


def init_rollup_testnet(
    path: Path,
    rollups: int,
    validators: int,
    hub_validators: int,
    base_port: int,
    *,
    host: str = "127.0.0.1",
    params: dict[str, object] | None = None,
    merge_interval_ms: int = 1000,
    stale_after_ms: int | None = None,
) -> RollupHomes:
    """Create (or reuse) the homes of a hub and ``rollups`` rollups under ``path``:
    ``path/hub/v*``, ``path/r<b>/v*`` and ``path/relayer<b>``."""
    path = Path(path)
    if rollups < 1 or validators < 1 or hub_validators < 1:
        raise FocusflowError("--rollups, --validators and --hub-validators must be at least 1")
    names = ["hub", *(f"r{b}" for b in range(rollups))]
    sizes = [hub_validators, *([validators] * rollups)]
    relayer_homes = [path / f"relayer{b}" for b in range(rollups)]
    existing = [path / name / "v0" for name in names]
    if all(p.exists() for p in existing):
        return _homes(path, names, sizes, relayer_homes)
    if path.exists() and any(path.iterdir()):
        raise HomeError(f"{path} holds something else than this network; choose another --home")
    prefix = f"focusflow-rollups-{secrets.token_hex(3)}"
    chain_ids = [f"{prefix}-{name}" for name in names]
    keys = [[KeyPair.generate() for _ in range(n)] for n in sizes]
    dev = KeyPair.generate()
    relayer_keys = [KeyPair.generate() for _ in range(rollups)]
    ports, apis = [], {}
    port = base_port
    for chain_id, n in zip(chain_ids, sizes, strict=True):
        ports.append(port)
        apis[chain_id] = [_api(host, port + 2 * k + 1) for k in range(n)]
        port += 2 * n
    now = int(time.time() * 1000)
    registry = {
        "buckets": rollups,
        "merge_interval_ms": merge_interval_ms,
        "stale_after_ms": stale_after_ms if stale_after_ms is not None else 10 * merge_interval_ms,
        "hub": _ref(chain_ids[0], keys[0], now),
        "rollups": [_ref(chain_ids[b + 1], keys[b + 1], now, b) for b in range(rollups)],
    }
    for i, (name, chain_id) in enumerate(zip(names, chain_ids, strict=True)):
        section = {"role": "hub"} if i == 0 else {"role": "rollup", "bucket": i - 1}
        network = NetworkKeys(
            validators=tuple(keys[i]),
            dev=dev,
            relayers=tuple(relayer_keys),
            interchain={**section, **registry},
            apis={c: a for c, a in apis.items() if c != chain_id},
            genesis_time_ms=now,
        )
        init_testnet(
            path / name,
            sizes[i],
            ports[i],
            chain_id=chain_id,
            host=host,
            params=params,
            network=network,
        )
    for home, key in zip(relayer_homes, relayer_keys, strict=True):
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        Keystore(home / "keys").add(DEV_KEY_NAME, key, None)
    return _homes(path, names, sizes, relayer_homes)


def _homes(path: Path, names: list[str], sizes: list[int], relayers: list[Path]) -> RollupHomes:
    chains = [
        [Home(path / name / f"v{k}") for k in range(n)]
        for name, n in zip(names, sizes, strict=True)
    ]
    return RollupHomes(chains[0], chains[1:], relayers)


def _entry(home: Home, proc: subprocess.Popen[bytes]) -> NodeEntry:
    config = home.load_config()
    return {
        "name": str(config["name"]),
        "api": f"http://{config['api']}",
        "pid": proc.pid,
        "home": str(home.path),
    }


def relay_command(hub_api: str, rollup_api: str, home: Path) -> list[str]:
    """The relayer process between the hub and one rollup."""
    return [
        sys.executable, "-m", "focusflow", "relay",
        "--a", hub_api, "--b", rollup_api, "--home", str(home),
        "--port-a", "rank", "--port-b", "rank", "--key", DEV_KEY_NAME, "--interval", "0.2",
    ]  # fmt: skip


def start_relayer(hub_api: str, rollup_api: str, home: Path) -> subprocess.Popen[bytes]:
    out = open(home / "relay.log", "ab")  # noqa: SIM115 (the child owns it)
    try:
        return subprocess.Popen(
            relay_command(hub_api, rollup_api, home),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            start_new_session=True,
        )
    finally:
        out.close()


def write_rollups_json(
    path: Path,
    homes: RollupHomes,
    procs: dict[Path, subprocess.Popen[bytes]],
    relayers: list[subprocess.Popen[bytes]],
) -> None:
    hub_genesis = homes.hub[0].load_genesis()
    doc: RollupsJson = {
        "hub": [_entry(h, procs[h.path]) for h in homes.hub],
        "hub_chain_id": hub_genesis.chain_id,
        "rollups": [
            {
                "bucket": b,
                "chain_id": chain[0].load_genesis().chain_id,
                "validators": [_entry(h, procs[h.path]) for h in chain],
            }
            for b, chain in enumerate(homes.rollups)
        ],
        "relayers": [
            {"bucket": b, "pid": p.pid, "home": str(home)}
            for b, (p, home) in enumerate(zip(relayers, homes.relayers, strict=True))
        ],
    }
    write_private_file(path / "testnet.json", json.dumps(doc, indent=2) + "\n", mode=0o644)


def run_rollup_testnet(
    path: Path,
    rollups: int,
    validators: int,
    hub_validators: int,
    base_port: int,
    *,
    json_logs: bool = False,
    params: dict[str, object] | None = None,
    merge_interval_ms: int = 1000,
    stale_after_ms: int | None = None,
) -> None:
    """Create (or reuse) the network at ``path`` and run every node and relayer
    until a signal."""
    homes = init_rollup_testnet(
        path,
        rollups,
        validators,
        hub_validators,
        base_port,
        params=params,
        merge_interval_ms=merge_interval_ms,
        stale_after_ms=stale_after_ms,
    )
    prepare_kernels(homes.hub[0].load_genesis().params.focus)
    procs = {h.path: start_validator(h, json_logs) for h in homes.all_nodes()}
    hub_api = f"http://{homes.hub[0].load_config()['api']}"
    relayers = [
        start_relayer(hub_api, f"http://{chain[0].load_config()['api']}", home)
        for chain, home in zip(homes.rollups, homes.relayers, strict=True)
    ]
    write_rollups_json(Path(path), homes, procs, relayers)
    log.info(
        "rollup testnet running",
        extra={"fields": {"rollups": rollups, "testnet_json": str(Path(path) / "testnet.json")}},
    )
    run_until_signal([*procs.values(), *relayers], STOP_GRACE_S)
