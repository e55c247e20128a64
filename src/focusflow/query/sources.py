"""Where base relations come from: a graph file, or a node's state at a height.

A source exposes its facts as columns of integers and floats, each relation
loaded into DuckDB the first time a program names it and kept for the next
query (sorted by its first column, so DuckDB's zone maps skip most of a table
when a rule fixes that column). It also owns the aggregated link graph that
the graph operators run on, in the same numbering as the particle symbols.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Protocol, TypedDict, Unpack, cast

import numpy as np

from focusflow.graph.csr import build_csr
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.snapshot import Snapshot
from focusflow.query.analysis import FLOAT, INT, SYM, Schema
from focusflow.query.indexed import LinkAdjacency
from focusflow.query.sqlgen import create_table, quote
from focusflow.query.symbols import SymbolTable

if TYPE_CHECKING:
    import duckdb

BASE_SCHEMAS: dict[str, Schema] = {
    "particle": (SYM,),
    "link": (SYM, SYM),
    "weight": (SYM, SYM, FLOAT),
    "neuron_link": (SYM, SYM, SYM),
    "stake": (SYM, FLOAT),
    "name": (SYM, SYM),
    "focus": (SYM, FLOAT),
    "karma": (SYM, FLOAT),
    "balance": (SYM, INT),
    "block": (INT, SYM, INT),
    "text": (SYM, SYM),
}

#: The documented names of the base relations' columns (answers' headers).
BASE_COLUMNS: dict[str, tuple[str, ...]] = {
    "particle": ("p",),
    "link": ("from", "to"),
    "weight": ("from", "to", "w"),
    "neuron_link": ("n", "from", "to"),
    "stake": ("n", "s"),
    "name": ("name", "p"),
    "focus": ("p", "f"),
    "karma": ("n", "k"),
    "balance": ("addr", "amount"),
    "block": ("height", "hash", "time"),
    "text": ("p", "text"),
}

Columns = list[np.ndarray]


@dataclass
class GraphView:
    """The aggregated link graph in particle-symbol numbering.

    ``indptr``/``indices``/``weights`` are the out-CSR (duplicate links
    summed, as the focus engine sees them); ``graph`` is what the focus
    solver takes (a Cybergraph or Snapshot whose particle ids are the same),
    made on first use by ``make_graph``: only the focus operators need it.
    """

    n: int
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    make_graph: Callable[[], Cybergraph | Snapshot]

    @cached_property
    def graph(self) -> Cybergraph | Snapshot:
        return self.make_graph()


class Source(Protocol):
    """What the evaluator needs from wherever the facts live."""

    height: int | None
    state_root: str | None
    symbols: SymbolTable

    def schema(self, name: str) -> Schema | None: ...

    def table(self, name: str) -> str: ...

    def cached(self, key: str, schema: Schema, make: Callable[[], Columns]) -> str: ...

    def view(self) -> GraphView: ...

    def link_adjacency(self) -> LinkAdjacency | None: ...

    def connection(self) -> duckdb.DuckDBPyConnection: ...


def csr_columns(indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(from, to)`` of every CSR entry."""
    n = len(indptr) - 1
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    return src, np.asarray(indices, dtype=np.int64)


class SourceOptions(TypedDict, total=False):
    """:class:`TableSource`'s settings, as a source's keyword arguments."""

    memory_limit: str
    threads: int | None
    height: int | None
    state_root: str | None


