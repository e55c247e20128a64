"""The devnet's consensus in one process: a set of one, no transport, hundreds of heights.

With one validator ``start_height`` itself returns the decision, so the runtime
must start each next height from its consensus task: starting it from the
decision recursed once per height and died of RecursionError after some 330
heights (a minute of a 0.2 s devnet). The test runs past that point.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from focusflow.consensus import Step, verify_certificate
from focusflow.node.home import init_devnet
from focusflow.node.validator import ValidatorRuntime
from focusflow.node.wiring import open_chain

HEIGHTS = 400


def test_a_set_of_one_decides_and_certifies_every_height_alone(tmp_path):
    home, _ = init_devnet(tmp_path / "home")
    key = home.load_validator_key()
    chain = open_chain(home.data, home.load_genesis(), key)
    runtime = ValidatorRuntime(chain, key, wal_path=home.wal, listen=None, commit_wait=0.0)

    async def run() -> tuple:
        await runtime.start_async()
        try:
            while chain.height < HEIGHTS and runtime.failure is None:
                await asyncio.sleep(0.05)
            return runtime.consensus_state
        finally:
            await runtime.stop_async()

    try:
        height, round_, step, vset = asyncio.run(asyncio.wait_for(run(), 120))
        assert runtime.failure is None and runtime.net is None
        assert chain.height >= HEIGHTS and height >= chain.height and round_ == 0
        assert step in ("propose", "prevote", "precommit", "commit")
        assert [v.public_key for v in vset.validators] == [key.public_key]
        for h in (1, HEIGHTS // 2, chain.height):
            record = chain.block_record(h)
            verify_certificate(
                record.commit,
                chain.validators,
                chain.chain_id,
                height=h,
                value_id=record.block.hash,
            )
            assert record.commit.round == 0
        assert home.wal.exists() and runtime.signer.resume_height() >= chain.height
        last = runtime.votes_seen.last(key.public_key)
        assert last is not None and last.height >= chain.height
        if last.height == chain.height:
            assert last.step == Step.PRECOMMIT
            assert last.value_id == chain.block_record(chain.height).block.hash
    finally:
        chain.store.close()


def _interval_gaps(tmp_path, slow_every_other: float = 0.0) -> list[int]:
    """The gaps (ms) between the times of blocks 2..11 of a devnet validator
    with a 50 ms block interval; ``slow_every_other``: seconds that building
    a proposal takes at every even height, as on a busy machine."""
    home, _ = init_devnet(tmp_path / "home")
    key = home.load_validator_key()
    chain = open_chain(home.data, home.load_genesis(), key)
    runtime = ValidatorRuntime(
        chain, key, wal_path=home.wal, listen=None, commit_wait=0.0, block_interval=0.05
    )
    propose = chain.propose

    def slow_propose(*args, **kwargs):
        if chain.height % 2 == 0:
            time.sleep(slow_every_other)
        return propose(*args, **kwargs)

    chain.propose = slow_propose  # type: ignore[method-assign]

    async def run() -> None:
        await runtime.start_async()
        try:
            while chain.height < 12 and runtime.failure is None:
                await asyncio.sleep(0.02)
        finally:
            await runtime.stop_async()

    try:
        asyncio.run(asyncio.wait_for(run(), 60))
        times = [chain.block_record(h).block.header.time_ms for h in range(2, 12)]
        return [b - a for a, b in itertools.pairwise(times)]
    finally:
        chain.store.close()


def test_block_interval_spaces_the_heights(tmp_path):
    """The devnet's --block-time: its blocks' times are at least an interval
    apart (1 ms for rounding; blocks that take longer only widen it)."""
    gaps = _interval_gaps(tmp_path)
    assert min(gaps) >= 49, gaps


def test_block_times_keep_the_interval_where_proposals_are_slow_to_build(tmp_path):
    """A proposal's time is taken when it is built, a while after its height
    begins. Spacing the heights alone let a slow build followed by a quick one
    bring two block times closer than the interval (38 ms at 50 ms, in a
    loaded test run); a validator now also waits an interval after its own
    last block's time."""
    gaps = _interval_gaps(tmp_path, slow_every_other=0.03)
    assert min(gaps) >= 49, gaps
