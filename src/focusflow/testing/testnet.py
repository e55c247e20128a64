"""Validator processes on loopback for tests: ``focusflow testnet`` run as a
real process, and requests to the validators' APIs, every wait bounded."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx

from focusflow.chain import Msg, make_tx
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.keystore import Keystore
from focusflow.testing.process import SOURCE, node_env

#: Seconds a testnet (or a restarted node) has to answer on its API.
START_TIMEOUT = 120.0


def ephemeral_start() -> int:
    """The first port the kernel hands out for port 0 and outgoing sockets."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_base_port(n: int) -> int:
    """A base port with 2n consecutive ports free for TCP and UDP, below the
    kernel's ephemeral range: a port checked free is closed again before the
    nodes bind it, and inside that range any socket opened meanwhile (a peer's
    QUIC dial, an HTTP client) could be given it."""
    top = min(ephemeral_start(), 60_000) - 2 * n
    for _ in range(50):
        base = random.randrange(10_000, top, 2)
        socks = []
        try:
            for p in range(base, base + 2 * n):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port range")


class LocalTestnet:
    """``focusflow testnet`` with ``n`` validators and ``full_nodes`` full nodes;
    node k < n is validator k, node n + j is full node j."""

    def __init__(
        self,
        home: Path,
        n: int,
        extra: tuple[str, ...] = (),
        full_nodes: int = 0,
        source: Path = SOURCE,
    ) -> None:
        """``source``: the directory holding the focusflow package the node
        processes run (this one's by default; another build's in a test of
        mixed versions or a benchmark of another checkout)."""
        self.home = home
        self.n = n
        self.source = source
        if full_nodes:
            extra = (*extra, "--full-nodes", str(full_nodes))
        self.log = open(home.parent / "testnet.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "focusflow",
                "testnet",
                "--validators",
                str(n),
                "--home",
                str(home),
                "--base-port",
                str(free_base_port(n + full_nodes)),
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=node_env(source),
        )
        self.restarted: dict[int, subprocess.Popen[bytes]] = {}
        deadline = time.monotonic() + START_TIMEOUT
        while not (home / "testnet.json").exists():
            assert self.proc.poll() is None, self.logs()
            assert time.monotonic() < deadline, "no testnet.json"
            time.sleep(0.2)
        doc = json.loads((home / "testnet.json").read_text())
        self.validators = doc["validators"] + doc.get("full_nodes", [])
        self.apis = [v["api"] for v in self.validators]
        self.homes = [home / v["name"] for v in self.validators]
        for k in range(len(self.apis)):
            self.wait_up(k, deadline)

    def logs(self) -> str:
        out = []
        for home in self.homes:
            path = home / "node.log"
            if path.exists():
                out.append(f"--- {home.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def wait_up(self, k: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.apis[k]}/v1/status", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"validator {k} did not come up\n{self.logs()}")

    def status(self, k: int) -> dict[str, Any]:
        status: dict[str, Any] = httpx.get(f"{self.apis[k]}/v1/status", timeout=5).json()
        return status

    def height(self, k: int) -> int:
        return int(self.status(k)["height"])

    def validator_set(self, k: int) -> dict[str, Any]:
        vset: dict[str, Any] = httpx.get(f"{self.apis[k]}/v1/validators", timeout=5).json()
        return vset

    def block(self, k: int, h: int) -> tuple[str, str, str]:
        r = httpx.get(f"{self.apis[k]}/v1/blocks/{h}", timeout=5)
        b = r.json()
        assert r.status_code == 200, f"node {k}, block {h}: HTTP {r.status_code} {b}"
        return b["hash"], b["state_root"], b["focus_root"]

    def wait_height(self, ks: Collection[int], height: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.height(k) >= height for k in ks):
                return
            time.sleep(0.1)
        heights = {k: self.height(k) for k in ks}
        raise AssertionError(f"height {height} not reached in {timeout}s: {heights}\n{self.logs()}")

    def assert_agree(self, ks: Collection[int], upto: int) -> None:
        """Same block hash, state root and focus root at every height on every node;
        a node that started from a snapshot (its status's ``base``: it holds that block
        and the ones after) is compared from there on and must refuse the block below
        it as ``unknown_block``."""
        bases = {k: self.status(k)["base"] for k in ks}
        for k, base in bases.items():
            if base:
                r = httpx.get(f"{self.apis[k]}/v1/blocks/{base - 1}", timeout=5)
                assert r.status_code == 404, f"node {k}, block {base - 1}: {r.text}"
                assert r.json()["error"]["code"] == "unknown_block"
        for h in range(1, upto + 1):
            seen = {k: self.block(k, h) for k in ks if h >= bases[k]}
            assert len(set(seen.values())) == 1, f"nodes disagree at height {h}: {seen}"

    def pid(self, k: int) -> int:
        proc = self.restarted.get(k)
        return proc.pid if proc is not None else self.validators[k]["pid"]

    def kill(self, k: int) -> None:
        pid = self.pid(k)
        os.kill(pid, signal.SIGKILL)
        proc = self.restarted.pop(k, None)
        if proc is not None:
            proc.wait(10)
        else:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                # the testnet process is its parent and reaps it
                time.sleep(0.05)

    def terminate(self, k: int, timeout: float = 60.0) -> None:
        """SIGTERM node ``k`` and wait for it to exit: a clean stop (it writes
        its focus checkpoint)."""
        pid = self.pid(k)
        os.kill(pid, signal.SIGTERM)
        proc = self.restarted.pop(k, None)
        if proc is not None:
            proc.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                return
            if state == "Z":  # exited; the testnet process reaps it when it looks
                return
            time.sleep(0.05)
        raise AssertionError(f"node {k} did not stop in {timeout}s")

    def add_node(self, home: Path) -> int:
        """Start ``focusflow node start`` for another home (a validator that joins);
        its index for the other methods."""
        config = json.loads((home / "config.json").read_text())
        self.apis.append(f"http://{config['api']}")
        self.validators.append({"name": config["name"], "api": self.apis[-1], "pid": 0})
        self.homes.append(home)
        self.n += 1
        self.restart(len(self.apis) - 1)
        return len(self.apis) - 1

    def restart(self, k: int, *extra: str, src: Path | None = None) -> None:
        """Start node ``k`` again (``focusflow node start``), from the focusflow
        package under ``src`` (another build of it, where a test gives one;
        the testnet's own by default)."""
        home = self.homes[k]
        with open(home / "node.log", "ab") as log:
            self.restarted[k] = subprocess.Popen(
                [sys.executable, "-m", "focusflow", "node", "start", "--home", str(home), *extra],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(node_env(src or self.source), NUMBA_NUM_THREADS="1"),
            )
        self.wait_up(k, time.monotonic() + START_TIMEOUT)

    def submit_links(self, k: int, tag: str, nonce: int) -> str:
        key = Keystore(self.home / "v0" / "keys").load("dev")
        chain_id = self.status(k)["chain_id"]
        pairs = [
            [cid_to_bytes(cid_of_text(f"{tag}-{i}")), cid_to_bytes(cid_of_text(tag))]
            for i in range(5)
        ]
        tx = make_tx(key, chain_id, nonce, 10_000, [Msg("link", {"links": pairs})])
        r = httpx.post(f"{self.apis[k]}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=5)
        assert r.status_code in (200, 202), r.text
        return tx.hash.hex()

    def wait_tx(self, k: int, tx_hash: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.apis[k]}/v1/txs/{tx_hash}", timeout=5)
            if r.status_code == 200 and r.json()["status"] == "committed":
                return int(r.json()["height"])
            time.sleep(0.05)
        raise AssertionError(f"tx {tx_hash} not committed on {k} in {timeout}s\n{self.logs()}")

    def restore_quorum(self, tag: str, nonce: int, timeout: float = 60.0) -> tuple[int, float]:
        """Kill validators 2 and 3 (no quorum), submit a transaction to validator
        0, restart validator 2: ``(height, seconds)`` of its commit, timed from
        the restarted node's API answering. Validator 3 then returns and all
        four reach the next height."""
        self.kill(2)
        self.kill(3)
        time.sleep(2.0)
        tx = self.submit_links(0, tag, nonce)
        self.restart(2)
        restarted = time.monotonic()
        height = self.wait_tx(0, tx, timeout)
        seconds = time.monotonic() - restarted
        self.restart(3)
        self.wait_height(range(4), height + 1, timeout)
        return height, seconds

    def stop(self) -> None:
        for proc in self.restarted.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        for proc in [*self.restarted.values(), self.proc]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.log.close()


class LateFullNode:
    """A full node started after the network, from its genesis file and one
    peer (``node_id@host:port``): it state-syncs from that peer's snapshot and
    block-syncs the rest. Its log (JSON lines) is ``log``."""

    def __init__(self, home: Path, genesis: Path, peer: str, log: Path, source: Path = SOURCE):
        port = free_base_port(1)
        self.api = f"http://127.0.0.1:{port + 1}"
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "focusflow",
                    "node",
                    "start",
                    "--full",
                    "--home",
                    str(home),
                    "--genesis",
                    str(genesis),
                    "--peer",
                    peer,
                    "--p2p",
                    f"127.0.0.1:{port}",
                    "--api",
                    self.api.removeprefix("http://"),
                    "--json-logs",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(node_env(source), NUMBA_NUM_THREADS="1"),
            )

    def wait_height(self, target: int, timeout: float = START_TIMEOUT) -> int:
        """The height its API answers once it reaches ``target``, or the last one
        when ``timeout`` ends first; it must not exit meanwhile."""
        deadline = time.monotonic() + timeout
        height = -1
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                height = httpx.get(f"{self.api}/v1/status", timeout=2).json()["height"]
            except httpx.HTTPError:
                height = -1
            if height >= target:
                break
            time.sleep(0.2)
        return height

    def synced_from(self) -> list[dict[str, Any]]:
        """The log's "state synced" records, oldest first."""
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if "state synced" in line]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
