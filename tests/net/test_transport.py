"""How the transport reads its UDP sockets (``net.transport``): what is queued at a
node's listening socket is read in a few turns of the event loop, not one datagram a
turn, which a busy process falls behind on."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from focusflow.core.keys import KeyPair
from focusflow.net import Node
from focusflow.net.transport import DRAIN_BATCH
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
