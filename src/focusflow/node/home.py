"""A node's home directory: genesis, keys, admin token, store, and its lock.

The layout is documented in docs/api.md. :func:`init_devnet` creates a home on
first use (a fresh genesis that funds a dev key, a validator key, an admin
token) and leaves an existing one alone, so the same command starts a new
devnet and resumes an old one. :func:`lock_home` makes sure one home is served
by one process: two writers on one LMDB file would each believe they own the
chain's head.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from cryptography.hazmat.primitives import serialization

from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.chain.genesis import Genesis
from focusflow.core.errors import HomeError as HomeError  # re-exported: the node's home errors
from focusflow.core.hashing import sha256
from focusflow.core.home import (
    account_key_path,
    create_token_file,
    is_loopback_host,
    keys_dir,
    passwords_path,
    read_token_file,
    tokens_path,
    validator_key_path,
    write_private_file,
)
from focusflow.core.keys import KeyPair, encode_address
from focusflow.core.keystore import Keystore
from focusflow.focus.params import make_params
from focusflow.node.ca_signer import ShareFile
from focusflow.node.hd_wallet import derive_key, eth_address, seed_of
from focusflow.services.trust import frost
from focusflow.services.trust.threshold_ca import threshold_root

#: Prefix of a new devnet's chain id (the rest comes from its genesis hash).
DEVNET_CHAIN_ID = "focusflow-devnet"
#: The dev key's genesis funds: liquid balance and bonded stake (its link budget).
DEV_BALANCE = 10**15
DEV_STAKE = 10**12
#: A devnet's economy with ``--economy``: gas in H, rewards flowing at once
#: (H minted every block, tenure and learning), the protocol's sixth of swap
#: fees (Uniswap v2's fee switch), a TWAP window of a minute of devnet blocks.
DEVNET_ECONOMY: dict[str, int] = {
    "economics": 1,
    "h_mint_per_block": 1_000_000,
    "tenure_rate_ppb": 100,
    "tenure_ramp_blocks": 1_000,
    "learning_per_block": 1_000_000,
    "dex_protocol_bps": 1_667,
    "dex_twap_window_ms": 60_000,
}
DEV_KEY_NAME = "dev"
#: The standard test mnemonic of Ethereum tools (hardhat, anvil): a new devnet
#: funds its first ETH_DEV_ACCOUNTS accounts (BIP-44 path m/44'/60'/0'/0/i)
#: with ETH_DEV_BALANCE base units (wei) each, so a wallet or web3.py script
#: written for anvil finds its accounts funded.
ETH_DEV_MNEMONIC = "test test test test test test test test test test test junk"
ETH_DEV_ACCOUNTS = 10
ETH_DEV_BALANCE = 10**18
#: QUIC datagram size of a testnet whose validators all listen on loopback:
#: aioquic spends its time per packet, and loopback does not fragment
#: (bench/RESULTS.md, net.py: 3.5x the bytes per CPU second of 1452-byte ones).
LOOPBACK_DATAGRAM_SIZE = 8192


class AccountJson(TypedDict):
    """A genesis account as this module writes it (``chain.genesis``)."""

    address: str
    balance: int
    stake: int
    tokens: NotRequired[dict[str, int]]


class CaMemberJson(TypedDict):
    address: str
    identifier: int
    verifying_share: str


class CaSectionJson(TypedDict):
    """A testnet genesis's ``ca`` section (:func:`network_ca`)."""

    threshold: int
    public_key: str
    root: str
    members: list[CaMemberJson]


class HomeInUseError(HomeError):
    code = "home_in_use"


