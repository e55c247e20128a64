"""The mempool: signed transactions waiting for a block, best first.

Admission (:meth:`Mempool.add`) runs in two parts. :meth:`Mempool.precheck`
needs nothing but the transaction: decoding, chain id, limits, minimum fee,
the signature, and for an Ethereum transaction what a block would refuse it
for whatever the state (``chain.eth_tx.check_static``); it is the CPU work,
and the node runs it outside any lock, in its admission workers.
:meth:`Mempool.insert` then checks the transaction against the sender's
committed account and its pending transactions, and either changes the pool
or raises, leaving it exactly as it was:

* the hash is not pending already (``duplicate_tx``);
* the nonce is not used and at most MAX_NONCE_GAP ahead of the committed one
  (``bad_nonce``); a transaction with the same sender and nonce as a pending
  one replaces it only if it pays at least REPLACE_BUMP times its fee
  (``duplicate_tx``);
* the sender has fewer than ``max_per_sender`` transactions pending
  (``sender_full``);
* the sender's committed balance covers this fee plus the fees of its other
  pending transactions (``insufficient_funds``): every transaction in the pool
  can pay for its place in a block, so keys with nothing on them cannot claim a
  fee they do not have and push paying transactions out;
* a sender new to the pool finds room among ``max_senders`` senders, or evicts
  the lowest-priority sender that has one transaction pending if it outbids it
  (``mempool_senders_full``);
* the pool finds room within ``max_txs`` and ``max_bytes``, or evicts
  lowest-priority transactions that are last in their sender's queue (so no
  queue gets a hole) while it outbids them (``mempool_full``, both priorities
  in the message). A sender never evicts its own transactions.

Balances are read from the head state; a later block can still spend what a
pending transaction's fee counted on (a send, another node's transaction).
After every block :meth:`Mempool.update` drops what the block made stale and,
for each sender whose pending fees now exceed its balance, its highest nonces
until they fit; a transaction that still cannot pay when a block executes it is
left out of that block and dropped (``discard``).

Priority (focus-weighted quality of service) is the fee per byte times a boost
for senders whose links carry focus:

    priority = fee / size * (1 + min(KARMA_BOOST_MAX, neurons * karma_share))

where ``karma_share`` is the sender's share of all karma in the last block, so
a neuron with average karma pays about half the fee per byte of an unknown one
for the same place in line, and no one gets more than an 11x boost. A
transaction keeps the priority it was admitted with.

Blocks take transactions in priority order while keeping each sender's nonces
consecutive. Eviction candidates come from two min-heaps with lazy deletion
(each sender's last transaction; senders with a single one), so admission
costs O(log n) in the pool's size, plus O(max_per_sender) for the sender's own
queue.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from focusflow.chain.account import Account
from focusflow.chain.errors import (
    BadNonceError,
    DuplicateTxError,
    InsufficientFundsError,
    MempoolFullError,
    SenderFullError,
    SendersFullError,
)
from focusflow.chain.eth_tx import EthTx
from focusflow.chain.execute import check_stateless
from focusflow.chain.params import ChainParams
from focusflow.chain.tx import Tx, decode_tx
from focusflow.core.errors import InvalidParameterError

MAX_NONCE_GAP = 64
REPLACE_BUMP = 1.1
KARMA_BOOST_MAX = 10.0


#: Committed nonce of an address.
NonceOf = Callable[[bytes], int]
#: Committed account (nonce and balance) of an address, at the head.
AccountOf = Callable[[bytes], Account]
#: Priority boost of an address (``neurons * karma_share``), 0 for unknown.
BoostOf = Callable[[bytes], float]


@dataclass(frozen=True)
class MempoolLimits:
    """What one node's mempool holds at most (local policy, not consensus)."""

    #: Transactions in all.
    max_txs: int = 50_000
    #: Encoded bytes in all.
    max_bytes: int = 256 << 20
    #: Transactions of one sender: every nonce of the MAX_NONCE_GAP window.
    max_per_sender: int = MAX_NONCE_GAP + 1
    #: Distinct senders with something pending.
    max_senders: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_txs", "max_bytes", "max_per_sender", "max_senders"):
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"mempool limit {name} must be at least 1")


