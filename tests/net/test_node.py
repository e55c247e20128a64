"""Node behaviour over real loopback QUIC sockets, both nodes in this process."""

from __future__ import annotations

import asyncio
import struct

import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.core.keys import KeyPair
from focusflow.net import (
    FrameTooLargeError,
    NetConfig,
    NetError,
    Node,
    PeerAuthError,
    RemoteError,
    RequestTimeoutError,
    Verdict,
)
from focusflow.net.errors import NetworkMismatchError
from focusflow.net.messages import Request, encode_message
from focusflow.net.transport import CLOSE_MALFORMED, dial


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def pair(config_b: NetConfig | None = None) -> tuple[Node, Node]:
    a = Node(KeyPair.generate(), config=NetConfig(request_timeout=2.0))
    b = Node(KeyPair.generate(), config=config_b)
    await a.start()
    await b.start()
    await a.connect(b.peer_address)
    return a, b


async def until(check, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_request_errors_carry_codes_and_timeouts() -> None:
    async def main() -> None:
        a, b = await pair()

        async def slow(peer: bytes, payload: bytes) -> bytes:
            await asyncio.sleep(5)
            return b""

        async def refuse(peer: bytes, payload: bytes) -> bytes:
            raise InvalidParameterError("alpha out of range")

        b.register("slow", slow)
        b.register("refuse", refuse)

        async def echo(peer: bytes, payload: bytes) -> bytes:
            return peer + payload

        a.register("echo", echo)
        assert await b.request(a.id, "echo", b"!") == b.id + b"!", "the accepting side asks too"
        with pytest.raises(RequestTimeoutError):
            await a.request(b.id, "slow", b"", timeout=0.2)
        with pytest.raises(RemoteError) as info:
            await a.request(b.id, "refuse", b"")
        assert info.value.remote_code == "invalid_parameter"
        await a.stop()
        await b.stop()

    run(main())


def test_a_late_answer_is_dropped_not_blamed() -> None:
    """A peer that answers after we stopped waiting was slow, not wrong: its
    late answer is dropped without an offence (whether the timeout itself is
    blamed is the requester's choice), and the connection stays up."""

    async def main() -> None:
        a, b = await pair()
        answered = asyncio.Event()

        async def slow(peer: bytes, payload: bytes) -> bytes:
            await asyncio.sleep(0.5)
            answered.set()
            return b"late"

        async def echo(peer: bytes, payload: bytes) -> bytes:
            return payload

        b.register("slow", slow)
        b.register("echo", echo)
        for _ in range(3):
            with pytest.raises(RequestTimeoutError):
                await a.request(b.id, "slow", b"", timeout=0.1, blame_timeout=False)
        await asyncio.wait_for(answered.wait(), 5)
        await asyncio.sleep(0.3)
        assert a.stats.offences == 0
        assert a.scores.score(b.id) == 0
        assert not a._sessions[b.id].abandoned
        assert await a.request(b.id, "echo", b"still here") == b"still here"
        await a.stop()
        await b.stop()

    run(main())


@pytest.mark.parametrize("dialers", ["ab", "aaa"], ids=["both-ways", "same-node-thrice"])
def test_concurrent_dials_leave_one_connection(dialers: str) -> None:
    async def main() -> None:
        nodes = {"a": Node(KeyPair.generate()), "b": Node(KeyPair.generate())}
        a, b = nodes["a"], nodes["b"]
        await a.start()
        await b.start()
        other = {"a": b, "b": a}
        await asyncio.gather(*(nodes[d].connect(other[d].peer_address) for d in dialers))
        await until(lambda: len(a._all) == 1 and len(b._all) == 1)
        assert a.connected_peers() == [b.id] and b.connected_peers() == [a.id]
        await a.stop()
        await b.stop()

    run(main())


def test_static_peers_are_dialed_at_start() -> None:
    async def main() -> None:
        a = Node(KeyPair.generate())
        events: list[tuple[bytes, bool]] = []
        a.watch_peers(lambda peer, up: events.append((peer, up)))
        await a.start()
        b = Node(KeyPair.generate(), peers=[str(a.peer_address)])
        await b.start()
        await until(lambda: a.connected_peers() == [b.id])
        await b.stop()
        await until(lambda: a.connected_peers() == [])
        assert events == [(b.id, True), (b.id, False)]
        await a.stop()

    run(main())


def test_full_inbox_drops_gossip_instead_of_blocking() -> None:
    async def main() -> None:
        a, b = await pair(NetConfig(recv_queue=2))
        release = asyncio.Event()
        got: list[bytes] = []

        async def stuck(peer: bytes, payload: bytes) -> None:
            got.append(payload)
            await release.wait()

        b.subscribe("tx", stuck)
        for k in range(10):
            await a.publish("tx", b"m%d" % k)
        await until(lambda: b.stats.dropped_inbound > 0)
        release.set()
        await until(lambda: len(got) == 10 - b.stats.dropped_inbound)
        assert b.connected_peers() == [a.id]
        await a.stop()
        await b.stop()

    run(main())


def test_wrong_messages_in_place_cost_score() -> None:
    async def main() -> None:
        a, b = await pair()

        async def echo(peer: bytes, payload: bytes) -> bytes:
            return payload

        b.register("echo", echo)
        session = a._sessions[b.id]
        session.protocol.send_frame(session.control, encode_message(Request("echo", b"")))
        await until(lambda: b.scores.score(a.id) <= -49)
        assert b.connected_peers() == [a.id]
        stream = session.protocol.new_stream()
        session.protocol.send_frame(stream, encode_message(Request("echo", b"1")))
        await asyncio.sleep(0.2)
        session.protocol.send_frame(stream, encode_message(Request("echo", b"2")))
        await until(lambda: b.stats.by_offence.get("PROTOCOL") == 2)
        assert b.scores.score(a.id) < -90
        await a.stop()
        await b.stop()

    run(main())


def test_messages_above_the_frame_limit_fail_cleanly() -> None:
    async def main() -> None:
        small = NetConfig(max_frame=1000)
        a = Node(KeyPair.generate(), config=small)
        b = Node(KeyPair.generate(), config=small)
        await a.start()
        await b.start()
        await a.connect(b.peer_address)

        async def big(peer: bytes, payload: bytes) -> bytes:
            return b"x" * 2000

        b.register("big", big)
        with pytest.raises(FrameTooLargeError):
            await a.publish("tx", b"x" * 2000)
        with pytest.raises(FrameTooLargeError):
            await a.request(b.id, "big", b"x" * 2000)
        with pytest.raises(RemoteError) as info:
            await a.request(b.id, "big", b"")
        assert info.value.remote_code == "response_too_large"
        await a.publish("tx", b"still fine")
        assert a.connected_peers() == [b.id]
        await a.stop()
        await b.stop()

    run(main())


def test_unfinished_frames_are_bounded_before_and_after_auth() -> None:
    async def main() -> None:
        a, b = await pair(NetConfig(max_buffered=10_000))
        stranger = await dial(*b.address, KeyPair.generate(), timeout=5.0)
        stranger.link = recorder = Recorder()
        stranger.send_raw(stranger.new_stream(), struct.pack(">I", 100_000) + b"x" * 5000)
        await until(lambda: stranger.is_closed)
        assert recorder.code == CLOSE_MALFORMED
        session = a._sessions[b.id]
        for _ in range(3):
            stream = session.protocol.new_stream()
            session.protocol.send_raw(stream, struct.pack(">I", 100_000) + b"x" * 4000)
        await until(lambda: b.scores.is_banned(a.id))
        await a.stop()
        await b.stop()

    run(main())


class Recorder:
    """A Link that ignores everything: for a raw connection that never authenticates."""

    def handshake_completed(self) -> None: ...
    def frame_received(self, stream_id: int, payload: bytes) -> None: ...
    def stream_ended(self, stream_id: int) -> None: ...
    def malformed(self, stream_id: int, error: Exception) -> None: ...

    code: int | None = None

    def closed(self, reason: str, code: int | None) -> None:
        self.code = code


def test_allowed_set_refuses_and_drops_other_nodes() -> None:
    async def main() -> None:
        a, b = Node(KeyPair.generate()), Node(KeyPair.generate())
        c = Node(KeyPair.generate())
        for node in (a, b, c):
            await node.start()
        b.set_allowed([a.id])
        await a.connect(b.peer_address)
        with pytest.raises(PeerAuthError):
            await c.connect(b.peer_address)
        b.set_allowed([c.id])
        await until(lambda: a.connected_peers() == [])
        assert await c.connect(b.peer_address) == b.id
        for node in (a, b, c):
            await node.stop()

    run(main())


def test_dial_timeout_leaves_no_unretrieved_error() -> None:
    """A peer that never answers (still starting, or gone) makes the dial time
    out; the node must not log asyncio's "Future exception was never retrieved"
    when the abandoned QUIC handshake ends later."""
    import gc
    import socket

    reported: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        try:
            with pytest.raises(TimeoutError):
                await dial("127.0.0.1", port, KeyPair.generate(), 0.3)
            # aioquic ends the closing connection on its timer; let it, then
            # collect the waiter it failed.
            await asyncio.sleep(1.5)
            gc.collect()
            await asyncio.sleep(0)
        finally:
            silent.close()

    run(main())
    assert [c.get("message") for c in reported] == []


def test_a_handshake_done_before_the_dialer_waits_is_not_missed(monkeypatch) -> None:
    """On a busy event loop the server's whole handshake flight can be
    processed before the dialing task first waits for it: the dial must see
    the finished handshake at once, not wait out its timeout on a connection
    that is up. The wait is started late here on purpose."""
    from focusflow.net import transport

    real_wait_for = asyncio.wait_for

    async def late_wait_for(aw, timeout):
        await asyncio.sleep(0.3)  # the handshake completes meanwhile
        return await real_wait_for(aw, timeout)

    async def main() -> None:
        server = Node(KeyPair.generate())
        await server.start()
        try:
            monkeypatch.setattr(transport.asyncio, "wait_for", late_wait_for)
            protocol = await dial("127.0.0.1", server.address[1], KeyPair.generate(), 2.0)
            monkeypatch.undo()
            protocol.shutdown(0, "done")
        finally:
            monkeypatch.undo()
            await server.stop()

    run(main())


async def _mesh(edges: list[tuple[int, int]], n: int, config: NetConfig) -> list[Node]:
    nodes = [Node(KeyPair.generate(), config=config) for _ in range(n)]
    for node in nodes:
        await node.start()
    for i, j in edges:
        await nodes[i].connect(nodes[j].peer_address)
    return nodes


def _collect(nodes: list[Node]) -> list[list[bytes]]:
    got: list[list[bytes]] = [[] for _ in nodes]
    for k, node in enumerate(nodes):

        async def handler(peer: bytes, payload: bytes, k=k) -> bool:
            got[k].append(payload)
            return True

        node.subscribe("block_part", handler)
    return got


def test_large_gossip_is_announced_not_flooded_in_a_full_mesh() -> None:
    """Each of B and C has A's large message from A: they announce it to each
    other instead of sending it again, and neither fetches it."""
    big = bytes(range(256)) * 200

    async def main() -> None:
        config = NetConfig(lazy_grace=0.5)
        a, b, c = nodes = await _mesh([(0, 1), (0, 2), (1, 2)], 3, config)
        got = _collect(nodes)
        await a.publish("block_part", big)
        await until(lambda: got[1] == [big] and got[2] == [big])
        await until(lambda: b.stats.announce_ignored + c.stats.announce_ignored == 2)
        await asyncio.sleep(0.7)  # past the grace: nothing is fetched after all
        assert (b.stats.announced, c.stats.announced) == (1, 1)
        assert (b.stats.fetched, c.stats.fetched) == (0, 0)
        assert got == [[], [big], [big]]
        for node in nodes:
            await node.stop()

    run(main())


def test_announced_gossip_is_fetched_across_a_line() -> None:
    """A - B - C: C is not connected to A, so it fetches the large message B
    announces; a small message (a vote) is still forwarded in full."""
    big = b"x" * 10_000

    async def main() -> None:
        a, b, c = nodes = await _mesh([(0, 1), (1, 2)], 3, NetConfig())
        got = _collect(nodes)
        await a.publish("block_part", big)
        await until(lambda: got[2] == [big])
        assert (b.stats.announced, c.stats.fetched) == (1, 1)
        await a.publish("block_part", b"small vote")
        await until(lambda: got[2] == [big, b"small vote"])
        assert (b.stats.announced, c.stats.fetched) == (1, 1)
        assert got[1] == [big, b"small vote"] and got[0] == []
        for node in nodes:
            await node.stop()

    run(main())


def test_gossip_fetch_errors_are_precise() -> None:
    async def main() -> None:
        a, b = await pair()
        with pytest.raises(RemoteError) as gone:
            await a.request(b.id, "net.gossip", bytes(32))
        assert gone.value.remote_code == "gossip_gone"
        with pytest.raises(RemoteError) as bad:
            await a.request(b.id, "net.gossip", b"short")
        assert bad.value.remote_code == "invalid_message"
        await a.stop()
        await b.stop()

    run(main())


def test_announcing_gossip_one_does_not_have_costs_score() -> None:
    """An IHave for a message the announcer cannot serve makes us fetch in
    vain: nothing is delivered and the announcer is penalised as invalid."""
    from focusflow.net.messages import IHave

    async def main() -> None:
        a, b = await pair(NetConfig(lazy_grace=0.0))
        got = _collect([b])
        session = a._sessions[b.id]
        session.protocol.send_frame(
            session.control, encode_message(IHave("block_part", bytes(range(32))))
        )
        await until(lambda: b.stats.by_offence.get("INVALID") == 1)
        assert b.scores.score(a.id) < -20
        assert got == [[]] and b.stats.fetched == 0
        await a.stop()
        await b.stop()

    run(main())


def test_a_peer_on_another_network_is_refused_at_the_handshake() -> None:
    """Hello carries the network id (the genesis hash): a node of another chain is
    refused with a reason naming both ids, before any gossip, on both sides."""

    async def main() -> None:
        ours, theirs = b"\x01" * 32, b"\x02" * 32
        a = Node(KeyPair.generate(), config=NetConfig(network_id=ours))
        b = Node(KeyPair.generate(), config=NetConfig(network_id=theirs))
        c = Node(KeyPair.generate(), config=NetConfig(network_id=ours))
        for node in (a, b, c):
            await node.start()
        try:
            with pytest.raises(NetworkMismatchError) as info:
                await a.connect(b.peer_address)
            assert info.value.code == "network_mismatch"
            assert "wrong network" in str(info.value)
            assert ours.hex()[:16] in str(info.value) and theirs.hex()[:16] in str(info.value)
            with pytest.raises(NetworkMismatchError):
                await b.connect(a.peer_address)
            assert a.connected_peers() == [] and b.connected_peers() == []
            # The same network connects as before.
            assert await a.connect(c.peer_address) == c.id
        finally:
            for node in (a, b, c):
                await node.stop()

    run(main())


def test_a_network_id_must_be_32_bytes() -> None:
    with pytest.raises(NetError):
        Node(KeyPair.generate(), config=NetConfig(network_id=b"short"))


def test_a_subscriber_verdict_decides_forwarding_and_blame() -> None:
    """A - B - C: B forwards what it accepts, keeps what it ignores without
    blaming A, and blames A for what it rejects; C sees only the accepted."""

    async def main() -> None:
        a, b, c = nodes = await _mesh([(0, 1), (1, 2)], 3, NetConfig())
        got: list[list[bytes]] = [[], [], []]
        verdicts = {b"ok": Verdict.ACCEPT, b"hold": Verdict.IGNORE, b"bad": Verdict.REJECT}
        for k, node in enumerate(nodes):

            async def handler(peer: bytes, payload: bytes, k=k) -> Verdict:
                got[k].append(payload)
                return verdicts[payload.split(b"-")[0]]

            node.subscribe("vote", handler)
        for payload in (b"hold-1", b"bad-1", b"ok-1"):
            await a.publish("vote", payload)
        await until(lambda: got[2] == [b"ok-1"])
        await asyncio.sleep(0.2)
        assert got[1] == [b"hold-1", b"bad-1", b"ok-1"] and got[2] == [b"ok-1"]
        assert b.stats.not_forwarded == 1
        assert b.stats.by_offence == {"INVALID": 1} and b.scores.score(a.id) < -20
        assert c.stats.offences == 0
        for node in nodes:
            await node.stop()

    run(main())


def test_guests_beside_the_allowed_set_are_bounded() -> None:
    """A validator takes its set's members and at most ``guests`` other peers
    (full nodes); one more is refused, and a member is never crowded out."""

    async def main() -> None:
        v = Node(KeyPair.generate())
        member = Node(KeyPair.generate())
        g1, g2, g3 = (Node(KeyPair.generate()) for _ in range(3))
        for node in (v, member, g1, g2, g3):
            await node.start()
        v.set_allowed([member.id], guests=2)
        assert await g1.connect(v.peer_address) == v.id
        assert await g2.connect(v.peer_address) == v.id
        with pytest.raises(PeerAuthError):
            await g3.connect(v.peer_address)
        assert await member.connect(v.peer_address) == v.id
        await until(lambda: len(v.connected_peers()) == 3)
        # The set changes: guests stay while there is room, the rest are closed.
        v.set_allowed([member.id], guests=1)
        await until(lambda: len(v.connected_peers()) == 2)
        assert member.id in v.connected_peers()
        for node in (v, member, g1, g2, g3):
            await node.stop()

    run(main())
