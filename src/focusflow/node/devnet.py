"""``focusflow devnet``: a network of one validator, embedded defaults, the node's API.

The devnet is the N = 1 case of ``focusflow node start``: the same
:class:`~focusflow.node.validator.ValidatorRuntime`, whose Tendermint instance
proposes, prevotes, precommits and decides every height with a set of one,
writes what it signs to ``consensus.wal`` in the home, and stores each block
with its commit certificate, as a testnet validator does. ``--block-time`` is
the runtime's block interval: a height starts every block time, or right after
the commit when a block took longer, the pace of the producer loop the devnet
had before (a commit wait of the block time would add the height's own time to
every interval, and a full pause after every block under load). It opens no
QUIC port: a set of one has no peer to reach or be reached by (see the
validator module), and a listener only peers of the genesis set may use would
be one more port to be busy and nothing to gain.

Start-up order matters for what a user sees when something is wrong: the port
is bound first, before the home is touched (a busy port fails in a second and
leaves no half-made home behind: a home that did not exist still does not, one
that existed is as it was), then the home is created or checked and locked (two
nodes on one home are refused), and only then does the chain restore and
consensus start.
Homes made before the devnet ran consensus (no WAL) start as they are.

Shutdown: SIGINT and SIGTERM stop uvicorn, then consensus; a block being
committed is finished (node.serve), then the store closes. SIGKILL loses
nothing committed: every block is one LMDB transaction, and the WAL keeps the
validator from signing anything twice when it comes back.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from focusflow.chain.chain import Chain
from focusflow.chain.eth_tx import evm_chain_id
from focusflow.chain.genesis import Genesis
from focusflow.chain.mempool import MempoolLimits
from focusflow.chain.pending import BlockResult
from focusflow.chain.warm import KernelWatch, warm_up
from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.core.home import ENV_HOME, default_home
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from focusflow.node.devnet_anvil import (
    ANVIL_BALANCE,
    check_dev_powers,
    grant_dev_powers,
    precompile_notes,
    start_dev_mode,
)
from focusflow.node.faults import FaultPlan
from focusflow.node.home import (
    DEV_KEY_NAME,
    ETH_DEV_MNEMONIC,
    Home,
    HomeError,
    eth_dev_accounts,
    init_devnet,
    lock_home,
)
from focusflow.node.serve import serve
from focusflow.node.validator import ValidatorRuntime
from focusflow.node.wiring import open_chain
from focusflow.services.dns import DnsSettings

log = logging.getLogger("focusflow.node")


class PortInUseError(FocusflowError):
    code = "port_in_use"


def parse_duration(text: str) -> float:
    """Seconds from ``1s``, ``500ms``, ``2m`` or a plain number of seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", str(text))
    if not m:
        raise InvalidParameterError(f"invalid duration {text!r}: use e.g. 1s, 500ms, 0.2")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
    if not 0.01 <= value <= 3600:
        raise InvalidParameterError(f"duration {text!r} must be between 10ms and 1h")
    return value


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a busy port is a clear error at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidParameterError(f"cannot resolve host {host!r}: {exc}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise PortInUseError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_devnet(
    home_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 26657,
    block_time: float = 1.0,
    faults: FaultPlan | None = None,
    mempool: MempoolLimits | None = None,
    dns: DnsSettings | None = None,
    economy: bool = False,
    anvil: bool = False,
    focus: dict[str, object] | None = None,
) -> None:
    """Create or resume the devnet at ``home_path`` and serve it until a signal.

    ``focus``: focus parameters a new home's genesis names beside
    NEW_CHAIN_FOCUS (``home.init_devnet``); an existing home keeps its own.

    ``anvil``: the anvil-like devnet (``node.devnet_anvil``): a new home's genesis
    grants the dev powers, blocks come on demand, the test accounts are unlocked.

    ``economy``: a new home runs the two-token economy (``home.init_devnet``).

    ``dns``: also answer the chain's names over DNS (``focusflow.services.dns``).
    ``faults`` (tests only, ``focusflow.node.faults``) makes the node commit
    the faults the plan names; None on an honest node. ``mempool``: the
    mempool's limits (default MempoolLimits()).
    """
    sock = bind(host, port)
    try:
        home, created = init_devnet(home_path, economy=economy, focus=focus)
        if created and anvil:
            grant_dev_powers(home)
        lock_fd = lock_home(home)
        try:
            _serve(home, created, sock, block_time, faults, mempool, dns, anvil=anvil)
        finally:
            os.close(lock_fd)
    finally:
        sock.close()


