"""Blobs between nodes: a Kademlia DHT says who holds a blob, and its blocks come
over QUIC from them, each checked against its CID.

A :class:`BlobNet` is a node extension (``focusflow.node.extensions``). Attached
to a validator or a full node with a network, it

* joins the DHT (``net.dht``) through the node's configured peers once the
  transport listens, and looks again (bucket refresh) every ``blob_refresh``
  seconds, sooner while its table is empty;
* announces every blob pinned in the node's chunk store as a provider record
  (the DHT key is ``dht.content_key`` of the root CID): those pinned when it
  starts, each new one as it is pinned (a put through the API, a fetch), and all
  of them again every ``blob_republish`` seconds, before records expire;
* serves ``blob.block``: the request is a binary block CID (36 bytes, nothing
  else), the answer the block as stored, checked against its CID on the way out,
  or the error ``blob_error`` when it is not here;
* fetches a blob (:meth:`BlobNet.fetch`, ``POST /v1/blobs/{cid}/fetch``): asks the
  DHT for up to ``PROVIDERS_WANTED`` holders, then fetches the DAG from all of
  them at once (``services.storage.fetch``: bounded in flight per peer and in
  all, each block checked, a peer serving a block that does not hash reported
  to the transport's scoring and left out, one that fails left out), pins it,
  and announces it: the node now holds it too.

Requests are bounded before they are read (a block request is exactly one CID);
answers are bounded by their kind's size before they are hashed. At most
``MAX_FETCHES`` fetches run at once; a second fetch of a blob being fetched
waits for the first.

It keeps what the chain asks to be kept: a blob named by a ``pin.request``
committed in a block (``modules.proofs``) is fetched and pinned when it is at
most ``blob_pin_max_bytes`` and its bounty pays at least
``blob_pin_min_bounty_per_mib`` per started MiB (a request that pays less is a
cheap way to fill every node's disk), so the node holds it and can earn the
bounty with proofs of retrievability. ``blob rm`` unpins it again.

config.json keys: ``blob_republish`` (seconds, default 12 h), ``blob_refresh``
(seconds, default 1 h), ``blob_pin_requested`` (default true),
``blob_pin_max_bytes`` (default 1 GiB: also the largest blob any fetch takes,
checked on its root before a chunk is asked for), ``blob_pin_min_bounty_per_mib``
(default 1,000). A test's fault plan (``node.faults.FaultPlan``, read from the
host) may make it serve every block with its first byte flipped
(``blob_serve_corrupt``: a node that lies about what it holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from focusflow.core.errors import InvalidParameterError
from focusflow.net import Offence
from focusflow.net.dht import Contact, Dht, content_key
from focusflow.net.errors import InvalidMessageError, NetError
from focusflow.services.storage import dag
from focusflow.services.storage.chunk_store import ChunkStore
from focusflow.services.storage.dag import BlobError
from focusflow.services.storage.fetch import (
    BlobUnavailableError,
    FetchResult,
    block_limit,
    fetch_dag,
)

if TYPE_CHECKING:
    from focusflow.node.extensions import ExtensionHost
    from focusflow.node.faults import FaultPlan

log = logging.getLogger("focusflow.node.blobs")

#: Request name of one block.
BLOCK = "blob.block"
#: Holders a fetch asks the DHT for (it fetches from all it finds).
PROVIDERS_WANTED = 8
#: Fetches running at once (more wait their turn).
MAX_FETCHES = 4
#: Seconds one block request may take.
BLOCK_TIMEOUT = 10.0
#: Seconds between tries to join the DHT while the routing table is empty.
JOIN_RETRY = 2.0
DEFAULT_REPUBLISH = 12 * 3600.0
DEFAULT_REFRESH = 3600.0
DEFAULT_PIN_MAX_BYTES = 1 << 30
DEFAULT_PIN_MIN_BOUNTY_PER_MIB = 1_000
MIB = 1 << 20


@dataclass(frozen=True)
class BlobNetConfig:
    """Blob-transfer settings of a node (config.json keys in the module docstring)."""

    republish: float = DEFAULT_REPUBLISH
    refresh: float = DEFAULT_REFRESH
    pin_requested: bool = True
    pin_max_bytes: int = DEFAULT_PIN_MAX_BYTES
    pin_min_bounty_per_mib: int = DEFAULT_PIN_MIN_BOUNTY_PER_MIB

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> BlobNetConfig:
        """The settings in ``config``; InvalidParameterError for a wrong value."""
        values: list[float] = []
        for key, default in (
            ("blob_republish", DEFAULT_REPUBLISH),
            ("blob_refresh", DEFAULT_REFRESH),
        ):
            value = config.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParameterError(f"config.json: {key} must be a number of seconds")
            if not 1.0 <= value <= 7 * 24 * 3600:
                raise InvalidParameterError(
                    f"config.json: {key} must be from 1 to 604800 seconds, not {value!r}"
                )
            values.append(float(value))
        flags = []
        for key, default in (("blob_pin_requested", True),):
            flag = config.get(key, default)
            if not isinstance(flag, bool):
                raise InvalidParameterError(f"config.json: {key} must be true or false")
            flags.append(flag)
        amounts = []
        for key, default in (
            ("blob_pin_max_bytes", DEFAULT_PIN_MAX_BYTES),
            ("blob_pin_min_bounty_per_mib", DEFAULT_PIN_MIN_BOUNTY_PER_MIB),
        ):
            amount = config.get(key, default)
            if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount < 2**63:
                raise InvalidParameterError(f"config.json: {key} must be a non-negative integer")
            amounts.append(amount)
        return cls(values[0], values[1], flags[0], amounts[0], amounts[1])


class _Source:
    """``services.storage.fetch.BlockSource`` over the node's transport."""

    def __init__(self, dht: Dht, contacts: dict[bytes, Contact]) -> None:
        self.dht = dht
        self.contacts = contacts

    async def get(self, peer: bytes, cid: bytes) -> bytes:
        node = self.dht.node
        await asyncio.wait_for(node.connect(self.contacts[peer].address), BLOCK_TIMEOUT)
        data = await node.request(peer, BLOCK, cid, BLOCK_TIMEOUT)
        if len(data) > block_limit(cid):
            raise BlobError(f"block {cid.hex()} of {len(data)} bytes is over its kind's size")
        return data

    def blame(self, peer: bytes, why: str) -> None:
        self.dht.node.report(peer, Offence.INVALID, why)