@dataclass(eq=False)
class _Entry:
    tx: Tx
    priority: float
    live: bool = True


@dataclass(eq=False)
class _Queue:
    """One sender's pending transactions by nonce, and the sum of their fees."""

    entries: dict[int, _Entry] = field(default_factory=dict)
    fees: int = 0
    #: Under the economy: the fees of its Ethereum transactions, paid in CYB
    #: while ``fees`` holds the others', paid in H (``Mempool.native_of``).
    native: int = 0
    tail: int = -1  # highest pending nonce

    def below(self, nonce: int) -> _Entry | None:
        """The pending transaction with the highest nonce under ``nonce``."""
        lower = [n for n in self.entries if n < nonce]
        return self.entries[max(lower)] if lower else None


class _LazyHeap:
    """Min-heap of entries by priority; stale items are skipped when they surface.

    Whether an item is still a candidate is the caller's test (``valid``): an
    entry that stopped being one stays in the heap until it reaches the top, and
    :meth:`compact` rebuilds the heap when such items outnumber the live ones.
    """

    def __init__(self) -> None:
        self._items: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, entry: _Entry) -> None:
        heapq.heappush(self._items, (entry.priority, next(self._seq), entry))

    def pop(self, valid: Callable[[_Entry], bool]) -> _Entry | None:
        """Remove and return the lowest valid entry (None when there is none)."""
        while self._items:
            entry = heapq.heappop(self._items)[2]
            if valid(entry):
                return entry
        return None

    def rebuild(self, entries: list[_Entry]) -> None:
        self._items = [(e.priority, next(self._seq), e) for e in entries]
        heapq.heapify(self._items)


