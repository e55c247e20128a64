"""Sending particle texts to a node (``POST /v1/particles/texts``), in batches, and
reading them back checked (``GET /v1/particles/texts``).

``focusflow tx link "cats" "mammals"`` and ``focusflow import wordnet --node``
make particles from texts; the chain keeps only their CIDs. These commands
then give the node the texts, so that it shows "cats" rather than a CID
(docs/api.md, *Particle texts*). A node keeps a text only once a link names
its particle, so they send after the link is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from focusflow.store.particle_texts import MAX_BATCH, MAX_TEXT_BYTES

#: Particles one ``GET /v1/particles/texts`` names (``api.routes_texts.MAX_LOOKUP``).
LOOKUP_BATCH = 100

if TYPE_CHECKING:
    from focusflow.client import NodeClient


@dataclass
class TextsSent:
    """What the node made of the texts: kept, not named by any link, or too long to send."""

    stored: int = 0
    unknown: list[str] = field(default_factory=list)
    too_large: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"stored": self.stored, "unknown": self.unknown, "too_large": self.too_large}


def fits(text: str) -> bool:
    """Whether a node may keep ``text`` (at most MAX_TEXT_BYTES of UTF-8)."""
    return len(text.encode("utf-8", "surrogatepass")) <= MAX_TEXT_BYTES


def send_texts(
    api: NodeClient,
    texts: Sequence[str],
    on_batch: Callable[[int], None] | None = None,
) -> TextsSent:
    """Give ``texts`` to the node, MAX_BATCH a request; ``on_batch(n)`` after each.

    Texts longer than a node keeps are counted, not sent (their particles are
    still linked: only the text is missing). A refusal of the node stops with
    its RemoteError.
    """
    sent = TextsSent()
    unique = list(dict.fromkeys(texts))
    keep = [t for t in unique if fits(t)]
    sent.too_large = len(unique) - len(keep)
    for start in range(0, len(keep), MAX_BATCH):
        batch = keep[start : start + MAX_BATCH]
        answer = api.keep_texts(batch)
        sent.stored += int(answer.get("stored", 0))
        sent.unknown.extend(str(c) for c in answer.get("unknown", []))
        if on_batch is not None:
            on_batch(len(batch))
    return sent


def verified_texts(api: NodeClient, cids: Sequence[str]) -> dict[str, str]:
    """``cid -> text`` the node keeps for ``cids``, LOOKUP_BATCH a request; a text
    is taken only when it hashes to its CID (the node is not trusted for it)."""
    from focusflow.core.cid import cid_of_text

    unique = list(dict.fromkeys(cids))
    out: dict[str, str] = {}
    for start in range(0, len(unique), LOOKUP_BATCH):
        batch = unique[start : start + LOOKUP_BATCH]
        doc = api.get("/v1/particles/texts", {"cid": batch})
        texts = doc.get("texts") if isinstance(doc, dict) else None
        if not isinstance(texts, dict):
            continue
        for cid in batch:
            text = texts.get(cid)
            if isinstance(text, str) and fits(text) and _hashes_to(text, cid, cid_of_text):
                out[cid] = text
    return out


def _hashes_to(text: str, cid: str, cid_of_text: Callable[[str], str]) -> bool:
    try:
        return cid_of_text(text) == cid
    except UnicodeEncodeError:
        return False
