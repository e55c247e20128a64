"""Datalog over the cybergraph and the chain's state, with graph operators as relations.

``run(program, source, output=...)`` evaluates a program in Soufflé's rule
syntax over a source (a graph file through :func:`open_graph`, or a node's
state) and returns an :class:`Answer`. docs/query.md is the user's guide.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Unpack

from focusflow.query.engine import Answer, evaluate
from focusflow.query.errors import (
    HeightUnavailableError,
    QueryInvalidError,
    QueryLimitError,
    QuerySyntaxError,
    QueryTypeError,
    UnknownViewError,
    UnstratifiableError,
)
from focusflow.query.limits import Limits
from focusflow.query.sources import FactSource, GraphFileSource, Source, SourceOptions

__all__ = [
    "Answer",
    "FactSource",
    "GraphFileSource",
    "HeightUnavailableError",
    "Limits",
    "QueryInvalidError",
    "QueryLimitError",
    "QuerySyntaxError",
    "QueryTypeError",
    "Source",
    "UnknownViewError",
    "UnstratifiableError",
    "open_graph",
    "run",
]


def open_graph(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    *,
    skip_invalid: bool = True,
    texts: Mapping[str, str] | None = None,
    cache: bool | None = None,
    **options: Unpack[SourceOptions],
) -> GraphFileSource:
    """A source over a graph file (``auto``, ``edges`` or ``bostrom``); bostrom links
    whose particles are not CIDs are dropped (``source.graph.skipped_invalid`` counts
    them) unless ``skip_invalid`` is false, when the first one is an error.
    ``texts`` (particle to its text) are the ``text`` relation's facts; ``cache``
    is ``read_graph``'s (the loaded graph's cache file)."""
    from focusflow.graph.importers import read_graph

    graph = read_graph(path, fmt, skip_invalid=skip_invalid, cache=cache)
    return GraphFileSource(graph, texts, **options)


def run(
    program: str,
    source: Source,
    *,
    output: str,
    limit: int | None = None,
    limits: Limits | None = None,
    prove: bool = False,
    engine: str = "auto",
) -> Answer:
    """Evaluate ``program`` over ``source`` and return the relation ``output``;
    ``prove`` adds, per row, the base facts of one derivation (``Answer.facts``)."""
    return evaluate(program, source, output, limit=limit, limits=limits, prove=prove, engine=engine)
