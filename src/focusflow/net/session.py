"""One authenticated connection to a peer: the handshake and message dispatch.

A session wraps a :class:`~focusflow.net.transport.PeerProtocol` and is its
:class:`~focusflow.net.transport.Link`. It runs the authentication exchange on
the connection's first stream (the *control stream*)::

    client                                   server
      Hello(version, client_id, network)  ->
                                     <-      Challenge(nonce)
      Auth(sign(transcript))         ->
                                     <-      Welcome(network)

``network`` is the node's network id (``NetConfig.network_id``: the genesis
hash, which names the chain and the focus engine it runs). A server refuses a
Hello from another network, and a client a Welcome, closing with
``CLOSE_WRONG_NETWORK`` and a reason naming both ids
(:class:`~focusflow.net.errors.NetworkMismatchError` on the dialing side).

and afterwards keeps that stream for gossip in both directions, while every
request travels on a stream of its own. Decisions about peers (scores, bans,
which of two connections to keep, what to do with a message) belong to the
owning node; the session only checks that each message is the right kind at the
right place and reports the rest upward.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from cryptography import x509

from focusflow.core.errors import DecodeError
from focusflow.net.certs import (
    CertificatePolicy,
    CertKind,
    certificate_der,
    kind_of,
    load_sent_certificate,
)
from focusflow.net.errors import (
    NetError,
    NetworkMismatchError,
    PeerAuthError,
    PeerBannedError,
    PeerUnavailableError,
)
from focusflow.net.identity import (
    check_auth,
    check_server_certificate,
    new_nonce,
    short_id,
    sign_auth,
)
from focusflow.net.messages import (
    PROTOCOL_VERSION,
    Auth,
    Challenge,
    Error,
    Gossip,
    Hello,
    IHave,
    Message,
    Request,
    Response,
    Welcome,
    decode_message,
    encode_message,
)
from focusflow.net.scoring import Offence
from focusflow.net.transport import (
    CLOSE_AUTH_FAILED,
    CLOSE_BANNED,
    CLOSE_MALFORMED,
    CLOSE_WRONG_NETWORK,
    PeerProtocol,
    consume_error,
)

if TYPE_CHECKING:
    from focusflow.core.keys import KeyPair
    from focusflow.net.node import NetConfig

log = logging.getLogger("focusflow.net")

#: Requests we gave up waiting for, remembered per session so that their late
#: answers are dropped instead of blamed on a peer that was only slow.
MAX_ABANDONED = 256


class SessionOwner(Protocol):
    """What a session uses of the node that owns it (:class:`~focusflow.net.node.Node`).

    The session only checks that each message is the right kind at the right
    place; every decision about the peer is reported upward through these
    calls. Writing them out keeps that boundary explicit: the session sees its
    owner's identity and settings and these callbacks, nothing more.
    """

    @property
    def id(self) -> bytes:
        """This node's id (its Ed25519 public key)."""
        ...

    @property
    def key(self) -> KeyPair:
        """This node's key, which signs the handshake transcript."""
        ...

    @property
    def config(self) -> NetConfig: ...

    @property
    def certificates(self) -> CertificatePolicy:
        """What this node presents and how it judges a peer's certificate."""
        ...

    def refuse(self, session: Session) -> bool:
        """Whether an authenticated incoming session is turned away (closing it)."""
        ...

    def adopt(self, session: Session) -> None:
        """The session completed its handshake."""
        ...

    def session_closed(self, session: Session) -> None: ...

    def gossip_received(self, session: Session, message: Gossip) -> None: ...

    def ihave_received(self, session: Session, message: IHave) -> None: ...

    def request_received(self, session: Session, stream_id: int, message: Request) -> None: ...

    def offence(self, session: Session, offence: Offence, why: str) -> None: ...

    async def process_gossip(self, session: Session, message: Gossip, mid: bytes) -> None:
        """Deliver a queued gossip message (``mid``: its id) and forward it if valid."""
        ...


