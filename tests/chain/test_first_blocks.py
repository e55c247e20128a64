"""A fresh install's first blocks of each kind compile nothing.

numba compiles a kernel on first use and writes it to its cache; a kernel
that the node's warm-up (``focusflow.chain.warm``) does not reach is compiled
inside the first block that needs it, and that block waits for it (a first
stake took 13 s of focus on a 2-core machine, the first links of a second key
12.6 s).

The devnet watches for that itself (``chain.warm.KernelWatch``): after its
warm-up, a kernel first run with a new signature inside a block is logged as
not warmed, whether or not numba's disk cache holds it. The test here sends one
transaction of each kind, each in its own block, to a devnet on the install's
cache and finds no such line: on a fresh install, the warm-up compiled every
kernel those blocks run. The ``slow`` tests check the same the long way, on an
empty numba cache (the warm-up compiles for about a minute): after each block
the cache must be as it was.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.keys import KeyPair
from focusflow.node.home import eth_dev_accounts
from focusflow.testing.devnet import Devnet, link_msg, signed, start_devnet, wait_tx

#: Cache files and their (mtime, size): what numba has compiled and kept.
Entries = dict[str, tuple[int, int]]


def cache_entries(cache: Path) -> Entries:
    return {
        str(p.relative_to(cache)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in cache.rglob("*")
        if p.is_file()
    }


def written(before: Entries, after: Entries) -> list[str]:
    """The cache files a step added or rewrote, by kernel file name."""
    return sorted(Path(k).name for k, v in after.items() if before.get(k) != v)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("numba-cache")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, cache):
    """A devnet whose numba cache starts empty (its warm-up compiles into it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUMBA_CACHE_DIR", str(cache))
        net = start_devnet(tmp_path_factory.mktemp("first") / "home", timeout=420)
    yield net
    net.stop()


def _send(net: Devnet, key: KeyPair, msgs: list[Msg]) -> None:
    tx = signed(net, key, msgs)
    r = httpx.post(f"{net.api}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=30)
    assert r.status_code == 202, r.text
    status = wait_tx(net, tx.hash.hex(), timeout=120)
    assert status["code"] == "ok", status


def _evm_transfer(net: Devnet) -> None:
    w3 = Web3(Web3.HTTPProvider(net.api + "/evm", request_kwargs={"timeout": 30}))
    (address, key), (other, _) = eth_dev_accounts()[:2]
    sender = Web3.to_checksum_address(address)
    tx = {
        "to": Web3.to_checksum_address(other),
        "value": 1000,
        "nonce": w3.eth.get_transaction_count(sender),
        "gas": 21000,
        "gasPrice": w3.eth.gas_price,
        "chainId": w3.eth.chain_id,
    }
    sent = w3.eth.send_raw_transaction(Account.sign_transaction(tx, key).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(sent, timeout=60, poll_latency=0.1)["status"] == 1


def _with_texts(*pairs: tuple[str, str]) -> Msg:
    msg = link_msg(*pairs)
    words = sorted({w for pair in pairs for w in pair})
    msg.body["texts"] = [[cid_to_bytes(cid_of_text(w)), w] for w in words]
    return msg


@pytest.mark.slow  # the warm-up compiles on an empty cache: about a minute
def test_the_first_start_says_it_compiles_and_names_each_kernel(fresh):
    log = fresh.log()
    assert "compiling block kernels" in log
    assert "compiling kernels 1/12: block: a new key's links and stake: graph.csr.gather" in log
    assert "block kernels ready" in log


def _kinds(net: Devnet) -> list[tuple[str, Callable[[], None]]]:
    """One transaction of each kind a user sends first, each in its own block."""
    dev = net.dev_key()
    bob = KeyPair.from_seed(hashlib.sha256(b"the second key").digest())

    def links(key: KeyPair, *pairs: tuple[str, str]) -> None:
        _send(net, key, [link_msg(*pairs)])

    def bank(key: KeyPair, kind: str, **body: object) -> None:
        _send(net, key, [Msg(kind, dict(body))])

    return [
        ("links of the dev key", lambda: links(dev, ("cats", "mammals"))),
        ("more links", lambda: links(dev, ("dogs", "mammals"), ("cats", "dogs"))),
        ("a send", lambda: bank(dev, "send", to=bob.address_raw, amount=10**8)),
        # links spend bonded stake: a second key stakes before it links
        ("a second key's stake", lambda: bank(bob, "stake", amount=10**7)),
        ("links of a second key", lambda: links(bob, ("birds", "cats"))),
        ("links with texts", lambda: _send(net, bob, [_with_texts(("trees", "plants"))])),
        ("a stake of a key with links", lambda: bank(dev, "stake", amount=10**6)),
        ("links after a stake", lambda: links(dev, ("fish", "cats"))),
        ("an unstake", lambda: bank(bob, "unstake", amount=10**5)),
        ("an EVM transfer", lambda: _evm_transfer(net)),
    ]


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A devnet on the install's numba cache, as every later start is."""
    net = start_devnet(tmp_path_factory.mktemp("warm") / "home", timeout=240)
    yield net
    net.stop()


def test_first_blocks_of_every_kind_run_only_warmed_kernels(warm):
    log = warm.log()
    assert "block kernels ready" in log and "compiled=0" in log, log
    assert "compiling" not in log  # a start with every kernel cached says nothing of it
    for _, send in _kinds(warm):
        send()
    time.sleep(2.0)  # the views and data squares of the next heights follow
    missed = [line for line in warm.log().splitlines() if "not warmed" in line]
    assert missed == []


def test_the_watch_names_a_kernel_first_run_with_a_new_signature():
    """What the devnet's check rests on: a kernel run after the watch's first
    look with a signature it had not run with is named once."""
    import numpy as np

    from focusflow.chain.warm import KernelWatch
    from focusflow.graph import csr

    watch = KernelWatch()
    csr.row_sums(np.array([0, 1, 2], dtype=np.int64), np.array([1.0, 2.0]))
    csr.row_sums(np.array([0, 1, 2], dtype=np.int64), np.array([1.0, 2.0]))
    first = watch.look()
    csr.row_sums(np.array([0, 1], dtype=np.int32), np.array([1.0], dtype=np.float32))
    assert watch.look() == ["graph.csr.row_sums"]
    assert watch.look() == []
    assert first in ([], ["graph.csr.row_sums"])  # already loaded by an earlier test, or not


@pytest.mark.slow  # the warm-up compiles on an empty cache: about a minute
def test_first_blocks_of_every_kind_compile_nothing(fresh, cache):
    kinds = _kinds(fresh)
    compiled = {}
    for kind, send in kinds:
        before = cache_entries(cache)
        send()
        # the block's focus is applied before it commits; the views and the
        # data square of the next heights follow within a few block times
        time.sleep(1.0)
        after = cache_entries(cache)
        if written(before, after):
            compiled[kind] = written(before, after)
    assert compiled == {}


@pytest.mark.slow
def test_a_start_with_every_kernel_cached_says_nothing_of_compiling(fresh, cache):
    fresh.stop()
    earlier = len(fresh.log())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUMBA_CACHE_DIR", str(cache))
        again = start_devnet(fresh.home, timeout=120)
    try:
        log = again.log()[earlier:]
        assert "block kernels ready" in log and "compiled=0" in log
        assert "compiling" not in log
    finally:
        again.stop()
