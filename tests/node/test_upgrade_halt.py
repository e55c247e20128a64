"""A validator whose code lacks a scheduled focus algorithm decides every height
before it, then stops following the chain and says why in its status."""

from __future__ import annotations

import asyncio

from focusflow.node.validator import ValidatorRuntime
from focusflow.testing.chains import VALIDATOR, new_chain, tx
from tests.chain.test_focus_upgrade import T0, make_genesis, upgrade_msg

UPGRADE_AT = 6


def test_a_validator_halts_before_a_focus_upgrade_it_cannot_run(tmp_path):
    chain = new_chain(tmp_path / "data", make_genesis(focus_upgrade_delay=2))
    vote = upgrade_msg(UPGRADE_AT, {"arithmetic": "exact-v9"})
    assert chain.produce_block([tx(VALIDATOR, 0, vote)], time_ms=T0 + 1).receipts[0].ok
    runtime = ValidatorRuntime(
        chain, VALIDATOR, wal_path=tmp_path / "wal", listen=None, commit_wait=0.0
    )

    async def run() -> None:
        await runtime.start_async()
        try:
            while runtime.halted is None and runtime.failure is None:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # nothing more is decided after the halt
        finally:
            await runtime.stop_async()

    try:
        asyncio.run(asyncio.wait_for(run(), 60))
        assert runtime.failure is None
        assert chain.height == UPGRADE_AT - 1
        assert runtime.halted.startswith(f"UPGRADE NEEDED at height {UPGRADE_AT}")
        assert "exact-v9" in runtime.halted
    finally:
        chain.store.close()
