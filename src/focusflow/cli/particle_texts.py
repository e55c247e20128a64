"""Sending particle texts to a node (``POST /v1/particles/texts``), in batches.

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
