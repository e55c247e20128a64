"""The module interface: how state machines plug into the chain.

A module owns messages (by type name) and a part of the key-space. The chain
calls its handlers with a :class:`TxContext` whose state is a child of the
block's pending state; a handler validates the message body, raises a
:class:`~focusflow.chain.errors.TxError` to refuse it, or writes to the state
and reports the graph's edge deltas (new links, changed stakes) through the
context. The chain merges the writes and deltas only if every message of the
transaction succeeded. ``end_block`` runs once after all transactions (matured
unbonding, fee payout, and slashing the block's verified :class:`Offence` s,
which the chain puts in the block context: the chain proves the offence, the
bank decides what it costs).

``Ante`` is the check every transaction passes before its messages run
(nonce and fee); the bank module provides it, the node wires it in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState
from focusflow.consensus.validators import ValidatorSet

#: The links of one link message as they travel and are stored:
#: ``[from, to]`` or ``[from, to, semcon]``, each a binary CID.
LinkList = list[list[bytes]]


@dataclass
class Deltas:
    """Edge deltas for the focus engine: groups of links by neuron, and new stakes.

    ``links`` holds ``(neuron, [[from, to(, semcon)], ...], source)`` groups, one
    per link message, sharing the message's own list (a block of ten thousand
    links is never copied link by link). ``source`` is ``(tx index, message
    index)`` of the message in its block: a stored block records only these
    references, since the links themselves are already in its transactions.
    """

    links: list[tuple[bytes, LinkList, tuple[int, int] | None]] = field(default_factory=list)
    stakes: dict[bytes, int] = field(default_factory=dict)

    def merge(self, other: Deltas) -> None:
        self.links.extend(other.links)
        self.stakes.update(other.stakes)

    def __bool__(self) -> bool:
        return bool(self.links or self.stakes)

    def flat_links(self) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """``(from, to, neuron)`` columns of every link, in order."""
        src = [e[0] for _, pairs, _ in self.links for e in pairs]
        dst = [e[1] for _, pairs, _ in self.links for e in pairs]
        neuron = [n for n, pairs, _ in self.links for _ in pairs]
        return src, dst, neuron

    def to_cbor(self) -> list[Any]:
        """``[groups, stakes]``; a group is ``[tx, msg]``, or ``[neuron, links]`` if sourceless."""
        groups = [list(src) if src is not None else [n, pairs] for n, pairs, src in self.links]
        return [groups, sorted([k, v] for k, v in self.stakes.items())]


@dataclass(frozen=True)
class Offence:
    """A verified equivocation the block punishes (see chain/evidence_pool.py)."""

    #: The validator's Ed25519 public key and its account address.
    public_key: bytes
    address: bytes
    #: The height it is dated at: of the conflicting votes (proposals, answers),
    #: or the first height of a batch slot's epoch; stake unbonding since then
    #: is slashed too.
    height: int
    #: Hash of the evidence that proves it.
    evidence_hash: bytes
    #: The state key the bank records its punishment at, one per offence (per
    #: validator and height, or validator and batch slot), so it is punished
    #: once (chain/evidence_pool.py).
    key: bytes


class BlockSection(Protocol):
    """State of one block a module keeps for itself in the block context (the
    exchange's pools halted in the block): made empty by the module on its
    first use in a block, under the module's name. The kernel knows only that
    it copies: a transaction the boundary drops leaves the copy taken before
    it ran (``chain.execute``)."""

    SECTION: ClassVar[str]

    def __init__(self) -> None: ...

    def copy(self) -> Self: ...


B = TypeVar("B", bound=BlockSection)


@dataclass
class BlockContext:
    """What every handler of one block can see: height, time, parameters, proposer."""

    chain_id: str
    height: int
    time_ms: int
    proposer: bytes
    params: ChainParams
    state: PendingState
    fees: int = 0
    deltas: Deltas = field(default_factory=Deltas)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Offences proven by the block's evidence, in block order, each once
    #: (``Offence.key``); the bank slashes them in ``end_block``.
    offences: list[Offence] = field(default_factory=list)
    #: The validator set that decides this height, with its proposer priorities.
    validators: ValidatorSet | None = None
    #: Running totals of the block that handlers keep (the EVM's gas used).
    counters: dict[str, int] = field(default_factory=dict)
    #: The committed focus of a particle (binary CID) after the parent block,
    #: fixed point (``round(phi * 10**15)``, 0 if not a particle): what every
    #: node knows before the block runs, so handlers may read it.
    focus_of: Callable[[bytes], int] = field(default=lambda _cid: 0)
    #: A neuron's karma (20-byte address) after the parent block, in the same
    #: fixed point (``chain.karma``; 0 for an address that is no neuron).
    karma_of: Callable[[bytes], int] = field(default=lambda _address: 0)
    #: The set of the next height when this block changes it (the validators
    #: module sets it: an epoch boundary, a jailing); None: unchanged, the next
    #: height steps this one's priorities.
    next_validators: ValidatorSet | None = None
    #: The hash of the block this one builds on: a seed no transaction signed
    #: before its inclusion could know (``modules.proofs`` draws challenges from it).
    parent_hash: bytes = b""
    #: The base fee per byte this block charges (``chain.fees``); None: the
    #: ``fee_per_byte`` parameter.
    fee_per_byte: int | None = None
    #: Under the economy: the base fees each sender's included transactions
    #: paid in this block (the spend incentive's shares).
    fee_payers: dict[bytes, int] = field(default_factory=dict)
    #: The modules' own state of this block, by section name (``BlockSection``).
    sections: dict[str, BlockSection] = field(default_factory=dict)

    def section(self, kind: type[B]) -> B:
        """The block's ``kind`` section, made empty on its first use."""
        found = self.sections.get(kind.SECTION)
        if found is None:
            # setdefault: the scheduler's speculative runs share this dict, and
            # all of them must keep one section.
            found = self.sections.setdefault(kind.SECTION, kind())
        if not isinstance(found, kind):
            raise TypeError(f"block section {kind.SECTION!r} holds {type(found).__name__}")
        return found


@dataclass
class TxContext:
    """One transaction's view: the block, the sender, and its own pending writes."""

    block: BlockContext
    sender: bytes
    tx_index: int
    msg_index: int
    state: PendingState
    deltas: Deltas = field(default_factory=Deltas)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: The sender's Ed25519 public key (``sender`` is its address).
    sender_key: bytes = b""
    #: The transaction itself, for a handler that reads it whole (the EVM's).
    tx: Any = None
    #: ``(code, log)`` of a transaction that failed after paying for itself
    #: (a self-charging one, see ``execute``): its writes are kept.
    failure: tuple[str, str] | None = None

    @property
    def params(self) -> ChainParams:
        return self.block.params

    @property
    def height(self) -> int:
        return self.block.height

    def emit(self, kind: str, **attrs: Any) -> None:
        self.events.append({"type": kind, **attrs})


#: A message's body as its transaction decoded it (canonical CBOR): no field is
#: checked yet. A handler reads each through the typed accessors
#: (``modules.accounts.field`` and the like), which refuse a missing or
#: mistyped field, so its type here says only what decoding guarantees.
MessageBody = dict[str, Any]

Handler = Callable[[TxContext, MessageBody], None]


class Module(Protocol):
    name: str

    def handlers(self) -> Mapping[str, Handler]: ...

    def init_genesis(self, state: PendingState, genesis: Any, deltas: Deltas) -> None: ...

    def end_block(self, ctx: BlockContext) -> None: ...


@runtime_checkable
class BlockRoom(Protocol):
    """A module that meters a resource of the whole block (WASM's gas).

    Called in block order for every transaction before it runs: raises
    :class:`~focusflow.chain.errors.BlockFullError` when the transaction would
    fit an emptier block (a producer leaves it in the pool for a later one),
    :class:`~focusflow.chain.errors.OverLimitError` when no block could hold it;
    else returns what it takes, by counter of ``BlockContext.counters``, which
    the chain adds once the transaction is in the block. Known before the
    transaction runs, so every node, and a producer filling a block, decide
    alike."""

    def room(self, ctx: BlockContext, tx: Any) -> Mapping[str, int]: ...


class Ante(Protocol):
    def __call__(
        self, state: PendingState, params: ChainParams, sender: bytes, nonce: int, fee: int
    ) -> None:
        """Check the nonce, take the fee from the sender and use the nonce (or raise TxError)."""
