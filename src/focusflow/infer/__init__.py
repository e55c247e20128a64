"""Focus-flow inference: the next particles a context leads to, through the graph.

``infer(graph, context)`` answers one query; :class:`Inference` keeps a graph
and its snapshots for many (``predict``, ``walk``); ``focusflow infer`` and the
node's ``POST /v1/infer`` are built on them (docs/infer.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Unpack

from focusflow.graph.cybergraph import Cybergraph
from focusflow.infer.engine import Inference, InferOptions, InferParams, Prediction, WalkStep
from focusflow.infer.errors import EmptyContextError, UnknownParticleError, UnknownSemconError
from focusflow.infer.graph import InferGraph
from focusflow.infer.sampling import Sampling


def infer(
    graph: Cybergraph | InferGraph,
    context: Sequence[str | int],
    *,
    top: int = 10,
    semcons: Mapping[str, float] | None = None,
    other_semcons: float | None = None,
    **params: Unpack[InferOptions],
) -> list[tuple[str, float]]:
    """The ``top`` most likely next particles after ``context``: ``[(key, probability)]``.

    ``graph`` is a :class:`Cybergraph` (a graph file read with
    ``focusflow.graph.read_graph``) or an :class:`InferGraph`; ``params`` are
    :class:`InferParams` fields (``mode``, ``tol``, ``context_weight``, ...).
    A node is asked over its API instead: ``focusflow infer --node URL``.
    """
    g = graph if isinstance(graph, InferGraph) else InferGraph.from_cybergraph(graph)
    engine = Inference(g, InferParams(**params))
    pred = engine.predict(context, semcons=semcons, other_semcons=other_semcons)
    ids, probs = pred.top(top)
    return [(g.key(int(i)), float(p)) for i, p in zip(ids, probs, strict=True)]


__all__ = [
    "EmptyContextError",
    "InferGraph",
    "InferOptions",
    "InferParams",
    "Inference",
    "Prediction",
    "Sampling",
    "UnknownParticleError",
    "UnknownSemconError",
    "WalkStep",
    "infer",
]
