"""A node's committed graph rebuilt locally from ``/v1/graph/*`` pages.

``focusflow compile --node URL`` (and anything else that wants the whole graph
offline) reads the links first, then the particles and neurons they name, and
rebuilds a :class:`Cybergraph` whose link weights are the node's (each
neuron's stake over its link count). The node is not trusted: every page is
checked for its shape, its start, its lengths and its index ranges before it
is used, particle CIDs are validated by the graph, and a page that does not
advance ends the read with an error rather than a loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

import numpy as np

from focusflow.client import BadNodeAnswerError, NodeClient
from focusflow.graph.cybergraph import Cybergraph

#: Items asked per page (the node's own bound is the same).
PAGE = 100_000

Progress = Callable[[str, int, int], None]


@dataclass
class NodeGraph:
    """The rebuilt graph and the heights its pages came from."""

    graph: Cybergraph
    url: str
    first_height: int
    last_height: int


def _is_int(x: object) -> TypeGuard[int]:
    """An int from JSON (a bool is not one)."""
    return isinstance(x, int) and not isinstance(x, bool)


def _pages(
    client: NodeClient,
    what: str,
    fields: tuple[str, ...],
    need: int | None,
    progress: Progress | None,
) -> tuple[dict[str, list[object]], int, int]:
    """Every page of ``/v1/graph/<what>`` up to the first page's total (or ``need``)."""
    out: dict[str, list[object]] = {f: [] for f in fields}
    heights: list[int] = []
    total: int | None = None
    got = 0
    while total is None or got < total:
        doc = client.graph_page(what, got, PAGE)
        t, start, height = doc.get("total"), doc.get("start"), doc.get("height")
        if not (_is_int(t) and _is_int(start) and _is_int(height)):
            raise BadNodeAnswerError(f"/v1/graph/{what}: total, start and height must be integers")
        if total is None:
            total = t if need is None else need
            if total < 0 or t < total:
                raise BadNodeAnswerError(f"/v1/graph/{what}: {t} items, {total} needed")
        elif t < total:
            raise BadNodeAnswerError(f"/v1/graph/{what}: the total shrank from {total} to {t}")
        if start != got:
            raise BadNodeAnswerError(f"/v1/graph/{what}: asked from {got}, got a page from {start}")
        cols = [c for c in (doc.get(f) for f in fields) if isinstance(c, list)]
        if len(cols) != len(fields) or len({len(c) for c in cols}) != 1:
            raise BadNodeAnswerError(f"/v1/graph/{what}: {', '.join(fields)} must be equal lists")
        size = min(len(cols[0]), total - got)
        if size == 0:
            raise BadNodeAnswerError(f"/v1/graph/{what}: an empty page at {got} of {total}")
        for f, c in zip(fields, cols, strict=True):
            out[f].extend(c[:size])
        got += size
        heights.append(height)
        if progress is not None:
            progress(what, got, total)
    return out, min(heights, default=0), max(heights, default=0)


def _strings(values: list[object]) -> TypeGuard[list[str]]:
    """Whether every value from JSON is a string."""
    return all(isinstance(v, str) for v in values)


def _ints(values: list[object], what: str, upper: int) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise BadNodeAnswerError(f"{what}: expected integers") from None
    if arr.ndim != 1 or (len(arr) and (arr.min() < 0 or arr.max() >= upper)):
        raise BadNodeAnswerError(f"{what}: an index outside 0..{upper - 1}")
    return arr


def read_node_graph(client: NodeClient, progress: Progress | None = None) -> NodeGraph:
    """The node's graph as of the first links page, weighted by the node's stakes."""
    links, h0, h1 = _pages(client, "links", ("src", "dst", "neuron"), None, progress)
    bound = 2**31
    src = _ints(links["src"], "links src", bound)
    dst = _ints(links["dst"], "links dst", bound)
    neuron = _ints(links["neuron"], "links neuron", bound)
    n_particles = int(max(src.max(initial=-1), dst.max(initial=-1))) + 1
    n_neurons = int(neuron.max(initial=-1)) + 1
    parts, p0, p1 = _pages(client, "particles", ("cids",), n_particles, progress)
    neurons, n0, n1 = _pages(client, "neurons", ("addresses", "stakes"), n_neurons, progress)
    g = Cybergraph()
    cids = parts["cids"]
    if not _strings(cids):
        raise BadNodeAnswerError("particles: CIDs must be strings")
    try:
        ids = g.add_particles(cids)
        addresses = neurons["addresses"]
        if not _strings(addresses):
            raise BadNodeAnswerError("neurons: addresses must be strings")
        nids = g.add_neurons(addresses)
        stakes = np.asarray(neurons["stakes"], dtype=np.float64)
        if len(ids) != g.n_particles or g.n_particles != len(cids):
            raise BadNodeAnswerError("particles: a CID is listed twice")
        if g.n_neurons != len(addresses):
            raise BadNodeAnswerError("neurons: an address is listed twice")
        g.set_stakes(nids, stakes)
        g.add_link_ids(src, dst, neuron)
    except (TypeError, ValueError) as exc:
        raise BadNodeAnswerError(f"the node's graph does not load: {exc}") from None
    heights = (h0, h1, p0, p1, n0, n1)
    return NodeGraph(g, client.url, min(heights), max(heights))
