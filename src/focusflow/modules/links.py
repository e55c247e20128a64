"""Graph module: cyberlinks, the edges focus is computed over.

Message ``link``: ``{"links": [[from, to], ...]}`` (binary CIDs; an optional
third element is the link's semantic context, also a CID). The sender is the
neuron of every link.

It may carry the texts of its particles: ``"texts": [[cid, text], ...]``, each
a particle one of its links names, the text 1 to ``MAX_TEXT_BYTES`` UTF-8
bytes, at most ``MAX_TEXTS_PER_TX`` in the transaction. Every node executing
the block checks that each text hashes to its CID (``text_mismatch`` fails the
transaction's receipt, never the block) and, once the block is committed,
keeps the texts of its successful link messages in its text store
(:func:`committed_texts`; ``store.particle_texts``). The texts are paid for as
bytes of the transaction and covered by the block's data root with it; they
are not written to state, so the state root does not cover them: a text is
checked by its hash, and keeping it in state would make every node's state
grow with content that needs no agreement beyond the block's.

Economics (graph edges burn weight: links spend a budget of stake and burn tokens),
exactly:

* budget: a neuron's links share its bonded stake (docs/architecture.md §3.1: each weighs
  ``stake / neudeg``). A link is accepted only while every link of the neuron
  still carries at least ``min_link_weight``, i.e. ``(neudeg + new) *
  min_link_weight <= bonded``; ``unstake`` obeys the same bound. So stake is
  the budget links are spent from, and no link ever weighs less than the floor.
* burn: each link also burns ``link_burn`` from the sender's liquid balance;
  a spammer pays for every edge it adds, even with stake to spare.

Links are a multiset: repeating a link spends budget again and adds its weight
again. Self-links (from == to) are refused: §3.1 drops them from the graph,
so accepting them would burn budget for nothing.

State: ``/graph/links/<height 8><tx 4><msg 2>`` holds ``[neuron, links]`` of
one message (one key per message, not per link, keeps the state tree small),
and ``.../<msg 2>p<packet 2>`` those a contract's packet made (``modules.router``);
``/graph/neuron/<address>`` holds ``[neudeg]``. Each accepted link becomes an
edge delta ``(from, to, neuron)`` for the focus engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from focusflow.chain.errors import (
    MalformedMessageError,
    OverLimitError,
    OverLinkBudgetError,
    TxError,
    UnknownParticleFormatError,
)
from focusflow.chain.genesis import Genesis
from focusflow.chain.interchain import BucketRule, WrongBucketError, link_bucket
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.state import PendingState
from focusflow.chain.tx import Tx, decode_tx
from focusflow.core.cid import check_cid_bytes, raw_cid_bytes
from focusflow.core.encoding import encode
from focusflow.core.errors import InvalidCIDError, TextMismatchError, TextTooLargeError
from focusflow.modules.accounts import debit, field, only_fields, set_neudeg
from focusflow.state_schema.accounts import get_account, get_neudeg
from focusflow.state_schema.interchain import place, rollup_chain_id
from focusflow.state_schema.links import PACKET_MARK, links_key

#: Most particle texts one transaction carries (over all its link messages): one
#: write of the text store (``store.particle_texts.MAX_BATCH``).
MAX_TEXTS_PER_TX = 64
#: Longest particle text, in UTF-8 bytes: what a node's text store keeps
#: (``store.particle_texts.MAX_TEXT_BYTES``, which the modules cannot import;
#: tests hold the two equal).
MAX_TEXT_BYTES = 4096


class UnlinkedTextError(TxError):
    """A link message carries a text for a particle none of its links names."""

    code = "unlinked_text"


def _texts_in(body: object) -> int:
    texts = body.get("texts") if isinstance(body, dict) else None
    return len(texts) if isinstance(texts, list) else 0


def _check_texts(ctx: TxContext, links: list[Any], texts: object) -> None:
    """Refuse the first text of ``texts`` that is not one of this message's
    particles' (module docstring), in the list's order so the receipt's error
    is the same on every node."""
    if not isinstance(texts, list) or not texts:
        raise MalformedMessageError("texts must be a non-empty list of [cid, text]")
    msgs = ctx.tx.msgs if ctx.tx is not None else ()
    total = sum(_texts_in(m.body) for m in msgs if m.type == "link") or len(texts)
    if total > MAX_TEXTS_PER_TX:
        raise OverLimitError(f"{total} particle texts in one transaction exceed {MAX_TEXTS_PER_TX}")
    named = {cid for entry in links for cid in entry}
    seen: set[bytes] = set()
    for i, entry in enumerate(texts):
        if type(entry) is not list or len(entry) != 2:
            raise MalformedMessageError(f"texts[{i}] must be [cid, text]")
        cid, text = entry
        if type(cid) is not bytes or type(text) is not str or not text:
            raise MalformedMessageError(f"texts[{i}] must be [binary CID, non-empty text]")
        if cid in seen:
            raise MalformedMessageError(f"texts[{i}] repeats a particle")
        seen.add(cid)
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedMessageError(f"texts[{i}] is not valid Unicode") from None
        if len(raw) > MAX_TEXT_BYTES:
            raise TextTooLargeError(
                f"texts[{i}] has {len(raw)} UTF-8 bytes; a particle text is at most "
                f"{MAX_TEXT_BYTES}"
            )
        if cid not in named:
            raise UnlinkedTextError(f"texts[{i}] is for a particle no link of its message names")
        if raw_cid_bytes(raw) != cid:
            raise TextMismatchError(f"texts[{i}] does not hash to its CID")


def committed_texts(txs: Sequence[bytes], receipts: Sequence[Any]) -> Iterator[tuple[bytes, str]]:
    """``(binary CID, text)`` of every text the successful link messages of a
    committed block carry (``txs``: its encoded transactions, and their
    ``receipts``, in block order). Only a transaction whose receipt is ok is
    decoded, and only if its bytes hold the field's name: every text was checked
    when the block ran."""
    for raw, receipt in zip(txs, receipts, strict=False):
        if not receipt.ok or b"texts" not in raw:
            continue
        tx = decode_tx(raw)
        if tx.hash == receipt.tx_hash:
            yield from link_texts(tx)


def link_texts(tx: Tx) -> Iterator[tuple[bytes, str]]:
    """``(binary CID, text)`` of every text the link messages of ``tx`` carry."""
    for msg in tx.msgs:
        if msg.type == "link" and isinstance(msg.body, dict):
            yield from ((cid, text) for cid, text in msg.body.get("texts") or ())


def _check_links_per_tx(ctx: TxContext, m: int) -> None:
    """``max_links_per_tx`` bounds the links of the whole transaction, not of one
    message: a transaction of many ``link`` messages could otherwise carry
    ``max_msgs_per_tx`` times the limit. The links of its earlier messages are
    those its context has recorded so far (``ctx.deltas`` is per transaction)."""
    limit = ctx.params.max_links_per_tx
    earlier = sum(len(entry[1]) for entry in ctx.deltas.links)
    if earlier + m > limit:
        where = f" ({earlier} in earlier messages + {m} in this one)" if earlier else ""
        raise OverLimitError(
            f"{earlier + m} links in one transaction exceed max_links_per_tx={limit}{where}"
        )


def _check_bucket(ctx: TxContext, links: list[Any]) -> None:
    """On a chain of a network of rollups, every link must be this rollup's
    bucket's: the first that is not names its owner, so the client resends it
    there (the hub holds no links at all)."""
    here = place(ctx.state)
    if here is None:
        return
    rule: BucketRule = "semcon" if here.rule == "semcon" else "source"
    for i, entry in enumerate(links):
        owner = link_bucket(entry, here.buckets, rule)
        if owner != here.bucket:
            chain_id = rollup_chain_id(ctx.state, owner)
            where = "the hub holds no links" if here.bucket < 0 else f"this is bucket {here.bucket}"
            raise WrongBucketError(
                f"links[{i}] belongs to bucket {owner} (chain {chain_id}); {where}",
                owner,
                chain_id,
            )


def _valid_cid(cid: bytes) -> bool:
    try:
        check_cid_bytes(cid)
    except InvalidCIDError:
        return False
    return True


def _refuse_first_bad_cid(links: list[Any], fresh: set[bytes]) -> None:
    """Raise for the first invalid CID in the links' order. The error goes into a
    committed receipt, so it must name the same CID on every node: not the first
    one met iterating a set, whose order follows the process's hash seed."""
    for i, entry in enumerate(links):
        for cid in entry:
            if cid in fresh:
                try:
                    check_cid_bytes(cid)
                except InvalidCIDError as exc:
                    raise UnknownParticleFormatError(f"links[{i}]: {exc.message}") from None