@dataclass(frozen=True)
class Home:
    path: Path

    @property
    def genesis(self) -> Path:
        return self.path / "genesis.json"

    @property
    def validator_key(self) -> Path:
        return validator_key_path(self.path)

    @property
    def node_key(self) -> Path:
        """A full node's transport identity (it has no consensus key: it never signs)."""
        return self.path / "node_key.json"

    @property
    def is_full_node(self) -> bool:
        """A home made by :func:`init_full_node` (its config says ``"full": true``)."""
        return self.config.exists() and bool(self.load_config().get("full"))

    @property
    def account_key(self) -> Path:
        """The validator's account key, apart from its consensus key (docs/api.md)."""
        return account_key_path(self.path)

    @property
    def admin_token(self) -> Path:
        return self.path / "admin_token"

    @property
    def tokens(self) -> Path:
        """Scoped API tokens (``focusflow auth token issue``), stored hashed."""
        return tokens_path(self.path)

    @property
    def passwords(self) -> Path:
        """Operators' passwords (``focusflow auth password set``), as Argon2id hashes."""
        return passwords_path(self.path)

    @property
    def keys(self) -> Path:
        return keys_dir(self.path)

    @property
    def data(self) -> Path:
        return self.path / "data"

    @property
    def texts(self) -> Path:
        """The node's particle texts (``store.particle_texts``): kept apart from
        ``data/``, which a state sync replaces, and not part of any state root."""
        return self.path / "texts"

    @property
    def ca_share(self) -> Path:
        """This validator's FROST share of the network's CA key (0600;
        ``node.ca_signer``), where the genesis names a CA."""
        return self.path / "ca_share"

    @property
    def blobs(self) -> Path:
        """The node's chunk store (``services.storage.chunk_store``): blobs put
        through the API, apart from ``data/`` and from every state root."""
        return self.path / "blobs"

    @property
    def wasm(self) -> Path:
        """Compiled WASM modules (``vm.wasm_artifacts``), kept by code hash so a
        restart reads them instead of compiling; apart from ``data/`` and from
        every state root (a lost file only costs a compile)."""
        return self.path / "wasm"

    @property
    def node_json(self) -> Path:
        return self.path / "node.json"

    @property
    def config(self) -> Path:
        """A network validator's settings: listen addresses, peers, timeouts."""
        return self.path / "config.json"

    @property
    def wal(self) -> Path:
        """The consensus write-ahead log (what this validator signed)."""
        return self.path / "consensus.wal"

    def load_config(self) -> dict[str, Any]:
        try:
            config: dict[str, Any] = json.loads(self.config.read_text())
            return config
        except (OSError, ValueError) as exc:
            raise HomeError(f"cannot read the node config {self.config}: {exc}") from None

    @property
    def lock(self) -> Path:
        return self.path / "LOCK"

    def exists(self) -> bool:
        return self.genesis.exists()

    def read_admin_token(self) -> str:
        try:
            return read_token_file(self.admin_token)
        except (OSError, ValueError) as exc:
            raise HomeError(f"cannot read the admin token {self.admin_token}: {exc}") from None

    def write_node_info(self, api: str) -> None:
        write_private_file(
            self.node_json,
            json.dumps({"chain_id": self.load_genesis().chain_id, "api": api, "pid": os.getpid()})
            + "\n",
        )

    def clear_node_info(self) -> None:
        self.node_json.unlink(missing_ok=True)

    def load_genesis(self) -> Genesis:
        return Genesis.load(self.genesis)

    def load_validator_key(self) -> KeyPair:
        return KeyPair.load(self.validator_key)

    def load_node_key(self) -> KeyPair:
        """The key this node proves on the p2p transport: a full node's own node
        key, else its consensus key (a validator's peers know it by that)."""
        if self.node_key.exists():
            return KeyPair.load(self.node_key)
        return self.load_validator_key()

    def load_account_key(self) -> KeyPair:
        """The validator's account key; in a home made before the split, which has
        no ``account_key``, the consensus key is the account, as it was."""
        if self.account_key.exists():
            return KeyPair.load(self.account_key)
        return self.load_validator_key()


