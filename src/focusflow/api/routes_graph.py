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
(:class:`TextCache`; keys are append-only, so a kept text never changes),
and a repeated page costs its JSON encoding only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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


def new_caches() -> tuple[TextCache, TextCache]:
    """The particle CID and neuron address caches of one app (``app.state.graph_texts``)."""
    return TextCache(cid_text), TextCache(encode_address)


def _caches(request: Request) -> tuple[TextCache, TextCache]:
    return request.app.state.graph_texts


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
            "cids": _caches(request)[0].texts(view.particle_table, view.particles, lo, hi),
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
            "addresses": _caches(request)[1].texts(view.neuron_table, view.neurons, lo, hi),
            "stakes": view.stakes[lo:hi].astype(float).tolist(),
        }
    )
