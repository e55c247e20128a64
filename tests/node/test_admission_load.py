"""Transaction admission under attack and load, on a real devnet process.

* A flood of transactions from fresh keys that claim huge fees they do not
  have must not keep a funded sender's transactions out of blocks: admission
  checks the sender's balance, so the flood is refused and the paying
  transactions are committed while it goes on.
* Batches posted back to back by several clients must not stall block
  production: admission's decoding and signature checks run in the node's
  admission workers, not on the event loop that runs consensus, and a full
  admission queue answers ``admission_busy`` (503 with ``Retry-After``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter

import pytest

from focusflow.chain import Msg, make_tx
from focusflow.core.keys import KeyPair
from focusflow.testing.devnet import Devnet, start_devnet, wait_tx

#: A small mempool, so that a flood can fill it in a test's time.
MEMPOOL_TXS = 100
HONEST_FEE = 10_000
BLOCK_TIME_S = 0.2
#: Longest gap between consecutive blocks' times allowed under batch load
#: (measured on two busy cores: 0.22-0.40 s with admission in the workers,
#: 1.0-3.3 s when it ran on the event loop).
MAX_INTERVAL_S = 0.8


@pytest.fixture(scope="module")
def small_pool_devnet(tmp_path_factory):
    net = start_devnet(
        tmp_path_factory.mktemp("admission") / "home",
        "--mempool-txs",
        str(MEMPOOL_TXS),
        block_time=f"{BLOCK_TIME_S}s",
    )
    yield net
    net.stop()


def _chain_id(net: Devnet) -> str:
    with net.client() as c:
        return c.get("/v1/status").json()["chain_id"]


def _send(to: bytes) -> list[Msg]:
    return [Msg("send", {"to": to, "amount": 1})]


def _codes(response) -> list[str]:
    doc = response.json()
    if "results" not in doc:
        return [doc["error"]["code"]]
    return [r["error"]["code"] if "error" in r else "ok" for r in doc["results"]]


def test_unfunded_flood_does_not_keep_funded_transactions_out(small_pool_devnet):
    net = small_pool_devnet
    chain_id = _chain_id(net)
    dev = net.dev_key()
    sink = KeyPair.from_seed(b"sink".ljust(32, b"\0")).address_raw
    flood = [
        make_tx(
            KeyPair.from_seed(i.to_bytes(4, "big").ljust(32, b"\x09")),
            chain_id,
            0,
            10**15,
            _send(sink),
        ).encoded.hex()
        for i in range(3 * MEMPOOL_TXS)
    ]
    stop = threading.Event()
    flooded: Counter[str] = Counter()
    batches = 0

    def attacker() -> None:
        nonlocal batches
        deadline = time.monotonic() + 20
        with net.client(timeout=30) as c:
            while not stop.is_set() and time.monotonic() < deadline:
                flooded.update(_codes(c.post("/v1/txs/batch", json={"txs": flood})))
                batches += 1

    thread = threading.Thread(target=attacker)
    thread.start()
    try:
        while batches < 2:
            time.sleep(0.02)
        with net.client() as c:
            nonce = c.get(f"/v1/accounts/{dev.address}").json()["nonce"]
            honest = [make_tx(dev, chain_id, nonce + i, HONEST_FEE, _send(sink)) for i in range(20)]
            answers = [c.post("/v1/txs", json={"tx": tx.encoded.hex()}) for tx in honest]
        assert [a.status_code for a in answers] == [202] * len(honest), [a.text for a in answers]
        for tx in honest:
            assert wait_tx(net, tx.hash.hex(), timeout=15)["code"] == "ok"
        assert not stop.is_set() and thread.is_alive()  # the flood went on meanwhile
    finally:
        stop.set()
        thread.join(30)
    assert batches >= 3
    assert set(flooded) == {"insufficient_funds"}, flooded


def test_batch_load_does_not_stall_block_production(small_pool_devnet):
    """Three clients post 1,000-transaction batches back to back (each refused
    with bad_nonce only after its signature is checked, so every one costs the
    full admission work and nothing reaches a block); the gap between
    consecutive blocks stays near the block time."""
    net = small_pool_devnet
    chain_id, dev = _chain_id(net), net.dev_key()
    clients, rounds = 3, 4
    batches = [
        [
            make_tx(
                dev, chain_id, 10**6 + b * 1000 + i, HONEST_FEE, _send(dev.address_raw)
            ).encoded.hex()
            for i in range(1000)
        ]
        for b in range(clients * rounds)
    ]
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def client(k: int) -> None:
        with net.client(timeout=60) as c:
            for batch in batches[k::clients]:
                answer = _codes(c.post("/v1/txs/batch", json={"txs": batch}))
                with lock:
                    codes.update(answer)

    with net.client() as c:
        h0 = c.get("/v1/status").json()["height"]
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - t0
        h1 = c.get("/v1/status").json()["height"]
        times = [c.get(f"/v1/blocks/{h}").json()["time_ms"] for h in range(h0, h1 + 1)]
    gaps = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
    assert codes["bad_nonce"] >= 3000, codes
    assert set(codes) <= {"bad_nonce", "admission_busy"}, codes
    assert h1 - h0 >= elapsed / BLOCK_TIME_S / 2, (h1 - h0, elapsed)
    assert max(gaps) < MAX_INTERVAL_S, gaps


def test_a_full_admission_queue_answers_busy_with_retry_after(small_pool_devnet):
    """More batches at once than the admission queue holds: the surplus is
    refused at once with admission_busy, 503 and Retry-After, and none of its
    transactions is looked at."""
    net = small_pool_devnet
    chain_id, dev = _chain_id(net), net.dev_key()
    batches = [
        [
            make_tx(
                dev, chain_id, 2 * 10**6 + b * 1000 + i, HONEST_FEE, _send(dev.address_raw)
            ).encoded.hex()
            for i in range(1000)
        ]
        for b in range(8)
    ]
    answers: list = []
    go = threading.Barrier(len(batches))

    def client(batch: list[str]) -> None:
        with net.client(timeout=60) as c:
            go.wait()
            answers.append(c.post("/v1/txs/batch", json={"txs": batch}))

    threads = [threading.Thread(target=client, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    busy = [a for a in answers if a.status_code == 503]
    assert busy, [a.status_code for a in answers]
    for a in busy:
        assert a.json()["error"]["code"] == "admission_busy"
        assert a.headers["retry-after"] == "1"
    for a in answers:
        if a.status_code == 200:
            assert set(_codes(a)) == {"bad_nonce"}