class Mempool:
    def __init__(
        self,
        chain_id: str,
        params: ChainParams,
        *,
        limits: MempoolLimits | None = None,
        boost: BoostOf | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.params = params
        self.limits = limits or MempoolLimits()
        self.boost = boost
        #: The head's base fee per byte under the economy (the node sets it
        #: after each commit); None: the ``fee_per_byte`` parameter.
        self.fee_per_byte: int | None = None
        #: Under the economy, an account's committed CYB balance: what its
        #: Ethereum transactions pay with, while ``account_of``'s balance is
        #: the H every other transaction pays its fee in. None: one token.
        self.native_of: Callable[[bytes], int] | None = None
        self._by_hash: dict[bytes, _Entry] = {}
        self._queues: dict[bytes, _Queue] = {}
        self._bytes = 0
        #: Eviction candidates: each sender's last transaction ...
        self._tails = _LazyHeap()
        #: ... and senders with a single transaction (to free a sender's place).
        self._singles = _LazyHeap()
        #: How many pending links name each particle (binary CID), so a node can
        #: tell at once whether a particle is about to exist (particle texts).
        self._particles: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def n_senders(self) -> int:
        return len(self._queues)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> Tx | None:
        """The pending transaction of this hash, or None."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx

    def oldest(self, limit: int) -> list[Tx]:
        """At most ``limit`` pending transactions, oldest admitted first (what a
        node hands a peer that just connected, so that transactions admitted
        while it had no peer still reach the network)."""
        return [entry.tx for entry in itertools.islice(self._by_hash.values(), limit)]

    def names_particle(self, cid: bytes) -> bool:
        """Whether a pending ``link`` message names the particle ``cid`` (from or to)."""
        return cid in self._particles

    def priority(self, tx: Tx) -> float:
        boost = 0.0 if self.boost is None else self.boost(tx.sender_address)
        return tx.fee / len(tx.encoded) * (1.0 + min(KARMA_BOOST_MAX, max(0.0, boost)))

    def pending_fees(self, sender: bytes) -> int:
        """Sum of the fees of ``sender``'s pending transactions."""
        queue = self._queues.get(sender)
        return 0 if queue is None else queue.fees

    # --- admission -----------------------------------------------------------
    def add(self, data: bytes | Tx, account_of: AccountOf) -> Tx:
        """Admit a transaction or raise the TxError that says why not: both parts."""
        return self.insert(self.precheck(data), account_of)

    def precheck(self, data: bytes | Tx) -> Tx:
        """Everything that needs only the transaction (decode, limits, fee floor,
        signature); touches no pool state, so it may run on any thread."""
        tx = data if isinstance(data, Tx) else decode_tx(data, self.params.max_tx_bytes)
        check_stateless(tx, self.params, self.chain_id, False, self.fee_per_byte)
        if isinstance(tx, EthTx):  # what a block would refuse it for whatever the state
            tx.check_static(self.params)
        return tx

    def insert(self, tx: Tx, account_of: AccountOf) -> Tx:
        """Admit a prechecked transaction against the sender's account and the pool
        (see the module docstring); on a refusal nothing has changed."""
        if tx.hash in self._by_hash:
            raise DuplicateTxError(f"transaction {tx.hash.hex()} is already in the mempool")
        sender = tx.sender_address
        account = account_of(sender)
        self._check_nonce(tx, account.nonce)
        queue = self._queues.get(sender)
        old = queue.entries.get(tx.nonce) if queue is not None else None
        self._check_replacement(tx, old)
        self._check_sender(tx, queue, old, account)
        entry = _Entry(tx, self.priority(tx))
        victims = self._plan_room(entry, queue is None, old)
        for victim in victims:
            self._remove(victim)
        if old is not None:
            self._remove(old)
        self._insert(entry)
        return tx

    @staticmethod
    def _check_nonce(tx: Tx, committed: int) -> None:
        if tx.nonce < committed:
            raise BadNonceError(f"nonce {tx.nonce} is used; the account is at {committed}")
        if tx.nonce > committed + MAX_NONCE_GAP:
            raise BadNonceError(
                f"nonce {tx.nonce} is more than {MAX_NONCE_GAP} ahead of the account's {committed}"
            )

    @staticmethod
    def _check_replacement(tx: Tx, old: _Entry | None) -> None:
        if old is not None and tx.fee < old.tx.fee * REPLACE_BUMP:
            raise DuplicateTxError(
                f"nonce {tx.nonce} is pending with fee {old.tx.fee}; "
                f"a replacement must pay at least {REPLACE_BUMP}x"
            )

    def _check_sender(
        self, tx: Tx, queue: _Queue | None, old: _Entry | None, account: Account
    ) -> None:
        """The per-sender cap and the balance that must cover every pending fee."""
        pending = 0 if queue is None else len(queue.entries)
        if old is None and pending >= self.limits.max_per_sender:
            raise SenderFullError(
                f"the sender has {pending} transactions pending, the most one sender may; "
                "wait for a block"
            )
        native_of = self.native_of
        native = native_of is not None and tx.self_charging
        balance = (
            native_of(tx.sender_address) if native_of is not None and native else account.balance
        )
        pending = 0 if queue is None else (queue.native if native else queue.fees)
        others = pending - (0 if old is None or self._in_native(old.tx) != native else old.tx.fee)
        if balance < tx.upfront + others:
            raise InsufficientFundsError(
                f"balance {balance}{' cyb' if native else ''} does not cover {tx.upfront} (fee"
                f"{' and value' if tx.upfront != tx.fee else ''}) plus the "
                f"{others} of the sender's pending transactions"
            )

    def _plan_room(self, entry: _Entry, new_sender: bool, old: _Entry | None) -> list[_Entry]:
        """The transactions to evict so that ``entry`` fits (none when it fits);
        raises, with the heaps holding every candidate they held, when it does not
        outbid them."""
        planned: dict[bytes, int | None] = {}  # sender -> its tail once the victims go
        victims: list[_Entry] = []
        own: list[_Entry] = []  # the newcomer's sender's tail: never a victim
        candidate: _Entry | None = None
        sender = entry.tx.sender_address
        try:
            if new_sender and len(self._queues) >= self.limits.max_senders:
                candidate = self._singles.pop(self._is_single)
                victim = self._outbids(entry, candidate, SendersFullError, "senders")
                victims.append(victim)
                planned[victim.tx.sender_address] = None
                candidate = None
            count = len(self) + 1 - (old is not None) - len(victims)
            size = self._bytes + len(entry.tx.encoded) - (len(old.tx.encoded) if old else 0)
            size -= sum(len(v.tx.encoded) for v in victims)
            while count > self.limits.max_txs or size > self.limits.max_bytes:
                candidate = self._tails.pop(lambda e: self._is_tail(e, planned))
                if candidate is not None and candidate.tx.sender_address == sender:
                    own.append(candidate)
                    continue
                victim = self._outbids(entry, candidate, MempoolFullError, "transactions")
                victims.append(victim)
                owner = victim.tx.sender_address
                below = self._queues[owner].below(victim.tx.nonce)
                planned[owner] = None if below is None else below.tx.nonce
                if below is not None:
                    self._tails.push(below)
                count -= 1
                size -= len(victim.tx.encoded)
                candidate = None
        except MempoolFullError:
            # Everything popped goes back; pushes of entries that are no
            # candidate (a victim's predecessor) are stale and skipped later.
            for e in [*victims, *([candidate] if candidate is not None else [])]:
                self._tails.push(e)
                self._singles.push(e)
            raise
        finally:
            for e in own:
                self._tails.push(e)
        return victims

    def _outbids(
        self, entry: _Entry, victim: _Entry | None, error: type[MempoolFullError], what: str
    ) -> _Entry:
        """``victim``, which ``entry`` may evict; ``error`` unless it may (or there is none)."""
        if victim is None or victim.priority >= entry.priority:
            low = victim.priority if victim is not None else float("inf")
            raise error(
                f"mempool full ({len(self)} transactions, {self._bytes} bytes, "
                f"{len(self._queues)} senders; on {what}): priority {entry.priority:.4g} "
                f"does not beat the lowest kept {low:.4g}"
            )
        return victim

    def _is_tail(self, entry: _Entry, planned: dict[bytes, int | None] | None = None) -> bool:
        if not entry.live:
            return False
        sender = entry.tx.sender_address
        if planned is not None and sender in planned:
            return planned[sender] == entry.tx.nonce
        return self._queues[sender].tail == entry.tx.nonce

    def _is_single(self, entry: _Entry) -> bool:
        return entry.live and len(self._queues[entry.tx.sender_address].entries) == 1

    # --- blocks --------------------------------------------------------------
    def reap(self, nonce_of: NonceOf, max_txs: int, max_bytes: int) -> list[Tx]:
        """Transactions for the next block: best first, each sender's nonces in order."""
        heads = []
        for sender, queue in self._queues.items():
            nonce = nonce_of(sender)
            entry = queue.entries.get(nonce)
            if entry is not None:
                heads.append((-entry.priority, entry.tx.hash, sender, nonce))
        heapq.heapify(heads)
        out: list[Tx] = []
        size = 0
        while heads and len(out) < max_txs:
            _, _, sender, nonce = heapq.heappop(heads)
            entries = self._queues[sender].entries
            entry = entries[nonce]
            n = len(entry.tx.encoded)
            if size + n > max_bytes:
                continue
            out.append(entry.tx)
            size += n
            nxt = entries.get(nonce + 1)
            if nxt is not None:
                heapq.heappush(heads, (-nxt.priority, nxt.tx.hash, sender, nonce + 1))
        return out

    def has_ready(self, nonce_of: NonceOf) -> bool:
        """Whether the next block could include anything: some sender's next
        nonce is pending (later nonces behind a gap wait, and do not count)."""
        return any(nonce_of(sender) in queue.entries for sender, queue in self._queues.items())

    def update(self, account_of: AccountOf) -> None:
        """After a committed block: drop the used nonces, and each sender's highest
        nonces while its pending fees exceed its balance (they could not all pay)."""
        for sender in list(self._queues):
            account = account_of(sender)
            queue = self._queues[sender]
            for nonce in [n for n in queue.entries if n < account.nonce]:
                self._remove(queue.entries[nonce])
            native = 0 if self.native_of is None or not queue.native else self.native_of(sender)
            while sender in self._queues and (
                queue.fees > account.balance or queue.native > native
            ):
                self._remove(queue.entries[queue.tail])

    def has_nonce(self, sender: bytes, nonce: int) -> bool:
        """Whether a transaction of ``sender`` with ``nonce`` is pending."""
        queue = self._queues.get(sender)
        return queue is not None and nonce in queue.entries

    def next_nonce(self, sender: bytes, committed: int) -> int:
        """The nonce a new transaction of ``sender`` should take: past the run of
        pending nonces that starts at the account's committed one."""
        nonce = committed
        while self.has_nonce(sender, nonce):
            nonce += 1
        return nonce

    def discard(self, tx_hash: bytes) -> None:
        """Forget a transaction a block could not include (it would fail again).

        Its sender's later nonces stay: they wait for a replacement of this one.
        """
        entry = self._by_hash.get(tx_hash)
        if entry is not None:
            self._remove(entry)

    # --- bookkeeping ---------------------------------------------------------
    def _in_native(self, tx: Tx) -> bool:
        """Whether ``tx``'s fee is counted against CYB apart from the H fees."""
        return self.native_of is not None and tx.self_charging

    def _insert(self, entry: _Entry) -> None:
        tx = entry.tx
        sender = tx.sender_address
        queue = self._queues.setdefault(sender, _Queue())
        queue.entries[tx.nonce] = entry
        if self._in_native(tx):
            queue.native += tx.fee
        else:
            queue.fees += tx.fee
        self._by_hash[tx.hash] = entry
        self._bytes += len(tx.encoded)
        if tx.nonce > queue.tail:
            queue.tail = tx.nonce
            self._tails.push(entry)
        if len(queue.entries) == 1:
            self._singles.push(entry)
        for cid in _link_particles(tx):
            self._particles[cid] = self._particles.get(cid, 0) + 1
        self._compact()

    def _remove(self, entry: _Entry) -> None:
        tx = entry.tx
        entry.live = False
        del self._by_hash[tx.hash]
        sender = tx.sender_address
        queue = self._queues[sender]
        del queue.entries[tx.nonce]
        if self._in_native(tx):
            queue.native -= tx.fee
        else:
            queue.fees -= tx.fee
        self._bytes -= len(tx.encoded)
        for cid in _link_particles(tx):
            left = self._particles.get(cid, 0) - 1
            if left > 0:
                self._particles[cid] = left
            else:
                self._particles.pop(cid, None)
        if not queue.entries:
            del self._queues[sender]
            return
        if tx.nonce == queue.tail:
            queue.tail = max(queue.entries)
            self._tails.push(queue.entries[queue.tail])
        if len(queue.entries) == 1:
            self._singles.push(next(iter(queue.entries.values())))
        self._compact()

    def _compact(self) -> None:
        """Rebuild a heap whose stale items outnumber the live ones (amortised O(1))."""
        bound = 2 * len(self) + 64
        if len(self._tails) > bound:
            self._tails.rebuild([q.entries[q.tail] for q in self._queues.values()])
        if len(self._singles) > bound:
            singles = [q for q in self._queues.values() if len(q.entries) == 1]
            self._singles.rebuild([next(iter(q.entries.values())) for q in singles])


def _link_particles(tx: Tx) -> list[bytes]:
    """The particles (from and to) of a transaction's ``link`` messages, one per mention.

    Admission has not run the graph module's checks, so an entry of another
    shape is passed over here; execution refuses it later.
    """
    out: list[bytes] = []
    for msg in tx.msgs:
        if msg.type != "link" or not isinstance(msg.body, dict):
            continue
        links = msg.body.get("links")
        if not isinstance(links, list):
            continue
        for entry in links:
            if isinstance(entry, list) and len(entry) >= 2:
                out.extend(cid for cid in entry[:2] if isinstance(cid, bytes))
    return out
