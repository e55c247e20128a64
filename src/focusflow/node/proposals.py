"""Proposal values: the one this node proposes, and its judgement of others'.

The state machine (consensus/tendermint.py) asks its host two things about
values, each in a worker thread while the consensus task waits:
``get_value`` (this validator proposes: :meth:`Chain.propose` over the
mempool) and ``is_valid`` (re-execute a proposal, focus included, and compare
every root: :meth:`Chain.validate`), then the checks extensions added (data
availability sampling). :class:`Proposals` answers both, and keeps what they
cost: the executed state of up to MAX_PENDING validated proposals, so the
decided one commits without executing again, and the last DECODED_VALUES
values decoded, since the machine asks a value's id when the proposal arrives
and its validity right after.

A value is the block and the parent's certificate (Brotli CBOR,
``Pending.proposal_value``); its id is the block's hash, which the commit
certificate then names. On a chain whose mempool is the DAG the value names
certified batches instead of carrying the transactions (dag_values.py); the
block is rebuilt from the batches before it is judged, and its id is the same
block hash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

from focusflow.chain.block import Block, BlockRecord
from focusflow.chain.da_commit import block_square, recent_squares
from focusflow.chain.errors import BlockError
from focusflow.chain.pending import Pending
from focusflow.consensus import Proposal
from focusflow.consensus.dag_mempool import block_transactions
from focusflow.consensus.errors import InvalidBatchCertificateError
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256
from focusflow.core.keys import address_bytes
from focusflow.node.dag_host import DagHost
from focusflow.node.dag_values import DagValue, decode_dag_value, skipped_indexes
from focusflow.node.extensions import ProposalCheck
from focusflow.node.runtime import NodeRuntime

log = logging.getLogger("focusflow.node")

#: Validated proposals kept (their executed state, to commit without
#: re-executing); a byzantine proposer may sign several per round.
MAX_PENDING = 4
#: Proposal values kept decoded: decoding a block of 10^4 links (canonical
#: CBOR, checked) costs milliseconds each time.
DECODED_VALUES = 4


def value_id_of(value: bytes, decoded: dict[bytes, BlockRecord] | None = None) -> bytes:
    """A proposal's value id is the hash of the block it carries (what the
    certificate then names); undecodable values get an id no proposal claims.
    ``decoded``: a cache of decoded values to read and fill (see ``decode_value``)."""
    try:
        return decode_value(value, decoded).block.hash
    except DecodeError:
        return sha256(b"undecodable" + value)


def decode_value(value: bytes, decoded: dict[bytes, BlockRecord] | None = None) -> BlockRecord:
    """``BlockRecord.decode(value)``, through ``decoded`` (the last DECODED_VALUES values)."""
    if decoded is None:
        return BlockRecord.decode(value)
    record = decoded.get(value)
    if record is None:
        record = BlockRecord.decode(value)
        remember(decoded, value, record)
    return record


def remember(decoded: dict[bytes, BlockRecord], value: bytes, record: BlockRecord) -> None:
    """Keep ``value``'s record in ``decoded``, the oldest dropped past DECODED_VALUES."""
    if len(decoded) >= DECODED_VALUES:
        decoded.pop(next(iter(decoded)))
    decoded[value] = record