def init_devnet(
    path: Path,
    chain_id: str | None = None,
    economy: bool = False,
    focus: dict[str, object] | None = None,
) -> tuple[Home, bool]:
    """The devnet home at ``path``, created if new; returns (home, created).

    A new devnet's chain id is ``focusflow-devnet-<12 hex>`` (:func:`unique_chain_id`)
    unless ``chain_id`` names one: two devnets never accept each other's
    transactions, votes or blocks. ``economy``: a new devnet runs the two-token
    economy (docs/economics.md, :data:`DEVNET_ECONOMY`); the dev key also holds
    H and is a primary dealer. ``focus``: what a new devnet's genesis names
    beside NEW_CHAIN_FOCUS (e.g. ``{"model": "free-energy", "temperature": 0.5}``),
    checked before anything is written. An existing home keeps the economy and
    the focus it was made with."""
    chosen = {**NEW_CHAIN_FOCUS, **(focus or {})}
    make_params(None, **chosen)
    home = Home(Path(path))
    if home.exists():
        for need in (home.validator_key, home.admin_token):
            if not need.exists():
                raise HomeError(f"{home.path} has a genesis but no {need.name}; is it a node home?")
        return home, False
    if home.path.exists() and any(home.path.iterdir()) and not home.keys.exists():
        raise HomeError(f"{home.path} is not empty and not a focusflow home; choose another --home")
    _make_home_dirs(home)
    validator = KeyPair.generate()
    wallet = Keystore(home.keys)
    dev = wallet.load(DEV_KEY_NAME) if wallet.exists(DEV_KEY_NAME) else KeyPair.generate()
    if not wallet.exists(DEV_KEY_NAME):
        wallet.add(DEV_KEY_NAME, dev, None)
    validator.save(home.validator_key)
    KeyPair.generate().save(home.account_key)
    create_token_file(home.admin_token)
    params: dict[str, object] = {"focus": chosen}
    dev_account: AccountJson = {
        "address": dev.address,
        "balance": DEV_BALANCE,
        "stake": DEV_STAKE,
    }
    if economy:
        params |= DEVNET_ECONOMY
        params["dex_dealers"] = [{"address": dev.address, "quota": DEV_BALANCE}]
        dev_account["tokens"] = {"h": DEV_BALANCE}
    genesis = _new_genesis(
        DEVNET_CHAIN_ID,
        chain_id,
        {
            "genesis_time_ms": int(time.time() * 1000),
            "params": params,
            "accounts": [
                dev_account,
                # The validator's own bond: its power (1) at every epoch boundary.
                {"address": validator.address, "balance": 0, "stake": 1},
                *(
                    {"address": encode_address(a), "balance": ETH_DEV_BALANCE, "stake": 0}
                    for a, _ in eth_dev_accounts()
                ),
            ],
            "validators": [
                {"name": "devnet", "public_key": validator.public_key.hex(), "power": 1}
            ],
        },
    )
    # The genesis goes last: its presence is what marks a finished home.
    _save_genesis(home, genesis)
    return home, True


@functools.cache
def eth_dev_accounts() -> tuple[tuple[bytes, bytes], ...]:
    """``(address, private key)`` of the test mnemonic's first ETH_DEV_ACCOUNTS accounts."""
    seed = seed_of(ETH_DEV_MNEMONIC)
    keys = [derive_key(seed, f"m/44'/60'/0'/0/{i}") for i in range(ETH_DEV_ACCOUNTS)]
    return tuple((eth_address(key), key) for key in keys)


#: Prefix of a new testnet's chain id (the rest comes from its genesis hash).
TESTNET_CHAIN_ID = "focusflow-testnet"
#: A testnet validator's liquid funds, held by its account key.
VALIDATOR_FUNDS = 10**12
#: What a testnet validator's consensus key holds besides its bond: fees for the
#: transactions only it may sign (validator.register, validator.unregister).
CONSENSUS_FEE_FLOAT = 10**7
#: Each testnet validator's bonded stake; its voting power is stake // POWER_UNIT.
VALIDATOR_STAKE = 10**9
POWER_UNIT = 10**6