def _serve(
    home: Home,
    created: bool,
    sock: socket.socket,
    block_time: float,
    faults: FaultPlan | None,
    mempool: MempoolLimits | None = None,
    dns: DnsSettings | None = None,
    *,
    anvil: bool = False,
) -> None:
    genesis = home.load_genesis()
    key = home.load_validator_key()
    check_single_validator(home, genesis, key)
    if anvil:
        check_dev_powers(home, genesis)
    t0 = time.perf_counter()
    chain = open_chain(home.data, genesis, key)
    log.info(
        "home created" if created else "resumed",
        extra={
            "fields": {
                "home": str(home.path),
                "chain_id": genesis.chain_id,
                "height": chain.height,
                "restore_s": round(time.perf_counter() - t0, 2),
                "restored_from": chain.restored_from,
            }
        },
    )
    try:
        runtime = _runtime(home, chain, key, block_time, faults)
        if mempool is not None:
            runtime.mempool.limits = mempool  # still empty: nothing to re-check
        if anvil:
            start_dev_mode(runtime, created, key.address_raw)
        dev = runtime.faucet_key

        def ready_fields(api: str) -> dict[str, object]:
            return {
                "api": f"{api}/v1/status",
                "web": f"{api}/",
                "dev_key": dev.address if dev is not None else None,
                "block_time_s": None if anvil else block_time,
                "mining": "on demand" if anvil else "interval",
            }

        serve(
            runtime,
            home,
            sock,
            ready="devnet ready",
            fields=ready_fields,
            stop_on_failure=True,
            notes=cli_notes(home.path) + evm_notes(genesis, anvil) + precompile_notes(),
            dns=dns,
        )
    finally:
        # After serve returns the block in progress is committed: close the store.
        chain.close()
        home.clear_node_info()
        log.info("stopped", extra={"fields": {"height": chain.height}})
    if runtime.failure is not None:
        raise FocusflowError(f"block production failed: {runtime.failure}")


def cli_notes(home: Path) -> list[str]:
    """What another shell needs for ``focusflow keys``, ``tx`` and ``query`` to use
    this devnet: nothing when it runs in the default home, which they use too; else
    the line that points them at it (its ``keys/`` wallet and ``node.json``).

    The commands find the home by ``--home``, ``$FOCUSFLOW_HOME`` or the default
    and never guess another: a wallet key written into a home the user did not
    name would be hard to find again.
    """
    where = Path(home).expanduser().resolve()
    if where == default_home().expanduser().resolve():
        return []
    return [
        "in another shell, before focusflow keys/tx/query/import: "
        f"export {ENV_HOME}={shlex.quote(str(where))}"
    ]


def evm_notes(genesis: Genesis, anvil: bool = False) -> list[str]:
    """The Ethereum JSON-RPC's chain id and the test mnemonic's funded accounts with
    their private keys, as anvil prints them (devnet keys: never hold value); an
    anvil devnet's are topped up to ``ANVIL_BALANCE`` in its first block."""
    funded = {a.address: ANVIL_BALANCE if anvil else a.balance for a in genesis.accounts}
    accounts = [(a, k) for a, k in eth_dev_accounts() if a in funded]
    if not accounts:
        return []
    from eth_utils import to_checksum_address  # only a devnet with Ethereum accounts

    lines = [
        f"Ethereum JSON-RPC at /evm, chain id {evm_chain_id(genesis.chain_id)}; "
        f"accounts of the test mnemonic ({ETH_DEV_MNEMONIC!r}):"
    ]
    for i, (address, key) in enumerate(accounts):
        checksum = to_checksum_address(address)
        lines.append(f"({i}) {checksum} ({funded[address]} wei) key 0x{key.hex()}")
    return lines


