"""Shards as Ray actors: one :class:`ShardState` per actor, restarted from its store.

Ray is the ``cluster`` extra, reached through :mod:`focusflow.focus.shards.cluster`
(the same connection the sharded focus solve uses) and never imported at a
module's top. An actor is created with unlimited restarts and no automatic
task retries: when its process dies, Ray starts a new one with the same
arguments, whose state loads the shard's rows from the store on the next call,
and the coordinator decides which lost calls may be sent again.

With ``compiled=True``, a single-block request (one call that the coordinator
waits for alone) goes through a Ray Compiled Graph of the shard's ``call_fast``
when one can be made: its shared-memory channel carries a call and its reply in
about a tenth of a millisecond, where an actor task costs 0.7 to 1.3 ms
(bench/konomi.py's routing overhead). The price is a core per shard: the
actor's end of a channel waits by polling, so a shard with a graph keeps one
core busy even when idle (5.06 s of CPU in 5 idle seconds, measured), and the
graph's modules add to each shard's memory. So it is off unless asked for. A
shard's graph serves one call at a time; a call that finds it busy, a batch,
and every call while a graph is broken (its actor died: it is torn down and
made again after ``RECOMPILE_S``) take the ordinary actor task instead. The
actor runs graph calls on a background thread, so its state is behind a lock.

Making a graph is start-up work, never a call's: :meth:`RayShards.start` makes
every shard's graph and sends one call through it before it returns, and a
broken graph is made again on a thread of its own. On a loaded two-core machine
a graph's making and first call took longer than a call's whole retry time, so
a healthy shard was reported unavailable when its first call paid for them.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
from types import ModuleType
from typing import Any

import numpy as np

from focusflow.konomi.errors import ShardUnavailableError
from focusflow.konomi.shards.coordinator import Reply, ShardLostError, serve
from focusflow.konomi.shards.routing import check_shards
from focusflow.konomi.shards.state import ShardState, store_url_of

#: Arrays above this size travel as Ray arguments (zero-copy through its object
#: store); everything smaller is pickled into one bytes argument.
PACKED_BYTES = 64 * 1024
#: Seconds before a shard whose compiled graph broke (or could not be made) is
#: given a new one.
RECOMPILE_S = 5.0
#: Seconds a new graph's first call may take before the graph is given up (its
#: shard answers through actor tasks until it is made again).
WARM_S = 120.0
#: Seconds :meth:`RayShards.close` waits for a graph being made before it goes on.
CLOSE_WAIT_S = 30.0


class ShardActor:
    """The body of a shard actor (made remote by :func:`start`)."""

    def __init__(self, index: int, count: int, store: str | None, redis: str | None) -> None:
        self.state = ShardState(index, count, store_url_of(store, index), redis)
        self._lock = threading.Lock()

    def call(self, method: str, args: tuple[Any, ...]) -> Reply:
        """Run one shard method (see :func:`coordinator.serve`)."""
        with self._lock:
            return serve(self.state, method, args)

    def call_packed(self, packed: bytes) -> bytes:
        """:meth:`call` for a small request, pickled by the coordinator and answered
        pickled: one bytes argument and one bytes result take Ray's fast path, a
        fifth of a millisecond less per call than a tuple of Python objects."""
        method, args = pickle.loads(packed)
        with self._lock:
            reply = serve(self.state, method, args)
        return pickle.dumps(reply, protocol=5)

    def call_fast(self, packed: bytes) -> bytes:
        """:meth:`call_packed` as the shard's compiled graph runs it (on Ray's
        background thread for the graph, beside the actor's own tasks)."""
        return self.call_packed(packed)