class Proposals:
    """What this node proposes and how it judges a proposal; see the module docstring."""

    def __init__(
        self, *, node: NodeRuntime, locked: Callable[[], Collection[bytes | None]]
    ) -> None:
        """``locked``: the value ids the state machine is locked on or holds as
        valid, whose executed state is never dropped."""
        self.node = node
        self.chain = node.chain
        self.locked = locked
        #: Checks a proposal must pass, after it re-executed, before this node
        #: prevotes for it (``ExtensionHost.add_proposal_check``). They run in a
        #: worker thread; one that needs the network runs its requests on the
        #: loop (``run_soon``).
        self.checks: list[ProposalCheck] = []
        self._pending: OrderedDict[bytes, Pending] = OrderedDict()
        self._decoded: dict[bytes, BlockRecord] = {}
        #: The gossip check and the state machine decode values in different
        #: worker threads; the cache is shared, so its updates are serialised.
        self._decoded_lock = threading.Lock()
        #: The DAG mempool's host on a chain whose proposals name batches
        #: (set by the validator that runs one), else None.
        self.dag: DagHost | None = None

    # --- values -------------------------------------------------------------------
    def value_id(self, value: bytes) -> bytes:
        if self.dag is not None:
            try:
                dv = self.dag_value(value)
            except DecodeError:
                return sha256(b"undecodable" + value)
            # Should block sync apply this block, its certificates are known.
            self.dag.note_value(dv)
            return dv.block_hash
        with self._decoded_lock:
            return value_id_of(value, self._decoded)

    def dag_value(self, value: bytes) -> DagValue:
        """A DAG chain's value, decoded (DecodeError if it is not one)."""
        return decode_dag_value(value, self.chain.params.max_block_txs * 4)

    def decode(self, value: bytes) -> BlockRecord:
        """The block a value carries (DecodeError if it carries none). On a DAG
        chain: the block rebuilt from the batches it names, fetched from their
        signers where missing (a worker thread: it waits for the network)."""
        if self.dag is None:
            with self._decoded_lock:
                return decode_value(value, self._decoded)
        with self._decoded_lock:
            record = self._decoded.get(value)
        if record is not None:
            return record
        dv = self.dag_value(value)
        try:
            record = dv.rebuild(self.dag.batches_for(dv))
        except (InvalidBatchCertificateError, LookupError) as exc:
            raise DecodeError(f"DAG value: {exc}") from None
        self._remember(value, record)
        return record

    def _remember(self, value: bytes, record: BlockRecord) -> None:
        with self._decoded_lock:
            remember(self._decoded, value, record)

    def deciding(self, value: bytes) -> None:
        """``value`` was decided and is about to commit: on a DAG chain its
        certificates are ordered once its block commits."""
        if self.dag is not None:
            self.dag.note_value(self.dag_value(value))

    # --- the state machine's callbacks (worker thread, consensus task waiting) ---
    def get_value(self, height: int) -> bytes:
        """This validator's proposal for ``height``: the next block from the mempool."""
        dev = self.node.dev  # an anvil-like devnet stamps its blocks with its own clock
        time_ms = None if dev is None else dev.block_time_ms(self.chain.head.time_ms)
        if self.dag is not None:
            return self._dag_value(height, time_ms)
        pending = self.chain.propose(self.node.reap(), time_ms=time_ms, verified=True)
        self._log_rejected(height, pending)
        self.keep(pending)
        return pending.proposal_value()

    def _log_rejected(self, height: int, pending: Pending) -> None:
        """Log what a proposal left out, and drop it from the mempool."""
        for rejected in pending.rejected:
            log.info(
                "transaction left out of proposal",
                extra={
                    "fields": {
                        "height": height,
                        "tx": rejected.tx.hash.hex()[:16],
                        "nonce": rejected.tx.nonce,
                        "code": rejected.error.code,
                        "reason": str(rejected.error),
                    }
                },
            )
        self.node.discard(rejected.tx for rejected in pending.rejected)

    def _dag_value(self, height: int, time_ms: int | None) -> bytes:
        """A DAG chain's proposal: the held certificates' batches executed as a
        block, and a value naming the certificates and what the block skips."""
        assert self.dag is not None
        payload = self.dag.payload()
        offered = block_transactions(payload.batches)
        # Other validators' batches carry signatures nobody here checked yet.
        pending = self.chain.propose(offered, time_ms=time_ms, verified=False)
        skipped = skipped_indexes(offered, pending.block.txs)
        self._log_rejected(height, pending)
        self.keep(pending)
        record = pending.record
        bare = BlockRecord(
            block=Block(record.block.header, (), record.block.evidence),
            last_commit=record.last_commit,
        )
        value = DagValue(bare, payload.certs, skipped).encode()
        self._remember(value, BlockRecord(block=record.block, last_commit=record.last_commit))
        return value

    def is_valid_proposal(self, height: int, proposal: Proposal) -> bool:
        """A fresh proposal's block must be made by its signer, the round's
        proposer, and not be from further ahead than our clock allows
        (docs/chain.md "Block time"); a re-proposal's block was prevoted by
        more than 2/3 in an earlier round, so it is checked like a synced one.
        Either is sampled from its signer, who holds its data: a re-proposal's
        maker may be gone, and sampling it would refuse the block for good."""
        if proposal.valid_round != -1:
            return self.is_valid(height, proposal.value, signer=proposal.proposer)
        maker = address_bytes(proposal.proposer)
        return self.is_valid(
            height, proposal.value, maker, int(time.time() * 1000), signer=proposal.proposer
        )

    def is_valid(
        self,
        height: int,
        value: bytes,
        proposer: bytes | None = None,
        now_ms: int | None = None,
        signer: bytes | None = None,
    ) -> bool:
        """Whether ``value`` re-executes here to its header's roots (with the
        round's ``proposer`` and this node's clock ``now_ms`` when given) and
        passes every proposal check (``signer``: whom a check may ask for data)."""
        try:
            record = self.decode(value)
        except DecodeError as exc:
            if self.dag is not None:  # a DAG value whose batches do not make a block here
                log.warning(
                    "prevote nil: proposal not rebuilt",
                    extra={"fields": {"height": height, "reason": str(exc)}},
                )
            return False
        known = self._pending.get(record.block.hash)
        if known is not None and self.chain.is_current(known):
            # Executed here before (our own proposal, or a re-proposal's block).
            return proposer is None or known.block.header.proposer == proposer
        try:
            pending = self.chain.validate(record, now_ms=now_ms, proposer=proposer)
        except BlockError as exc:
            log.warning(
                "prevote nil: proposal does not validate",
                extra={"fields": {"height": height, "reason": str(exc)}},
            )
            return False
        for check in self.checks:
            refused = check(record, signer)
            if refused is not None:
                log.warning(
                    "prevote nil: proposal refused",
                    extra={"fields": {"height": height, "reason": refused}},
                )
                self.chain.abandon(pending)
                return False
        self.keep(pending)
        return True

    # --- executed proposals -------------------------------------------------------
    def keep(self, pending: Pending) -> None:
        """Keep a validated proposal's executed state for its commit; at most
        MAX_PENDING, the oldest dropped first except the value the machine is
        locked on or holds as valid (a dropped one is re-validated if decided)."""
        self._pending[pending.hash] = pending
        keep = {*self.locked(), pending.hash}
        for value_id in list(self._pending):
            if len(self._pending) <= MAX_PENDING:
                break
            if value_id not in keep:
                self.chain.abandon(self._pending.pop(value_id))

    @property
    def kept(self) -> tuple[bytes, ...]:
        """The value ids whose executed state is kept, oldest first."""
        return tuple(self._pending)

    def executed(self, value_id: bytes) -> Pending | None:
        """The kept executed state of the value ``value_id``, if any."""
        return self._pending.get(value_id)

    def clear(self) -> None:
        """Forget every kept proposal: a new height starts."""
        self._pending.clear()

    def keep_square(self, proposal: Proposal) -> None:
        """Hold the data square of a proposal this node sends, so it can serve
        it to the validators that sample it: a re-proposed block, or a proposal
        re-sent after a restart (from the WAL), was not built in this process,
        and sampling this node would find nothing and refuse the proposal. A
        block executed here has its square at hand; another is decoded once."""
        known = self._pending.get(proposal.value_id)
        if known is not None:
            if recent_squares.get(known.block.header.data_root) is None:
                recent_squares.add(known.square)
            return
        try:
            record = self.decode(proposal.value)
        except DecodeError:
            return
        if recent_squares.get(record.block.header.data_root) is None:
            block_square(record.block.txs)


__all__ = ["DECODED_VALUES", "MAX_PENDING", "Proposals", "decode_value", "value_id_of"]
