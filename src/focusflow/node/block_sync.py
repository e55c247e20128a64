"""Block sync: catching up on blocks the peers committed, in a task of its own.

The poll task asks every connected peer its ``status`` each POLL_INTERVAL (at
once when a peer connects, and again right after a pass that applied
blocks), believes a higher height only when a commit certificate backs it
(:mod:`focusflow.node.sync`), fetches the blocks with short timeouts (several
in flight at once), and applies each (certificate and all roots,
:meth:`Chain.apply_block`) holding the chain lock the consensus task takes for
each of its steps; then it tells the consensus driver (``Synced`` in its
inbox) to restart above them. It never runs inside the consensus task.

A peer that claims a height it cannot back or serve, or serves a block that
does not apply, loses score and is not synced from for a while; one that does
not answer a status poll is polled less. A certified block that does not
apply here goes to the ``refused_blocks`` listeners (focusflow.node.da_net
proves a bad encoding of its data square from it). When consensus makes no
progress for two poll intervals, the task also pulls the running height's
messages from every peer (``round``, peer_requests.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from focusflow.chain.errors import BlockError
from focusflow.consensus import ValidatorSet
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.net import Node
from focusflow.net.errors import NetError, RemoteError, RequestTimeoutError
from focusflow.node.halts import Halts
from focusflow.node.inbox import Inbox, Synced
from focusflow.node.runtime import BlockEvent, NodeRuntime
from focusflow.node.sync import ClaimError, check_claim, parse_status, sync_refusal_is_a_lie

log = logging.getLogger("focusflow.node")

#: Blocks fetched per sync pass before consensus gets a turn.
SYNC_BATCH = 200
#: Block requests of one sync pass in flight at once (each answer is at most a
#: block record: the peer's per-peer request limit is well above this).
SYNC_WINDOW = 8
#: Seconds between status polls of the peers.
POLL_INTERVAL = 1.0
#: Seconds a peer has to answer a status poll, and a block request of sync.
STATUS_TIMEOUT = 1.0
BLOCK_TIMEOUT = 3.0
#: Seconds a peer that failed to serve a block it claimed is not synced from,
#: and one that did not answer a status poll is not polled (each doubling on
#: each failure up to SYNC_BACKOFF_MAX; a poll answered or a reconnect ends
#: the second).
SYNC_BACKOFF = 5.0
SYNC_BACKOFF_MAX = 60.0

#: Starts a coroutine as one of the node's tasks.
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class SyncedConsensus(Protocol):
    """What block sync reads of the consensus driver, and the one thing it sets."""

    @property
    def started(self) -> bool:
        """Whether consensus runs a height."""
        ...

    @property
    def vset(self) -> ValidatorSet:
        """The validator set of the height under consensus (checks a peer's claim)."""
        ...

    #: When consensus last made progress; block sync moves it on when it
    #: pulls the running height's messages after a stall.
    progress_at: float


@dataclass(frozen=True, kw_only=True)
class SyncHooks:
    """What block sync calls on the rest of the node."""

    #: Pulls the running height's messages from a peer (``round``).
    pull_round: Callable[[bytes], Coroutine[Any, Any, None]]
    spawn: Spawn
    #: Called with a certified block that does not apply here (its bytes as
    #: served) and why; the list is the node's and grows as extensions attach.
    refused_blocks: list[Callable[[bytes, BlockError], None]]


class BlockSync:
    """The poll task and the sync passes; see the module docstring."""

    def __init__(
        self,
        *,
        node: NodeRuntime,
        net: Node,
        consensus: SyncedConsensus,
        halts: Halts,
        inbox: Inbox,
        chain_lock: asyncio.Lock,
        hooks: SyncHooks,
    ) -> None:
        self.node = node
        self.chain = node.chain
        self.net = net
        self.consensus = consensus
        self.halts = halts
        self.inbox = inbox
        self.chain_lock = chain_lock
        self.hooks = hooks
        #: Blocks applied by sync since the node started.
        self.synced_blocks = 0
        #: Peers not synced from until the time given (they failed to serve).
        self._sync_backoff: dict[bytes, tuple[float, float]] = {}
        #: Peers not polled until the time given (their status timed out).
        self._poll_backoff: dict[bytes, tuple[float, float]] = {}
        #: Set when a peer connects: the poll task polls at once.
        self._poll_wake = asyncio.Event()

    def forgive(self, peer: bytes) -> None:
        """``peer`` (re)connected: poll it again at once."""
        self._poll_backoff.pop(peer, None)

    def wake(self) -> None:
        """Poll now, not at the end of the interval (a peer connected)."""
        self._poll_wake.set()

    async def run(self) -> None:
        """Poll every POLL_INTERVAL; at once when a peer connects (a starting
        node learns how far behind it is without waiting a period), and again
        right after a pass that applied blocks (a node far behind goes on
        fetching instead of pausing a period per SYNC_BATCH blocks)."""
        synced = 0
        while True:
            if not synced:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poll_wake.wait(), POLL_INTERVAL)
            self._poll_wake.clear()
            synced = 0
            try:
                synced = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("block sync pass failed")
            consensus = self.consensus
            if time.monotonic() - consensus.progress_at > 2 * POLL_INTERVAL and consensus.started:
                consensus.progress_at = time.monotonic()
                for peer in self.net.connected_peers():
                    self.hooks.spawn(self.hooks.pull_round(peer))

    async def poll_once(self) -> int:
        """Ask every peer its status at once (STATUS_TIMEOUT each); sync from the
        highest whose claim a certificate backs, if it is ahead of us. Returns
        the blocks applied."""
        if self.halts.upgrade_halts():
            return 0
        peers = [p for p in self.net.connected_peers() if not self._backing_off(p)]
        claims = await asyncio.gather(*(self._claim_of(p) for p in peers))
        best, best_peer = self.chain.height, None
        for peer, height in zip(peers, claims, strict=True):
            if height is not None and height > best:
                best, best_peer = height, peer
        if best_peer is None:
            return 0
        stalled = time.monotonic() - self.consensus.progress_at > 2 * POLL_INTERVAL
        # One block ahead is what a peer that decided first looks like: our own
        # consensus is about to commit it, unless it is stalled or not running.
        if best > self.chain.height + 1 or stalled or not self.consensus.started:
            return await self._sync(best_peer, best)
        return 0

    async def _claim_of(self, peer: bytes) -> int | None:
        """The height ``peer`` claims, if above ours and backed by its commit
        certificate, and it holds our next block (its base, the snapshot it
        started from, is below it); None otherwise. A claim it cannot back costs
        it score."""
        try:
            raw = await self.net.request(
                peer, "status", b"", timeout=STATUS_TIMEOUT, blame_timeout=False
            )
            height, cert, base = parse_status(decode(raw, "status"))
            self._poll_backoff.pop(peer, None)
        except RequestTimeoutError:
            _back_off(self._poll_backoff, peer)  # crashed, or too busy: poll it less
            return None
        except (NetError, DecodeError, ClaimError) as exc:
            if isinstance(exc, ClaimError | DecodeError):
                self.net.report(peer, why=f"malformed status: {exc}")
            return None
        if height <= self.chain.height or base > self.chain.height:
            return None
        try:
            await asyncio.to_thread(
                check_claim, height, cert, self.consensus.vset, self.chain.chain_id
            )
        except ClaimError as exc:
            self.net.report(peer, why=f"status claim refused: {exc}")
            return None
        return height

    def _backing_off(self, peer: bytes) -> bool:
        now = time.monotonic()
        return any(
            peer in table and now < table[peer][0]
            for table in (self._sync_backoff, self._poll_backoff)
        )

    async def _sync(self, peer_id: bytes, target: int) -> int:  # noqa: C901 - fetch window, verify and apply, each with its own failure
        """Fetch (BLOCK_TIMEOUT each), verify (certificate and roots) and commit
        blocks up to ``target``, holding the chain lock only to apply each; then
        have the consensus task restart above them.

        Up to SYNC_WINDOW requests are in flight at once, so applying one block
        overlaps fetching the next ones instead of waiting a round trip each;
        blocks are still applied strictly in height order."""
        net = self.net
        applied = 0
        fetches: dict[int, asyncio.Task[bytes]] = {}
        start = self.chain.height + 1
        last = min(target, self.chain.height + SYNC_BATCH)

        def fetch_ahead(height: int) -> None:
            for h in range(height, min(last, height + SYNC_WINDOW - 1) + 1):
                if h not in fetches:
                    fetches[h] = asyncio.ensure_future(
                        net.request(peer_id, "block", encode(h), timeout=BLOCK_TIMEOUT)
                    )

        try:
            for height in range(start, last + 1):
                if self.halts.reason is not None or self.chain.height != height - 1:
                    break  # consensus committed meanwhile: poll again
                fetch_ahead(height)
                try:
                    raw = await fetches.pop(height)
                except (RemoteError, RequestTimeoutError) as exc:
                    if sync_refusal_is_a_lie(exc):
                        net.report(peer_id, why=f"claimed {target}, did not serve {height}")
                    log.info("block sync request failed", extra={"fields": {"error": str(exc)}})
                    _back_off(self._sync_backoff, peer_id)
                    break
                except NetError as exc:
                    log.info("block sync request failed", extra={"fields": {"error": str(exc)}})
                    break

                def apply(raw: bytes = raw) -> BlockEvent:
                    return self.node.after_commit(self.chain.apply_block(raw))

                async with self.chain_lock:
                    if self.chain.height != height - 1:
                        break  # consensus committed meanwhile: poll again
                    try:
                        await asyncio.to_thread(apply)
                    except BlockError as exc:
                        log.warning(
                            "peer served an invalid block",
                            extra={"fields": {"height": height, "error": str(exc)}},
                        )
                        net.report(peer_id, why=f"invalid block {height}")
                        _back_off(self._sync_backoff, peer_id)
                        for listener in self.hooks.refused_blocks:
                            listener(raw, exc)
                        break
                applied += 1
                self.synced_blocks += 1
        finally:
            for task in fetches.values():
                task.cancel()
            for task in fetches.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if applied:
            self._sync_backoff.pop(peer_id, None)
            log.info(
                "synced blocks", extra={"fields": {"to": self.chain.height, "blocks": applied}}
            )
        if applied or not self.consensus.started:
            self.inbox.put(Synced())
        return applied


def _back_off(table: dict[bytes, tuple[float, float]], peer: bytes) -> None:
    """Leave ``peer`` out for a while, twice as long as last time (SYNC_BACKOFF
    the first time, SYNC_BACKOFF_MAX at most)."""
    _, last = table.get(peer, (0.0, SYNC_BACKOFF / 2))
    delay = min(2 * last, SYNC_BACKOFF_MAX)
    table[peer] = (time.monotonic() + delay, delay)


__all__ = [
    "BLOCK_TIMEOUT",
    "POLL_INTERVAL",
    "STATUS_TIMEOUT",
    "SYNC_BACKOFF",
    "SYNC_BACKOFF_MAX",
    "SYNC_BATCH",
    "SYNC_WINDOW",
    "BlockSync",
    "SyncHooks",
    "SyncedConsensus",
]
