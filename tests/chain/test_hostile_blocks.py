"""The standing guard of the execution plane: blocks of hostile transactions of
every message type (tests/chain/hostile.py) are produced by one node and
re-executed by another, and

* block production never raises;
* the follower reaches the same head (block hash, state root) and the same
  receipts, transaction by transaction;
* the process's peak memory grows by less than ``MEMORY_BOUND``;
* no receipt is ``internal_error``: the transaction boundary kept the block
  going, but a handler raised what it does not mean to, a bug to fix.

A bounded run here; thousands of transactions in the ``slow`` run.
"""

from __future__ import annotations

import resource

import pytest

from focusflow.chain import Chain
from focusflow.modules import default_modules
from focusflow.modules.bank import ante
from focusflow.state_schema.accounts import get_account
from focusflow.store import Store
from tests.chain.hostile import PLAUSIBLE, T0, VALIDATOR, HostileStream, genesis

#: Most the peak resident memory of the test process may grow over a run.
MEMORY_BOUND = 1 << 30


def _chain(path, producer: bool) -> Chain:
    return Chain(
        Store(path),
        genesis(),
        default_modules(),
        ante,
        validator_key=VALIDATOR if producer else None,
    )


def run_hostile(tmp_path, seed: int, blocks: int, size: int) -> dict[str, int]:
    """Produce ``blocks`` hostile blocks on one chain and apply them to another;
    the receipt codes seen, counted."""
    a = _chain(tmp_path / f"a{seed}", producer=True)
    b = _chain(tmp_path / f"b{seed}", producer=False)
    stream = HostileStream(seed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    codes: dict[str, int] = {}

    def nonce_of(address: bytes) -> int:
        with a.reader() as r:
            return get_account(r, address).nonce

    for height in range(1, blocks + 1):
        batch = stream.block(nonce_of, size)
        result = a.produce_block(batch, time_ms=T0 + 1000 * height)
        follow = b.apply_block(result.record.encode())
        assert b.head == a.head, f"seed {seed} height {height}: the follower's head differs"
        mine = [r.encode(height, i) for i, r in enumerate(result.receipts)]
        theirs = [r.encode(height, i) for i, r in enumerate(follow.receipts)]
        assert mine == theirs, f"seed {seed} height {height}: receipts differ"
        for r in result.receipts:
            codes[r.code] = codes.get(r.code, 0) + 1
        for r in result.rejected:
            codes["refused:" + r.error.code] = codes.get("refused:" + r.error.code, 0) + 1
        stream.learn(result.receipts)
    assert "internal_error" not in codes, f"seed {seed}: a handler raised: {codes}"
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
    assert grown < MEMORY_BOUND, f"peak memory grew {grown >> 20} MiB"
    assert a.store.recompute_root() == a.head.state_root
    return codes


def test_the_stream_covers_every_message_type():
    types = {t for m in default_modules() for t in m.handlers()}
    assert types - {"evm.tx"} == set(PLAUSIBLE)


@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_blocks_never_fail_and_every_node_agrees(tmp_path, seed):
    codes = run_hostile(tmp_path, seed, blocks=12, size=40)
    # The stream reached deep: successes, failed receipts and refusals all seen.
    assert codes.get("ok", 0) > 20
    assert sum(n for c, n in codes.items() if c != "ok" and not c.startswith("refused:")) > 20
    assert any(c.startswith("refused:") for c in codes)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_hostile_blocks_long(tmp_path, seed):
    run_hostile(tmp_path, seed, blocks=40, size=60)
