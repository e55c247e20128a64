"""The committed graph, page by page: particles, links and neurons with stakes.

What a client needs to rebuild the node's graph on its own machine (``focusflow
compile --node``, an offline analysis): particle CIDs, links as particle and
neuron indices, and each neuron's address and stake, from which the focus
engine's link weights follow (stake over the neuron's link count). Particles,
links and neurons are append-only, so index ``i`` means the same thing at
every later height; a client that reads the pages over several blocks gets
the graph as of its first page's height (``total``) with the stakes of the
page it read them from.

Every page is bounded (``limit`` at most ``MAX_PAGE``), so one request costs
the node at most a few megabytes of JSON. Spelling a CID or an address costs
some 7 microseconds of Python, 0.7 s for a page of 100,000 particles: a
client that asked for the same pages over and over would keep the node's CPU
busy. The texts are therefore spelled once per key and kept
(``api.render.TextCache``; keys are append-only, so a kept text never changes),
and a repeated page costs its JSON encoding only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from focusflow.api.errors import ERROR_RESPONSES
from focusflow.api.render import TextCache
from focusflow.api.state import app_state

if TYPE_CHECKING:
    from focusflow.chain.focus_view import FocusView

router = APIRouter(prefix="/v1/graph", responses=ERROR_RESPONSES)

#: Items per page at most: 100,000 links are some 2 MB of JSON.
MAX_PAGE = 100_000

Start = Annotated[int, Query(ge=0, le=2**62)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _texts(request: Request) -> tuple[TextCache, TextCache]:
    return app_state(request).key_texts


def _page(
    view: FocusView,
    total: int,
    start: int,
    limit: int,
    columns: Callable[[int, int], dict[str, object]],
) -> JSONResponse:
    """The page ``start .. start + limit`` of ``total`` items of ``view`` (one
    view for the whole answer), its columns from ``columns(lo, hi)``."""
    lo = min(start, total)
    hi = min(total, lo + limit)
    doc: dict[str, Any] = {"height": view.height, "total": total, "start": lo}
    doc.update(columns(lo, hi))
    return JSONResponse(doc)


@router.get("/particles", response_model=None)
def particles(request: Request, start: Start = 0, limit: Limit = MAX_PAGE) -> JSONResponse:
    """Particle CIDs by index, ``start`` to ``start + limit``."""
    view = app_state(request).node.view
    cids = _texts(request)[0]
    return _page(
        view,
        view.n_particles,
        start,
        limit,
        lambda lo, hi: {"cids": cids.texts(view.particle_table, view.particles, lo, hi)},
    )


@router.get("/links", response_model=None)
def links(request: Request, start: Start = 0, limit: Limit = MAX_PAGE) -> JSONResponse:
    """Links by index as particle and neuron indices (``src``, ``dst``, ``neuron``)."""
    view = app_state(request).node.view
    return _page(
        view,
        view.n_links,
        start,
        limit,
        lambda lo, hi: {
            "src": view.src[lo:hi].tolist(),
            "dst": view.dst[lo:hi].tolist(),
            "neuron": view.neuron[lo:hi].tolist(),
        },
    )


@router.get("/neurons", response_model=None)
def neurons(request: Request, start: Start = 0, limit: Limit = MAX_PAGE) -> JSONResponse:
    """Neuron addresses by index and their stakes at this height."""
    view = app_state(request).node.view
    addresses = _texts(request)[1]
    return _page(
        view,
        view.n_neurons,
        start,
        limit,
        lambda lo, hi: {
            "addresses": addresses.texts(view.neuron_table, view.neurons, lo, hi),
            "stakes": view.stakes[lo:hi].astype(float).tolist(),
        },
    )
