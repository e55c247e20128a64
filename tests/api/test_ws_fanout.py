"""The block pump both WebSocket endpoints use: items offered from another thread
arrive in order on the loop, a loop that falls behind skips the oldest, and a
dispatch that fails does not stop the pump."""

from __future__ import annotations

import asyncio
import logging
import threading

from focusflow.api.ws_fanout import PUMP_LIMIT, BlockPump


def test_items_from_another_thread_arrive_in_order():
    async def run() -> list[int]:
        got: list[int] = []
        done = asyncio.Event()

        async def dispatch(item: int) -> None:
            got.append(item)
            if item == PUMP_LIMIT - 1:
                done.set()

        pump: BlockPump[int] = BlockPump("test pump", dispatch)
        pump.attach(asyncio.get_running_loop())
        producer = threading.Thread(target=lambda: [pump.offer(i) for i in range(PUMP_LIMIT)])
        producer.start()
        await asyncio.wait_for(done.wait(), 10)
        producer.join()
        await pump.detach()
        return got

    assert asyncio.run(run()) == list(range(PUMP_LIMIT))


def test_a_loop_behind_skips_the_oldest_and_a_failed_dispatch_is_logged(caplog):
    async def run() -> list[int]:
        got: list[int] = []
        release = asyncio.Event()

        async def dispatch(item: int) -> None:
            if item == 0:
                await release.wait()  # the loop falls behind while this waits
                raise RuntimeError("a broken dispatch")
            got.append(item)

        pump: BlockPump[int] = BlockPump("test pump", dispatch)
        pump.attach(asyncio.get_running_loop())
        pump.offer(0)
        await asyncio.sleep(0.05)  # the pump took item 0 and waits in it
        for i in range(1, PUMP_LIMIT + 11):
            pump.offer(i)
        await asyncio.sleep(0.05)
        release.set()
        while not got or got[-1] != PUMP_LIMIT + 10:
            await asyncio.sleep(0.01)
        await pump.detach()
        return got

    with caplog.at_level(logging.WARNING, logger="focusflow.api"):
        got = asyncio.run(run())
    assert got == list(range(11, PUMP_LIMIT + 11))  # the ten oldest were skipped
    skipped = [r for r in caplog.records if "test pump behind" in r.getMessage()]
    assert len(skipped) == 10
    assert any("test pump dispatch failed" in r.getMessage() for r in caplog.records)