@dataclass
class TableSource:
    """Base relations held as DuckDB tables, created on first use.

    Subclasses give ``_columns(name)`` (the facts of a base relation) and
    ``view()``; tables and cached operator results are created once under a
    lock and read by any number of concurrent queries through cursors.
    """

    memory_limit: str = "4GB"
    threads: int | None = None
    height: int | None = None
    state_root: str | None = None
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _tables: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            config: dict[str, str | bool | int | float | list[str]] = {
                "memory_limit": self.memory_limit
            }
            if self.threads:
                config["threads"] = int(self.threads)
            import duckdb  # loaded with the first query, not with every node

            con = duckdb.connect(":memory:", config=config)
            # Spilling a runaway query to disk would trade a clean memory error
            # for a full disk; queries stay in memory and fail at the bound.
            con.execute("SET temp_directory = ''")
            con.execute("SET preserve_insertion_order = false")
            self._con = con
        return self._con

    @property
    def holds_connection(self) -> bool:
        """Whether this source has a DuckDB connection open (memory held)."""
        return self._con is not None

    def schema(self, name: str) -> Schema | None:
        return BASE_SCHEMAS.get(name)

    def table(self, name: str) -> str:
        schema = self.schema(name)
        if schema is None:
            raise KeyError(name)
        return self.cached(f"b_{name}", schema, lambda: self._columns(name))

    def cached(self, key: str, schema: Schema, make: Callable[[], Columns]) -> str:
        """The table ``key``, made from ``make()``'s columns the first time."""
        with self._lock:
            got = self._tables.get(key)
            if got is not None:
                return got
            cols = make()
            con = self.connection()
            load(con, key, schema, cols, temp=False)
            self._tables[key] = key
            return key

    def _columns(self, name: str) -> Columns:  # pragma: no cover - abstract
        raise NotImplementedError

    def view(self) -> GraphView:  # pragma: no cover - abstract
        raise NotImplementedError

    def link_adjacency(self) -> LinkAdjacency | None:
        """The link graph's indexes for index-driven evaluation, built once."""
        got = getattr(self, "_link_adjacency", None)
        if got is None:
            with self._lock:
                v = self.view()
                got = LinkAdjacency.of(v.n, v.indptr, v.indices)
                self._link_adjacency: LinkAdjacency | None = got
        return got

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
            self._tables.clear()


def load(
    con: duckdb.DuckDBPyConnection, name: str, schema: Schema, cols: Columns, *, temp: bool
) -> None:
    """Create table ``name`` holding ``cols`` (numpy arrays, one per column), sorted."""
    con.execute(create_table(name, schema, temp=temp))
    if not len(cols) or not len(cols[0]):
        return
    import pandas as pd  # loaded with the first table, not with every node

    frame = pd.DataFrame(
        {
            f"c{k}": np.asarray(c, dtype=np.float64 if t == FLOAT else np.int64)
            for k, (c, t) in enumerate(zip(cols, schema, strict=True))
        },
        copy=False,
    )
    view = f"_load_{name}"
    con.register(view, frame)
    try:
        order = ", ".join(f"c{k}" for k in range(len(schema)))
        con.execute(f"INSERT INTO {quote(name)} SELECT * FROM {quote(view)} ORDER BY {order}")
    finally:
        con.unregister(view)


