"""Fetching a blob's DAG from the peers that hold it: every block checked before
it is kept, the work spread over the peers, a peer that fails or lies left out.

A fetch walks the DAG level by level from its root: the blocks of a level that
the local store lacks are put in one queue, and each provider gets
``per_peer`` workers that take from it, so a fast peer serves more than a slow
one and no peer is asked for more than ``per_peer`` blocks at once; at most
``in_flight`` requests are out in all. A block is accepted only once it hashes
to its CID and is no larger than its kind may be (``dag.CHUNK_MAX`` for a
chunk, ``dag.MAX_NODE_BYTES`` for a node). A peer whose block does not hash is
blamed (``BlockSource.blame``: the network scores it down) and asked for
nothing more in this fetch; a peer that cannot be reached, refuses or times out
is asked for nothing more either. Its block goes back in the queue for the
others. Once the queue is empty, a block that has waited ``HEDGE_AFTER``
seconds at one peer is asked of an idle peer too, and the first good answer is
kept: a holder that died mid-transfer (its requests only time out) or crawls
costs a second, not a request timeout. When no peer is left the fetch fails
with ``blob_unavailable`` and pins nothing: what it stored waits for the
store's ``gc``.

Blocks are written in batches of ``BATCH_BYTES`` from a worker thread (the
event loop keeps serving), and the root is pinned only once every block of its
DAG is in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from focusflow.core.errors import FocusflowError
from focusflow.services.storage import dag
from focusflow.services.storage.chunk_store import ChunkStore, PutResult
from focusflow.services.storage.dag import BlobError

#: Blocks one peer is asked for at once, and requests out in all.
PER_PEER = 4
IN_FLIGHT = 16
#: Bytes of fetched blocks written to the store per batch.
BATCH_BYTES = 8 << 20
#: Seconds a block may wait at one peer before an idle peer is asked for it too.
HEDGE_AFTER = 1.0


class BlobUnavailableError(BlobError):
    """No peer that was asked could give a block of the blob."""

    code = "blob_unavailable"


class BlockSource(Protocol):
    """The network as a fetch sees it."""

    async def get(self, peer: bytes, cid: bytes) -> bytes:
        """One block from ``peer`` (any exception: the peer failed)."""
        ...

    def blame(self, peer: bytes, why: str) -> None:
        """``peer`` served a block that is not what its CID says."""
        ...


class BlobFetcher(Protocol):
    """What fetches blobs for a node's API (``node.blob_net.BlobNet``)."""

    async def fetch(self, root: bytes) -> FetchResult:
        """The blob under ``root`` fetched from its holders and pinned here."""
        ...


@dataclass
class FetchResult:
    """What a fetch stored and from whom: the pin's ``PutResult`` and the blocks
    and bytes each peer gave, the peers left out and why."""

    put: PutResult
    fetched_blocks: int = 0
    fetched_chunks: int = 0
    fetched_bytes: int = 0
    by_peer: dict[bytes, int] = field(default_factory=dict)
    dropped: dict[bytes, str] = field(default_factory=dict)


def block_limit(cid: bytes) -> int:
    """The most bytes a block of ``cid``'s kind may have."""
    return dag.CHUNK_MAX if dag.codec_of(cid) == dag.RAW else dag.MAX_NODE_BYTES


