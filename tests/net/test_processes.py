"""Real QUIC connections between real node processes on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.net.harness import PeerProcess, close_pipes


@pytest.fixture
def spawn() -> Iterator:
    started: list[PeerProcess] = []

    def start(*seeds: int, extra: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
        """One node per seed, started together; the node itself for a single seed."""
        procs = [PeerProcess(seed, *extra, wait=False) for seed in seeds]
        started.extend(procs)
        for proc in procs:
            proc.wait_ready()
        return procs[0] if len(procs) == 1 else procs

    yield start
    for proc in started:
        proc.quit()
    for proc in started:
        proc.stop()


def wait_until(check, timeout: float = 10.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return False


def test_authenticated_connect_and_request(spawn) -> None:
    a, b = spawn(1, 2)
    assert a.call(cmd="connect", addr=b.addr) == {"event": "connected", "id": b.id}
    assert b.call(cmd="stats")["peers"] == [a.id]
    answer = a.call(cmd="request", peer=b.id, name="echo", payload=b"ping".hex())
    assert answer == {"event": "response", "payload": b"ping".hex()}
    unknown = a.call(cmd="request", peer=b.id, name="nope", payload="")
    assert unknown["event"] == "error" and unknown["code"] == "remote_error"
    # The connection is reused: dialing again keeps exactly one.
    a.call(cmd="connect", addr=b.addr)
    assert a.call(cmd="stats")["peers"] == [b.id]


def test_wrong_key_is_refused(spawn) -> None:
    a, b = spawn(3, 4)
    wrong = "ab" * 32
    refused = a.call(cmd="connect", addr=f"{wrong}@127.0.0.1:{b.port}")
    assert refused["event"] == "error" and refused["code"] == "peer_auth_failed"
    impostor = spawn(5, extra=("--claim", a.id))
    refused = impostor.call(cmd="connect", addr=b.addr)
    assert refused["event"] == "error" and refused["code"] == "peer_auth_failed"
    assert b.call(cmd="stats")["peers"] == []


def test_gossip_reaches_all_four_exactly_once(spawn) -> None:
    nodes = spawn(10, 11, 12, 13)
    for i, node in enumerate(nodes):
        if i > 0:
            assert node.call(cmd="connect", addr=nodes[i - 1].addr)["event"] == "connected"
    assert nodes[0].call(cmd="connect", addr=nodes[3].addr)["event"] == "connected"
    payloads = [f"tx-{k}".encode().hex() for k in range(5)]
    for p in payloads:
        assert nodes[0].call(cmd="publish", topic="tx", payload=p)["event"] == "published"
    for node in nodes[1:]:
        seen: list[str] = []
        assert wait_until(
            lambda node=node, seen=seen: (
                seen.extend(e["payload"] for e in node.drain(0.1) if e["event"] == "gossip")
                or sorted(seen) == sorted(payloads)
            ),
            timeout=10,
        )
        seen.extend(e["payload"] for e in node.drain(0.5) if e["event"] == "gossip")
        assert sorted(seen) == sorted(payloads), "each message delivered exactly once"
    assert not [e for e in nodes[0].drain(0.2) if e["event"] == "gossip"]


def test_garbage_peer_is_banned_and_node_keeps_serving(spawn) -> None:
    honest, server, bad = spawn(20, 21, 22)
    assert honest.call(cmd="connect", addr=server.addr)["event"] == "connected"
    assert bad.call(cmd="connect", addr=server.addr)["event"] == "connected"
    assert bad.call(cmd="garbage", peer=server.id, data="00000003ffffff")["event"] == "sent"
    assert wait_until(lambda: server.call(cmd="stats")["banned"] == [bad.id])
    stats = server.call(cmd="stats")
    assert stats["peers"] == [honest.id] and stats["bans"] == 1
    assert wait_until(lambda: bad.call(cmd="stats")["peers"] == [])
    again = bad.call(cmd="connect", addr=server.addr)
    assert again["event"] == "error" and again["code"] == "peer_banned"
    answer = honest.call(cmd="request", peer=server.id, name="echo", payload=b"still".hex())
    assert answer == {"event": "response", "payload": b"still".hex()}


def test_invalid_gossip_costs_score_until_ban(spawn) -> None:
    server, bad = spawn(30, 31)
    assert bad.call(cmd="connect", addr=server.addr)["event"] == "connected"
    for k in range(5):
        bad.call(cmd="publish", topic="vote", payload=f"bad-{k}".encode().hex())
    assert wait_until(lambda: server.call(cmd="stats")["banned"] == [bad.id])
    assert server.call(cmd="stats")["peers"] == []


@pytest.mark.slow
def test_soak_gossip_and_concurrent_requests(spawn) -> None:
    """Two publishers flood a 4-node ring while requests run; FOCUSFLOW_SOAK scales it."""
    count = int(os.environ.get("FOCUSFLOW_SOAK", "60"))
    nodes = spawn(40, 41, 42, 43)
    for i in range(4):
        assert nodes[i].call(cmd="connect", addr=nodes[i - 1].addr)["event"] == "connected"
    nodes[0].send(cmd="burst", topic="tx", prefix="a", count=count, repeat=200)
    nodes[2].send(cmd="burst", topic="vote", prefix="b", count=count, repeat=200)
    answer = nodes[3].call(cmd="burst_request", peer=nodes[2].id, count=32, size=16_384, timeout=60)
    assert answer.get("ok"), answer
    nodes[0].expect("published", timeout=60)
    nodes[2].expect("published", timeout=60)
    for i, node in enumerate(nodes):
        expected = count if i in (0, 2) else 2 * count
        assert wait_until(
            lambda node=node, expected=expected: (
                node.drain(0.2) is not None
                and sum(e["event"] == "gossip" for e in node.log) >= expected
            ),
            timeout=60,
        )
        node.drain(0.5)
        payloads = [e["payload"] for e in node.log if e["event"] == "gossip"]
        assert len(payloads) == len(set(payloads)) == expected


def test_a_restarted_peer_is_reachable_again_before_the_dead_connection_times_out(spawn) -> None:
    """A peer killed and started again dials back in: its new connection must
    replace the dead one at once, not lose to it as a "duplicate" until QUIC's
    30 s idle timeout. Seeds 7 and 8 order the node ids so that the dead
    connection (dialed by the lower id) would be the one kept."""
    a, b = spawn(7, 8)
    assert a.id < b.id
    assert a.call(cmd="connect", addr=b.addr)["event"] == "connected"
    assert a.call(cmd="request", peer=b.id, name="echo", payload="00")["event"] == "response"
    b.proc.kill()
    b.stop()
    again = spawn(8)
    addr_a = f"{a.id}@127.0.0.1:{a.port}"
    deadline = time.monotonic() + 10.0
    answered = False
    while not answered and time.monotonic() < deadline:
        again.call(cmd="connect", addr=addr_a)
        got = a.call(cmd="request", peer=b.id, name="echo", payload="01", timeout=10.0)
        answered = got["event"] == "response"
        if not answered:
            time.sleep(0.2)
    assert answered, "the restarted peer stayed unreachable behind its dead connection"


def test_pipes_of_a_gone_process_close_with_a_write_still_buffered():
    """A quit left in stdin's buffer when the node had already exited: closing the
    pipes raises nothing and closes both (the teardown error seen on CI)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "pass"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    proc.wait(timeout=30)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("x" * 100)  # buffered: the flush at close meets the closed pipe
    close_pipes(proc)
    assert proc.stdin.closed and proc.stdout.closed