class BlobNet:
    """Blobs found through the DHT and moved over QUIC (module docstring)."""

    def __init__(self, config: BlobNetConfig | None = None) -> None:
        self.config = config or BlobNetConfig()
        self.store: ChunkStore | None = None
        self.dht: Dht | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetching: dict[bytes, asyncio.Future[FetchResult]] = {}
        self._fetch_slots = asyncio.Semaphore(MAX_FETCHES)
        self._joined = threading.Event()
        #: Fault injection for tests (the host's plan; None: honest).
        self.faults: FaultPlan | None = None
        #: Counters for logs and tests.
        self.stats = {"served_blocks": 0, "fetched": 0, "provided": 0}

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> BlobNet:
        return cls(BlobNetConfig.from_config(config))

    def use_store(self, store: ChunkStore) -> None:
        """The chunk store this node keeps blobs in (the API's); before attach."""
        self.store = store

    # --- attach / stop ------------------------------------------------------
    def attach(self, host: ExtensionHost) -> None:
        self.faults = host.faults
        net = host.net
        if net is None or self.store is None:
            return  # the devnet, or a node that keeps no blobs
        self._loop = asyncio.get_running_loop()
        self.dht = Dht(net)
        host.register(BLOCK, self._serve_block)
        self.store.on_pin.append(self._pinned)
        if self.config.pin_requested:
            host.on_commit(self._after_commit)
        self._spawn(self._run())

    async def stop(self) -> None:
        if self.store is not None and self._pinned in self.store.on_pin:
            self.store.on_pin.remove(self._pinned)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the DHT ------------------------------------------------------------
    async def _run(self) -> None:
        """Join, announce what is pinned, then refresh and republish on schedule."""
        assert self.dht is not None and self.store is not None
        dht = self.dht
        while True:  # the transport listens once the runtime has started it
            try:
                _ = dht.node.address
                break
            except NetError:
                await asyncio.sleep(0.05)
        while not len(dht.table):
            with contextlib.suppress(NetError, OSError, TimeoutError):
                await dht.bootstrap(dht.node.static_peers)
            if not len(dht.table):
                await asyncio.sleep(JOIN_RETRY)
        self._joined.set()
        await dht.refresh()
        for root in await asyncio.to_thread(self.store.pins):
            await self._provide(root)
        republished = refreshed = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(min(self.config.refresh, self.config.republish, 60.0))
            now = asyncio.get_running_loop().time()
            if now - refreshed >= self.config.refresh or not len(dht.table):
                with contextlib.suppress(NetError, OSError, TimeoutError):
                    await dht.bootstrap(dht.node.static_peers)
                    await dht.refresh()
                refreshed = now
            if now - republished >= self.config.republish:
                await dht.republish()
                republished = now

    async def _provide(self, root: bytes) -> None:
        assert self.dht is not None
        try:
            took = await self.dht.provide(content_key(root))
        except (NetError, OSError, TimeoutError) as exc:
            log.warning("could not announce blob %s: %s", root.hex(), exc)
            return
        self.stats["provided"] += 1
        log.info("blob announced", extra={"fields": {"cid": root.hex(), "nodes": took}})

    def _pinned(self, root: bytes) -> None:
        """A pin in the store (any thread): announce it once joined."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._spawn, self._provide_when_joined(root))

    async def _provide_when_joined(self, root: bytes) -> None:
        while not self._joined.is_set():
            await asyncio.sleep(0.1)
        await self._provide(root)

    # --- what the chain asks to be kept ------------------------------------
    def _after_commit(self, event: Any) -> None:
        """A committed block (a worker thread): fetch the blobs its pin requests
        name, within this node's limits."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for receipt in event.result.receipts:
            for e in receipt.events:
                if e.get("type") == "pin.request" and self._worth_keeping(e):
                    loop.call_soon_threadsafe(self._spawn, self._keep(bytes(e["cid"])))

    def _worth_keeping(self, request: dict[str, Any]) -> bool:
        size, bounty = request.get("size"), request.get("bounty")
        if not isinstance(size, int) or not isinstance(bounty, int):
            return False
        mibs = -(-size // MIB)
        return size <= self.config.pin_max_bytes and (
            bounty >= mibs * self.config.pin_min_bounty_per_mib
        )

    async def _keep(self, root: bytes) -> None:
        while not self._joined.is_set():
            await asyncio.sleep(0.1)
        try:
            result = await self.fetch(root)
        except (BlobError, NetError, OSError) as exc:
            log.warning("could not keep a requested blob %s: %s", root.hex(), exc)
            return
        log.info(
            "kept a requested blob",
            extra={"fields": {"cid": root.hex(), "size": result.put.size}},
        )

    # --- serving ------------------------------------------------------------
    async def _serve_block(self, peer_id: bytes, payload: bytes) -> bytes:
        assert self.store is not None
        cid = bytes(payload)
        try:
            dag.codec_of(cid)
        except BlobError:
            raise InvalidMessageError("a block request is one binary CID") from None
        data = self.store.block(cid)
        if data is None:
            raise BlobError(f"block {cid.hex()} is not here")
        self.stats["served_blocks"] += 1
        if self.faults is not None and self.faults.blob_serve_corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    # --- fetching -----------------------------------------------------------
    async def fetch(self, root: bytes) -> FetchResult:
        """The blob under ``root`` fetched from the nodes that hold it, pinned here
        and announced. BlobUnavailableError when no node holds all of it."""
        dag.codec_of(root)
        if self.dht is None or self.store is None:
            raise BlobUnavailableError("this node has no network to fetch blobs from")
        running = self._fetching.get(root)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[FetchResult] = asyncio.get_running_loop().create_future()
        self._fetching[root] = future
        try:
            async with self._fetch_slots:
                result = await self._fetch(root)
            future.set_result(result)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._fetching[root]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: waiters, if any, got it too
        return result

    async def _fetch(self, root: bytes) -> FetchResult:
        assert self.dht is not None and self.store is not None
        if self.store.pinned(root) is None:
            providers = await self.dht.find_providers(content_key(root), PROVIDERS_WANTED)
            others = {c.node_id: c for c in providers if c.node_id != self.dht.node.id}
            if not others:
                raise BlobUnavailableError(f"no node says it holds blob {root.hex()}")
        else:
            others = {}
        result = await fetch_dag(
            root,
            list(others),
            _Source(self.dht, others),
            self.store,
            max_bytes=self.config.pin_max_bytes,
        )
        self.stats["fetched"] += 1
        log.info(
            "blob fetched",
            extra={
                "fields": {
                    "cid": root.hex(),
                    "size": result.put.size,
                    "new_bytes": result.put.new_bytes,
                    "peers": len(result.by_peer),
                    "dropped": len(result.dropped),
                }
            },
        )
        return result


__all__ = ["BLOCK", "BlobNet", "BlobNetConfig"]
