"""What every node holds besides consensus: the chain, its mempool, the published focus.

:class:`~focusflow.node.validator.ValidatorRuntime` (the devnet's single
validator and every validator of a network) builds on this. The API's event
loop admits transactions into the mempool and answers reads while consensus
steps run in worker threads; they share three things, each guarded for that
sharing:

* the mempool, behind a lock held only for the short part of admission (the
  insert: the sender's account and pending transactions), reaping and pruning;
* the store, which LMDB already gives consistent snapshots of (one read
  transaction per request);
* the in-memory focus, which readers see only through the immutable
  :class:`~focusflow.chain.focus_view.FocusView` published after each block.

Admission's CPU work (decoding, the Ed25519 signature, stateless checks) runs
in a small pool of admission workers, never on the event loop, which also runs
the consensus task and its timers: :meth:`NodeRuntime.admit_many` hands a batch
to the pool and awaits it. The pool's queue is bounded by transactions
(ADMISSION_QUEUE) and bytes; past it a submission is refused at once with
``admission_busy`` (HTTP 503 with ``Retry-After``), before any of it is read
further. A worker takes the mempool lock only for the insert.

After each block :meth:`NodeRuntime.after_commit` calls the listeners
(WebSocket hub, metrics) on the thread that committed it; they hand work to
the event loop themselves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from focusflow.chain.chain import Chain
from focusflow.chain.devmode import DevMode
from focusflow.chain.errors import AdmissionBusyError
from focusflow.chain.fees import current_fee_per_byte, with_headroom
from focusflow.chain.focus_view import FocusView
from focusflow.chain.mempool import Mempool, MempoolLimits
from focusflow.chain.pending import BlockResult
from focusflow.chain.tx import Msg, Tx, make_tx_at_min_fee
from focusflow.core.errors import FocusflowError
from focusflow.core.keys import KeyPair
from focusflow.modules.accounts import Account, get_account
from focusflow.modules.bank import gas_balance
from focusflow.node.da_store import DAStore

if TYPE_CHECKING:
    from focusflow.consensus.validators import ValidatorSet
    from focusflow.node.bootstrap import Bootstrap
    from focusflow.node.faults import FaultPlan

log = logging.getLogger("focusflow.node")

#: Recent per-block history kept in memory for the API (blocks list, syntropy).
HISTORY = 1000
#: Blocks between full garbage collections (see BlockCollector).
SWEEP_EVERY_BLOCKS = 600
#: Admission worker threads. The signature check releases the GIL; decoding
#: does not, so more threads would mostly take turns with the event loop.
ADMISSION_WORKERS = 2
#: Most transactions, and their bytes, waiting for or in the admission workers
#: (four full batches; about 0.6 s of work for two workers); past either,
#: submissions get ``admission_busy``.
ADMISSION_QUEUE = 4_000
ADMISSION_QUEUE_BYTES = 16 << 20
#: Seconds a client refused with ``admission_busy`` is told to wait.
ADMISSION_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class BlockEvent:
    """One committed block, as listeners receive it."""

    result: BlockResult
    view: FocusView
    previous: FocusView
    interval: float


class BlockCollector:
    """Keeps Python's cyclic garbage collector from stalling API requests.

    A full collection walks every tracked object; on a node holding a large
    graph it stalled requests for a tenth of a second or more at random moments
    (bench/RESULTS.md, api.py: the read p99 with and without this).
    After each block everything alive is frozen out of the collector's passes,
    so collections only look at objects made since the last block. Cyclic
    garbage among frozen objects would never be freed, so every
    ``sweep_every`` blocks the freeze is lifted and one full collection runs:
    one stall in that many blocks instead of a leak.
    """

    def __init__(self, sweep_every: int = SWEEP_EVERY_BLOCKS) -> None:
        self.sweep_every = sweep_every
        self.blocks = 0

    def after_block(self) -> None:
        self.blocks += 1
        if self.blocks % self.sweep_every == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()


class NodeRuntime:
    """The chain, its mempool and focus view, and the block listeners; see the module
    docstring. Consensus (ValidatorRuntime) makes the blocks."""

    #: A full node (ValidatorRuntime with ``follow_only``) never signs.
    follow_only: bool = False
    #: An anvil-like devnet's mining and clock (``chain.devmode``); None elsewhere.
    dev: DevMode | None = None

    def __init__(
        self,
        chain: Chain,
        *,
        faucet_key: KeyPair | None = None,
        mempool_limits: MempoolLimits | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.chain = chain
        #: Fault injection for tests (``node.faults``); None on an honest node.
        self.faults = faults
        #: Squares and share proofs for /v1/da (docs/da.md, *Chain integration*).
        self.da = DAStore(chain, faults=faults)
        self.faucet_key = faucet_key
        #: The other chains' APIs by chain id, in a network of rollups.
        self.interchain_apis: dict[str, list[str]] = {}
        self.mempool = Mempool(
            chain.chain_id, chain.params, limits=mempool_limits, boost=self._boost
        )
        if chain.params.economics:
            self.mempool.fee_per_byte = self.fee_per_byte()
            self.mempool.native_of = self.cyb_of
        self._pool_lock = threading.Lock()
        self._admission = ThreadPoolExecutor(ADMISSION_WORKERS, thread_name_prefix="admission")
        #: Transactions (and their bytes) handed to the admission workers and
        #: not done yet (changed on the event loop only).
        self.admission_waiting = 0
        self.admission_waiting_bytes = 0
        self.view: FocusView = chain.focus.view(chain.height)
        self.syntropy: deque[dict[str, float]] = deque(maxlen=HISTORY)
        self.syntropy.append(self._syntropy_point(self.view))
        self.listeners: list[Callable[[BlockEvent], None]] = []
        #: Called with each committed block before its view is published (and
        #: its transactions reported committed): what a block carries for the
        #: node's own stores, such as particle texts, is kept before anyone reads it.
        self.keepers: list[Callable[[BlockResult], None]] = []
        self.last_block_seconds = 0.0
        self.started_at = time.time()
        self._last_block_at = time.monotonic()
        self._collector = BlockCollector()

    @property
    def bootstrap(self) -> Bootstrap | None:
        """The bootstrap phases' duty: none here (a network validator runs one)."""
        return None

    @property
    def halted(self) -> str | None:
        """Why the node stopped following its chain: never here (ValidatorRuntime.halt)."""
        return None

    @property
    def consensus_state(self) -> tuple[int, int, str, ValidatorSet] | None:
        """None: this runtime runs no consensus engine (ValidatorRuntime does)."""
        return None

    def dag_status(self) -> dict[str, int] | None:
        """The DAG mempool's counters: none here (a DAG chain's validator has them)."""
        return None

    # --- transactions --------------------------------------------------------
    def account_of(self, address: bytes) -> Account:
        """The committed account at the head (what admission checks nonce and fees on);
        under the economy its balance is the ``h`` that pays fees."""
        with self.chain.reader() as r:
            account = get_account(r, address)
            if self.chain.params.economics:
                account.balance = gas_balance(r, self.chain.params, address)
            return account

    def cyb_of(self, address: bytes) -> int:
        """The committed CYB balance: what an Ethereum transaction pays its gas with."""
        with self.chain.reader() as r:
            return get_account(r, address).balance

    def fee_per_byte(self) -> int:
        """The base fee per byte the next block charges (``chain.fees``)."""
        with self.chain.reader() as r:
            return current_fee_per_byte(r, self.chain.params)

    def nonce_of(self, address: bytes) -> int:
        return self.account_of(address).nonce

    def submit(self, raw: bytes | Tx) -> Tx:
        """Admit a signed transaction; raises the TxError (or DecodeError) that says why not.

        Blocking: call it from a worker thread (``admit_many`` does). The
        signature is checked before the mempool lock is taken.
        """
        tx = self.mempool.precheck(raw)
        with self._pool_lock:
            return self.mempool.insert(tx, self.account_of)

    async def admit(self, raw: bytes, *, relay: bool = True) -> Tx:
        """:meth:`admit_many` for one transaction: raises the error that refused it."""
        (result,) = await self.admit_many([raw], relay=relay)
        if isinstance(result, FocusflowError):
            raise result
        return result

    async def admit_many(
        self, raws: Sequence[bytes], *, relay: bool = True
    ) -> list[Tx | FocusflowError]:
        """Admit transactions in the admission workers, in order, off the event loop.

        Each result is the admitted transaction or the error that refused it.
        Raises AdmissionBusyError, having done nothing, when the workers' queue
        cannot take ``len(raws)`` more. ``relay=False`` admits here only, where a
        subclass's :meth:`submit` passes transactions on (one received from a peer).
        """
        n, size = len(raws), sum(len(raw) for raw in raws)
        if (
            self.admission_waiting + n > ADMISSION_QUEUE
            or self.admission_waiting_bytes + size > ADMISSION_QUEUE_BYTES
        ):
            raise AdmissionBusyError(
                f"{self.admission_waiting} transactions ({self.admission_waiting_bytes} bytes) "
                f"are waiting for admission (at most {ADMISSION_QUEUE}, "
                f"{ADMISSION_QUEUE_BYTES} bytes); retry in {ADMISSION_RETRY_AFTER_S} s",
                retry_after=ADMISSION_RETRY_AFTER_S,
            )
        loop = asyncio.get_running_loop()
        self.admission_waiting += n
        self.admission_waiting_bytes += size
        submit = self.submit if relay else self._submit_here
        work = self._admission.submit(_each, submit, list(raws))

        def release(_: concurrent.futures.Future[list[Tx | FocusflowError]]) -> None:
            # Counted until the work is done, not until the client goes away.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._release_admission, n, size)

        work.add_done_callback(release)
        return await asyncio.wrap_future(work)

    def _release_admission(self, n: int, size: int) -> None:
        self.admission_waiting -= n
        self.admission_waiting_bytes -= size

    def _submit_here(self, raw: bytes | Tx) -> Tx:
        return NodeRuntime.submit(self, raw)

    def is_pending(self, tx_hash: bytes) -> bool:
        return tx_hash in self.mempool

    def next_nonce(self, address: bytes) -> int:
        """The nonce a new transaction of ``address`` takes after its pending ones."""
        with self._pool_lock:
            nonce = self.nonce_of(address)
            while self.mempool.has_nonce(address, nonce):
                nonce += 1
            return nonce

    def faucet(self, address: bytes, amount: int) -> Tx:
        """Send ``amount`` from the node's funded dev key (devnets only); under the
        economy as much H too, so the account can pay fees."""
        if self.faucet_key is None:
            raise RuntimeError("this node has no faucet key")
        msgs = [Msg("send", {"to": address, "amount": amount})]
        if self.chain.params.economics:  # and as much H, to pay fees with
            msgs.append(Msg("send", {"to": address, "amount": amount, "denom": "h"}))
        return self.submit_as(self.faucet_key, msgs)

    def submit_as(self, key: KeyPair, msgs: list[Msg]) -> Tx:
        """Sign ``msgs`` with one of the node's own keys (the faucet's, a duty's
        account) at the minimum fee and the nonce after its pending ones, and
        submit them."""
        nonce = self.next_nonce(key.address_raw)
        chain = self.chain
        per_byte = with_headroom(self.fee_per_byte(), chain.params)
        return self.submit(
            make_tx_at_min_fee(key, chain.chain_id, nonce, msgs, chain.params, 0, per_byte)
        )

    # --- the mempool, for the next block ---------------------------------------
    def reap(self) -> list[Tx]:
        """The transactions the next block may carry, best first, within its limits."""
        params = self.chain.params
        with self._pool_lock:
            return self.mempool.reap(self.nonce_of, params.max_block_txs, params.max_block_bytes)

    def discard(self, txs: Iterable[Tx]) -> None:
        """Drop transactions no block can include (a proposal left them out)."""
        with self._pool_lock:
            for tx in txs:
                self.mempool.discard(tx.hash)

    def has_ready(self) -> bool:
        """Whether the next block could include a pending transaction (one stuck
        behind a nonce gap does not count)."""
        with self._pool_lock:
            return self.mempool.has_ready(self.nonce_of)

    def oldest(self, limit: int) -> list[Tx]:
        """At most ``limit`` pending transactions, oldest admitted first."""
        with self._pool_lock:
            return self.mempool.oldest(limit)

    def _boost(self, address: bytes) -> float:
        return self.view.boost(address)

    # --- blocks --------------------------------------------------------------
    def after_commit(self, result: BlockResult) -> BlockEvent:
        """Everything that follows a committed block: mempool, focus view, listeners."""
        with self._pool_lock:
            for rejected in result.rejected:
                self.mempool.discard(rejected.tx.hash)
            if self.chain.params.economics:
                self.mempool.fee_per_byte = self.fee_per_byte()
            self.mempool.update(self.account_of)
        for keep in list(self.keepers):
            try:
                keep(result)
            except Exception:
                log.exception("block keeper failed")
        previous = self.view
        self.view = self.chain.focus.view(self.chain.height, previous)
        if self.view is not previous and self.view.q is not previous.q:
            self.syntropy.append(self._syntropy_point(self.view))
        now = time.monotonic()
        event = BlockEvent(result, self.view, previous, now - self._last_block_at)
        self._last_block_at = now
        self.last_block_seconds = result.timings["total"]
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("block listener failed")
        self._collector.after_block()
        return event

    def log_block(self, event: BlockEvent, **fields: float) -> None:
        """One log line per committed block (INFO with transactions, DEBUG when empty);
        ``fields`` go in it too (``ms``: the block's time, rounded)."""
        block = event.result.block
        timings = event.result.timings
        log.log(
            logging.INFO if block.txs else logging.DEBUG,
            "block committed",
            extra={
                "fields": {
                    "height": block.height,
                    **fields,
                    "txs": len(block.txs),
                    "rejected": len(event.result.rejected),
                    "ms": round(fields.pop("ms", timings["total"] * 1000), 1),
                    "focus_ms": round(timings["focus"] * 1000, 1),
                    "particles": event.view.n_particles,
                    "links": event.view.n_links,
                    "mempool": len(self.mempool),
                }
            },
        )

    @staticmethod
    def _syntropy_point(view: FocusView) -> dict[str, float]:
        """``{height, syntropy, entropy, particles}`` of a published view (/v1/focus/syntropy)."""
        return {
            "height": view.height,
            "syntropy": view.syntropy,
            "entropy": view.entropy,
            "particles": view.n_particles,
        }


def _each(submit: Callable[[bytes], Tx], raws: list[bytes]) -> list[Tx | FocusflowError]:
    """``submit`` over ``raws``: each admitted transaction, or the error that refused it."""
    results: list[Tx | FocusflowError] = []
    for raw in raws:
        try:
            results.append(submit(raw))
        except FocusflowError as exc:
            results.append(exc)
    return results
