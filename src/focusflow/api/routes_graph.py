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
the node at most a few megabytes of JSON.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from focusflow.api.errors import ERROR_RESPONSES
from focusflow.api.render import cid_text
from focusflow.core.keys import encode_address

router = APIRouter(prefix="/v1/graph", responses=ERROR_RESPONSES)

#: Items per page at most: 100,000 links are some 2 MB of JSON.
MAX_PAGE = 100_000

Start = Annotated[int, Query(ge=0, le=2**62)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _page(total: int, start: int, limit: int) -> tuple[int, int]:
    lo = min(start, total)
    return lo, min(total, lo + limit)


@router.get("/particles", response_model=None)
def particles(request: Request, start: Start = 0, limit: Limit = MAX_PAGE) -> JSONResponse:
    """Particle CIDs by index, ``start`` to ``start + limit``."""
    view = request.app.state.node.view
    lo, hi = _page(view.n_particles, start, limit)
    return JSONResponse(
        {
            "height": view.height,
            "total": view.n_particles,
            "start": lo,
            "cids": [cid_text(view.particles[i]) for i in range(lo, hi)],
        }
    )


@router.get("/links", response_model=None)
def links(request: Request, start: Start = 0, limit: Limit = MAX_PAGE) -> JSONResponse:
    """Links by index as particle and neuron indices (``src``, ``dst``, ``neuron``)."""
    view = request.app.state.node.view
    lo, hi = _page(view.n_links, start, limit)
    return JSONResponse(
        {
            "height": view.height,
            "total": view.n_links,
            "start": lo,
            "src": view.src[lo:hi].tolist(),
            "dst": view.dst[lo:hi].tolist(),
            "neuron": view.neuron[lo:hi].tolist(),
        }
    )


@router.get("/neurons", response_model=None)
def neurons(request: Request, start: Start = 0, limit: Limit = MAX_PAGE) -> JSONResponse:
    """Neuron addresses by index and their stakes at this height."""
    view = request.app.state.node.view
    lo, hi = _page(view.n_neurons, start, limit)
    return JSONResponse(
        {
            "height": view.height,
            "total": view.n_neurons,
            "start": lo,
            "addresses": [encode_address(view.neurons[i]) for i in range(lo, hi)],
            "stakes": view.stakes[lo:hi].astype(float).tolist(),
        }
    )
