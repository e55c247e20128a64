"""Base relations of a node's committed state at one height.

The graph relations (``particle``, ``link``, ``weight``, ``neuron_link``,
``stake``, ``focus``, ``karma``) come from the block's :class:`FocusView`,
the immutable picture the producer publishes after every block, so a query
never blocks the chain and a node that keeps the last few views answers
"as of" any of them exactly. ``name`` and ``balance`` are read from the
store, which keeps only current values; a source is given a
:class:`StoreSnapshot` of the store taken when its height was the newest (an
LMDB read transaction, the store as it was then), and reads them there, so
they stay right as of its height while later blocks commit. A source with no
snapshot offers them only while the store is still at its height, and
refuses them with a precise error after. ``block`` lists the stored headers
up to the height. How names and balances
are laid out in the state is the modules' business: the node passes readers
for them (``head_relations``). ``text`` pairs the particles of the view with
the texts the node keeps (``texts``: its text store's pairs); texts are
content, not state, so the relation holds the texts kept now for the
particles of the graph at the source's height, and no proof covers them.

Symbols: particles are ``0..P-1`` (their indices in the view, so the graph
operators run in the same numbering), neuron ``j`` is ``NEURONS + j`` and
addresses, names and block hashes that are no particle or neuron count up
from ``EXTRAS``: fixed offsets, so a symbol keeps its id while the graph
grows (which the views maintained block by block rely on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol, Unpack

import numpy as np

from focusflow.chain.focus_view import FocusView
from focusflow.core.cid import cid_from_bytes, cid_to_bytes
from focusflow.core.errors import FocusflowError
from focusflow.core.keys import decode_address, encode_address
from focusflow.graph.csr import build_csr
from focusflow.graph.snapshot import Snapshot
from focusflow.query.analysis import SYM
from focusflow.query.errors import HeightUnavailableError
from focusflow.query.sources import Columns, GraphView, SourceOptions, TableSource, csr_columns
from focusflow.query.symbols import SymbolTable

INT_MAX = (1 << 63) - 1
HEAD_ONLY = frozenset({"name", "balance"})
NEURONS = 1 << 40
EXTRAS = 1 << 41


# Rows of a relation read from the store: symbols as text, numbers as ints.
HeadRelation = Callable[[Any], Iterable[tuple[str | int, ...]]]
# The node's kept texts: ``(binary CID, text)`` of each.
TextPairs = Callable[[], Iterable[tuple[bytes, str]]]


class ChainReader(Protocol):
    """What the source reads of the chain: a store reader and block headers."""

    @property
    def height(self) -> int: ...

    def reader(self) -> Any: ...

    def block_record(self, height: int) -> Any: ...


class StoreSnapshot:
    """The store's read transaction at one height, shared by the sources at
    that height and closed when the last holder releases it.

    A read transaction keeps the store's pages of its version from being
    reused, so a node holds one per kept height (a few blocks' writes). It may
    move between threads but serves one at a time: read it through
    :meth:`reading`.
    """

    def __init__(self, stack: ExitStack, reader: Any) -> None:
        self._stack = stack
        self._reader = reader
        self.height: int = reader.height
        self._holders = 1
        self._lock = threading.Lock()
        self._use = threading.Lock()

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """The store reader at this height, for this thread alone meanwhile."""
        with self._use:
            if self.closed:
                raise RuntimeError("this store snapshot is closed")
            yield self._reader

    @classmethod
    def take(cls, chain: ChainReader, height: int) -> StoreSnapshot | None:
        """The store at ``height``, or None if it has moved past it already."""
        stack = ExitStack()
        reader = stack.enter_context(chain.reader())
        if reader.height != height:
            stack.close()
            return None
        return cls(stack, reader)

    def acquire(self) -> StoreSnapshot:
        with self._lock:
            if self._holders == 0:
                raise RuntimeError("this store snapshot is closed")
            self._holders += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            done = self._holders == 0
        if done:
            self._stack.close()

    @property
    def closed(self) -> bool:
        return self._holders == 0


class NodeSourceOptions(SourceOptions, total=False):
    """:class:`NodeSource`'s keyword arguments, for a subclass to pass on."""

    head_relations: Mapping[str, HeadRelation] | None
    snapshot: StoreSnapshot | None
    texts: TextPairs | None


class NodeSource(TableSource):
    """The state at ``view.height`` (the view the producer published for it)."""

    def __init__(
        self,
        view: FocusView,
        chain: ChainReader,
        *,
        head_relations: Mapping[str, HeadRelation] | None = None,
        snapshot: StoreSnapshot | None = None,
        texts: TextPairs | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        super().__init__(**options)
        self.texts = texts
        self._snapshot: StoreSnapshot | None = None
        self.hold(snapshot)
        self.fview = view
        self.chain = chain
        self.head_relations = dict(head_relations or {})
        self.height = view.height
        self.state_root = self.state_root_at(view.height)
        self._p = view.n_particles
        self._n = view.n_neurons
        self._extra: dict[str, int] = {}
        self._extra_names: list[str] = []
        self.symbols = SymbolTable(1 << 62, self._lookup, self._spell)
        self._view: GraphView | None = None

    def hold(self, snapshot: StoreSnapshot | None) -> None:
        """Read the head-only relations from ``snapshot`` (None: from the store
        while it is at this height), releasing the one held before."""
        if snapshot is not None:
            snapshot.acquire()
        old, self._snapshot = self._snapshot, snapshot
        if old is not None:
            old.release()

    def close(self) -> None:
        super().close()
        self.hold(None)

    def state_root_at(self, height: int) -> str | None:
        """The state root of the stored block at ``height`` (hex), if stored."""
        record = self.chain.block_record(height)
        return record.block.header.state_root.hex() if record is not None else None

    # --- symbols -------------------------------------------------------------
    def _extra_id(self, text: str) -> int:
        found = self._lookup(text)
        if found >= 0:
            return found
        sid = EXTRAS + len(self._extra_names)
        self._extra[text] = sid
        self._extra_names.append(text)
        return sid

    def _lookup(self, text: str) -> int:
        v = self.fview
        try:
            found = v.particle_table.get(cid_to_bytes(text))
            if 0 <= found < self._p:
                return found
        except (FocusflowError, ValueError):
            pass
        try:
            j = v.neuron_table.get(decode_address(text))
            if 0 <= j < self._n:
                return NEURONS + j
        except (FocusflowError, ValueError):
            pass
        return self._extra.get(text, -1)

    def _spell(self, ids: np.ndarray) -> list[str]:
        v = self.fview
        out = []
        for i in np.asarray(ids, dtype=np.int64).tolist():
            if i < NEURONS:
                out.append(cid_from_bytes(v.particles[i]))
            elif i < EXTRAS:
                out.append(encode_address(v.neurons[i - NEURONS]))
            else:
                out.append(self._extra_names[i - EXTRAS])
        return out

    # --- relations -----------------------------------------------------------
    def view(self) -> GraphView:
        if self._view is None:
            v = self.fview
            w = v.link_weights(np.arange(v.n_links))
            indptr, indices, weights, *_ = build_csr(v.n_particles, v.src, v.dst, w)
            n = v.n_particles

            def snapshot() -> Snapshot:
                import scipy.sparse as sp

                from focusflow.focus.solver import snapshot_of

                return snapshot_of(sp.csr_matrix((weights, indices, indptr), shape=(n, n)))[0]

            self._view = GraphView(n, indptr, indices.astype(np.int64), weights, snapshot)
        return self._view

    def _columns(self, name: str) -> Columns:
        v = self.fview
        p, n = self._p, self._n
        if name == "particle":
            return [np.arange(p, dtype=np.int64)]
        if name in ("link", "weight"):
            g = self.view()
            src, dst = csr_columns(g.indptr, g.indices)
            return [src, dst] if name == "link" else [src, dst, g.weights]
        if name == "neuron_link":
            named = np.flatnonzero(v.neuron >= 0)
            cols = [v.neuron[named].astype(np.int64) + NEURONS, v.src[named], v.dst[named]]
            triples = np.unique(np.stack([c.astype(np.int64) for c in cols], 1), axis=0)
            return [triples[:, 0], triples[:, 1], triples[:, 2]]
        if name == "stake":
            return [
                np.arange(NEURONS, NEURONS + n, dtype=np.int64),
                v.stakes[:n].astype(np.float64),
            ]
        if name == "focus":
            phi = v.q.astype(np.float64) / v.scale
            total = phi.sum()
            return [np.arange(p, dtype=np.int64), phi / total if total > 0 else phi]
        if name == "karma":
            return [
                np.arange(NEURONS, NEURONS + n, dtype=np.int64),
                np.asarray(v.karma, np.float64),
            ]
        if name in HEAD_ONLY:
            return self._from_store(name)
        readers = {"block": self._read_blocks, "text": self._read_texts}
        if name not in readers:
            raise KeyError(name)
        return readers[name]()

    def _read_texts(self) -> Columns:
        table, p = self.fview.particle_table, self._p
        particles, texts = [], []
        for cid, text in self.texts() if self.texts is not None else ():
            i = table.get(cid)
            if 0 <= i < p:
                particles.append(i)
                texts.append(self._extra_id(text))
        return [np.array(particles, np.int64), np.array(texts, np.int64)]

    def _from_store(self, name: str) -> Columns:
        """A relation the store holds only at the newest height, read through the
        node's reader for it (the state's layout is the modules' business)."""
        schema = self.schema(name) or ()
        read = self.head_relations.get(name)
        cols: list[list[int]] = [[] for _ in schema]
        with ExitStack() as stack:
            if self._snapshot is not None and self._snapshot.height == self.height:
                r = stack.enter_context(self._snapshot.reading())
            else:
                r = stack.enter_context(self.chain.reader())
                self._at_head(r, name)
            for row in read(r) if read is not None else ():
                for k, (value, t) in enumerate(zip(row, schema, strict=True)):
                    cols[k].append(
                        self._extra_id(str(value)) if t == SYM else min(int(value), INT_MAX)
                    )
        return [np.array(c, dtype=np.int64) for c in cols]

    def _at_head(self, reader: Any, name: str) -> None:
        """The store keeps current values only: refuse them for an older height."""
        if reader.height != self.height:
            raise HeightUnavailableError(
                f"{name} is kept at the newest height only (now {reader.height}); "
                f"this query is at height {self.height}"
            )

    def _read_blocks(self) -> Columns:
        heights, hashes, times = [], [], []
        for h in range(1, self.fview.height + 1):
            record = self.chain.block_record(h)
            if record is None:
                continue
            header = record.block.header
            heights.append(h)
            hashes.append(self._extra_id(header.hash.hex()))
            times.append(header.time_ms)
        return [np.array(heights, np.int64), np.array(hashes, np.int64), np.array(times, np.int64)]