def init_testnet(
    path: Path,
    validators: int,
    base_port: int,
    *,
    chain_id: str | None = None,
    host: str = "127.0.0.1",
    timeouts: dict[str, float] | None = None,
    params: Mapping[str, object] | None = None,
    full_nodes: int = 0,
    network: NetworkKeys | None = None,
) -> list[Home]:
    """``validators`` homes ``path/v0 .. path/v{N-1}`` sharing one genesis, then
    ``full_nodes`` full-node homes ``path/f0 ..`` (see :func:`testnet_full_nodes`).

    Validator k listens for QUIC on ``base_port + 2k`` and serves the API on
    ``base_port + 2k + 1``; every home's config lists the others as peers. The
    genesis funds the dev key (in every home's wallet, as in the devnet) and
    bonds each validator's own account; voting power is its stake over
    POWER_UNIT. ``params`` add genesis parameters (``epoch_blocks`` ...). The
    chain id is ``focusflow-testnet-<12 hex>`` (:func:`unique_chain_id`) unless
    ``chain_id`` names one. An existing testnet at ``path`` is left as it is.
    ``network``: this chain as one of a network of chains (``init_rollup_testnet``):
    its validator keys, the dev key and relayer keys all chains fund, the
    genesis's ``interchain`` section and the config's ``interchain_apis``.
    """
    path = Path(path)
    homes = [Home(path / f"v{k}") for k in range(validators)]
    if all(h.exists() for h in homes):
        return homes + testnet_full_nodes(path, homes, full_nodes, base_port, host)
    if any(h.path.exists() for h in homes):
        raise HomeError(f"{path} holds a partial or different testnet; choose another --home")
    keys = (
        list(network.validators)
        if network is not None
        else [KeyPair.generate() for _ in range(validators)]
    )
    dev = network.dev if network is not None else KeyPair.generate()
    accounts: list[AccountJson] = [
        {"address": dev.address, "balance": DEV_BALANCE, "stake": DEV_STAKE}
    ]
    if network is not None:
        accounts += [
            {"address": k.address, "balance": DEV_BALANCE, "stake": 0} for k in network.relayers
        ]
    owners = [KeyPair.generate() for _ in range(validators)]
    # The consensus key's account holds the bond (power is its bonded stake) and
    # a float for the fees of validator.register/unregister, which it must sign;
    # the validator's funds sit with its account key, off the signing machine's
    # hot path.
    accounts += [
        {"address": k.address, "balance": CONSENSUS_FEE_FLOAT, "stake": VALIDATOR_STAKE}
        for k in keys
    ]
    accounts += [{"address": o.address, "balance": VALIDATOR_FUNDS, "stake": 0} for o in owners]
    ca_section, ca_shares = network_ca(owners)
    genesis = _new_genesis(
        TESTNET_CHAIN_ID,
        chain_id,
        {
            **({"ca": ca_section} if ca_section is not None else {}),
            **({"interchain": network.interchain} if network is not None else {}),
            "genesis_time_ms": (
                network.genesis_time_ms if network is not None else int(time.time() * 1000)
            ),
            # Epoch boundaries recompute power as bonded // power_unit: the same
            # numbers as the genesis powers until someone stakes or registers.
            "params": {"power_unit": POWER_UNIT, "focus": dict(NEW_CHAIN_FOCUS), **(params or {})},
            "accounts": accounts,
            "validators": [
                {
                    "name": f"v{k}",
                    "public_key": key.public_key.hex(),
                    "power": VALIDATOR_STAKE // POWER_UNIT,
                }
                for k, key in enumerate(keys)
            ],
        },
    )
    p2p = [f"{host}:{base_port + 2 * k}" for k in range(validators)]
    for k, (home, key) in enumerate(zip(homes, keys, strict=True)):
        _make_home_dirs(home)
        Keystore(home.keys).add(DEV_KEY_NAME, dev, None)
        key.save(home.validator_key)
        owners[k].save(home.account_key)
        if ca_shares:
            ShareFile(ca_shares[k]).save(home.ca_share)
        create_token_file(home.admin_token)
        config: dict[str, Any] = {
            "name": f"v{k}",
            "p2p": p2p[k],
            "api": f"{host}:{base_port + 2 * k + 1}",
            "peers": [
                f"{other.public_key.hex()}@{p2p[j]}" for j, other in enumerate(keys) if j != k
            ],
            "timeouts": timeouts or {},
        }
        if network is not None:
            config["interchain_apis"] = network.apis
        if is_loopback_host(host):
            # aioquic's cost is per packet; on loopback nothing fragments.
            config["max_datagram_size"] = LOOPBACK_DATAGRAM_SIZE
        write_private_file(home.config, json.dumps(config, indent=2) + "\n")
        _save_genesis(home, genesis)
    _save_genesis(Home(path), genesis)
    return homes + testnet_full_nodes(path, homes, full_nodes, base_port, host)