class _Graph:
    """One shard's compiled graph and the lock that keeps it to one call at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dag: Any = None
        self.remaking = False


class RayShards:
    """The coordinator's backend over Ray actors."""

    def __init__(self, ray: ModuleType, actors: list[Any], compiled: bool = False) -> None:
        self.ray = ray
        self.actors = actors
        self.count = len(actors)
        self.compiled = compiled
        self._graphs = [_Graph() for _ in actors]
        self._closed = threading.Event()

    @classmethod
    def start(
        cls,
        ray: ModuleType,
        count: int,
        store: str | None,
        redis: str | None = None,
        *,
        spread: bool = True,
        compiled: bool = False,
    ) -> RayShards:
        """``count`` shard actors on a connected Ray, spread over its nodes.

        ``store`` names each shard's store: ``{shard}`` in it becomes the shard's
        index (a SQLite file each), or one PostgreSQL URL for all of them.
        ``compiled``: single-block requests go through each shard's compiled
        graph, at the cost of a polling core per shard (see the module's
        docstring); by default every call is an actor task."""
        n = check_shards(count)
        remote = ray.remote(ShardActor)
        opts: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0, "num_cpus": 1}
        if spread:
            opts["scheduling_strategy"] = "SPREAD"
        actors = [remote.options(**opts).remote(i, n, store, redis) for i in range(n)]
        shards = cls(ray, actors, compiled)
        ray.get([a.call.remote("pid", ()) for a in actors], timeout=300)
        if compiled:
            for shard, graph in enumerate(shards._graphs):
                with graph.lock:
                    if not shards._make(shard, graph):
                        shards._break(shard, graph)
        return shards

    def submit(self, shard: int, method: str, args: tuple[Any, ...], alone: bool = False) -> Any:
        actor = self.actors[shard]
        if any(isinstance(a, np.ndarray) and a.nbytes > PACKED_BYTES for a in args):
            return actor.call.remote(method, args)
        packed = pickle.dumps((method, args), protocol=5)
        if alone and self.compiled:
            fast = self._submit_fast(shard, packed)
            if fast is not None:
                return fast
        return actor.call_packed.remote(packed)

    def _submit_fast(self, shard: int, packed: bytes) -> tuple[int, _Graph, Any] | None:
        """The call sent through the shard's compiled graph, or None when the graph
        is busy, broken or being made again. The graph's lock stays held until
        :meth:`result` has the reply."""
        graph = self._graphs[shard]
        if not graph.lock.acquire(blocking=False):
            return None
        if graph.dag is None:
            graph.lock.release()
            return None
        try:
            return shard, graph, graph.dag.execute(packed)
        except Exception:  # noqa: BLE001 - whatever stops the graph, the actor task remains
            self._break(shard, graph)
            graph.lock.release()
            return None

    def _compile(self, shard: int) -> Any:
        from ray.dag import InputNode

        with InputNode() as request:
            node = self.actors[shard].call_fast.bind(request)
        return node.experimental_compile()

    def _make(self, shard: int, graph: _Graph) -> bool:
        """Make the shard's graph and send one call through it, with the graph's
        lock held; False (and no graph) when either fails."""
        dag = None
        try:
            dag = self._compile(shard)
            ref = dag.execute(pickle.dumps(("pid", ()), protocol=5))
            self.ray.get(ref, timeout=WARM_S)
        except Exception:  # noqa: BLE001 - a graph that cannot be made leaves the actor task
            if dag is not None:
                _teardown(dag)
            return False
        graph.dag = dag
        return True

    def _break(self, shard: int, graph: _Graph) -> None:
        """Drop a graph that failed, with its lock held; a thread makes it again
        after ``RECOMPILE_S``. Teardown waits on the actor, which may be dead, so it
        runs on that thread too."""
        dag, graph.dag = graph.dag, None
        if graph.remaking or self._closed.is_set():
            if dag is not None:
                threading.Thread(target=_teardown, args=(dag,), daemon=True).start()
            return
        graph.remaking = True
        threading.Thread(target=self._remake, args=(shard, graph, dag), daemon=True).start()

    def _remake(self, shard: int, graph: _Graph, old: Any) -> None:
        if old is not None:
            _teardown(old)
        while not self._closed.wait(RECOMPILE_S):
            with graph.lock:
                # Cleared under the lock: a break that follows sees it and starts anew.
                if self._closed.is_set() or self._make(shard, graph):
                    graph.remaking = False
                    return

    def result(self, handle: Any, deadline: float) -> Reply:
        if isinstance(handle, tuple):
            return self._result_fast(handle, deadline)
        ex = self.ray.exceptions
        try:
            reply = self.ray.get(handle, timeout=max(0.01, deadline - time.monotonic()))
        except ex.GetTimeoutError as exc:
            raise ShardUnavailableError("a shard did not answer within the retry time") from exc
        except ex.RayActorError as exc:
            raise ShardLostError(str(exc)) from exc
        if isinstance(reply, bytes):
            unpacked: Reply = pickle.loads(reply)
            return unpacked
        out: Reply = reply
        return out

    def _result_fast(self, handle: tuple[int, _Graph, Any], deadline: float) -> Reply:
        shard, graph, ref = handle
        ex = self.ray.exceptions
        try:
            reply = self.ray.get(ref, timeout=max(0.01, deadline - time.monotonic()))
        except (ex.GetTimeoutError, ex.RayChannelTimeoutError) as exc:
            self._break(shard, graph)
            raise ShardUnavailableError("a shard did not answer within the retry time") from exc
        except Exception as exc:
            # A graph fails as a whole when its actor dies (or its channel breaks):
            # the call may or may not have run, as with a lost actor task.
            self._break(shard, graph)
            raise ShardLostError(str(exc)) from exc
        finally:
            graph.lock.release()
        unpacked: Reply = pickle.loads(reply)
        return unpacked

    def close(self) -> None:
        self._closed.set()
        for graph in self._graphs:
            held = graph.lock.acquire(timeout=CLOSE_WAIT_S)
            dag, graph.dag = graph.dag, None
            if held:
                graph.lock.release()
            if dag is not None:
                _teardown(dag)
        for a in self.actors:
            self.ray.kill(a)


def _teardown(dag: Any) -> None:
    with contextlib.suppress(Exception):
        dag.teardown()