class Handshake(enum.Enum):
    """Where a session is in the authentication exchange (see the module docstring)."""

    #: Client: waiting for the TLS handshake before sending Hello.
    AWAIT_TLS = "await_tls"
    #: Server: waiting for the client's Hello.
    AWAIT_HELLO = "await_hello"
    #: Client: Hello sent, waiting for the server's Challenge.
    AWAIT_CHALLENGE = "await_challenge"
    #: Server: Challenge sent, waiting for the client's Auth.
    AWAIT_AUTH = "await_auth"
    #: Client: Auth sent, waiting for the server's Welcome.
    AWAIT_WELCOME = "await_welcome"
    #: Authenticated either way: gossip and requests flow.
    READY = "ready"


class Session:
    """The state of one connection, from handshake to close."""

    def __init__(self, node: SessionOwner, protocol: PeerProtocol, expected: bytes | None) -> None:
        self.node = node
        self.protocol = protocol
        self.is_client = expected is not None
        #: The peer's node id: known up front when dialing, after Auth when accepting.
        self.peer_id: bytes | None = expected
        #: Who vouched for the peer's key (``certs``): set once authenticated.
        self.peer_cert: CertKind | None = None
        #: The certificate the peer showed (None: a dialer that sent none).
        self.peer_certificate: x509.Certificate | None = None
        #: Who vouched for ours, as this session presents it.
        own = node.certificates.presented()
        self.own_cert: CertKind = kind_of(node.id, own)
        self.control: int | None = None
        self.ready = False
        self.is_closed = False
        self.close_reason = ""
        self.authenticated: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        # Accepted sessions have nobody awaiting the outcome; retrieving it here keeps
        # asyncio from reporting a failed handshake as a never-retrieved exception.
        self.authenticated.add_done_callback(consume_error)
        self.pending: dict[int, asyncio.Future[Response | Error]] = {}
        #: Our streams whose request timed out or was cancelled (the oldest forgotten).
        self.abandoned: OrderedDict[int, None] = OrderedDict()
        self.inflight = 0
        #: Peer-initiated streams whose request we are answering.
        self.serving: set[int] = set()
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(node.config.send_queue)
        #: Gossip waiting for the handlers, with the message id computed on arrival.
        self.inbox: asyncio.Queue[tuple[Gossip, bytes]] = asyncio.Queue(node.config.recv_queue)
        self._nonce: bytes | None = None
        # A server waits for Hello from the start: application data can only be read
        # once the TLS handshake is complete anyway.
        self._state = Handshake.AWAIT_TLS if self.is_client else Handshake.AWAIT_HELLO
        self._tasks: list[asyncio.Task[None]] = []
        self._deadline = asyncio.get_running_loop().call_later(
            node.config.auth_timeout, self._auth_expired
        )
        protocol.link = self
        protocol.max_frame = node.config.max_frame

    @property
    def rank(self) -> tuple[bytes, bytes]:
        """Order of connections between the same two nodes: of two, the lower is kept.

        The dialer's node id first, then the challenge nonce: both sides know both,
        so they agree even when one node dialed twice.
        """
        assert self.peer_id is not None and self._nonce is not None
        return (self.node.id if self.is_client else self.peer_id), self._nonce

    # --- handshake -------------------------------------------------------------

    def handshake_completed(self) -> None:
        if not self.is_client:
            return
        try:
            assert self.peer_id is not None
            certificate = self.protocol.peer_certificate()
            check_server_certificate(certificate, self.peer_id)
            self.peer_cert = self.node.certificates.judge(self.peer_id, certificate)
            self.peer_certificate = certificate
        except PeerAuthError as exc:
            self._fail(exc, CLOSE_AUTH_FAILED)
            return
        self.control = self.protocol.new_stream()
        self._state = Handshake.AWAIT_CHALLENGE
        self._send(self.control, Hello(PROTOCOL_VERSION, self.node.id, self.node.config.network_id))

    def _handshake_message(self, stream_id: int, message: Message) -> None:
        if (
            self._state is Handshake.AWAIT_HELLO
            and isinstance(message, Hello)
            and stream_id % 4 == 0
        ):
            if message.version != PROTOCOL_VERSION:
                self._fail(PeerAuthError(f"protocol version {message.version}"), CLOSE_AUTH_FAILED)
                return
            if not self._same_network(message.network):
                return
            self.control, self.peer_id = stream_id, message.node_id
            self._nonce = new_nonce()
            self._state = Handshake.AWAIT_AUTH
            self._send(stream_id, Challenge(self._nonce))
        elif (
            self._state is Handshake.AWAIT_CHALLENGE
            and isinstance(message, Challenge)
            and stream_id == self.control
        ):
            assert self.peer_id is not None
            self._state = Handshake.AWAIT_WELCOME
            self._nonce = message.nonce
            own = self.node.certificates.presented()
            self.own_cert = kind_of(self.node.id, own)
            der = certificate_der(own) if self.own_cert == "ca" else b""
            signature = sign_auth(self.node.key, self.peer_id, message.nonce)
            self._send(stream_id, Auth(signature, der))
        elif (
            self._state is Handshake.AWAIT_AUTH
            and isinstance(message, Auth)
            and stream_id == self.control
        ):
            assert self.peer_id is not None and self._nonce is not None
            try:
                check_auth(self.node.id, self.peer_id, self._nonce, message.signature)
                sent = load_sent_certificate(message.certificate)
                self.peer_cert = self.node.certificates.judge(self.peer_id, sent)
                self.peer_certificate = sent
            except PeerAuthError as exc:
                self._fail(exc, CLOSE_AUTH_FAILED)
                return
            if self.node.refuse(self):
                return
            self._send(stream_id, Welcome(self.node.config.network_id))
            self._become_ready()
        elif (
            self._state is Handshake.AWAIT_WELCOME
            and isinstance(message, Welcome)
            and stream_id == self.control
        ):
            if self._same_network(message.network):
                self._become_ready()
        else:
            self._fail(
                PeerAuthError(f"unexpected {type(message).__name__} during handshake"),
                CLOSE_AUTH_FAILED,
            )

    def _same_network(self, network: bytes) -> bool:
        """True if the peer's network id is ours; else the connection is refused."""
        ours = self.node.config.network_id
        if network == ours:
            return True
        self._fail(
            NetworkMismatchError(
                f"wrong network: peer is on {network.hex()[:16]}, this node on {ours.hex()[:16]}"
            ),
            CLOSE_WRONG_NETWORK,
        )
        return False

    def _become_ready(self) -> None:
        assert self.peer_id is not None
        self._deadline.cancel()
        self.protocol.max_buffered = self.node.config.max_buffered
        self._state = Handshake.READY
        self.ready = True
        self._tasks = [
            asyncio.ensure_future(self._write_loop()),
            asyncio.ensure_future(self._gossip_loop()),
        ]
        if not self.authenticated.done():
            self.authenticated.set_result(self.peer_id)
        self.node.adopt(self)

    def _auth_expired(self) -> None:
        if not self.ready:
            self._fail(PeerAuthError("authentication timed out"), CLOSE_AUTH_FAILED)

    # --- Link ------------------------------------------------------------------

    def frame_received(self, stream_id: int, payload: bytes) -> None:
        try:
            message = decode_message(payload)
        except DecodeError as exc:
            self.malformed(stream_id, exc)
            return
        if not self.ready:
            self._handshake_message(stream_id, message)
        elif stream_id == self.control:
            if isinstance(message, Gossip):
                self.node.gossip_received(self, message)
            elif isinstance(message, IHave):
                self.node.ihave_received(self, message)
            else:
                self.node.offence(self, Offence.PROTOCOL, f"{type(message).__name__} on control")
        elif stream_id in self.pending and isinstance(message, Response | Error):
            future = self.pending.pop(stream_id)
            if not future.done():
                future.set_result(message)
        elif stream_id in self.abandoned and isinstance(message, Response | Error):
            # The answer to a request we stopped waiting for: late, not wrong.
            del self.abandoned[stream_id]
        elif (
            isinstance(message, Request)
            and self._peer_initiated(stream_id)
            and stream_id not in self.serving
        ):
            self.serving.add(stream_id)
            self.node.request_received(self, stream_id, message)
        else:
            self.node.offence(self, Offence.PROTOCOL, f"unexpected {type(message).__name__}")

    def stream_ended(self, stream_id: int) -> None:
        future = self.pending.pop(stream_id, None)
        if future is not None and not future.done():
            future.set_exception(PeerUnavailableError("request stream closed without response"))

    def malformed(self, stream_id: int, error: DecodeError) -> None:
        if self.ready:
            self.node.offence(self, Offence.MALFORMED, error.message)
        else:
            self._fail(error, CLOSE_MALFORMED)

    def closed(self, reason: str, code: int | None = None) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self.close_reason = reason
        self._deadline.cancel()
        for task in self._tasks:
            task.cancel()
        if not self.authenticated.done():
            error: dict[int | None, type[NetError]] = {
                CLOSE_BANNED: PeerBannedError,
                CLOSE_WRONG_NETWORK: NetworkMismatchError,
            }
            self.authenticated.set_exception(
                error.get(code, PeerAuthError)(f"connection closed: {reason}")
            )
        for future in self.pending.values():
            if not future.done():
                future.set_exception(PeerUnavailableError(f"connection closed: {reason}"))
        self.pending.clear()
        self.node.session_closed(self)

    # --- sending ---------------------------------------------------------------

    def _send(self, stream_id: int, message: Message, end: bool = False) -> None:
        self.protocol.send_frame(stream_id, encode_message(message), end)

    def send_response(self, stream_id: int, message: Response | Error) -> None:
        self.serving.discard(stream_id)
        if self.is_closed:
            return
        if not self.protocol.send_frame(stream_id, encode_message(message), True):
            self.node.offence(self, Offence.PROTOCOL, "request on a stream already answered")

    async def request(self, message: Request, timeout: float) -> Response | Error:
        """Send ``message`` on a new stream and wait for the answer."""
        stream_id = self.protocol.new_stream()
        future: asyncio.Future[Response | Error] = asyncio.get_running_loop().create_future()
        self.pending[stream_id] = future
        try:
            self._send(stream_id, message, end=True)
            return await asyncio.wait_for(future, timeout)
        finally:
            if self.pending.pop(stream_id, None) is not None and not self.is_closed:
                self.abandoned[stream_id] = None
                while len(self.abandoned) > MAX_ABANDONED:
                    self.abandoned.popitem(last=False)

    async def _write_loop(self) -> None:
        """Drain the outbox onto the control stream, pausing while the peer lags.

        Waiting for acknowledgements above ``high_water`` unacked bytes is what
        turns a slow reader into backpressure on ``outbox`` (and so on publish)
        instead of unbounded buffering inside QUIC.
        """
        assert self.control is not None
        config = self.node.config
        while not self.is_closed:
            payload = await self.outbox.get()
            self.protocol.send_frame(self.control, payload)
            while not self.is_closed and self.protocol.unacked(self.control) > config.high_water:
                await asyncio.sleep(0.002)

    async def _gossip_loop(self) -> None:
        while not self.is_closed:
            message, mid = await self.inbox.get()
            try:
                await self.node.process_gossip(self, message, mid)
            except Exception:
                log.exception("processing gossip from %s failed", short_id(self.peer_id or b""))

    # --- helpers ---------------------------------------------------------------

    def _peer_initiated(self, stream_id: int) -> bool:
        """Bidirectional streams the peer opened: even ids from a client, 1 mod 4 from a server."""
        return stream_id % 4 == (1 if self.is_client else 0)

    def _fail(self, error: NetError | DecodeError, code: int) -> None:
        who = short_id(self.peer_id) if self.peer_id else "unauthenticated peer"
        log.info("closing connection to %s: %s", who, error)
        if not self.authenticated.done():
            self.authenticated.set_exception(error)
        self.close(code, error.message)

    def close(self, code: int, reason: str) -> None:
        """Close the connection; ``closed`` runs through the protocol's callback."""
        self.protocol.shutdown(code, reason)

    async def wait_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
