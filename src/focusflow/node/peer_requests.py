"""The requests a node serves its peers, and what it asks of a peer that connects.

* ``status`` -> ``[committed height, its commit certificate, base]``, at most
  STATUS_RATE a second a peer: what block sync (block_sync.py) believes a
  peer holds, once a certificate backs it;
* ``block`` (``height``) -> the stored block record with its certificate
  (block sync); a block below the snapshot a store began at is
  ``block_not_kept``, not a lie;
* ``round`` (``height``) -> the consensus messages this node holds for the
  height it is running (round_messages.py), so a validator that (re)connects
  mid-height catches up on votes it missed. :meth:`PeerRequests.pull_round`
  asks it, and takes each message through gossip intake.

A peer that connects is asked ``round`` and handed this node's pending
transactions (:meth:`PeerRequests.share_mempool`): gossip is fire-and-forget,
so a transaction admitted while this node had no peer would otherwise never
leave it.
"""

from __future__ import annotations

from typing import Protocol

from focusflow.chain.errors import BlockNotKeptError, UnknownBlockError
from focusflow.consensus import decode_message
from focusflow.consensus.certificate import encode_certificate
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.net import TRANSACTIONS, Node
from focusflow.net.errors import NetError, RateLimitedError
from focusflow.node.gossip_intake import GossipIntake
from focusflow.node.round_messages import RoundMessages
from focusflow.node.runtime import NodeRuntime
from focusflow.node.sync import STATUS_BURST, STATUS_RATE, RateLimiter

#: Seconds a peer has to answer a ``round`` request.
ROUND_TIMEOUT = 5.0
#: Pending transactions handed to a peer when it connects.
SHARED_TXS = 10_000


class RunningHeight(Protocol):
    """What the requests read of the consensus running here (the consensus driver)."""

    @property
    def height(self) -> int:
        """The height the state machine runs."""
        ...

    @property
    def started(self) -> bool:
        """Whether consensus runs that height."""
        ...


class PeerRequests:
    """Serves ``status``, ``block`` and ``round``, and asks ``round``; see the module docstring."""

    def __init__(
        self,
        *,
        node: NodeRuntime,
        net: Node | None,
        consensus: RunningHeight,
        held: RoundMessages,
        intake: GossipIntake,
    ) -> None:
        self.node = node
        self.chain = node.chain
        self.net = net
        self.consensus = consensus
        self.held = held
        self.intake = intake
        self._status_limit = RateLimiter(STATUS_RATE, STATUS_BURST)
        self._status_cache: tuple[int, bytes] | None = None

    def register(self, net: Node) -> None:
        net.register("status", self.serve_status)
        net.register("block", self.serve_block)
        net.register("round", self.serve_round)

    async def serve_status(self, peer_id: bytes, payload: bytes) -> bytes:
        """``[height, certificate of that block, base]``, at most STATUS_RATE a second a peer."""
        if not self._status_limit.allow(peer_id):
            raise RateLimitedError(f"status is served {STATUS_RATE:g} times a second")
        # The height is the certificate's: a commit in a worker thread sets the
        # head and the certificate one after the other, and a height read
        # between them with the other's certificate would look like a lie.
        cert = self.chain.last_certificate
        height = 0 if cert is None else cert.height
        cached = self._status_cache
        if cached is None or cached[0] != height:
            base = min(self.chain.base, height)
            raw = encode([height, None if cert is None else encode_certificate(cert), base])
            self._status_cache = cached = (height, raw)
        return cached[1]

    async def serve_block(self, peer_id: bytes, payload: bytes) -> bytes:
        height = decode(payload, "block request")
        if not isinstance(height, int) or isinstance(height, bool) or height < 1:
            raise DecodeError(f"a block request names height {height!r}, not one >= 1")
        with self.chain.reader() as r:
            raw = r.block(height)
        if raw is None:
            if height <= self.chain.base:
                raise BlockNotKeptError(
                    f"block {height} is below this store's snapshot height {self.chain.base}"
                )
            raise UnknownBlockError(f"no block {height} (the head is {self.chain.height})")
        return raw

    async def serve_round(self, peer_id: bytes, payload: bytes) -> bytes:
        height = decode(payload, "round request")
        if height != self.consensus.height:
            return encode([])
        return self.held.response()

    async def pull_round(self, peer_id: bytes) -> None:
        """Ask a peer for its messages of our height (we may have missed them)."""
        assert self.net is not None  # peers connect only with a network
        if not self.consensus.started:
            return
        try:
            raw = await self.net.request(
                peer_id,
                "round",
                encode(self.consensus.height),
                timeout=ROUND_TIMEOUT,
                blame_timeout=False,
            )
            items = decode(raw, "round response")
        except (NetError, DecodeError):
            return
        if not isinstance(items, list):
            self.net.report(peer_id, why="round response is not a list")
            return
        for item in items:
            if isinstance(item, bytes) and self.held.is_held(item):
                continue  # held here already: not decoded again
            try:
                message = decode_message(item)
            except (DecodeError, TypeError):
                self.net.report(peer_id, why="undecodable message in round response")
                return
            # A peer holds only messages it checked: a bad one is its fault.
            await self.intake.receive(peer_id, message, item)

    async def share_mempool(self, peer_id: bytes) -> None:
        """Hand a peer that just connected our pending transactions (at most
        SHARED_TXS): gossip is fire-and-forget, so a transaction admitted while
        this node had no peer (a full node starting up) would otherwise never
        leave it. The peer drops those it holds already."""
        assert self.net is not None
        for tx in self.node.oldest(SHARED_TXS):
            try:
                await self.net.send_to(peer_id, TRANSACTIONS, tx.encoded)
            except NetError:
                return


__all__ = ["ROUND_TIMEOUT", "SHARED_TXS", "PeerRequests", "RunningHeight"]
