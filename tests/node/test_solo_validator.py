"""The devnet's consensus in one process: a set of one, no transport, hundreds of heights.

With one validator ``start_height`` itself returns the decision, so the runtime
must start each next height from its consensus task: starting it from the
decision recursed once per height and died of RecursionError after some 330
heights (a minute of a 0.2 s devnet). The test runs past that point.
"""

from __future__ import annotations

import asyncio
import itertools

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


def test_block_interval_spaces_the_heights(tmp_path):
    """The devnet's --block-time: heights start at least an interval apart (a lower
    bound holds on a loaded machine too; blocks that take longer only widen it)."""
    home, _ = init_devnet(tmp_path / "home")
    key = home.load_validator_key()
    chain = open_chain(home.data, home.load_genesis(), key)
    runtime = ValidatorRuntime(
        chain, key, wal_path=home.wal, listen=None, commit_wait=0.0, block_interval=0.05
    )

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
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 40, gaps
    finally:
        chain.store.close()
