"""The transport node: listen, dial, authenticate, gossip, request, score.

``Node`` is the asyncio face of the package. It owns the QUIC listener, one
:class:`~focusflow.net.session.Session` per connected peer (a second connection
between the same two nodes is closed: the one dialed by the smaller node id
wins, so both sides keep the same one), the gossip router, the request handlers
and the peer scores. Static peers given at construction are dialed at start and
redialed with backoff while they are away, unless banned.

Nothing a peer sends can raise out of the node: malformed bytes, wrong messages
and invalid content (as judged by the application's handlers) become offences
against the peer's score, and a peer whose score falls too low is disconnected
and banned (``focusflow.net.scoring``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from focusflow.core.errors import FocusflowError
from focusflow.core.keys import KeyPair
from focusflow.net.certs import CertificatePolicy, CertKind, SelfSigned, kind_of
from focusflow.net.dedupe import SeenCache, message_id
from focusflow.net.errors import (
    FrameTooLargeError,
    GossipGoneError,
    InvalidMessageError,
    NetError,
    PeerAuthError,
    PeerBannedError,
    PeerUnavailableError,
    RemoteError,
    RequestTimeoutError,
)
from focusflow.net.framing import DEFAULT_MAX_FRAME
from focusflow.net.gossip import (
    GOSSIP_FETCH,
    STANDARD_TOPICS,
    GossipRouter,
    Verdict,
    verdict_of,
)
from focusflow.net.identity import short_id
from focusflow.net.messages import (
    MAX_NAME,
    MESSAGE_ID_SIZE,
    NETWORK_ID_SIZE,
    Error,
    Gossip,
    IHave,
    Request,
    Response,
    encode_message,
)
from focusflow.net.reqresp import (
    BUSY,
    RESPONSE_TOO_LARGE,
    UNKNOWN_HANDLER,
    Handler,
    Handlers,
    error_for,
    result_of,
)
from focusflow.net.scoring import Offence, PeerScores
from focusflow.net.session import Session
from focusflow.net.transport import (
    CLOSE_AUTH_FAILED,
    CLOSE_BANNED,
    CLOSE_DUPLICATE,
    CLOSE_NORMAL,
    DEFAULT_DATAGRAM_SIZE,
    Listener,
    PeerProtocol,
    bound_address,
    present_certificate,
)
from focusflow.net.transport import dial as quic_dial
from focusflow.net.transport import listen as quic_listen

log = logging.getLogger("focusflow.net")

#: A gossip subscriber: ``(sender_id, payload)`` -> a Verdict (True/None: accept,
#: False: reject).
GossipHandler = Callable[[bytes, bytes], Awaitable[Verdict | bool | None]]


@dataclass(frozen=True)
class PeerAddress:
    """Where to reach a node and which key it must prove: ``<hex id>@host:port``."""

    node_id: bytes
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> PeerAddress:
        try:
            hex_id, _, hostport = text.partition("@")
            host, _, port = hostport.rpartition(":")
            node_id = bytes.fromhex(hex_id)
            if len(node_id) != 32 or not host:
                raise ValueError
            return cls(node_id, host.strip("[]"), int(port))
        except ValueError:
            raise NetError(f"bad peer address {text!r}: expected <64 hex>@host:port") from None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node_id.hex()}@{host}:{self.port}"


#: Seconds an id stays "on its way" (queued or being fetched) at most.
INCOMING_TTL = 30.0
#: Entries in the on-its-way table before expired ones are dropped.
INCOMING_PRUNE_AT = 10_000
#: Announced messages fetched at once, at most; more announcements are dropped.
MAX_FETCHES = 256


@dataclass
class NetConfig:
    """Limits and timings of a node; the defaults suit a validator set on a LAN."""

    max_frame: int = DEFAULT_MAX_FRAME
    #: Which network this node is on: a validator passes its genesis hash. Peers
    #: with another id are refused at the handshake (docs/net.md §2).
    network_id: bytes = bytes(NETWORK_ID_SIZE)
    #: Bytes of unfinished frames one peer may make us hold, all its streams together.
    max_buffered: int = 4 * DEFAULT_MAX_FRAME
    #: UDP payload size; raise it only on loopback or jumbo-frame links (see transport).
    max_datagram_size: int = DEFAULT_DATAGRAM_SIZE
    fanout: int = 8
    connect_timeout: float = 5.0
    auth_timeout: float = 5.0
    request_timeout: float = 10.0
    idle_timeout: float = 30.0
    #: How long a connection that just won against a peer's new one is given
    #: to answer a PING before it is taken for dead and dropped (see adopt).
    probe_timeout: float = 1.0
    #: Frames queued per peer for its control stream; publish waits when full.
    send_queue: int = 1024
    #: Gossip messages queued per peer for the handlers; excess is dropped.
    recv_queue: int = 1024
    #: How long publish waits for room in a slow peer's queue before skipping it.
    send_wait: float = 1.0
    #: Unacknowledged bytes on a control stream before its writer waits.
    high_water: int = 2 * 1024 * 1024
    #: Requests served concurrently per peer; more are answered ``busy``.
    max_inflight: int = 32
    #: Inbound connections allowed to be authenticating at once; more are closed.
    max_handshakes: int = 64
    ban_seconds: float = 300.0
    redial_min: float = 0.2
    redial_max: float = 5.0
    seen_capacity: int = 100_000
    seen_ttl: float = 120.0
    #: Gossip payloads above this many bytes are forwarded lazily: an IHave
    #: announcement, fetched by a peer that lacks the message. In a full mesh
    #: (a validator set) every peer already has it from the publisher, and
    #: flooding would send each large message n - 1 extra times per node.
    #: Published messages always go in full.
    lazy_above: int = 2048
    #: How long an announced, unseen message is given to arrive in full from
    #: elsewhere (it may be in flight from its publisher) before it is fetched.
    lazy_grace: float = 0.05
    #: Bytes of recent large payloads kept to answer fetches.
    recent_bytes: int = 64 * 1024 * 1024


@dataclass
class NetStats:
    """Counters for monitoring and tests."""

    delivered: int = 0
    duplicates: int = 0
    dropped_inbound: int = 0
    dropped_outbound: int = 0
    offences: int = 0
    bans: int = 0
    #: IHave announcements sent in place of forwarding a large message.
    announced: int = 0
    #: Announcements of messages we had (or were receiving) already.
    announce_ignored: int = 0
    #: Announced messages fetched from the announcer.
    fetched: int = 0
    #: Messages a subscriber kept from being forwarded (Verdict.IGNORE).
    not_forwarded: int = 0
    by_offence: dict[str, int] = field(default_factory=dict)


class Node:
    """A peer-to-peer endpoint identified by its Ed25519 key."""

    def __init__(
        self,
        key: KeyPair,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        peers: Iterable[PeerAddress | str] = (),
        config: NetConfig | None = None,
    ) -> None:
        self.key = key
        self.id = key.public_key
        self.config = config or NetConfig()
        if len(self.config.network_id) != NETWORK_ID_SIZE:
            raise NetError(f"network id must be {NETWORK_ID_SIZE} bytes")
        self.listen = listen
        self.static_peers = [
            p if isinstance(p, PeerAddress) else PeerAddress.parse(p) for p in peers
        ]
        #: Where each static peer is dialed now (``set_peer_address`` moves it).
        self._dial: dict[bytes, PeerAddress] = {p.node_id: p for p in self.static_peers}
        self.scores = PeerScores(ban_seconds=self.config.ban_seconds)
        self.router = GossipRouter(
            self.config.fanout, SeenCache(self.config.seen_capacity, self.config.seen_ttl)
        )
        self.handlers = Handlers()
        self.handlers.register(GOSSIP_FETCH, self._serve_fetch)
        self.stats = NetStats()
        #: Large payloads we published or forwarded, by message id, for fetches.
        self._recent: OrderedDict[bytes, tuple[str, bytes]] = OrderedDict()
        self._recent_size = 0
        #: Ids of messages queued for processing or being fetched (with when):
        #: not seen yet, but an announcement of them must not start another
        #: fetch. An entry whose queue was lost with its connection expires.
        self._incoming: dict[bytes, float] = {}
        #: Fetch tasks running (announced messages in their grace or in flight).
        self._fetches = 0
        self._subscribers: dict[str, list[GossipHandler]] = {}
        self._watchers: list[Callable[[bytes, bool], None]] = []
        self._allowed: frozenset[bytes] | None = None
        self._max_guests = 0
        self._sessions: dict[bytes, Session] = {}
        self._all: set[Session] = set()
        #: Sessions being checked for life after a peer dialed in again.
        self._probing: set[Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Listener | None = None
        self._running = False
        self._certificates: CertificatePolicy = SelfSigned(key)

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Listen, then dial the static peers in the background."""
        host, port = self.listen
        self._server = await quic_listen(
            host,
            port,
            self.key,
            self._accepted,
            certificate=self._certificates.presented(),
            **self._quic_options(),
        )
        self._running = True
        for node_id in self._dial:
            self._spawn(self._keep_connected(node_id))
        self._spawn(self._keepalive())

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually listened on (the port is chosen when 0 was asked)."""
        if self._server is None:
            raise NetError("node is not started")
        return bound_address(self._server)

    @property
    def peer_address(self) -> PeerAddress:
        host, port = self.address
        return PeerAddress(self.id, host, port)

    async def stop(self) -> None:
        """Close every connection and the listener; cancel background work."""
        self._running = False
        for session in list(self._all):
            session.close(CLOSE_NORMAL, "node stopping")
        while self._tasks:
            for task in list(self._tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                self._tasks.discard(task)
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- certificates ----------------------------------------------------------

    @property
    def certificates(self) -> CertificatePolicy:
        """What this node presents and how it judges peers' certificates (``certs``)."""
        return self._certificates

    def set_certificates(self, policy: CertificatePolicy) -> int:
        """Present and judge by ``policy`` from now on; returns how many
        connections were closed to be made again under it: those where this
        node showed a self-signed certificate and now has the CA's, and those
        whose peer's certificate the policy no longer takes (a static peer is
        dialed again by its keeper)."""
        self._certificates = policy
        if self._server is not None:
            present_certificate(self._server, policy.presented())
        closed = 0
        for session in list(self._all):
            if not session.ready or session.is_closed or session.peer_id is None:
                continue
            if self._stale(session):
                session.close(CLOSE_NORMAL, "certificates changed")
                closed += 1
        return closed

    def _stale(self, session: Session) -> bool:
        """Whether ``session`` was made under certificates this node no longer
        uses: it showed a self-signed certificate where the node now has the
        CA's, or its peer's certificate is one the policy no longer takes.

        Checked for every ready session when the policy changes, and for each
        session as it becomes ready: one whose handshake was under way at the
        change is not ready then, and would otherwise stay as it was made."""
        assert session.peer_id is not None
        policy = self._certificates
        if kind_of(self.id, policy.presented()) == "ca" and session.own_cert == "self":
            return True
        try:
            policy.judge(session.peer_id, session.peer_certificate)
        except PeerAuthError:
            return True
        return False

    def link_certificates(self) -> dict[bytes, tuple[CertKind, CertKind]]:
        """For each authenticated connection, by peer: who vouched for this
        node's key on it and who for the peer's (``certs``)."""
        out: dict[bytes, tuple[CertKind, CertKind]] = {}
        for peer_id, session in self._sessions.items():
            if session.ready and not session.is_closed and session.peer_cert is not None:
                out[peer_id] = (session.own_cert, session.peer_cert)
        return out

    # --- connections -----------------------------------------------------------

    def connected_peers(self) -> list[bytes]:
        """Node ids with an authenticated connection now."""
        return [p for p, s in self._sessions.items() if s.ready and not s.is_closed]

    async def connect(self, peer: PeerAddress | str) -> bytes:
        """Dial ``peer`` (unless already connected) and authenticate; returns its node id.

        Raises PeerAuthError when the peer does not hold the expected key,
        PeerBannedError for a banned peer, PeerUnavailableError when unreachable.
        """
        if isinstance(peer, str):
            peer = PeerAddress.parse(peer)
        if self.scores.is_banned(peer.node_id):
            raise PeerBannedError(f"peer {short_id(peer.node_id)} is banned")
        if peer.node_id in self.connected_peers():
            return peer.node_id
        try:
            protocol = await quic_dial(
                peer.host,
                peer.port,
                self.key,
                self.config.connect_timeout,
                certificate=self._certificates.presented(),
                **self._quic_options(),
            )
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise PeerUnavailableError(
                f"cannot reach {peer}: {exc or type(exc).__name__}"
            ) from None
        session = Session(self, protocol, expected=peer.node_id)
        self._all.add(session)
        session.handshake_completed()
        try:
            return await asyncio.wait_for(
                asyncio.shield(session.authenticated), self.config.auth_timeout
            )
        except TimeoutError:
            session.close(CLOSE_NORMAL, "authentication timed out")
            raise PeerUnavailableError(f"no authentication from {peer} in time") from None

    def _accepted(self, protocol: PeerProtocol) -> None:
        session = Session(self, protocol, expected=None)
        self._all.add(session)
        if sum(not s.ready for s in self._all) > self.config.max_handshakes:
            session.close(CLOSE_NORMAL, "too many connections authenticating")

    def refuse(self, session: Session) -> bool:
        """Called once a dialing peer has authenticated: True (and closed) if it may not stay."""
        assert session.peer_id is not None
        if self.scores.is_banned(session.peer_id):
            session.close(CLOSE_BANNED, "banned")
            return True
        outsider = self._allowed is not None and session.peer_id not in self._allowed
        if outsider and self._guests() >= self._max_guests:
            session.close(CLOSE_AUTH_FAILED, "node id not allowed")
            return True
        return False

    def _guests(self) -> int:
        """Authenticated sessions with peers outside the allowed set."""
        allowed = self._allowed
        if allowed is None:
            return 0
        return sum(
            1
            for s in self._all
            if s.ready and not s.is_closed and s.peer_id is not None and s.peer_id not in allowed
        )

    def set_allowed(self, node_ids: Iterable[bytes] | None, guests: int = 0) -> None:
        """Accept connections only from these node ids (None: from anyone), and
        from at most ``guests`` other peers at once.

        A validator network passes the validator set's keys and calls this again at
        each epoch boundary; ``guests`` are the full nodes (and other followers)
        it serves besides, scored and banned like any peer. Connected peers that
        are no longer allowed stay as guests while there is room, the oldest
        first; the rest are closed.
        """
        self._allowed = None if node_ids is None else frozenset(node_ids)
        self._max_guests = guests
        if self._allowed is None:
            return
        room = guests
        for session in list(self._all):
            if session.peer_id is not None and session.peer_id not in self._allowed:
                if room > 0 and session.ready and not session.is_closed:
                    room -= 1
                    continue
                session.close(CLOSE_AUTH_FAILED, "node id not allowed")

    def adopt(self, session: Session) -> None:
        """Register a ready session, keeping one connection per peer.

        Of two connections to one peer, both sides keep the same one (the lower
        ``rank``), which settles two nodes dialing each other at once. A peer
        also dials in again after a restart, while the connection to its dead
        process stays open here until QUIC's idle timeout: when the new
        connection loses to the held one, the held one is probed, and dropped
        if it stays silent, so the peer's next dial gets through.
        """
        assert session.peer_id is not None
        if self._stale(session):
            session.close(CLOSE_NORMAL, "certificates changed")
            return
        current = self._sessions.get(session.peer_id)
        if current is not None and current is not session and not current.is_closed:
            winner = min((current, session), key=lambda s: s.rank)
            loser = session if winner is current else current
            self._sessions[session.peer_id] = winner
            loser.close(CLOSE_DUPLICATE, "duplicate connection")
            if loser is session and current not in self._probing:
                self._probing.add(current)
                self._spawn(self._probe(current))
            return
        self._sessions[session.peer_id] = session
        log.info("connected to %s", short_id(session.peer_id))
        self._notify(session.peer_id, True)

    async def _probe(self, session: Session) -> None:
        """Close ``session`` unless a datagram of it arrives within
        ``probe_timeout`` of a PING (any live peer acknowledges one)."""
        try:
            asked = time.monotonic()
            session.protocol.keepalive()
            await asyncio.sleep(self.config.probe_timeout)
            if not session.is_closed and session.protocol.last_heard < asked:
                log.info(
                    "closing the connection to %s: silent while it dialed in again",
                    short_id(session.peer_id or b""),
                )
                session.close(CLOSE_NORMAL, "silent while the peer dialed in again")
        finally:
            self._probing.discard(session)

    def session_closed(self, session: Session) -> None:
        self._all.discard(session)
        if session.peer_id is not None and self._sessions.get(session.peer_id) is session:
            del self._sessions[session.peer_id]
            self._notify(session.peer_id, False)
        self._spawn(session.wait_tasks())

    def set_peer_address(self, peer: PeerAddress) -> bool:
        """Dial ``peer.node_id`` at ``peer``'s address from now on, keeping a
        connection to it as to a configured peer (the next redial uses it; a
        live connection stays). Returns whether anything changed."""
        current = self._dial.get(peer.node_id)
        if current == peer:
            return False
        self._dial[peer.node_id] = peer
        self.static_peers = [p for p in self.static_peers if p.node_id != peer.node_id] + [peer]
        if current is None and self._running:
            self._spawn(self._keep_connected(peer.node_id))
        return True

    def dial_address(self, node_id: bytes) -> PeerAddress | None:
        """Where a static peer is dialed now, None for one that is not."""
        return self._dial.get(node_id)

    async def _keep_connected(self, node_id: bytes) -> None:
        delay = self.config.redial_min
        while self._running:
            peer = self._dial[node_id]
            if peer.node_id not in self._sessions and not self.scores.is_banned(peer.node_id):
                try:
                    await self.connect(peer)
                    delay = self.config.redial_min
                except FocusflowError as exc:
                    log.debug("dial %s failed: %s", peer, exc)
                    delay = min(delay * 2, self.config.redial_max)
            await asyncio.sleep(delay)

    async def _keepalive(self) -> None:
        interval = self.config.idle_timeout / 3
        while self._running:
            await asyncio.sleep(interval)
            for session in list(self._sessions.values()):
                session.protocol.keepalive()

    def watch_peers(self, callback: Callable[[bytes, bool], None]) -> None:
        """Call ``callback(peer_id, connected)`` when a peer connects or goes away.

        Block sync uses it to ask a new peer for its height. Replacing one
        connection to a peer by another is not reported.
        """
        self._watchers.append(callback)

    def _notify(self, peer_id: bytes, connected: bool) -> None:
        for callback in self._watchers:
            try:
                callback(peer_id, connected)
            except Exception:
                log.exception("peer watcher failed")

    # --- scoring -----------------------------------------------------------------

    def report(self, peer_id: bytes, offence: Offence = Offence.INVALID, why: str = "") -> None:
        """Lower a peer's score (the application found its message invalid)."""
        self.stats.offences += 1
        self.stats.by_offence[offence.name] = self.stats.by_offence.get(offence.name, 0) + 1
        log.info("offence %s by %s: %s", offence.name, short_id(peer_id), why)
        if self.scores.penalise(peer_id, offence):
            self._ban(peer_id)

    def offence(self, session: Session, offence: Offence, why: str) -> None:
        assert session.peer_id is not None
        self.report(session.peer_id, offence, why)
        if offence is Offence.MALFORMED and not session.is_closed:
            session.close(CLOSE_BANNED, "malformed data")

    def _ban(self, peer_id: bytes) -> None:
        self.stats.bans += 1
        log.warning("banning %s for %.0f s", short_id(peer_id), self.config.ban_seconds)
        for session in list(self._all):
            if session.peer_id == peer_id:
                session.close(CLOSE_BANNED, "banned")

    # --- gossip ------------------------------------------------------------------

    def subscribe(self, topic: str, handler: GossipHandler) -> None:
        """Deliver every new message on ``topic`` to ``handler(sender_id, payload)``.

        A handler that returns False (Verdict.REJECT) or raises
        InvalidMessageError marks the message invalid: it is not forwarded and the
        sender loses score. Verdict.IGNORE: not forwarded, nobody blamed. The
        message is forwarded only after every handler accepted it, so a node that
        checks what it relays never relays what it would blame a peer for.
        """
        if not topic or len(topic.encode()) > MAX_NAME:
            raise NetError(f"topic must be 1..{MAX_NAME} bytes")
        self._subscribers.setdefault(topic, []).append(handler)

    async def publish(self, topic: str, payload: bytes) -> bytes:
        """Send a message to the network; returns its message id.

        Local subscribers are not called (the publisher has the message). Waits up
        to ``send_wait`` for room in each peer's queue, then skips that peer. Raises
        FrameTooLargeError when the message would exceed ``max_frame``.
        """
        frame = encode_message(Gossip(topic, bytes(payload)))
        if len(frame) > self.config.max_frame:
            raise FrameTooLargeError(
                f"gossip message of {len(frame)} bytes exceeds {self.config.max_frame}"
            )
        mid, targets = self.router.publish(topic, bytes(payload), self.connected_peers())
        if len(payload) > self.config.lazy_above:
            self._remember(mid, topic, bytes(payload))
        await self._send_gossip(frame, targets)
        return mid

    async def send_to(self, peer_id: bytes, topic: str, payload: bytes) -> None:
        """Send one gossip message to one connected peer only (not to the others,
        and whether or not it was published before): what a node hands a peer
        that joined after the message went out. The peer treats it as any gossip."""
        frame = encode_message(Gossip(topic, bytes(payload)))
        if len(frame) > self.config.max_frame:
            raise FrameTooLargeError(
                f"gossip message of {len(frame)} bytes exceeds {self.config.max_frame}"
            )
        await self._send_gossip(frame, [peer_id])

    def gossip_received(self, session: Session, message: Gossip) -> None:
        if message.topic not in STANDARD_TOPICS and message.topic not in self._subscribers:
            return
        mid = message_id(message.topic, message.payload)
        if mid in self.router.seen or self._is_incoming(mid):
            self.stats.duplicates += 1
            return
        try:
            session.inbox.put_nowait((message, mid))
        except asyncio.QueueFull:
            self.stats.dropped_inbound += 1
            return
        self._mark_incoming(mid)

    def ihave_received(self, session: Session, message: IHave) -> None:
        """A peer has a large message: fetch it unless we have it or it is on its way."""
        if message.topic not in STANDARD_TOPICS and message.topic not in self._subscribers:
            return
        if message.message_id in self.router.seen or self._is_incoming(message.message_id):
            self.stats.announce_ignored += 1
            return
        if self._fetches >= MAX_FETCHES:
            # Announcements faster than we can fetch: drop, as a full inbox does.
            self.stats.dropped_inbound += 1
            return
        assert session.peer_id is not None
        self._fetches += 1
        self._spawn(self._fetch(session.peer_id, message))

    async def _fetch(self, peer_id: bytes, message: IHave) -> None:
        mid = message.message_id
        try:
            await asyncio.sleep(self.config.lazy_grace)
            if mid in self.router.seen or self._is_incoming(mid):
                self.stats.announce_ignored += 1
                return
            self._mark_incoming(mid)
            payload = await self.request(peer_id, GOSSIP_FETCH, mid)
            if message_id(message.topic, payload) != mid:
                self.report(peer_id, Offence.INVALID, "fetched gossip does not match its id")
                raise LookupError
            session = self._sessions.get(peer_id)
            if session is None or session.is_closed:
                raise LookupError
            session.inbox.put_nowait((Gossip(message.topic, payload), mid))
            self.stats.fetched += 1
        except RemoteError as exc:
            self._incoming.pop(mid, None)
            if exc.remote_code == GossipGoneError.code:
                # Kept payloads outlive any honest announcement by far (64 MiB
                # of newer ones must pass first): announcing what one cannot
                # serve is how a peer would make us fetch in vain.
                self.report(peer_id, Offence.INVALID, "announced gossip it does not have")
        except (NetError, LookupError, asyncio.QueueFull):
            self._incoming.pop(mid, None)
        finally:
            self._fetches -= 1

    def _is_incoming(self, mid: bytes) -> bool:
        since = self._incoming.get(mid)
        return since is not None and time.monotonic() - since < INCOMING_TTL

    def _mark_incoming(self, mid: bytes) -> None:
        now = time.monotonic()
        if len(self._incoming) >= INCOMING_PRUNE_AT:
            self._incoming = {k: t for k, t in self._incoming.items() if now - t < INCOMING_TTL}
        self._incoming[mid] = now

    async def _serve_fetch(self, peer_id: bytes, payload: bytes) -> bytes:
        if len(payload) != MESSAGE_ID_SIZE:
            raise InvalidMessageError("a gossip fetch names one 32-byte message id")
        entry = self._recent.get(payload)
        if entry is None:
            raise GossipGoneError("that message is no longer kept here")
        return entry[1]

    def _remember(self, mid: bytes, topic: str, payload: bytes) -> None:
        if mid in self._recent or len(payload) > self.config.recent_bytes:
            return
        self._recent[mid] = (topic, payload)
        self._recent_size += len(payload)
        while self._recent_size > self.config.recent_bytes:
            _, (_, old) = self._recent.popitem(last=False)
            self._recent_size -= len(old)

    async def process_gossip(self, session: Session, message: Gossip, mid: bytes) -> None:
        """Deliver a queued message (``mid``: its id) to the subscribers, then
        forward it if valid."""
        sender = session.peer_id
        assert sender is not None
        targets = self.router.receive_id(sender, mid, self.connected_peers())
        self._incoming.pop(mid, None)
        if targets is None:
            self.stats.duplicates += 1
            return
        self.stats.delivered += 1
        forward = True
        for handler in self._subscribers.get(message.topic, []):
            try:
                verdict = verdict_of(await handler(sender, message.payload))
            except InvalidMessageError as exc:
                verdict = Verdict.REJECT
                log.info("invalid %s message from %s: %s", message.topic, short_id(sender), exc)
            except Exception:
                log.exception("gossip handler for %s failed", message.topic)
                verdict = Verdict.ACCEPT
            if verdict is Verdict.REJECT:
                self.report(sender, Offence.INVALID, f"invalid {message.topic} message")
                return
            forward = forward and verdict is Verdict.ACCEPT
        if not forward:
            self.stats.not_forwarded += 1
            return
        if len(message.payload) > self.config.lazy_above:
            self._remember(mid, message.topic, message.payload)
            self.stats.announced += len(targets)
            await self._send_gossip(encode_message(IHave(message.topic, mid)), targets)
        else:
            await self._send_gossip(encode_message(message), targets)

    async def _send_gossip(self, frame: bytes, targets: list[bytes]) -> None:
        for peer in targets:
            session = self._sessions.get(peer)
            if session is None or session.is_closed:
                continue
            try:
                session.outbox.put_nowait(frame)
            except asyncio.QueueFull:
                try:
                    await asyncio.wait_for(session.outbox.put(frame), self.config.send_wait)
                except TimeoutError:
                    self.stats.dropped_outbound += 1

    # --- request/response -------------------------------------------------------

    def register(self, name: str, handler: Handler) -> None:
        """Serve requests named ``name`` with ``handler(peer_id, payload) -> bytes``."""
        if not name or len(name.encode()) > MAX_NAME:
            raise NetError(f"handler name must be 1..{MAX_NAME} bytes")
        self.handlers.register(name, handler)

    async def request(
        self,
        peer_id: bytes,
        name: str,
        payload: bytes,
        timeout: float | None = None,
        *,
        blame_timeout: bool = True,
    ) -> bytes:
        """Ask ``peer_id``'s handler ``name``; its response payload.

        Raises PeerUnavailableError (not connected, or the connection dropped),
        RequestTimeoutError, or RemoteError with the peer's error code. A
        timeout costs the peer UNANSWERED unless ``blame_timeout`` is False (a
        poll repeated every second would ban a peer that crashed for the time
        its connection takes to time out).
        """
        session = self._sessions.get(peer_id)
        if session is None or session.is_closed:
            raise PeerUnavailableError(f"not connected to {short_id(peer_id)}")
        timeout = self.config.request_timeout if timeout is None else timeout
        try:
            answer = await session.request(Request(name, bytes(payload)), timeout)
        except TimeoutError:
            if blame_timeout:
                self.report(peer_id, Offence.UNANSWERED, f"request {name} timed out")
            raise RequestTimeoutError(
                f"no response to {name} from {short_id(peer_id)} in {timeout} s"
            ) from None
        return result_of(answer)

    def request_received(self, session: Session, stream_id: int, message: Request) -> None:
        handler = self.handlers.get(message.name)
        if handler is None:
            session.send_response(stream_id, Error(UNKNOWN_HANDLER, f"no handler {message.name}"))
        elif session.inflight >= self.config.max_inflight:
            session.send_response(stream_id, Error(BUSY, "too many requests in flight"))
        else:
            session.inflight += 1
            self._spawn(self._serve(session, stream_id, handler, message))

    async def _serve(
        self, session: Session, stream_id: int, handler: Handler, message: Request
    ) -> None:
        assert session.peer_id is not None
        try:
            payload = await handler(session.peer_id, message.payload)
            if not isinstance(payload, bytes | bytearray):
                raise TypeError(f"handler {message.name} returned {type(payload).__name__}")
            answer: Response | Error = Response(bytes(payload))
        except InvalidMessageError as exc:
            self.report(session.peer_id, Offence.INVALID, f"invalid {message.name} request")
            answer = error_for(exc)
        except FocusflowError as exc:
            # A precise refusal (unknown block, message gone): an answer, not a fault.
            answer = error_for(exc)
        except Exception as exc:
            log.exception("request handler %s failed", message.name)
            answer = error_for(exc)
        finally:
            session.inflight -= 1
        if len(encode_message(answer)) > self.config.max_frame:
            answer = Error(RESPONSE_TOO_LARGE, f"response to {message.name} exceeds max frame")
        session.send_response(stream_id, answer)

    # --- helpers ------------------------------------------------------------------

    def _quic_options(self) -> dict[str, float]:
        return {
            "idle_timeout": self.config.idle_timeout,
            "max_frame": self.config.max_frame,
            "max_datagram_size": self.config.max_datagram_size,
        }

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
