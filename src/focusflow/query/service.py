"""A node's query service: answers at recent heights, and the views it maintains.

Readers never wait for the chain and the chain never waits for readers: each
answer runs over a :class:`NodeSource` built from the immutable view the
producer published for its height (the last ``KEEP_HEIGHTS`` are kept), at
most ``max_running`` at a time and one per client (others wait in a bounded
queue, then are refused with ``query_busy``: ``query.slots``), each under the
service's time, row and memory bounds. Views
are brought up to date on a worker thread of their own: the block listener
only hands over the newest published view, so a slow view delays its own
answers, never a block.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from focusflow.chain.focus_view import FocusView
from focusflow.query.engine import Answer, evaluate
from focusflow.query.errors import HeightUnavailableError, QueryLimitError
from focusflow.query.limits import Limits
from focusflow.query.node_source import (
    ChainReader,
    HeadRelation,
    NodeSource,
    StoreSnapshot,
    TextPairs,
)
from focusflow.query.slots import ClientSlots
from focusflow.query.views import LiveSource, MaintainedView, ViewSet

log = logging.getLogger(__name__)

KEEP_HEIGHTS = 4
MAX_VIEWS = 16


#: A node's query bounds unless it is given others: 30 s, 20 million derived
#: rows, 100,000 rows in an answer (docs/api.md).
NODE_LIMITS = Limits(timeout_s=30.0, max_rows=20_000_000, max_output=100_000)


class QueryNode(Protocol):
    """What the service reads of the node (read-only, so a node's own chain
    and view types satisfy it)."""

    @property
    def chain(self) -> ChainReader: ...

    @property
    def view(self) -> FocusView: ...


Listener = Callable[[str, int, list[list[Any]]], None]


class QueryService:
    def __init__(
        self,
        node: QueryNode,
        *,
        limits: Limits | None = None,
        max_running: int = 2,
        memory_limit: str = "2GB",
        head_relations: Mapping[str, HeadRelation] | None = None,
        texts: TextPairs | None = None,
    ) -> None:
        self.node = node
        self.head_relations = dict(head_relations or {})
        #: The node's kept texts, for the ``text`` relation (None: it is empty).
        self.texts = texts
        self.limits = limits or NODE_LIMITS
        self.memory_limit = memory_limit
        self.slots = ClientSlots(max_running)
        self._lock = threading.Lock()
        self._sources: OrderedDict[int, NodeSource] = OrderedDict()
        # Answers running on each source: one that falls out of the kept
        # heights mid-answer is closed by its last reader, not under it.
        self._readers: dict[int, int] = {}
        self._retired: dict[int, NodeSource] = {}
        self._views: list[FocusView] = []
        # The store as it was at each kept height (taken as its block is
        # announced), so names and balances are answered as of any of them.
        self._snapshots: dict[int, StoreSnapshot] = {}
        self._viewset: ViewSet | None = None
        self._view_lock = threading.Lock()
        self._pending: FocusView | None = None
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None
        self._stopped = False
        self.listeners: list[Listener] = []

    # --- heights -------------------------------------------------------------
    def on_block(self, event: Any) -> None:
        """Block listener: remember the new view, wake the view worker."""
        view = event.view
        with self._lock:
            if not self._views or self._views[-1].height != view.height:
                self._keep_locked(view)
        if self._viewset is not None:
            with self._wake:
                self._pending = view
                self._wake.notify()

    def _keep_locked(self, view: FocusView) -> None:
        """Keep ``view`` as the newest height, with the store's snapshot at it
        when the store has not moved past it (it has not while the block's
        listeners run: the next block commits after them)."""
        self._views.append(view)
        del self._views[:-KEEP_HEIGHTS]
        if view.height not in self._snapshots:
            snapshot = StoreSnapshot.take(self.node.chain, view.height)
            if snapshot is not None:
                self._snapshots[view.height] = snapshot
        kept = {v.height for v in self._views}
        for h in [h for h in self._snapshots if h not in kept]:
            self._snapshots.pop(h).release()

    def _acquire(self, height: int | None) -> StoreSnapshot | None:
        """The snapshot of a kept ``height``, held for the caller (who releases it)."""
        with self._lock:
            snapshot = self._snapshots.get(height) if height is not None else None
            return snapshot.acquire() if snapshot is not None else None

    @contextmanager
    def store_at(self, height: int | None) -> Iterator[Any]:
        """The store reader as of a kept ``height``, for this thread alone while
        the block lasts; None where no snapshot of it is kept (or ``height`` is
        None: the caller reads the current store). Proofs of an answer's facts
        are built from the store as the answer read it."""
        snapshot = self._acquire(height)
        if snapshot is None:
            yield None
            return
        try:
            with snapshot.reading() as reader:
                yield reader
        finally:
            snapshot.release()

    def source_at(self, height: int | None) -> NodeSource:
        """The source answering at ``height`` (the head when None).

        A caller that evaluates on it while blocks go on should hold it with
        :meth:`reading` instead, so it is not closed under the caller."""
        with self._lock:
            return self._source_locked(height)

    @contextmanager
    def reading(self, height: int | None) -> Iterator[NodeSource]:
        """Hold the source at ``height`` open for as long as the block lasts."""
        with self._lock:
            source = self._source_locked(height)
            key = id(source)
            self._readers[key] = self._readers.get(key, 0) + 1
        try:
            yield source
        finally:
            with self._lock:
                left = self._readers[key] - 1
                if left:
                    self._readers[key] = left
                else:
                    del self._readers[key]
                    retired = self._retired.pop(key, None)
                    if retired is not None:
                        retired.close()

    def _source_locked(self, height: int | None) -> NodeSource:
        head = self.node.view
        if not self._views or self._views[-1].height < head.height:
            self._keep_locked(head)
        kept = {v.height: v for v in self._views}
        at = head.height if height is None else height
        if at not in kept:
            low = min(kept)
            raise HeightUnavailableError(
                f"height {at} is not kept: this node answers heights {low} to {head.height}"
            )
        source = self._sources.get(at)
        if source is None:
            source = NodeSource(
                kept[at],
                self.node.chain,
                memory_limit=self.memory_limit,
                head_relations=self.head_relations,
                snapshot=self._snapshots.get(at),
                texts=self.texts,
            )
            self._sources[at] = source
            while len(self._sources) > KEEP_HEIGHTS:
                _, old = self._sources.popitem(last=False)
                if id(old) in self._readers:
                    self._retired[id(old)] = old
                else:
                    old.close()
        return source

    def query(self, program: str, output: str, **options: Any) -> Answer:
        """The answer alone; ``options`` as :meth:`query_with_view` takes them."""
        return self.query_with_view(program, output, **options)[0]

    def query_with_view(
        self,
        program: str,
        output: str,
        *,
        limit: int | None = None,
        height: int | None = None,
        timeout_s: float | None = None,
        prove: bool = False,
        client: str | None = None,
    ) -> tuple[Answer, FocusView]:
        """The answer and the view it was evaluated on: a proof of the answer
        must be built from that very view, which may no longer be kept by the
        time the caller asks for it. ``client`` is who asked over the network
        (``query.slots``: one answer of a client at a time; None, a caller in
        this process, is held to the node's slots alone); QueryBusyError when
        no slot comes free for it in time."""
        limits = self.limits
        if timeout_s is not None:
            limits = Limits(min(timeout_s, limits.timeout_s), limits.max_rows, limits.max_output)
        with self.slots.hold(client, limits.timeout_s), self.reading(height) as source:
            answer = evaluate(program, source, output, limit=limit, limits=limits, prove=prove)
            return answer, source.fview

    # --- views ---------------------------------------------------------------
    def _ensure_views(self) -> ViewSet:
        if self._viewset is None:
            head = self.node.view
            with self._lock:
                live = LiveSource(
                    head,
                    self.node.chain,
                    memory_limit=self.memory_limit,
                    head_relations=self.head_relations,
                    snapshot=self._snapshots.get(head.height),
                    texts=self.texts,
                )
            self._viewset = ViewSet(live, self.limits)
            self._worker = threading.Thread(target=self._work, name="query-views", daemon=True)
            self._worker.start()
        return self._viewset

    def register(
        self, name: str, program: str, output: str, *, integrity: bool = False
    ) -> MaintainedView:
        with self._view_lock:
            views = self._ensure_views()
            if len(views.views) >= MAX_VIEWS:
                raise QueryLimitError(f"this node keeps at most {MAX_VIEWS} views", "views")
            return views.register(name, program, output, integrity=integrity)

    def drop(self, name: str) -> None:
        with self._view_lock:
            self._ensure_views().drop(name)

    def view_status(self) -> list[dict[str, Any]]:
        with self._view_lock:
            if self._viewset is None:
                return []
            return [v.status() for v in self._viewset.views.values()]

    def read_view(self, name: str, limit: int | None = None) -> tuple[Answer, dict[str, Any]]:
        with self._view_lock:
            views = self._ensure_views()
            answer = views.read(name, limit)
            return answer, views.views[name].status()

    def wait_views(self, height: int, timeout_s: float = 10.0) -> bool:
        """Block until the views reached ``height`` (tests and scripts)."""
        with self._wake:
            return self._wake.wait_for(
                lambda: (
                    self._viewset is None
                    or all(v.height >= height for v in self._viewset.views.values())
                ),
                timeout_s,
            )

    def _work(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending is not None or self._stopped)
                if self._stopped:
                    return
                view, self._pending = self._pending, None
            assert view is not None
            with self._view_lock:
                views = self._viewset
                if views is None or view.height <= (views.live.height or 0):
                    continue
                snapshot = self._acquire(view.height)
                try:
                    added = views.advance(view, snapshot)
                except Exception:
                    log.exception("views could not advance to height %d", view.height)
                    continue
                finally:
                    if snapshot is not None:
                        snapshot.release()
                for v in views.views.values():
                    if v.integrity and v.violations:
                        log.warning(
                            "integrity view %s holds %d violations at height %d",
                            v.name,
                            v.violations,
                            view.height,
                        )
            with self._wake:
                self._wake.notify_all()
            for name, rows in added.items():
                for listener in list(self.listeners):
                    try:
                        listener(name, view.height, rows)
                    except Exception:
                        log.exception("view listener failed")

    def close(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        with self._lock:
            for source in [*self._sources.values(), *self._retired.values()]:
                source.close()
            self._sources.clear()
            self._retired.clear()
            for snapshot in self._snapshots.values():
                snapshot.release()
            self._snapshots.clear()
        if self._viewset is not None:
            self._viewset.live.close()