def prepare_kernels(focus: dict[str, Any] | None) -> KernelWatch:
    """Compile (or load) the block kernels before serving. A start that loads
    them all from numba's cache says nothing about compiling; one that compiles
    (a fresh install, a changed kernel) says so once, then names each kernel
    with its group's place (``compiling kernels 1/4: ...``), so the minute it
    takes on a fresh 2-core machine is never silent."""
    compiled: list[str] = []

    def compiling(line: str) -> None:
        if not compiled:
            log.info("compiling block kernels: not in numba's cache yet (a first start: ~1 min)")
        compiled.append(line)
        log.info(line)

    warm = warm_up(focus, compiling)
    fields = {"seconds": round(warm, 2), "compiled": len(compiled)}
    log.info("block kernels ready", extra={"fields": fields})
    return KernelWatch()


def watch_kernels(watch: KernelWatch) -> Callable[[BlockResult], None]:
    """A block keeper that names each kernel first run inside a block: the
    warm-up missed it, and on a fresh install that block waited for it to compile."""

    def keep(result: BlockResult) -> None:
        for kernel in watch.look():
            log.warning(
                "kernel first run inside a block, not warmed: %s", kernel,
                extra={"fields": {"height": result.block.header.height, "kernel": kernel}},
            )  # fmt: skip

    return keep


def _runtime(
    home: Home, chain: Chain, key: KeyPair, block_time: float, faults: FaultPlan | None
) -> ValidatorRuntime:
    """The devnet's validator: no transport, a height every ``block_time`` (or back to
    back when blocks take longer); no commit wait, as no late precommit can come."""
    watch = prepare_kernels(chain.params.focus)
    if faults is not None:
        log.warning("fault injection (tests only)", extra={"fields": {"faults": faults.to_json()}})
    runtime = ValidatorRuntime(
        chain,
        key,
        wal_path=home.wal,
        listen=None,
        faucet_key=dev_key_of(home),
        commit_wait=0.0,
        block_interval=block_time,
        faults=faults,
    )
    runtime.keepers.append(watch_kernels(watch))
    assert runtime.signer is not None  # a runtime given a key signs
    signed = runtime.signer.resume_height()
    if signed > chain.height + 1:
        # A network validator waits for block sync here; a devnet has no one to
        # sync from and would wait for ever, so it says what happened instead.
        runtime.signer.wal.close()
        raise HomeError(
            f"{home.wal} says this validator reached height {signed}, but the store in "
            f"{home.data} holds {chain.height}: the store was removed or restored from "
            f"an older copy; to start the chain over, remove {home.wal.name} too"
        )
    return runtime


def check_single_validator(home: Home, genesis: Genesis, key: KeyPair) -> None:
    """A devnet decides alone: its genesis set must be this home's validator key only."""
    keys = [v.public_key for v in genesis.validator_set().validators]
    if len(keys) != 1:
        raise HomeError(
            f"{home.path} belongs to a network of {len(keys)} validators; "
            "run it with `focusflow node start --home`"
        )
    if keys[0] != key.public_key:
        raise HomeError(f"{home.path}: the genesis validator is not this home's validator_key")


def dev_key_of(home: Home) -> KeyPair | None:
    """The funded dev key, when the wallet holds it unencrypted (the devnet's own)."""
    wallet = Keystore(home.keys)
    if not wallet.exists(DEV_KEY_NAME):
        return None
    try:
        if wallet.info(DEV_KEY_NAME).encrypted:
            return None
        return wallet.load(DEV_KEY_NAME)
    except FocusflowError as exc:
        log.warning("no faucet: the dev key cannot be read", extra={"fields": {"why": str(exc)}})
        return None