class GraphFileSource(TableSource):
    """Base relations of a cybergraph loaded from a file (or built in memory).

    Particles are symbols ``0..P-1`` (their ids in the graph), neurons follow.
    ``focus`` and ``karma`` are computed by the focus engine on first use
    (tri-kernel, default parameters); a file has no names, balances or blocks,
    so those relations are empty. ``text`` holds ``texts`` (particle key to its
    text, a particles file's) for the graph's particles; a text that is no
    particle's or neuron's key is a symbol after them.
    """

    def __init__(
        self,
        graph: Cybergraph,
        texts: Mapping[str, str] | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        super().__init__(**options)
        self.graph = graph
        p = graph.n_particles
        self._neuron_ids = self._number_neurons()
        size = p + int((self._neuron_ids >= p).sum())
        self._base_size = size
        self._text_ids: dict[str, int] = {}
        self._text_rows: list[tuple[int, int]] = []
        for key, text in (texts or {}).items():
            particle = graph.particles.get(key)
            if particle < 0:
                continue
            sid = self._lookup(text)
            if sid < 0:
                sid = self._text_ids[text] = size + len(self._text_ids)
            self._text_rows.append((particle, sid))
        self.symbols = SymbolTable(size + len(self._text_ids), self._lookup, self._spell)
        self._names: np.ndarray | None = None
        self._view: GraphView | None = None
        self._focus: np.ndarray | None = None

    def _number_neurons(self) -> np.ndarray:
        """Symbol ids of neurons: a neuron whose key is also a particle's shares its id."""
        p = self.graph.n_particles
        keys = self.graph.neurons.keys()
        ids = np.empty(len(keys), dtype=np.int64)
        nxt = p
        for j, key in enumerate(keys):
            found = self.graph.particles.get(key)
            if found >= 0:
                ids[j] = found
            else:
                ids[j] = nxt
                nxt += 1
        return ids

    def _lookup(self, text: str) -> int:
        found = self.graph.particles.get(text)
        if found >= 0:
            return found
        j = self.graph.neurons.get(text)
        if j >= 0:
            return int(self._neuron_ids[j])
        return self._text_ids.get(text, -1)

    def _spell(self, ids: np.ndarray) -> list[str]:
        if self._names is None:
            names = self._all_names()
            self._names = np.empty(len(names), dtype=object)
            self._names[:] = names
        spelled: list[str] = self._names[ids].tolist()
        return spelled

    def _all_names(self) -> list[str]:
        out = list(self.graph.particles.keys())
        p = len(out)
        out.extend(
            key
            for key, sid in zip(self.graph.neurons.keys(), self._neuron_ids.tolist(), strict=True)
            if sid >= p
        )
        out.extend(self._text_ids)
        return cast(list[str], out)  # a graph read from files: its keys are text

    def view(self) -> GraphView:
        if self._view is None:
            g = self.graph
            links = g.links()
            w = g.link_weight_range(0, g.n_links)
            indptr, indices, weights, *_ = build_csr(g.n_particles, links.src, links.dst, w)
            self._view = GraphView(
                g.n_particles, indptr, indices.astype(np.int64), weights, lambda: g
            )
        return self._view

    def focus(self) -> np.ndarray:
        if self._focus is None:
            from focusflow.focus.solver import compute

            self._focus = np.asarray(compute(self.graph).focus, dtype=np.float64)
        return self._focus

    def _columns(self, name: str) -> Columns:
        g = self.graph
        p = g.n_particles
        if name == "particle":
            return [np.arange(p, dtype=np.int64)]
        if name in ("link", "weight"):
            v = self.view()
            src, dst = csr_columns(v.indptr, v.indices)
            return [src, dst] if name == "link" else [src, dst, v.weights]
        if name == "neuron_link":
            links = g.links()
            named = np.flatnonzero(links.neuron >= 0)
            triples = np.stack(
                [self._neuron_ids[links.neuron[named]], links.src[named], links.dst[named]], 1
            )
            triples = np.unique(triples.astype(np.int64), axis=0) if len(triples) else triples
            return [triples[:, 0], triples[:, 1], triples[:, 2]]
        if name == "stake":
            return [self._neuron_ids.copy(), np.asarray(g.stakes, dtype=np.float64)]
        if name == "focus":
            return [np.arange(p, dtype=np.int64), self.focus()]
        if name == "karma":
            from focusflow.focus.measures import karma

            k = karma(g, self.focus())
            return [self._neuron_ids.copy(), np.asarray(k, dtype=np.float64)]
        if name == "text":
            rows = np.array(self._text_rows, dtype=np.int64).reshape(-1, 2)
            return [rows[:, 0], rows[:, 1]]
        return [np.empty(0, np.int64) for _ in BASE_SCHEMAS[name]]


class FactSource(TableSource):
    """Base relations given as rows of Python values (symbols as text).

    What a proof verifier re-derives an answer from: only the facts a node
    proved, so a row that follows from them follows from the proven state.
    """

    def __init__(
        self, facts: dict[str, list[list[object]]], **options: Unpack[SourceOptions]
    ) -> None:
        super().__init__(**options)
        self._index: dict[str, int] = {}
        self._texts: list[str] = []
        self._facts: dict[str, list[list[object]]] = {}
        for name, rows in facts.items():
            schema = BASE_SCHEMAS.get(name)
            if schema is None:
                raise KeyError(name)
            self._facts[name] = [
                [self._intern(v) if t == SYM else v for v, t in zip(row, schema, strict=True)]
                for row in rows
            ]
        self.symbols = SymbolTable(1 << 62, lambda text: self._index.get(text, -1), self._spell)

    def _intern(self, text: object) -> int:
        key = str(text)
        found = self._index.get(key)
        if found is None:
            found = self._index[key] = len(self._texts)
            self._texts.append(key)
        return found

    def _spell(self, ids: np.ndarray) -> list[str]:
        return [self._texts[i] for i in np.asarray(ids, dtype=np.int64).tolist()]

    def view(self) -> GraphView:
        raise KeyError("a fact source has no graph for operators")

    def link_adjacency(self) -> LinkAdjacency | None:
        return None

    def _columns(self, name: str) -> Columns:
        schema = BASE_SCHEMAS[name]
        rows = self._facts.get(name, [])
        return [
            np.array([r[k] for r in rows], dtype=np.float64 if t == FLOAT else np.int64)
            for k, t in enumerate(schema)
        ]
