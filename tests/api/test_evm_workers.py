"""The EVM workers' caps, on real threads: a run over a cap is refused at once,
every slot comes back (a run that ends, one cancelled while it waited), and a
run that waited past its budget does not start."""

from __future__ import annotations

import asyncio
import threading

import pytest

from focusflow.api.evm_budget import Budget, EvmWorkers, RpcBusyError, RpcLimitError


def test_runs_over_a_cap_are_busy_and_every_slot_comes_back():
    workers = EvmWorkers(workers=1, queue=3, per_client=2)
    release = threading.Event()
    ran: list[str] = []

    def hold(name: str) -> str:
        ran.append(name)
        release.wait(10)
        return name

    async def main() -> None:
        first = asyncio.create_task(workers.run(Budget.start("a"), hold, "first"))
        queued = asyncio.create_task(workers.run(Budget.start("a"), hold, "queued"))
        await asyncio.sleep(0.2)
        assert workers.held == 2 and ran == ["first"]
        with pytest.raises(RpcBusyError, match="this client"):
            await workers.run(Budget.start("a"), hold, "third")
        other = asyncio.create_task(workers.run(Budget.start("b"), hold, "other"))
        await asyncio.sleep(0.1)
        with pytest.raises(RpcBusyError, match="its most"):
            await workers.run(Budget.start("c"), hold, "fourth")
        queued.cancel()  # waiting behind the first: they never start
        other.cancel()
        await asyncio.sleep(0.1)
        assert workers.held == 1
        release.set()
        assert await first == "first"
        assert await workers.run(Budget.start("b"), hold, "later") == "later"

    asyncio.run(main())
    assert ran == ["first", "later"] and workers.held == 0


def test_a_run_that_waited_past_its_budget_does_not_start():
    workers = EvmWorkers(workers=1, queue=4, per_client=4)
    release = threading.Event()
    ran: list[str] = []

    def hold(name: str) -> str:
        ran.append(name)
        release.wait(10)
        return name

    async def main() -> None:
        first = asyncio.create_task(workers.run(Budget.start("a"), hold, "first"))
        await asyncio.sleep(0.1)
        late = asyncio.create_task(workers.run(Budget.start("a", seconds=0.2), hold, "late"))
        await asyncio.sleep(0.4)
        release.set()
        await first
        with pytest.raises(RpcLimitError, match="time budget"):
            await late

    asyncio.run(main())
    assert ran == ["first"] and workers.held == 0
