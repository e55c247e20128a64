"""Particle texts: ``POST /v1/particles/texts`` keeps them, ``GET .../{cid}/text`` reads
one, ``GET /v1/particles/search`` finds them by their words.

Texts reach a node two ways. The main one is the chain: a link transaction
carries its particles' texts (``modules.links``), and :func:`keep_block_texts`
stores those of every committed block on every node that executes it
(validators, full nodes, nodes syncing blocks). The side channel below stays
as a fallback for texts a link did not carry (older clients, ``import wordnet
--node``).

A node keeps the text of a particle (``store.particle_texts``) only when it
can check it and when the particle is one links pay for: the CID is computed
here from the text itself (so a text and its CID cannot disagree), and the
particle must be in the committed graph or named by a link waiting in this
node's mempool. Texts of other CIDs are answered as ``unknown`` and not kept:
without that rule anyone could fill the node's disk for free.

Every text is checked (at most ``MAX_TEXT_BYTES`` UTF-8 bytes, ``MAX_BATCH``
texts a request, the body under the API's cap) before any is hashed or
stored; one bad text refuses the whole request and keeps nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from focusflow.api import schemas
from focusflow.api.bodies import StrictBody, json_body
from focusflow.api.errors import ERROR_RESPONSES, ApiError
from focusflow.api.jsonbody import list_field, object_body, parse_json
from focusflow.api.params import CID_PATTERN, CidPath
from focusflow.api.render import cid_text, parse_cid
from focusflow.api.service import NodeService
from focusflow.api.state import AppState, app_state
from focusflow.chain.tx import decode_tx
from focusflow.core.encoding import decode
from focusflow.core.errors import FocusflowError
from focusflow.modules import committed_texts, link_texts
from focusflow.store.particle_texts import (
    MAX_BATCH,
    MAX_QUERY_CHARS,
    MAX_SEARCH_RESULTS,
    MAX_TEXT_BYTES,
    ParticleTexts,
    UnknownTextError,
    cid_of_text_bytes,
    text_bytes,
)

if TYPE_CHECKING:
    from focusflow.chain.chain import Chain

log = logging.getLogger("focusflow.node")

router = APIRouter(prefix="/v1/particles", responses=ERROR_RESPONSES)


class TextsBody(StrictBody):
    """``POST /v1/particles/texts`` (:func:`_keep` reads it). A text's bound is in
    UTF-8 bytes, which JSON Schema cannot count: its ``maxLength`` is the same
    number of characters, and a text of that many multi-byte characters is
    refused as ``text_too_large``."""

    texts: list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT_BYTES)]] = Field(
        min_length=1, max_length=MAX_BATCH, description="particle texts, each hashed to its CID"
    )


def keep_block_texts(store: ParticleTexts) -> Callable[[Any], None]:
    """A block keeper (``NodeRuntime.keepers``: it runs before the block's view is
    published, so a transaction reported committed has its texts kept) that keeps
    the texts the committed block's successful link transactions carry, MAX_BATCH
    a write.

    Each was checked against its CID when the block ran; the store checks
    again. A write that fails (a full disk) is logged and the node goes on:
    texts are content, the chain does not depend on them.
    """

    def keep(result: Any) -> None:
        items = list(dict(committed_texts(result.block.txs, result.receipts)).items())
        for start in range(0, len(items), MAX_BATCH):
            try:
                store.put(items[start : start + MAX_BATCH])
            except FocusflowError as exc:
                log.warning("block texts not kept: %s [%s]", exc.message, exc.code)

    return keep


def keep_last_block_texts(store: ParticleTexts, chain: Chain) -> int:
    """Keep again the texts of the newest committed block; how many were missing.

    A block's texts are kept just after the block is committed, so a node
    stopped between the two (``kill -9``) restarts without them; no other block
    can be missing any (the next block is not made before the keeper ran).
    Keeping is idempotent, so this runs at every start.
    """
    if chain.height < 1:
        return 0
    record = chain.block_record(chain.height)
    if record is None:
        return 0
    items: list[tuple[bytes, str]] = []
    with chain.reader() as r:
        for raw in record.block.txs:
            if b"texts" not in raw:
                continue
            tx = decode_tx(raw)
            receipt = r.index(b"t" + tx.hash)
            if receipt is not None and decode(receipt, "receipt")[2] == "ok":
                items.extend(link_texts(tx))
    kept = 0
    for start in range(0, len(items), MAX_BATCH):
        kept += store.put(items[start : start + MAX_BATCH])
    return kept


def texts_of(state: AppState, cids: Sequence[bytes]) -> list[str | None]:
    """The kept text of each binary CID (None where none is kept), one read for all;
    all None for an app over a node without a home (tests)."""
    store = state.particle_texts
    if store is None or not cids:
        return [None] * len(cids)
    return store.get_many(cids)


def _known(node: NodeService, cid: bytes) -> bool:
    """A particle of the published graph, or one a pending link names.

    Both are read without a lock: between a block's commit (its links leave
    the mempool) and the publication of its view, a particle named only by
    that block is in neither and is answered as unknown; posting it again a
    moment later keeps it.
    """
    return node.mempool.names_particle(cid) or node.view.particle_index(cid) >= 0


def _keep(request: Request, doc: Any) -> dict[str, Any]:
    items = list_field(object_body(doc, {"texts"}), "texts", MAX_BATCH)
    raws = [text_bytes(t) for t in items]
    texts = cast(list[str], items)  # text_bytes refused every item that is not a string
    state = app_state(request)
    store = state.particle_texts
    if store is None:
        raise ApiError("unavailable", "this node keeps no particle texts")
    node = state.node
    cids = [cid_of_text_bytes(raw) for raw in raws]
    accepted: dict[bytes, str] = {}
    unknown: dict[bytes, None] = {}
    for cid, text in zip(cids, texts, strict=True):
        if cid in accepted or cid in unknown:
            continue
        if _known(node, cid):
            accepted[cid] = text
        else:
            unknown[cid] = None
    store.put(list(accepted.items()))
    return {
        "cids": [cid_text(c) for c in cids],
        "stored": len(accepted),
        "unknown": [cid_text(c) for c in unknown],
    }


@router.post(
    "/texts",
    response_model=None,
    responses={200: {"model": schemas.TextsKept}},
    openapi_extra=json_body(TextsBody),
)
async def keep_texts(request: Request) -> JSONResponse:
    """Keep the texts of particles that links name; each text's CID is computed here."""
    doc = parse_json(await request.body())
    return JSONResponse(await run_in_threadpool(_keep, request, doc))


