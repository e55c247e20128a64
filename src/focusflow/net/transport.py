"""QUIC plumbing on aioquic: configurations, listening, dialing, framed streams.

This is the only module that touches aioquic. It turns QUIC events into calls
on a :class:`Link` (the per-connection logic in ``node``): a frame arrived on a
stream, a stream ended, bytes were malformed, the connection closed. Everything
above it deals in node ids, streams and frames, not packets.

It uses aioquic's public API: the connection it makes or is handed
(:class:`QuicConnection`), the protocol classes it subclasses, and asyncio's
transport interface. Two things it needs have no public accessor in aioquic:
the certificate the peer presented and the bytes a stream has not had
acknowledged. Each is read in one function of its own at the end of this
module (:func:`peer_certificate_of`, :func:`unacked_bytes`), and
tests/net/test_transport.py pins both against the installed aioquic, so an
upgrade that moves them fails a test rather than a running node.

Loopback and LAN peers are dialed by address; each outbound connection has its
own UDP socket, inbound ones share the listening socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    QuicEvent,
    StreamDataReceived,
    StreamReset,
)
from cryptography import x509

from focusflow.core.errors import DecodeError
from focusflow.core.keys import KeyPair
from focusflow.net.errors import NetError
from focusflow.net.framing import DEFAULT_MAX_FRAME, FrameDecoder, encode_frame
from focusflow.net.identity import ALPN, self_signed_certificate

#: QUIC application error codes we close connections with.
CLOSE_NORMAL = 0
CLOSE_AUTH_FAILED = 1
CLOSE_BANNED = 2
CLOSE_MALFORMED = 3
CLOSE_DUPLICATE = 4
#: The peer is on another network (its genesis hash differs from ours).
CLOSE_WRONG_NETWORK = 5


class Link(Protocol):
    """What a connection reports to the node logic above it."""

    def handshake_completed(self) -> None: ...
    def frame_received(self, stream_id: int, payload: bytes) -> None: ...
    def stream_ended(self, stream_id: int) -> None: ...
    def malformed(self, stream_id: int, error: DecodeError) -> None: ...
    def closed(self, reason: str, code: int | None) -> None: ...


#: Unfinished-frame bytes a peer may make us hold before it has authenticated.
HANDSHAKE_BUFFER = 4096

#: UDP payload that fits an Ethernet MTU over IPv6 without fragmentation.
DEFAULT_DATAGRAM_SIZE = 1452

#: Datagrams read from a socket each time it is ready. asyncio reads one a turn
#: of its event loop, and a turn of a busy process is long (every ready callback
#: of every connection it holds): the listening socket, which all of a node's
#: inbound connections share, then reads less than arrives. On the 2-core dev VM
#: at load 8, 24 DHT nodes in one process queued 2.6 MB (some 3,000 datagrams)
#: at one listener and 16 MB over all, every packet waited seconds, and every
#: lookup failed. Reading what is queued keeps up; the bound keeps one socket
#: from holding the loop.
DRAIN_BATCH = 64
#: Receive buffer asked for each QUIC socket, so a burst that arrives while the
#: process is not scheduled waits instead of being dropped (each drop costs QUIC
#: a retransmission timeout, seconds on a loaded machine: the 208 KiB default
#: dropped up to 8,000 datagrams in one such run). quic-go asks 7 MiB for the
#: same reason; Linux grants at most ``net.core.rmem_max``.
RECEIVE_BUFFER = 4 << 20
#: Largest datagram read.
MAX_UDP_PAYLOAD = 65535


def make_configuration(
    key: KeyPair,
    *,
    is_client: bool,
    idle_timeout: float = 30.0,
    max_frame: int = DEFAULT_MAX_FRAME,
    max_datagram_size: int = DEFAULT_DATAGRAM_SIZE,
    certificate: x509.Certificate | None = None,
) -> QuicConfiguration:
    """A QUIC configuration presenting ``certificate`` (of ``key``; by default
    ``key``'s self-signed one).

    Certificate checks are done by ``identity`` against the expected node id, not
    by a CA, hence ``CERT_NONE``. Flow-control windows are sized for one frame in
    flight so a 1 MB message does not stall on window updates. Larger datagrams
    cost fewer packets (aioquic spends its time per packet) but are fragmented or
    dropped on paths with a 1500-byte MTU, so they are for loopback and jumbo-frame
    LANs only.
    """
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        idle_timeout=idle_timeout,
        verify_mode=ssl.CERT_NONE,
        max_data=4 * max_frame,
        max_stream_data=max_frame + 4,
        max_datagram_size=max_datagram_size,
    )
    config.certificate = certificate or self_signed_certificate(key)
    config.private_key = key.private
    return config


class PeerProtocol(QuicConnectionProtocol):
    """One QUIC connection: reassembles frames per stream and reports to its Link."""

    def __init__(self, quic: QuicConnection, *args: Any, **kwargs: Any) -> None:
        super().__init__(quic, *args, **kwargs)
        #: The QUIC state machine: the one this protocol was made with.
        self.connection = quic
        #: The UDP transport the connection sends on (set by ``connection_made``).
        self.udp: asyncio.DatagramTransport | None = None
        self.link: Link | None = None
        self.max_frame = DEFAULT_MAX_FRAME
        #: Most bytes of unfinished frames held across all streams; raised after auth.
        self.max_buffered = HANDSHAKE_BUFFER
        self._decoders: dict[int, FrameDecoder] = {}
        self._gone = False
        self.owns_socket = False
        #: The UDP socket of a dialed connection (its own), read in batches;
        #: None for an accepted one (the listener's socket reads for it).
        self.socket: socket.socket | None = None
        #: When a datagram of this connection last arrived (``time.monotonic``):
        #: a connection whose peer process died hears nothing, however long
        #: QUIC's idle timeout keeps it open.
        self.last_heard = time.monotonic()
        #: Resolved when the TLS handshake completes (failed if the connection
        #: ends first). aioquic's own ``wait_connected`` misses a handshake that
        #: completes before it is first awaited, which a busy event loop makes
        #: happen (the dial then times out on a connection that is up).
        self.handshake_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.handshake_done.add_done_callback(consume_error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # A datagram endpoint's transport (asyncio's selector transport does
        # not subclass DatagramTransport, whose interface it has).
        self.udp = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._received(data, addr)
        if self.socket is not None and self.udp is not None:
            _drain(self.udp, self.socket, self._received)

    def _received(self, data: bytes | str, addr: Any) -> None:
        self.last_heard = time.monotonic()
        super().datagram_received(data, addr)

    @property
    def is_closed(self) -> bool:
        return self._gone

    def peer_certificate(self) -> x509.Certificate | None:
        """The certificate the peer presented in the TLS handshake (None before it,
        and on an accepted connection: a dialer presents none in TLS)."""
        return peer_certificate_of(self.connection)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            if not self.handshake_done.done():
                self.handshake_done.set_result(None)
            if self.link is not None:
                self.link.handshake_completed()
        elif isinstance(event, StreamDataReceived):
            self._stream_data(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, StreamReset):
            self._decoders.pop(event.stream_id, None)
            if self.link is not None:
                self.link.stream_ended(event.stream_id)
        elif isinstance(event, ConnectionTerminated):
            reason = f"closed by peer (code {event.error_code}): {event.reason_phrase}"
            self._mark_closed(reason, event.error_code)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._mark_closed("connection lost")

    def _mark_closed(self, reason: str, code: int | None = None) -> None:
        if not self.handshake_done.done():
            self.handshake_done.set_exception(ConnectionError(reason))
        if not self._gone:
            self._gone = True
            if self.owns_socket and self.udp is not None:
                self.udp.close()
            if self.link is not None:
                self.link.closed(reason, code)

    def _stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        if self._gone or self.link is None:
            return
        decoder = self._decoders.get(stream_id)
        if decoder is None:
            decoder = self._decoders[stream_id] = FrameDecoder(self.max_frame)
        try:
            frames = decoder.feed(data)
            if end:
                decoder.finish()
        except DecodeError as exc:
            self._decoders.pop(stream_id, None)
            self.link.malformed(stream_id, exc)
            return
        for frame in frames:
            if self._gone:
                return
            self.link.frame_received(stream_id, frame)
        if end:
            self._decoders.pop(stream_id, None)
            self.link.stream_ended(stream_id)
        self._check_buffered(stream_id)

    def _check_buffered(self, stream_id: int) -> None:
        """Bound the memory a peer can pin with frames it starts and never finishes.

        aioquic widens its connection flow-control window as data arrives, not as
        we consume it, so this is the limit that holds. Checked after dispatch so
        that a handshake completed by this data has raised the limit already.
        """
        buffered = sum(d.buffered for d in self._decoders.values())
        if buffered > self.max_buffered and not self._gone and self.link is not None:
            self._decoders.clear()
            error = DecodeError(f"malformed: {buffered} bytes of unfinished frames buffered")
            self.link.malformed(stream_id, error)

    def send_frame(self, stream_id: int, payload: bytes, end: bool = False) -> bool:
        """Queue one frame on a stream and flush packets now.

        Raises FrameTooLargeError for a payload above ``max_frame``. False when the
        stream no longer accepts data (we already finished it, or the peer reset it),
        which only a misbehaving peer can cause.
        """
        frame = encode_frame(payload, self.max_frame)
        if self._gone:
            return False
        try:
            self.connection.send_stream_data(stream_id, frame, end)
        except (RuntimeError, ValueError):
            return False
        self.transmit()
        return True

    def send_raw(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """Queue bytes without framing (used only to test how peers treat garbage)."""
        self.connection.send_stream_data(stream_id, data, end)
        self.transmit()

    def new_stream(self) -> int:
        return self.connection.get_next_available_stream_id()

    def unacked(self, stream_id: int) -> int:
        """Bytes written on a stream that the peer has not acknowledged yet.

        Used for backpressure: aioquic buffers writes without limit, so the node
        waits while this is above its high-water mark.
        """
        return unacked_bytes(self.connection, stream_id)

    def keepalive(self) -> None:
        """Send a PING so that an idle connection is not timed out by either side."""
        if not self._gone:
            self.connection.send_ping(0)
            self.transmit()

    def shutdown(self, code: int, reason: str) -> None:
        """Close the connection with an application error code."""
        if not self._gone:
            self.connection.close(error_code=code, reason_phrase=reason)
            self.transmit()
            self._mark_closed(f"closed locally: {reason}", code)


async def listen(
    host: str, port: int, key: KeyPair, on_connection: Any, **options: Any
) -> Listener:
    """Listen on ``host:port``; ``on_connection(protocol)`` is called for each new peer."""

    def create_protocol(*args: Any, **kwargs: Any) -> PeerProtocol:
        protocol = PeerProtocol(*args, **kwargs)
        on_connection(protocol)
        return protocol

    loop = asyncio.get_running_loop()
    configuration = make_configuration(key, is_client=False, **options)
    sock = await _bound_socket(host, port)
    try:
        _, server = await loop.create_datagram_endpoint(
            lambda: Listener(sock, configuration, create_protocol),
            sock=sock,
        )
    except BaseException:
        sock.close()
        raise
    assert isinstance(server, Listener)
    return server


async def _bound_socket(host: str, port: int) -> socket.socket:
    """A UDP socket bound to the first address of ``host`` that binds (as
    asyncio's own ``local_addr`` would be)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    error: OSError = OSError(f"no address for {host!r}")
    for family, _, _, _, where in infos:
        try:
            return _udp_socket(family, where)
        except OSError as exc:
            error = exc
    raise error


class Listener(QuicServer):
    """A listening endpoint: aioquic's server (as its ``serve`` makes it),
    reading its socket ``DRAIN_BATCH`` datagrams at a time."""

    def __init__(
        self,
        sock: socket.socket,
        configuration: QuicConfiguration,
        create_protocol: Callable[..., PeerProtocol],
    ) -> None:
        super().__init__(configuration=configuration, create_protocol=create_protocol)
        self.socket = sock
        #: What every connection it accepts is made with (aioquic's server
        #: hands each new connection this object itself, not a copy).
        self.configuration = configuration
        #: The UDP transport of ``socket`` (set by ``connection_made``).
        self.udp: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # A datagram endpoint's transport (asyncio's selector transport does
        # not subclass DatagramTransport, whose interface it has).
        self.udp = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        super().datagram_received(data, addr)
        if self.udp is not None:
            _drain(self.udp, self.socket, super().datagram_received)


def _udp_socket(family: int, where: Any) -> socket.socket:
    """A non-blocking UDP socket bound to ``where``, its receive buffer asked to
    be ``RECEIVE_BUFFER`` (the kernel may grant less; its default is kept where
    it refuses). Made here rather than by asyncio so that :func:`_drain` can
    read it: asyncio's transport hands out no socket that reads."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind(where)
    except OSError:
        sock.close()
        raise
    return sock


def _drain(transport: asyncio.BaseTransport, sock: socket.socket, receive: Any) -> None:
    """Hand ``receive`` the datagrams already queued at ``sock``, up to
    ``DRAIN_BATCH`` (the socket is non-blocking: an empty queue ends it, and an
    error is left for the transport's own next read to report)."""
    for _ in range(DRAIN_BATCH):
        if transport.is_closing():
            return
        try:
            data, addr = sock.recvfrom(MAX_UDP_PAYLOAD)
        except OSError:
            return
        receive(data, addr)


def present_certificate(server: Listener, certificate: x509.Certificate) -> None:
    """Present ``certificate`` in the listener's later handshakes (its
    configuration is the one every new connection is made with)."""
    server.configuration.certificate = certificate


def bound_address(server: Listener) -> tuple[str, int]:
    """The (host, port) a listener is bound to."""
    if server.udp is None or server.udp.is_closing():
        raise NetError("the listener is closed")
    sockname = server.udp.get_extra_info("sockname")
    return sockname[0], sockname[1]


async def dial(host: str, port: int, key: KeyPair, timeout: float, **options: Any) -> PeerProtocol:
    """A QUIC connection to ``host:port`` with the TLS handshake done."""
    loop = asyncio.get_running_loop()
    config = make_configuration(key, is_client=True, **options)
    connection = QuicConnection(configuration=config)
    if ":" in host:
        sock = _udp_socket(socket.AF_INET6, ("::", 0))
    else:
        sock = _udp_socket(socket.AF_INET, ("0.0.0.0", 0))
    try:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: PeerProtocol(connection), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    assert isinstance(protocol, PeerProtocol)
    protocol.socket = sock
    protocol.owns_socket = True
    try:
        protocol.connect((host, port))
        await asyncio.wait_for(asyncio.shield(protocol.handshake_done), timeout)
    except BaseException:
        protocol.shutdown(CLOSE_NORMAL, "dial failed")
        raise
    return protocol


def consume_error(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved (a done callback for a future
    nobody awaits any more), so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


# --- aioquic state without a public accessor ------------------------------------


def peer_certificate_of(connection: QuicConnection) -> x509.Certificate | None:
    """The leaf certificate the peer presented in ``connection``'s TLS handshake,
    or None before it arrives (and on a server: the dialer presents none).

    aioquic checks a peer's certificate only against a CA (``verify_mode``) and
    keeps it on the TLS context with no accessor; a node's peers are known by
    the key in their certificate, self-signed or issued by the network's CA
    (``identity``, ``certs``), so the certificate itself is needed. This reads
    ``tls.Context._peer_certificate``, which aioquic sets from the peer's
    Certificate message (aioquic 1.x; pinned by tests/net/test_transport.py).
    The connection's ``tls`` context is made when its handshake starts.
    """
    context = getattr(connection, "tls", None)
    if context is None:
        return None
    certificate: x509.Certificate | None = context._peer_certificate
    return certificate


def unacked_bytes(connection: QuicConnection, stream_id: int) -> int:
    """Bytes written on ``stream_id`` of ``connection`` that the peer has not
    acknowledged yet (0 for a stream aioquic no longer holds).

    aioquic buffers a stream's writes without bound and says nothing of how far
    the peer has acknowledged them, so backpressure needs its count: this reads
    the stream sender's ``_buffer``, the written bytes above the first one not
    acknowledged (``QuicConnection._streams``, aioquic 1.x; pinned by
    tests/net/test_transport.py).
    """
    stream = connection._streams.get(stream_id)
    if stream is None:
        return 0
    return len(stream.sender._buffer)
