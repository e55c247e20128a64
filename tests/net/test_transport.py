"""How the transport (``net.transport``) reads its UDP sockets and aioquic's state: what
is queued at a node's listening socket is read in a few turns of the event loop, not
one datagram a turn, which a busy process falls behind on; and the two reads of
aioquic's state that it has no public accessor for (the peer's certificate, a stream's
unacknowledged bytes) hold for the installed aioquic, over a real connection on
loopback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aioquic
import pytest
from aioquic.quic.connection import QuicConnection
from cryptography.hazmat.primitives.serialization import Encoding

from focusflow.core.keys import KeyPair
from focusflow.net import Node
from focusflow.net.framing import encode_frame
from focusflow.net.identity import self_signed_certificate
from focusflow.net.transport import (
    DRAIN_BATCH,
    PeerProtocol,
    bound_address,
    dial,
    listen,
    make_configuration,
    peer_certificate_of,
    unacked_bytes,
)
from tests.net.test_node import run

UDP_TABLE = Path("/proc/net/udp")


def _queued(port: int) -> int:
    """Bytes waiting in the receive queue of the IPv4 UDP socket bound to ``port``."""
    for line in UDP_TABLE.read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no UDP socket on port {port}")


@pytest.mark.skipif(not UDP_TABLE.exists(), reason="reads the kernel's UDP table (Linux)")
def test_a_listener_reads_what_is_queued_not_one_datagram_a_turn():
    """200 datagrams arrive while the loop is busy (as they do at a loaded node
    that all its peers' connections reach through one socket). asyncio's transport
    reads one a turn: after 5 turns 196 were still waiting (163 KB). The listener
    reads up to ``DRAIN_BATCH`` more each time: none are left."""

    async def main() -> None:
        node = Node(KeyPair.generate())
        await node.start()
        host, port = node.address
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(200):  # no QUIC connection's: each is read and dropped
                sender.sendto(b"\0" * 32, (host, port))
            assert _queued(port) > 0
            for _ in range(-(-200 // (DRAIN_BATCH + 1)) + 1):
                await asyncio.sleep(0)
            assert _queued(port) == 0
        finally:
            sender.close()
            await node.stop()

    run(main())


async def _connected(server_key: KeyPair) -> tuple[PeerProtocol, list[PeerProtocol], object]:
    """A dialed connection to a listener of ``server_key`` on loopback, the
    listener's accepted connections, and the listener."""
    accepted: list[PeerProtocol] = []
    server = await listen("127.0.0.1", 0, server_key, accepted.append)
    host, port = bound_address(server)
    client = await dial(host, port, KeyPair.generate(), timeout=5.0)
    return client, accepted, server


def test_the_peer_certificate_is_read_from_aioquic_once_the_handshake_is_done():
    """The dialer reads the certificate the listener presented; before a handshake,
    and on the listener's side (a dialer shows its own in ``Auth``, not in TLS),
    there is none. A new aioquic that keeps it elsewhere fails here."""
    key = KeyPair.generate()
    before = QuicConnection(configuration=make_configuration(key, is_client=True))
    assert peer_certificate_of(before) is None

    async def main() -> None:
        client, accepted, server = await _connected(key)
        try:
            got = peer_certificate_of(client.connection)
            assert got is not None, aioquic.__version__
            expected = self_signed_certificate(key)
            assert got.public_bytes(Encoding.DER) == expected.public_bytes(Encoding.DER)
            assert client.peer_certificate() == got
            assert [peer_certificate_of(p.connection) for p in accepted] == [None]
        finally:
            client.shutdown(0, "done")
            server.close()

    run(main())


def test_unacknowledged_bytes_are_read_from_aioquic_until_the_peer_acknowledges_them():
    """A frame written and not yet acknowledged counts all its bytes; once the peer
    has acknowledged it, none; a stream aioquic does not hold, none. A new aioquic
    whose stream sender keeps its buffer otherwise fails here rather than leaving
    the node without backpressure."""

    async def main() -> None:
        client, _, server = await _connected(KeyPair.generate())
        try:
            stream = client.new_stream()
            payload = b"x" * 100_000
            assert client.send_frame(stream, payload)
            assert unacked_bytes(client.connection, stream) == len(encode_frame(payload))
            deadline = asyncio.get_running_loop().time() + 10
            while client.unacked(stream):
                assert asyncio.get_running_loop().time() < deadline, client.unacked(stream)
                await asyncio.sleep(0.01)
            assert unacked_bytes(client.connection, stream + 4) == 0
        finally:
            client.shutdown(0, "done")
            server.close()

    run(main())
