"""A real ``focusflow devnet`` process for tests, and small API helpers.

Shared by the node, API, CLI and web-page tests, the benchmarks and users' own
tests: each starts the node as a user would (``python -m focusflow devnet``)
on a free loopback port with a temporary home, and talks to it over HTTP only.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from focusflow.chain import Msg, Tx, make_tx
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from focusflow.testing.process import SOURCE, node_env


@dataclass
class Devnet:
    home: Path
    proc: subprocess.Popen[bytes]
    api: str
    log_path: Path

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=kw.pop("timeout", 10.0), **kw)

    def dev_key(self) -> KeyPair:
        return Keystore(self.home / "keys").load("dev")

    def admin_token(self) -> str:
        return (self.home / "admin_token").read_text().strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"devnet ignored signal {sig} for {timeout}s") from None
        return self.proc.returncode


def start_devnet(
    home: Path,
    *args: str,
    block_time: str = "0.2s",
    port: int = 0,
    timeout: float = 60.0,
    verify: ssl.SSLContext | str | bool = True,
) -> Devnet:
    """Start a devnet (on a free port unless ``port`` is given) and wait until its
    API answers (over TLS, checked with ``verify``, when its config asks for it)."""
    home = Path(home)
    log_path = home.parent / f"{home.name}.log"
    env = node_env(SOURCE)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "focusflow",
                "devnet",
                "--home",
                str(home),
                "--port",
                str(port),
                "--block-time",
                block_time,
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home.parent,
        )
    deadline = time.monotonic() + timeout
    node_json = home / "node.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"devnet exited with {proc.returncode}:\n{log_path.read_text()}")
        if node_json.exists():
            try:
                info = json.loads(node_json.read_text())
            except ValueError:
                info = None
            if info and info.get("pid") == proc.pid:
                net = Devnet(home, proc, info["api"], log_path)
                try:
                    status = httpx.get(f"{net.api}/v1/status", timeout=2, verify=verify)
                    if status.status_code == 200:
                        return net
                except httpx.HTTPError:
                    pass
        time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    raise AssertionError(f"devnet did not start in {timeout}s:\n{log_path.read_text()}")


def devnet_home(
    home: Path, params: dict[str, Any] | None = None, tokens: dict[str, int] | None = None
) -> Path:
    """A new devnet home at ``home`` whose genesis also sets ``params`` and gives the
    ``dev`` key ``tokens`` (denoms other than cyb: ``{"h": n}``), for ``start_devnet``."""
    from focusflow.node.home import init_devnet

    made, created = init_devnet(home)
    assert created, f"{home} is a devnet home already"
    genesis = json.loads(made.genesis.read_text())
    genesis["params"].update(params or {})
    dev_address = Keystore(made.keys).load("dev").address
    for account in genesis["accounts"]:
        if account["address"] == dev_address and tokens:
            account["tokens"] = dict(tokens)
    made.genesis.write_text(json.dumps(genesis, indent=2) + "\n")
    return made.path


def signed(
    net: Devnet, key: KeyPair, msgs: list[Msg], fee: int = 10_000, nonce: int | None = None
) -> Tx:
    """A signed transaction from ``key`` with its next committed nonce."""
    with net.client() as c:
        chain_id = c.get("/v1/status").json()["chain_id"]
        if nonce is None:
            nonce = c.get(f"/v1/accounts/{key.address}").json()["nonce"]
    return make_tx(key, chain_id, nonce, fee, msgs)


def link_msg(*pairs: tuple[str, str]) -> Msg:
    """A ``link`` message over text particles."""
    return Msg(
        "link",
        {"links": [[cid_to_bytes(cid_of_text(a)), cid_to_bytes(cid_of_text(b))] for a, b in pairs]},
    )


def wait_tx(net: Devnet, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
    """The committed status of a transaction, polling until it is in a block."""
    deadline = time.monotonic() + timeout
    with net.client() as c:
        while time.monotonic() < deadline:
            r = c.get(f"/v1/txs/{tx_hash}")
            if r.status_code == 200 and r.json()["status"] == "committed":
                status: dict[str, Any] = r.json()
                return status
            time.sleep(0.05)
    raise AssertionError(f"transaction {tx_hash} not committed in {timeout}s")


def wait_height(net: Devnet, height: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    with net.client() as c:
        while time.monotonic() < deadline:
            h = int(c.get("/v1/status").json()["height"])
            if h >= height:
                return h
            time.sleep(0.05)
    raise AssertionError(f"height {height} not reached in {timeout}s")
