"""State proofs for the base facts behind a query's rows (``"prove": true``).

Each fact the query layer cites is tied to the state key that commits it: a
link (or a neuron's link, or a particle's existence) to the ``/graph/links``
message that made it, a name to its ``/kv/name`` record, a balance to its
account. Every key is proven against the state root of the answer's block;
``focusflow.light.query_proofs`` checks the proofs, that each fact lies in its
key's value, and that every row follows from the proven facts alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Request

from focusflow.api.errors import ApiError
from focusflow.api.routes_light import LinkSources, link_sources, prove_at
from focusflow.api.state import app_state
from focusflow.core.keys import decode_address
from focusflow.query.engine import Answer
from focusflow.query.node_source import NEURONS
from focusflow.state_schema.accounts import account_key
from focusflow.state_schema.names import NAME_PREFIX

if TYPE_CHECKING:
    from focusflow.chain.focus_view import FocusView
    from focusflow.query.provenance import Value


def _message_key(
    view: FocusView, sources: LinkSources, ids: np.ndarray, keep: Callable[[int], bool]
) -> bytes | None:
    for link_id in ids.tolist():
        if keep(link_id):
            key = sources.key_of(link_id)
            if key is not None:
                return key
    return None


def fact_key(
    view: FocusView,
    sources: LinkSources,
    rel: str,
    raw: tuple[Value, ...],
    spelled: list[Any],
) -> bytes | None:
    """The state key whose value commits this fact, or None (a genesis link)."""
    index = view.link_index
    if rel in ("link", "neuron_link"):
        f, t = int(raw[-2]), int(raw[-1])
        neuron = int(raw[0]) - NEURONS if rel == "neuron_link" else None
        return _message_key(
            view,
            sources,
            index.links(f, "out"),
            lambda i: int(view.dst[i]) == t and (neuron is None or int(view.neuron[i]) == neuron),
        )
    if rel == "particle":
        p = int(raw[0])
        ids = np.concatenate([index.links(p, "out"), index.links(p, "in")])
        return _message_key(view, sources, ids, lambda i: True)
    if rel == "name":
        return NAME_PREFIX + str(spelled[0]).encode("utf-8")
    if rel == "balance":
        return account_key(decode_address(str(spelled[0])))
    raise ApiError("query_invalid", f"{rel} facts cannot be proven")


def prove_answer(request: Request, view: FocusView, answer: Answer) -> dict[str, Any]:
    """The ``proofs`` part of a proved answer (see docs/query.md, *Proofs*)."""
    assert answer.facts is not None and answer.raw_facts is not None
    sources = link_sources(request)
    sources.upto(app_state(request).node.chain, view.height)
    facts: list[dict[str, Any]] = []
    where: dict[tuple[str, tuple[Value, ...]], int] = {}
    keys: dict[str, dict[str, Any]] = {}
    rows = []
    block = None
    # The store as of the answer's height, where the node still holds it: a
    # name or balance changed since then is proven as the answer read it.
    with app_state(request).queries.store_at(view.height) as store:
        for spelled_row, raw_row in zip(answer.facts, answer.raw_facts, strict=True):
            cited = []
            for (rel, spelled), (_, raw) in zip(spelled_row, raw_row, strict=True):
                slot = where.get((rel, raw))
                if slot is None:
                    key = fact_key(view, sources, rel, raw, spelled)
                    if key is not None and key.hex() not in keys:
                        doc = prove_at(request, key, view.height, store)
                        block = doc
                        keys[key.hex()] = {"value": doc["value"], "proof": doc["proof"]}
                    slot = where[(rel, raw)] = len(facts)
                    facts.append(
                        {
                            "relation": rel,
                            "values": spelled,
                            "key": None if key is None else key.hex(),
                        }
                    )
                cited.append(slot)
            rows.append(cited)
    out: dict[str, Any] = {"rows": rows, "facts": facts, "keys": keys}
    if block is not None:
        out["block_hash"] = block["block_hash"]
    return out