@dataclass(frozen=True)
class NetworkKeys:
    """One chain of a network of chains, as ``init_testnet`` makes it."""

    validators: tuple[KeyPair, ...]
    dev: KeyPair
    relayers: tuple[KeyPair, ...]
    interchain: Mapping[str, object]
    apis: dict[str, list[str]]
    #: Every chain's genesis time: the other chains' light clients start from it.
    genesis_time_ms: int


def testnet_full_nodes(
    path: Path, validators: list[Home], count: int, base_port: int, host: str = "127.0.0.1"
) -> list[Home]:
    """Full-node homes ``path/f0 .. path/f{count-1}`` of the testnet whose
    validator homes are ``validators`` (existing ones are kept).

    Full node j listens for QUIC on ``base_port + 2(N + j)`` and serves the API
    on the next port (N validators come first); it dials every validator and the
    full nodes before it.
    """
    n = len(validators)
    genesis = validators[0].load_genesis()
    peers = [
        f"{h.load_validator_key().public_key.hex()}@{h.load_config()['p2p']}" for h in validators
    ]
    homes = []
    for j in range(count):
        home = Home(Path(path) / f"f{j}")
        if not home.exists():
            p2p = f"{host}:{base_port + 2 * (n + j)}"
            init_full_node(
                home.path,
                genesis,
                name=f"f{j}",
                p2p=p2p,
                api=f"{host}:{base_port + 2 * (n + j) + 1}",
                peers=list(peers),
            )
        config = home.load_config()
        peers.append(f"{home.load_node_key().public_key.hex()}@{config['p2p']}")
        homes.append(home)
    return homes


def init_full_node(
    path: Path,
    genesis: Genesis,
    *,
    name: str,
    p2p: str,
    api: str,
    peers: list[str],
    settings: Mapping[str, object] | None = None,
) -> Home:
    """A new full-node home: the network's genesis, a fresh node key (its p2p
    identity; a full node holds no consensus key and never signs), and a
    config with ``"full": true`` that listens on ``p2p`` and ``api`` and dials
    ``peers``, plus ``settings`` (e.g. ``trust_height``/``trust_hash`` for
    state sync). Refuses a path that already holds anything."""
    home = Home(Path(path))
    if home.path.exists() and any(home.path.iterdir()):
        raise HomeError(f"{home.path} is not empty; choose a new --home")
    _check_peers(peers)
    _make_home_dirs(home)
    KeyPair.generate().save(home.node_key)
    create_token_file(home.admin_token)
    config: dict[str, object] = {
        "name": name,
        "full": True,
        "p2p": p2p,
        "api": api,
        "peers": list(peers),
    }
    config.update(settings or {})
    if is_loopback_host(p2p.rpartition(":")[0].strip("[]")):
        config["max_datagram_size"] = LOOPBACK_DATAGRAM_SIZE
    write_private_file(home.config, json.dumps(config, indent=2) + "\n")
    _save_genesis(home, genesis)
    return home


def _check_peers(peers: list[str]) -> None:
    """HomeError unless every peer is ``<node id: 64 hex>@host:port``."""
    for peer in peers:
        node_id, sep, address = peer.partition("@")
        try:
            ok = sep and len(bytes.fromhex(node_id)) == 32 and address.rpartition(":")[2].isdigit()
        except ValueError:
            ok = False
        if not ok:
            raise HomeError(f"peer {peer!r} is not <node id: 64 hex>@host:port")