class Links:
    name = "graph"

    def __init__(self) -> None:
        self._known: set[bytes] = set()

    def handlers(self) -> Mapping[str, Handler]:
        return {"link": self.link}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        return None

    def end_block(self, ctx: BlockContext) -> None:
        return None

    def _check_entries(self, links: list[Any]) -> None:
        """Shape, CIDs and no self-links, with the set of seen CIDs as a fast path."""
        for i, entry in enumerate(links):
            if type(entry) is not list or not 2 <= len(entry) <= 3:
                raise MalformedMessageError(f"links[{i}] must be [from, to] or [from, to, semcon]")
            for cid in entry:
                if type(cid) is not bytes:
                    raise UnknownParticleFormatError(f"links[{i}]: a particle must be a binary CID")
            if entry[0] == entry[1]:
                raise MalformedMessageError(f"links[{i}] is a self-link")
        known = self._known
        fresh = {cid for entry in links for cid in entry} - known
        if not all(_valid_cid(cid) for cid in fresh):
            _refuse_first_bad_cid(links, fresh)
        if len(known) < 1 << 20:
            known.update(fresh)

    def link(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "links", "texts")
        links = field(body, "links", list)
        self.add(ctx, ctx.sender, links)
        if "texts" in body:
            _check_texts(ctx, links, body["texts"])

    def add(
        self, ctx: TxContext, sender: bytes, links: list[Any], packet: int | None = None
    ) -> None:
        """Links of ``sender`` as one ``link`` message adds them; ``packet`` is the
        place of a router packet that sends them on a contract's behalf (its
        record gets its own key, and its edge delta no message reference: the
        links are not in the transaction's bytes)."""
        m = len(links)
        if m == 0:
            raise MalformedMessageError("links must not be empty")
        _check_links_per_tx(ctx, m)
        self._check_entries(links)
        _check_bucket(ctx, links)
        neudeg = get_neudeg(ctx.state, sender) + m
        bonded = get_account(ctx.state, sender).bonded
        need = neudeg * ctx.params.min_link_weight
        if need > bonded:
            raise OverLinkBudgetError(
                f"{neudeg} links need {need} bonded stake at min_link_weight="
                f"{ctx.params.min_link_weight}; the neuron has {bonded}"
            )
        if ctx.params.link_burn:
            debit(ctx.state, sender, m * ctx.params.link_burn, f"burning {m} links")
        set_neudeg(ctx.state, sender, neudeg)
        key = links_key(ctx.height, ctx.tx_index, ctx.msg_index)
        if packet is not None:
            key += PACKET_MARK + packet.to_bytes(2, "big")
        ctx.state.put(key, encode([sender, links]))
        source = (ctx.tx_index, ctx.msg_index) if packet is None else None
        ctx.deltas.links.append((sender, links, source))
        ctx.emit("link", neuron=sender, count=m)
