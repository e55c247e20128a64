"""What one Ethereum JSON-RPC request may cost the node, and where its EVM runs.

A request, or a batch as a whole, gets one :class:`Budget`: wall time
(``RPC_TIME_BUDGET_S``), EVM gas over all its runs (``RPC_GAS_BUDGET``) and
answer bytes (``MAX_RESPONSE_BYTES``). The clock is read on the RPC path only,
between a batch's items, between a log query's blocks and before each gas
charge of an ``eth_call`` run (``vm.evm.Allowance``); blocks never see it. Work
past the budget, or for a client that has gone, stops and answers
``rpc_limit``.

EVM runs (``eth_call``, ``eth_estimateGas``) hold the interpreter lock while
they interpret: every thread that runs one takes the same share of the one
Python interpreter as block production. So they run in :class:`EvmWorkers`, a
pool of ``EVM_WORKERS`` threads apart from the server's other worker threads,
which takes at most ``EVM_QUEUE`` runs waiting or running, ``EVM_PER_CLIENT``
of them from one client address; a run over either cap is refused at once
with ``rpc_busy`` instead of waiting behind the others.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from focusflow.core.errors import FocusflowError

T = TypeVar("T")

#: Most gas one ``eth_call`` or ``eth_estimateGas`` run may use (geth's
#: ``--rpc.gascap``): py-evm runs a loop of the cheapest opcodes at about
#: 4·10^6 gas a second on one core, so one run takes 2.5 s at most there.
RPC_GAS_CAP = 10_000_000
#: Gas all the EVM runs of one request or batch may use together: two runs
#: at the cap and a half (an estimate's bisection, a batch's calls).
RPC_GAS_BUDGET = 25_000_000
#: Wall time of one request or batch, waiting for an EVM worker included.
RPC_TIME_BUDGET_S = 5.0
#: Most runs one ``eth_estimateGas`` makes (the cap, a guess, the bisection).
ESTIMATE_MAX_RUNS = 24
#: Largest answer, a batch's in all (geth's batch cap is 25 MB): a block's
#: transactions at the EVM gas limit fit, with their calldata as hex.
MAX_RESPONSE_BYTES = 24 << 20
#: Threads that run EVM calls; each competes with block production for the
#: interpreter while it runs.
EVM_WORKERS = 2
#: EVM runs waiting or running at once, over all clients, and of one client.
EVM_QUEUE = 6
EVM_PER_CLIENT = 2
#: What an ``rpc_busy`` answer tells the client to wait, in seconds.
BUSY_RETRY_AFTER_S = 1


class RpcBusyError(FocusflowError):
    """The EVM workers hold their most runs (in all, or of this client): nothing
    ran; ask again after ``retry_after`` seconds."""

    code = "rpc_busy"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.retry_after = BUSY_RETRY_AFTER_S


class RpcLimitError(FocusflowError):
    """A request or batch ran past its time, gas or answer-size budget, or its
    client went away: the work was stopped."""

    code = "rpc_limit"


@dataclass
class Budget:
    """What one request or batch may still spend (module docstring)."""

    client: str
    deadline: float
    gas: int = RPC_GAS_BUDGET
    #: Answer bytes left.
    bytes: int = MAX_RESPONSE_BYTES
    #: Set when the client disconnected: nothing more is worth doing.
    gone: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @classmethod
    def start(cls, client: str, seconds: float = RPC_TIME_BUDGET_S) -> Budget:
        return cls(client=client, deadline=time.monotonic() + seconds)

    def stopped(self) -> bool:
        """Whether the work must stop (the client gone, or the time up)."""
        return self.gone or self.clock() > self.deadline

    def check(self) -> None:
        """RpcLimitError when the work must stop, saying why."""
        if self.gone:
            raise RpcLimitError("the client is gone")
        if self.clock() > self.deadline:
            raise RpcLimitError(f"the request ran past its time budget of {RPC_TIME_BUDGET_S:g} s")


class EvmWorkers:
    """The bounded pool EVM runs go through (module docstring)."""

    def __init__(
        self, workers: int = EVM_WORKERS, queue: int = EVM_QUEUE, per_client: int = EVM_PER_CLIENT
    ) -> None:
        self.queue = queue
        self.per_client = per_client
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="evm-rpc")
        self._lock = threading.Lock()
        self._by_client: Counter[str] = Counter()
        self._held = 0

    @property
    def held(self) -> int:
        """Runs waiting or running now."""
        return self._held

    async def run(self, budget: Budget, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker; RpcBusyError at once when a cap is reached.

        A run is counted until it ends, not until its caller stops waiting, and
        one that waited past its budget does not start.
        """
        client = budget.client
        self._take(client)
        try:
            future = self._pool.submit(self._job, budget, fn, args)
        except BaseException:
            self._give(client)
            raise
        # A run cancelled before it started (its caller cancelled) never reaches
        # ``_job``'s own give-back; one that started cannot be cancelled.
        future.add_done_callback(lambda done: self._give(client) if done.cancelled() else None)
        return await asyncio.wrap_future(future)

    def _take(self, client: str) -> None:
        with self._lock:
            if self._held >= self.queue:
                raise RpcBusyError(
                    f"the node runs or queues {self._held} EVM calls, its most "
                    f"({self.queue}); retry in {BUSY_RETRY_AFTER_S} s"
                )
            if self._by_client[client] >= self.per_client:
                raise RpcBusyError(
                    f"this client has {self._by_client[client]} EVM calls running or "
                    f"queued, the most one client may; retry in {BUSY_RETRY_AFTER_S} s"
                )
            self._held += 1
            self._by_client[client] += 1

    def _give(self, client: str) -> None:
        with self._lock:
            self._held -= 1
            self._by_client[client] -= 1
            if not self._by_client[client]:
                del self._by_client[client]

    def _job(self, budget: Budget, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            budget.check()
            return fn(*args)
        finally:
            self._give(budget.client)


#: The node's EVM workers (one pool per process: it bounds the process's share).
WORKERS = EvmWorkers()
