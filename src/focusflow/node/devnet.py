"""``focusflow devnet``: one validator, embedded defaults, a REST/WebSocket API.

Start-up order matters for what a user sees when something is wrong: the home
is created or checked and locked first (two nodes on one home are refused), the
port is bound before the chain is opened (a busy port fails in a second, not
after a replay), and only then does the chain restore and the producer start.

Shutdown: SIGINT and SIGTERM stop uvicorn, the producer finishes the block it
is making, the store closes. SIGKILL loses nothing committed: every block is
one LMDB transaction.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import time
from pathlib import Path

import uvicorn

from focusflow.api.app import create_app
from focusflow.chain.focus_commit import warm_up
from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.core.keystore import Keystore
from focusflow.node.home import DEV_KEY_NAME, Home, init_devnet, lock_home
from focusflow.node.runtime import NodeRuntime
from focusflow.node.wiring import open_chain

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
    da_withhold: float = 0.0,
) -> None:
    """Create or resume the devnet at ``home_path`` and serve it until a signal.

    ``da_withhold`` (tests only) makes the node serve only part of every data
    square: see ``focusflow.chain.da_commit.DAStore``.
    """
    if not 0.0 <= da_withhold <= 1.0:
        raise InvalidParameterError(f"--da-withhold must be in [0, 1], got {da_withhold}")
    home, created = init_devnet(home_path)
    lock_fd = lock_home(home)
    try:
        _serve(home, created, host, port, block_time, da_withhold)
    finally:
        os.close(lock_fd)


def _serve(
    home: Home, created: bool, host: str, port: int, block_time: float, da_withhold: float = 0.0
) -> None:
    sock = bind(host, port)
    genesis = home.load_genesis()
    t0 = time.perf_counter()
    chain = open_chain(home.data, genesis, home.load_validator_key())
    log.info(
        "home created" if created else "resumed",
        extra={
            "fields": {
                "home": str(home.path),
                "chain_id": genesis.chain_id,
                "height": chain.height,
                "restore_s": round(time.perf_counter() - t0, 2),
            }
        },
    )
    warm = warm_up(genesis.params.focus)
    log.info("focus kernels ready", extra={"fields": {"seconds": round(warm, 2)}})
    runtime = NodeRuntime(
        chain, block_time=block_time, faucet_key=dev_key_of(home), da_withhold=da_withhold
    )
    if da_withhold:
        log.warning(
            "fault injection: withholding data-availability shares",
            extra={"fields": {"fraction": da_withhold}},
        )
    app = create_app(runtime, home.read_admin_token())
    api = f"http://{url_host(host)}:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    runtime.on_failure = lambda: setattr(server, "should_exit", True)
    # uvicorn re-raises the signal it caught once it has shut down; these
    # handlers make that a no-op so the store below still closes cleanly.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    runtime.start()
    home.write_node_info(api)
    dev = runtime.faucet_key
    log.info(
        "devnet ready",
        extra={
            "fields": {
                "api": f"{api}/v1/status",
                "web": f"{api}/",
                "dev_key": dev.address if dev is not None else None,
                "block_time_s": block_time,
            }
        },
    )
    try:
        server.run(sockets=[sock])
    finally:
        runtime.stop()
        chain.store.close()
        home.clear_node_info()
        sock.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        log.info("stopped", extra={"fields": {"height": chain.height}})
    if runtime.failure is not None:
        raise FocusflowError(f"block production failed: {runtime.failure}")


def dev_key_of(home: Home):
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


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