#: Most particles one ``GET /v1/particles/texts`` names.
MAX_LOOKUP = 100
#: One CID of the query string, with the pattern a path's CID has (checked by
#: ``parse_cid``: ``invalid_cid``).
CidItem = Annotated[str, Field(json_schema_extra={"pattern": CID_PATTERN, "maxLength": 256})]


@router.get("/texts", response_model=None)
def particle_texts(
    request: Request,
    cid: Annotated[list[CidItem], Query(min_length=1, max_length=MAX_LOOKUP)],
) -> JSONResponse:
    """The kept text of each of up to MAX_LOOKUP particles (``?cid=..&cid=..``):
    ``{texts: {cid: text}}``, the particles without one left out."""
    raws = [parse_cid(c) for c in cid]
    found = texts_of(app_state(request), raws)
    return JSONResponse(
        {"texts": {cid_text(r): t for r, t in zip(raws, found, strict=True) if t is not None}}
    )


@router.get("/{cid}/text", response_model=None, responses={200: {"model": schemas.ParticleText}})
def particle_text(request: Request, cid: CidPath) -> JSONResponse:
    """The text this node keeps for a particle; 404 ``unknown_text`` when none."""
    raw = parse_cid(cid)
    (text,) = texts_of(app_state(request), [raw])
    if text is None:
        raise UnknownTextError(f"this node keeps no text for particle {cid_text(raw)}")
    return JSONResponse({"cid": cid_text(raw), "text": text})


class TextMatchOut(BaseModel):
    cid: str
    text: str
    match: str = Field(description="exact, prefix or substring")
    focus: float | None = Field(description="the particle's focus, null outside the graph")


class TextSearch(BaseModel):
    query: str
    height: int
    results: list[TextMatchOut]


@router.get("/search", response_model=None, responses={200: {"model": TextSearch}})
def search_texts(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_RESULTS)] = 20,
) -> JSONResponse:
    """Particles whose kept text matches ``q`` without case: the whole text, then by
    prefix, then by substring (three characters or more), shorter texts first."""
    state = app_state(request)
    store = state.particle_texts
    if store is None:
        raise ApiError("unavailable", "this node keeps no particle texts")
    matches = store.search(q, limit)
    view = state.node.view
    results = []
    for m in matches:
        i = view.particle_index(m.cid)
        results.append(
            {
                "cid": cid_text(m.cid),
                "text": m.text,
                "match": m.match,
                "focus": float(view.focus(i)) if i >= 0 else None,
            }
        )
    return JSONResponse({"query": q, "height": view.height, "results": results})