class _Level:
    """One level's fetch: the queue, who is asked for what, what came back."""

    def __init__(self, fetch: _Fetch, wanted: list[bytes]) -> None:
        self.fetch = fetch
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        for cid in wanted:
            self.queue.put_nowait(cid)
        self.left = len(wanted)
        self.done = asyncio.Event()
        if not wanted:
            self.done.set()
        #: Blocks asked for and not answered yet: the peers asked, since when.
        self.asked: dict[bytes, tuple[set[bytes], float]] = {}
        self.kept: set[bytes] = set()

    def _overdue(self, peer: bytes) -> bytes | None:
        """The block asked of others longest ago, if over ``HEDGE_AFTER`` seconds
        and asked of one peer only: the endgame (BitTorrent's), where a block
        stuck at a slow or dead peer is asked of an idle one too."""
        now = asyncio.get_running_loop().time()
        for cid, (peers, since) in self.asked.items():
            if peer not in peers and len(peers) == 1 and now - since >= HEDGE_AFTER:
                return cid
        return None

    async def _next(self, peer: bytes) -> bytes | None:
        """The next block for ``peer`` to ask for; None once the level ended."""
        while not self.done.is_set():
            with contextlib.suppress(asyncio.QueueEmpty):
                return self.queue.get_nowait()
            overdue = self._overdue(peer)
            if overdue is not None:
                return overdue
            getter = asyncio.ensure_future(self.queue.get())
            ended = asyncio.ensure_future(self.done.wait())
            try:
                await asyncio.wait(
                    {getter, ended},
                    timeout=HEDGE_AFTER / 4,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:  # also when this worker is cancelled: no task left behind
                ended.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                return getter.result()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
        return None

    async def worker(self, peer: bytes) -> None:
        fetch = self.fetch
        while peer not in fetch.result.dropped:
            cid = await self._next(peer)
            if cid is None:
                return
            peers, since = self.asked.get(cid, (set(), asyncio.get_running_loop().time()))
            peers.add(peer)
            self.asked[cid] = (peers, since)
            data = await fetch.ask(peer, cid)
            peers.discard(peer)
            if cid in self.kept:
                continue  # another peer's answer came first
            if data is None:
                if not peers:  # nobody else is asked for it: back in the queue
                    self.asked.pop(cid, None)
                    self.queue.put_nowait(cid)
                if not fetch.live_peers():
                    self.done.set()
                return
            self.asked.pop(cid, None)
            self.kept.add(cid)
            await fetch.keep(cid, data)
            self.left -= 1
            if self.left == 0:
                self.done.set()


class _Fetch:
    def __init__(
        self,
        root: bytes,
        peers: Sequence[bytes],
        source: BlockSource,
        store: ChunkStore,
        per_peer: int,
        in_flight: int,
        progress: Callable[[int], None] | None,
        max_bytes: int,
    ) -> None:
        self.root = root
        self.peers = list(dict.fromkeys(peers))
        self.source = source
        self.store = store
        self.per_peer = per_peer
        self.slots = asyncio.Semaphore(in_flight)
        self.progress = progress
        self.max_bytes = max_bytes
        self.result = FetchResult(PutResult(root, 0, 0, 0, 0))
        self.batch: list[tuple[bytes, bytes]] = []
        self.batch_bytes = 0
        #: Nodes of the level being fetched (decoded into the next level).
        self.nodes: dict[bytes, bytes] = {}

    def live_peers(self) -> list[bytes]:
        return [p for p in self.peers if p not in self.result.dropped]

    async def ask(self, peer: bytes, cid: bytes) -> bytes | None:
        """The block from ``peer``, checked; None (and the peer dropped) if not."""
        async with self.slots:
            try:
                data = await self.source.get(peer, cid)
            except (FocusflowError, OSError, TimeoutError) as exc:
                self.result.dropped.setdefault(peer, f"failed: {exc}")
                return None
        try:
            if len(data) > block_limit(cid):
                raise BlobError(f"block {cid.hex()} of {len(data)} bytes is over its kind's size")
            dag.verify_block(cid, data)
        except BlobError as exc:
            self.source.blame(peer, exc.message)
            self.result.dropped.setdefault(peer, f"lied: {exc.message}")
            return None
        self.result.by_peer[peer] = self.result.by_peer.get(peer, 0) + 1
        return data

    async def keep(self, cid: bytes, data: bytes) -> None:
        self.result.fetched_blocks += 1
        self.result.fetched_bytes += len(data)
        if dag.codec_of(cid) == dag.DAG_CBOR:
            self.nodes[cid] = data
        else:
            self.result.fetched_chunks += 1
        self.batch.append((cid, data))
        self.batch_bytes += len(data)
        if self.progress is not None:
            self.progress(len(data))
        if self.batch_bytes >= BATCH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        if batch:
            await asyncio.to_thread(self.store.add_blocks, batch)

    async def level(self, wanted: list[bytes]) -> None:
        """Fetch ``wanted`` (blocks not in the store) from the live peers."""
        state = _Level(self, wanted)
        workers = [
            asyncio.ensure_future(state.worker(peer))
            for peer in (self.live_peers() if wanted else [])
            for _ in range(self.per_peer)
        ]
        try:
            if workers:
                await state.done.wait()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if state.left:
            why = "; ".join(
                f"{peer.hex()[:16]} {reason}" for peer, reason in self.result.dropped.items()
            )
            raise BlobUnavailableError(
                f"blob {self.root.hex()}: {state.left} blocks found on none of "
                f"{len(self.peers)} peers" + (f" ({why})" if why else "")
            )
        await self.flush()

    async def run(self) -> FetchResult:
        frontier = [self.root]
        for _ in range(dag.MAX_DEPTH + 2):
            if not frontier:
                break
            local: dict[bytes, bytes] = {}
            wanted = []
            for cid in dict.fromkeys(frontier):
                data = self.store.block(cid) if dag.codec_of(cid) == dag.DAG_CBOR else None
                if data is not None:
                    local[cid] = data
                elif not self.store.has(cid):
                    wanted.append(cid)
            self.nodes = {}
            await self.level(wanted)
            below: list[bytes] = []
            for cid in dict.fromkeys(frontier):
                data = local.get(cid) or self.nodes.get(cid)
                if data is None:
                    continue
                links = dag.decode_node(data)
                if cid == self.root and sum(link.size for link in links) > self.max_bytes:
                    raise BlobError(f"blob {cid.hex()} is over {self.max_bytes} bytes")
                below.extend(link.cid for link in links)
            frontier = below
        else:
            raise BlobError(f"blob {self.root.hex()} is deeper than {dag.MAX_DEPTH} levels")
        put = await asyncio.to_thread(self.store.pin, self.root)
        self.result.put = replace(
            put, new_chunks=self.result.fetched_chunks, new_bytes=self.result.fetched_bytes
        )
        return self.result


async def fetch_dag(
    root: bytes,
    peers: Sequence[bytes],
    source: BlockSource,
    store: ChunkStore,
    *,
    per_peer: int = PER_PEER,
    in_flight: int = IN_FLIGHT,
    progress: Callable[[int], None] | None = None,
    max_bytes: int = dag.MAX_BLOB_BYTES,
) -> FetchResult:
    """Fetch the blob under ``root`` from ``peers`` into ``store`` and pin it
    (module docstring). ``progress(n)`` is told of each block's bytes as it is
    kept. BlobUnavailableError when the peers cannot give it all; BlobError for a
    DAG that is malformed, deeper than ``dag.MAX_DEPTH`` or over ``max_bytes``
    (checked on its root before its chunks are asked for)."""
    dag.codec_of(root)
    if store.pinned(root) is not None:
        return FetchResult(await asyncio.to_thread(store.pin, root))
    fetch = _Fetch(root, peers, source, store, per_peer, in_flight, progress, max_bytes)
    return await fetch.run()
