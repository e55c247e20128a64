"""A network of rollups on loopback for tests and benchmarks:
``focusflow testnet --rollups R`` run as a real process, with bounded waits on
its nodes' APIs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from focusflow.chain import Msg, make_tx
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from focusflow.testing.process import SOURCE, node_env
from focusflow.testing.testnet import START_TIMEOUT, free_base_port


class RollupNet:
    """``focusflow testnet --rollups R --validators N --hub-validators H``."""

    def __init__(
        self,
        home: Path,
        rollups: int,
        validators: int = 1,
        hub_validators: int = 1,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.home = home
        self.log = open(home.parent / f"{home.name}.log", "ab")  # noqa: SIM115
        nodes = hub_validators + rollups * validators
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "focusflow", "testnet",
                "--rollups", str(rollups),
                "--validators", str(validators),
                "--hub-validators", str(hub_validators),
                "--home", str(home),
                "--base-port", str(free_base_port(nodes)),
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=node_env(SOURCE),
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not (home / "testnet.json").exists():
            assert self.proc.poll() is None, self.logs()
            assert time.monotonic() < deadline, "no testnet.json"
            time.sleep(0.2)
        self.doc: dict[str, Any] = json.loads((home / "testnet.json").read_text())
        self.hub = [n["api"] for n in self.doc["hub"]]
        self.rollups = [[n["api"] for n in r["validators"]] for r in self.doc["rollups"]]
        self.chain_ids = [r["chain_id"] for r in self.doc["rollups"]]
        for api in [*self.hub, *(a for r in self.rollups for a in r)]:
            self.wait_up(api, deadline)
        self.dev: KeyPair = Keystore(home / "hub" / "v0" / "keys").load("dev")

    def logs(self, tail: int = 3000) -> str:
        out = []
        for path in sorted(self.home.glob("*/v*/node.log")) + sorted(
            self.home.glob("relayer*/relay.log")
        ):
            out.append(f"--- {path}\n" + path.read_text(errors="replace")[-tail:])
        return "\n".join(out)

    def wait_up(self, api: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/v1/status", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{api} did not come up\n{self.logs()}")

    def get(self, api: str, path: str, **params: Any) -> Any:
        r = httpx.get(f"{api}{path}", params=params, timeout=10)
        return r.status_code, r.json()

    def height(self, api: str) -> int:
        return int(httpx.get(f"{api}/v1/status", timeout=5).json()["height"])

    def nonce(self, api: str, key: KeyPair) -> int:
        doc = httpx.get(f"{api}/v1/accounts/{key.address}", timeout=5).json()
        return int(doc.get("next_nonce", doc.get("nonce", 0)))

    def submit(
        self, api: str, chain_id: str, links: list[list[bytes]], nonce: int
    ) -> httpx.Response:
        """A ``link`` transaction of the dev key for ``chain_id``, posted to ``api``."""
        tx = make_tx(self.dev, chain_id, nonce, 100_000, [Msg("link", {"links": links})])
        return httpx.post(f"{api}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=15)

    def wait_tx(self, api: str, tx_hash: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = httpx.get(f"{api}/v1/txs/{tx_hash}", timeout=5)
            if r.status_code == 200 and r.json()["status"] == "committed":
                doc: dict[str, Any] = r.json()
                return doc
            time.sleep(0.1)
        raise AssertionError(f"tx {tx_hash} not committed at {api} in {timeout}s\n{self.logs()}")

    def pid_of(self, api: str) -> int:
        for node in [*self.doc["hub"], *(v for r in self.doc["rollups"] for v in r["validators"])]:
            if node["api"] == api:
                return int(node["pid"])
        raise KeyError(api)

    def pause(self, api: str) -> None:
        """Stop a node's process (SIGSTOP): its chain halts, as partitioned."""
        os.kill(self.pid_of(api), signal.SIGSTOP)

    def resume(self, api: str) -> None:
        os.kill(self.pid_of(api), signal.SIGCONT)

    def stop(self) -> None:
        for node in [*self.doc["hub"], *(v for r in self.doc["rollups"] for v in r["validators"])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(node["pid"]), signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