def init_validator(
    path: Path,
    genesis: Genesis,
    *,
    name: str,
    p2p: str,
    api: str,
    peers: list[str],
) -> tuple[Home, KeyPair]:
    """A new validator home for an existing network: a fresh validator key, the
    network's genesis, and a config that listens on ``p2p`` and ``api`` and
    dials ``peers`` (``<node id hex>@host:port``).

    The key joins the validator set only once its account bonds stake and
    registers (``focusflow tx validator register``) and an epoch boundary
    passes; until then the node follows the chain (block sync) as soon as the
    validators accept it. Refuses a path that already holds anything.
    """
    home = Home(Path(path))
    if home.path.exists() and any(home.path.iterdir()):
        raise HomeError(f"{home.path} is not empty; choose a new --home")
    _check_peers(peers)
    _make_home_dirs(home)
    key = KeyPair.generate()
    key.save(home.validator_key)
    KeyPair.generate().save(home.account_key)
    create_token_file(home.admin_token)
    config = {"name": name, "p2p": p2p, "api": api, "peers": list(peers), "timeouts": {}}
    write_private_file(home.config, json.dumps(config, indent=2) + "\n")
    _save_genesis(home, genesis)
    return home, key


def lock_home(home: Home) -> int:
    """Hold the home's lock for this process's lifetime; HomeInUseError if another has it."""
    fd = os.open(home.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise HomeInUseError(
            f"{home.path} is in use by pid {owner}; stop that node first"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


#: Hex digits of the genesis hash that make a new network's chain id unique.
CHAIN_ID_SUFFIX_HEX = 12


def unique_chain_id(prefix: str, fields: Mapping[str, object]) -> str:
    """``<prefix>-<12 hex>``: the hex digits begin the SHA-256 of the genesis's other
    fields (canonical JSON), which hold the network's fresh validator keys and its
    creation time, so every created network gets its own id and a message signed
    for one devnet or testnet is refused by every other."""
    digest = sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())
    return f"{prefix}-{digest.hex()[:CHAIN_ID_SUFFIX_HEX]}"


def network_ca(members: list[KeyPair]) -> tuple[CaSectionJson | None, list[frost.KeyShare]]:
    """A testnet's CA (``modules.ca``): the members' account keys hold shares of a
    key made by a distributed key generation run here for all of them (the tool
    makes every member's home), two thirds and one of them needed to sign, and
    a root the group signs. None for fewer than three members (a threshold
    needs two signers and a margin)."""
    n = len(members)
    if n < 3:
        return None, []
    threshold = 2 * n // 3 + 1
    shares = frost.dkg_together(n, threshold)
    group = shares[0].group_public_key
    root = threshold_root(
        "focusflow testnet", group, lambda msg: frost.sign_together(shares[:threshold], msg)
    )
    section: CaSectionJson = {
        "threshold": threshold,
        "public_key": group.hex(),
        "root": root.public_bytes(serialization.Encoding.DER).hex(),
        "members": [
            {"address": m.address, "identifier": s.identifier, "verifying_share": s.public.hex()}
            for m, s in zip(members, shares, strict=True)
        ],
    }
    return section, shares


def _new_genesis(prefix: str, chain_id: str | None, fields: Mapping[str, object]) -> Genesis:
    """A genesis of ``fields`` under ``chain_id``, or a unique id when None."""
    cid = chain_id if chain_id is not None else unique_chain_id(prefix, fields)
    return Genesis.from_json({"chain_id": cid, **fields})


def _make_home_dirs(home: Home) -> None:
    """The home and its chain data directory, both owner-only (0700): the store holds
    the focus checkpoint and the chain state, which no other user should read or swap."""
    home.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.data.mkdir(exist_ok=True, mode=0o700)


def _save_genesis(home: Home, genesis: Genesis) -> None:
    """Write the genesis durably (temp, fsync, rename, fsync dir); it is public, so 0644."""
    write_private_file(home.genesis, json.dumps(genesis.to_json(), indent=2) + "\n", mode=0o644)
