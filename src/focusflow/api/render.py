"""Chain objects as the JSON the API documents (docs/api.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypedDict

from focusflow.chain.block import Block, BlockRecord
from focusflow.chain.focus_view import FocusView
from focusflow.consensus.certificate import CommitCertificate
from focusflow.core.cid import cid_from_bytes, cid_to_bytes
from focusflow.core.errors import InvalidCIDError
from focusflow.core.hashing import sha256
from focusflow.core.keys import encode_address

if TYPE_CHECKING:
    import numpy as np


@lru_cache(maxsize=1 << 17)
def cid_text(raw: bytes) -> str:
    """The usual spelling of a binary CID (cached: top lists repeat the same few)."""
    return cid_from_bytes(raw)


class TextCache:
    """The spelled texts of an append-only key table, each key spelled once.

    Holds one string per key asked for so far (up to the table's size: some
    100 MB for 10^6 CIDs); a different table object (a node that reopened its
    graph) starts it afresh.
    """

    def __init__(self, spell: Callable[[bytes], str]) -> None:
        self._spell = spell
        self._table: object | None = None
        self._texts: list[str] = []
        self._lock = threading.Lock()

    def texts(self, table: object, keys: Sequence[bytes], lo: int, hi: int) -> list[str]:
        """The texts of ``keys[lo:hi]`` (``table`` identifies the key table)."""
        with self._lock:
            if table is not self._table:
                self._table, self._texts = table, []
            done = len(self._texts)
            if done < hi:
                self._texts.extend(self._spell(keys[i]) for i in range(done, hi))
            return self._texts[lo:hi]


def key_texts() -> tuple[TextCache, TextCache]:
    """An app's particle CID and neuron address caches (``app.state.key_texts``).

    They spell with the uncached ``cid_from_bytes``: a page of 10^5 CIDs
    through :func:`cid_text` would evict the few CIDs its LRU keeps for the
    top lists.
    """
    return TextCache(cid_from_bytes), TextCache(encode_address)


def parse_cid(text: str) -> bytes:
    """Binary form of a CID from a URL; InvalidCIDError (400) when it is not one."""
    if not isinstance(text, str) or not 0 < len(text) <= 256:
        raise InvalidCIDError(f"invalid CID {str(text)[:80]!r}")
    return cid_to_bytes(text)


def block_json(
    block: Block, commit: CommitCertificate | None = None, events: Sequence[object] = ()
) -> dict[str, Any]:
    """A block's header fields, its transaction and evidence hashes, commit and events.

    ``events`` are the block-level events execution stored with it (slashing).
    """
    h = block.header
    return {
        "height": h.height,
        "hash": block.hash.hex(),
        "time_ms": h.time_ms,
        "parent": h.parent.hex(),
        "txs_root": h.txs_root.hex(),
        "state_root": h.state_root.hex(),
        "focus_root": h.focus_root.hex(),
        "data_root": h.data_root.hex(),
        "evidence_root": h.evidence_root.hex(),
        "validators_hash": h.validators_hash.hex(),
        "proposer": encode_address(h.proposer) if h.proposer else None,
        "txs": [sha256(tx).hex() for tx in block.txs],
        "n_txs": len(block.txs),
        "evidence": [sha256(e).hex() for e in block.evidence],
        "events": jsonable(list(events)),
        "commit": [
            {"public_key": s.public_key.hex(), "signature": s.signature.hex()}
            for s in (commit.signatures if commit is not None else ())
        ],
    }


def record_json(record: BlockRecord, events: Sequence[object] = ()) -> dict[str, Any]:
    return block_json(record.block, record.commit, events)


class RankedParticle(TypedDict):
    """One particle of a top list (``schemas.RankedParticle``'s shape)."""

    rank: int
    cid: str
    focus: float
    focus_q: int
    text: str | None


def ranked(
    view: FocusView,
    indices: np.ndarray,
    texts: Callable[[list[bytes]], list[str | None]] | None = None,
) -> list[RankedParticle]:
    """``[{rank, cid, focus, focus_q, text}]`` for particle indices already in rank
    order; ``texts`` gives the kept text of binary CIDs (every ``text`` null without it)."""
    q = view.q
    order = indices.tolist()
    raws = [view.particles[i] for i in order]
    kept = texts(raws) if texts is not None else [None] * len(raws)
    out: list[RankedParticle] = []
    for rank, (i, raw, text) in enumerate(zip(order, raws, kept, strict=True), start=1):
        qi = int(q[i])
        out.append(
            {
                "rank": rank,
                "cid": cid_text(raw),
                "focus": qi / view.scale,
                "focus_q": qi,
                "text": text,
            }
        )
    return out


def jsonable(value: Any) -> Any:
    """Receipt events hold bytes and nested lists; JSON gets hex for the bytes."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
