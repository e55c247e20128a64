"""Soak: four validator processes while one after another is killed and restarted,
clients send a bounded load of transactions and read heavily.

Asserted: progress (the chain keeps committing through the churn), safety (every
node reports the same block hash, state root and focus root at every height),
nothing committed is lost (each block seen committed before a kill is the block
every node holds at that height at the end, the restarted ones included), and
memory stays flat: the resident memory of the validator that is never killed
grows by at most ``RSS_GROWTH`` of its size after warm-up plus ``RSS_SLACK``.

Both run under ``-m slow``: even one kill-and-restart cycle costs about a minute
of CPU on top of starting four validators (measured: 63 s of CPU, so at least
32 s on two idle cores), more than the default suite can spend on it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from focusflow.chain import Msg, make_tx
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.keystore import Keystore
from tests.adversarial.attacknet import AttackNet

#: Memory bound of the soak: after warm-up, a node may grow by this fraction...
RSS_GROWTH = 0.25
#: ...plus this many bytes (allocator arenas, caches that fill up to their caps).
RSS_SLACK = 64 * 2**20
#: Transactions the load client sends at most per second, and links per transaction.
TX_RATE = 4.0
LINKS_PER_TX = 5
#: Reader threads, each looping over status, block, block list and account reads.
READERS = 3


@dataclass
class Load:
    """Clients against the validators' APIs, in threads, until ``stop`` is set."""

    net: AttackNet
    down: set[int] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    reads: int = 0
    read_errors: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._send, daemon=True)]
        self.threads += [
            threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(READERS)
        ]
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive(), "a load thread did not stop"

    def _live(self, rng: random.Random) -> int:
        return rng.choice([k for k in range(self.net.n) if k not in self.down])

    def _send(self) -> None:
        """Link transactions from the dev key; after a gap (a node died holding
        some), start again from the nonce the chain reports."""
        rng = random.Random(1)
        key = Keystore(self.net.home / "v0" / "keys").load("dev")
        chain_id = self.net.status(0)["chain_id"]
        nonce = None
        with httpx.Client(timeout=3) as client:
            while not self.stop.wait(1 / TX_RATE):
                k = self._live(rng)
                api = self.net.apis[k]
                try:
                    if nonce is None or self.sent % 20 == 0:
                        nonce = client.get(f"{api}/v1/accounts/{key.address}").json()[
                            "pending_nonce"
                        ]
                    tag = f"soak-{self.sent}"
                    pairs = [
                        [cid_to_bytes(cid_of_text(f"{tag}-{i}")), cid_to_bytes(cid_of_text(tag))]
                        for i in range(LINKS_PER_TX)
                    ]
                    tx = make_tx(key, chain_id, nonce, 10_000, [Msg("link", {"links": pairs})])
                    r = client.post(f"{api}/v1/txs", json={"tx": tx.encoded.hex()})
                except httpx.HTTPError:
                    nonce = None
                    continue
                if r.status_code in (200, 202):
                    self.sent += 1
                    nonce += 1
                else:
                    nonce = None

    def _read(self, seed: int) -> None:
        rng = random.Random(100 + seed)
        with httpx.Client(timeout=3) as client:
            while not self.stop.is_set():
                api = self.net.apis[self._live(rng)]
                try:
                    top = client.get(f"{api}/v1/status").json()["height"]
                    for path in (
                        f"/v1/blocks/{rng.randint(1, max(1, top))}",
                        "/v1/blocks?limit=20",
                        "/v1/validators",
                        "/v1/blocks/latest",
                    ):
                        client.get(f"{api}{path}")
                        self.reads += 1
                except (httpx.HTTPError, ValueError, KeyError):
                    self.read_errors += 1
                    self.stop.wait(0.05)


def soak(net: AttackNet, cycles: int, down_s: float, up_s: float) -> dict:
    """Kill validators 1, 2, 3, 1, ... in turn, ``cycles`` times: each stays down
    ``down_s`` seconds and the next kill comes ``up_s`` after it is back."""
    net.wait_height(range(4), 2, 60)
    load = Load(net)
    load.start()
    committed: dict[int, tuple[str, str, str]] = {}
    rss: list[int] = []
    start_height = net.height(0)
    began = time.monotonic()
    try:
        for cycle in range(cycles):
            victim = 1 + cycle % 3
            # What the victim has committed must survive its SIGKILL.
            committed.update(net.assert_agree_all([victim], net.height(victim)))
            rss.append(net.rss_bytes(0))
            load.down.add(victim)
            net.kill(victim)
            time.sleep(down_s)
            net.restart(victim)
            load.down.discard(victim)
            time.sleep(up_s)
    finally:
        load.finish()
    rss.append(net.rss_bytes(0))
    churn_s = time.monotonic() - began
    end = max(net.heights(range(4)).values())
    net.wait_height(range(4), end, 60)
    agreed = net.assert_agree_all(range(4), end)
    for h, roots in committed.items():  # nothing seen committed was lost or changed
        assert agreed[h] == roots, h
    return {
        "churn_s": round(churn_s, 1),
        "check_s": round(time.monotonic() - began - churn_s, 1),
        "start_height": start_height,
        "end_height": end,
        "committed_checked": len(committed),
        "txs_sent": load.sent,
        "reads": load.reads,
        "read_errors": load.read_errors,
        "rss_mib": [round(r / 2**20) for r in rss],
    }


def assert_flat(rss_mib: list[int], warm_up: int) -> None:
    """The never-killed node's RSS after warm-up stays within the documented bound."""
    base = rss_mib[warm_up] * 2**20
    bound = base * (1 + RSS_GROWTH) + RSS_SLACK
    assert max(rss_mib[warm_up:]) * 2**20 <= bound, (rss_mib, bound / 2**20)


@pytest.mark.slow
def test_short_soak_one_kill_and_restart(net):
    report = soak(net, cycles=1, down_s=2.0, up_s=3.0)
    print("short soak", report)
    assert report["end_height"] >= report["start_height"] + 3, report
    assert report["txs_sent"] > 0 and report["reads"] > 50, report


@pytest.mark.slow
def test_soak_kill_and_restart_every_few_seconds(net):
    report = soak(net, cycles=24, down_s=3.0, up_s=4.0)
    print("soak", report)
    assert report["end_height"] >= report["start_height"] + 24, report
    assert report["txs_sent"] > 100 and report["reads"] > 1000, report
    assert_flat(report["rss_mib"], warm_up=3)
