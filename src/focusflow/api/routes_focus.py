"""Focus endpoints: top particles, one particle, a neuron's karma, syntropy, links.

Every answer comes from the node's current :class:`FocusView`, so a request
sees one block's focus even while the next block is being computed. The top
list is rendered once per (block, k) and then served from memory: it is the
endpoint every page and app polls.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from focusflow.api import schemas
from focusflow.api.errors import ERROR_RESPONSES, ApiError
from focusflow.api.params import AddressPath, CidPath, Direction
from focusflow.api.render import cid_text, parse_cid, ranked
from focusflow.api.routes_texts import texts_of
from focusflow.api.state import app_state
from focusflow.chain.focus_view import FocusView
from focusflow.core.cid import cid_of_text
from focusflow.core.keys import encode_address, parse_account
from focusflow.store.particle_texts import ParticleTexts

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class TopCache:
    """Rendered ``/focus/top`` bodies of the current view, one per k.

    A body shows the particles' kept texts too, so it is rendered again when
    the view changes or the text store has taken a new text (its generation).
    """

    def __init__(self, texts: ParticleTexts | None = None) -> None:
        self._texts = texts
        self._view: FocusView | None = None
        self._generation = 0
        self._bodies: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def _current(self, view: FocusView, generation: int) -> bool:
        return self._view is view and self._generation == generation

    def body(self, view: FocusView, k: int) -> bytes:
        generation = self._texts.generation if self._texts is not None else 0
        with self._lock:
            if not self._current(view, generation):
                self._view, self._generation, self._bodies = view, generation, {}
            body = self._bodies.get(k)
        if body is None:
            lookup = self._texts.get_many if self._texts is not None else None
            doc = {
                "height": view.height,
                "total": view.n_particles,
                "particles": ranked(view, view.top_k(k), lookup),
            }
            body = json.dumps(doc, separators=(",", ":")).encode()
            with self._lock:
                if self._current(view, generation) and len(self._bodies) < 64:
                    self._bodies[k] = body
        return body


def _view(request: Request) -> FocusView:
    return app_state(request).node.view


def _particle(request: Request, cid: str) -> tuple[FocusView, bytes, int]:
    """(view, binary CID, index) of a particle in the current view; 404 if it is not one."""
    raw = parse_cid(cid)
    view = _view(request)
    i = view.particle_index(raw)
    if i < 0:
        raise ApiError("unknown_particle", f"particle {cid} is not in the graph")
    return view, raw, i


@router.get("/focus/top", response_model=None, responses={200: {"model": schemas.TopParticles}})
def top(request: Request, k: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """The k particles with the most focus, most first."""
    body = app_state(request).top_cache.body(_view(request), k)
    return Response(body, media_type="application/json")


@router.get(
    "/focus/particles/{cid}",
    response_model=None,
    responses={200: {"model": schemas.ParticleFocus}},
)
def particle(request: Request, cid: CidPath) -> JSONResponse:
    view, raw, i = _particle(request, cid)
    qi = int(view.q[i])
    (text,) = texts_of(app_state(request), [raw])
    return JSONResponse(
        {
            "cid": cid_text(raw),
            "height": view.height,
            "focus": qi / view.scale,
            "focus_q": qi,
            "rank": view.rank(i),
            "index": i,
            "links_in": view.degree(i, "in"),
            "links_out": view.degree(i, "out"),
            "text": text,
        }
    )


@router.get(
    "/focus/neurons/{address}",
    response_model=None,
    responses={200: {"model": schemas.NeuronFocus}},
)
def neuron(request: Request, address: AddressPath) -> JSONResponse:
    """A neuron's karma (focus its links carry, docs/focus.md) and stake in the graph."""
    raw = parse_account(address)
    view = _view(request)
    i = view.neuron_index(raw)
    known = 0 <= i < len(view.karma)
    return JSONResponse(
        {
            "address": encode_address(raw),
            "height": view.height,
            "karma": float(view.karma[i]) if known else 0.0,
            "stake": float(view.stakes[i]) if known else 0.0,
            "neudeg": int(view.neudeg[i]) if known else 0,
        }
    )


@router.get(
    "/focus/syntropy",
    response_model=None,
    responses={200: {"model": schemas.SyntropyHistory}},
)
def syntropy(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSONResponse:
    """Syntropy (nats) after each block that changed focus, oldest first."""
    history = list(app_state(request).node.syntropy)[-limit:]
    return JSONResponse({"history": history})


@router.get(
    "/particles/{cid}/links",
    response_model=None,
    responses={200: {"model": schemas.ParticleLinks}},
)
def links(
    request: Request,
    cid: CidPath,
    direction: Direction = "out",
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    """Neighbours of a particle, heaviest edge first (edges summed over neurons)."""
    view, raw, i = _particle(request, cid)
    nbrs, weights = view.edges(i, direction)
    page = slice(offset, offset + limit)
    ids = nbrs[page].tolist()
    raws = [view.particles[j] for j in ids]
    kept = texts_of(app_state(request), raws)
    out = [
        {"cid": cid_text(r), "weight": float(w), "focus": view.focus(j), "text": t}
        for j, r, w, t in zip(ids, raws, weights[page].tolist(), kept, strict=True)
    ]
    return JSONResponse(
        {
            "cid": cid_text(raw),
            "direction": direction,
            "total": len(nbrs),
            "offset": offset,
            "links": out,
        }
    )


@router.get("/cid", response_model=None, responses={200: {"model": schemas.CidOut}})
def cid_of(text: Annotated[str, Query(min_length=1, max_length=4096)]) -> JSONResponse:
    """The particle of a text: CIDv1 (raw, sha2-256) of its UTF-8 bytes."""
    return JSONResponse({"cid": cid_of_text(text)})
