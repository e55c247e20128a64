"""The mempool: signed transactions waiting for a block, best first.

Admission checks everything that does not depend on other pending
transactions: decoding, chain id, limits, minimum fee, signature, and the
sender's nonce against its committed account (a nonce already used is refused,
one more than MAX_NONCE_GAP ahead too). Duplicates (same hash) are refused; a
transaction with the same sender and nonce as a pending one replaces it only
if it pays at least REPLACE_BUMP more.

Priority (seed 001: focus-weighted QoS) is the fee per byte times a boost for
senders whose links carry focus:

    priority = fee / size * (1 + min(KARMA_BOOST_MAX, neurons * karma_share))

where ``karma_share`` is the sender's share of all karma in the last block, so
a neuron with average karma pays about half the fee per byte of an unknown one
for the same place in line, and no one gets more than an 11x boost.

Blocks take transactions in priority order while keeping each sender's nonces
consecutive. When the pool is full, a newcomer evicts the lowest-priority
transaction that is last in its sender's queue (so no queue gets a hole) if it
outbids it; otherwise it is refused with ``mempool_full`` and both priorities
in the message.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

from focusflow.chain.errors import BadNonceError, DuplicateTxError, MempoolFullError
from focusflow.chain.execute import check_stateless
from focusflow.chain.params import ChainParams
from focusflow.chain.tx import Tx, decode_tx

MAX_NONCE_GAP = 64
REPLACE_BUMP = 1.1
KARMA_BOOST_MAX = 10.0

#: Committed nonce of an address.
NonceOf = Callable[[bytes], int]
#: Priority boost of an address (``neurons * karma_share``), 0 for unknown.
BoostOf = Callable[[bytes], float]


@dataclass
class _Entry:
    tx: Tx
    priority: float


class Mempool:
    def __init__(
        self,
        chain_id: str,
        params: ChainParams,
        *,
        max_txs: int = 20_000,
        max_bytes: int = 256 << 20,
        boost: BoostOf | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.params = params
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.boost = boost
        self._by_hash: dict[bytes, _Entry] = {}
        self._queues: dict[bytes, dict[int, _Entry]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def priority(self, tx: Tx) -> float:
        boost = 0.0 if self.boost is None else self.boost(tx.sender_address)
        return tx.fee / len(tx.encoded) * (1.0 + min(KARMA_BOOST_MAX, max(0.0, boost)))

    def add(self, data: bytes | Tx, nonce_of: NonceOf) -> Tx:
        """Admit a transaction or raise the TxError that says why not."""
        tx = data if isinstance(data, Tx) else decode_tx(data, self.params.max_tx_bytes)
        if tx.hash in self._by_hash:
            raise DuplicateTxError(f"transaction {tx.hash.hex()} is already in the mempool")
        check_stateless(tx, self.params, self.chain_id, verified=False)
        sender = tx.sender_address
        committed = nonce_of(sender)
        if tx.nonce < committed:
            raise BadNonceError(f"nonce {tx.nonce} is used; the account is at {committed}")
        if tx.nonce > committed + MAX_NONCE_GAP:
            raise BadNonceError(
                f"nonce {tx.nonce} is more than {MAX_NONCE_GAP} ahead of the account's {committed}"
            )
        entry = _Entry(tx, self.priority(tx))
        queue = self._queues.get(sender, {})
        old = queue.get(tx.nonce)
        if old is not None:
            if tx.fee < old.tx.fee * REPLACE_BUMP:
                raise DuplicateTxError(
                    f"nonce {tx.nonce} is pending with fee {old.tx.fee}; "
                    f"a replacement must pay at least {REPLACE_BUMP}x"
                )
            self._remove(old)
        while len(self) >= self.max_txs or self._bytes + len(tx.encoded) > self.max_bytes:
            victim = self._lowest_tail()
            if victim is None or victim.priority >= entry.priority:
                low = victim.priority if victim is not None else float("inf")
                raise MempoolFullError(
                    f"mempool full ({len(self)} transactions, {self._bytes} bytes): "
                    f"priority {entry.priority:.4g} does not beat the lowest kept {low:.4g}"
                )
            self._remove(victim)
        self._by_hash[tx.hash] = entry
        self._queues.setdefault(sender, {})[tx.nonce] = entry
        self._bytes += len(tx.encoded)
        return tx

    def reap(self, nonce_of: NonceOf, max_txs: int, max_bytes: int) -> list[Tx]:
        """Transactions for the next block: best first, each sender's nonces in order."""
        heads = []
        for sender, queue in self._queues.items():
            nonce = nonce_of(sender)
            entry = queue.get(nonce)
            if entry is not None:
                heads.append((-entry.priority, entry.tx.hash, sender, nonce))
        heapq.heapify(heads)
        out: list[Tx] = []
        size = 0
        while heads and len(out) < max_txs:
            _, _, sender, nonce = heapq.heappop(heads)
            entry = self._queues[sender][nonce]
            n = len(entry.tx.encoded)
            if size + n > max_bytes:
                continue
            out.append(entry.tx)
            size += n
            nxt = self._queues[sender].get(nonce + 1)
            if nxt is not None:
                heapq.heappush(heads, (-nxt.priority, nxt.tx.hash, sender, nonce + 1))
        return out

    def has_ready(self, nonce_of: NonceOf) -> bool:
        """Whether the next block could include anything: some sender's next
        nonce is pending (later nonces behind a gap wait, and do not count)."""
        return any(nonce_of(sender) in queue for sender, queue in self._queues.items())

    def update(self, nonce_of: NonceOf) -> None:
        """Drop what a committed block included or made stale (used nonces)."""
        for sender in list(self._queues):
            committed = nonce_of(sender)
            for nonce in [n for n in self._queues[sender] if n < committed]:
                self._remove(self._queues[sender][nonce])

    def has_nonce(self, sender: bytes, nonce: int) -> bool:
        """Whether a transaction of ``sender`` with ``nonce`` is pending."""
        return nonce in self._queues.get(sender, {})

    def next_nonce(self, sender: bytes, committed: int) -> int:
        """The nonce a new transaction of ``sender`` should take: past the run of
        pending nonces that starts at the account's committed one."""
        queue = self._queues.get(sender)
        nonce = committed
        if queue:
            while nonce in queue:
                nonce += 1
        return nonce

    def discard(self, tx_hash: bytes) -> None:
        """Forget a transaction a block could not include (it would fail again).

        Its sender's later nonces stay: they wait for a replacement of this one.
        """
        entry = self._by_hash.get(tx_hash)
        if entry is not None:
            self._remove(entry)

    def _remove(self, entry: _Entry) -> None:
        tx = entry.tx
        del self._by_hash[tx.hash]
        sender = tx.sender_address
        queue = self._queues[sender]
        del queue[tx.nonce]
        if not queue:
            del self._queues[sender]
        self._bytes -= len(tx.encoded)

    def _lowest_tail(self) -> _Entry | None:
        tails = (queue[max(queue)] for queue in self._queues.values())
        return min(tails, key=lambda e: e.priority, default=None)
