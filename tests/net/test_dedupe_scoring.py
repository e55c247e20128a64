from __future__ import annotations

import random

from focusflow.net import GossipRouter, Offence, PeerScores, SeenCache, message_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_seen_cache_is_bounded_in_size_and_time() -> None:
    clock = Clock()
    seen = SeenCache(capacity=3, ttl=10.0, clock=clock)
    assert seen.add(b"a") and not seen.add(b"a")
    for key in (b"b", b"c", b"d"):
        assert seen.add(key)
    assert len(seen) == 3 and b"a" not in seen
    clock.now += 11
    assert b"d" not in seen and len(seen) == 0
    assert seen.add(b"d")


def test_message_id_depends_on_topic_and_payload() -> None:
    assert message_id("tx", b"x") == message_id("tx", b"x")
    assert message_id("tx", b"x") != message_id("vote", b"x")
    assert len(message_id("tx", b"x")) == 32


def test_router_delivers_once_and_never_echoes_to_sender() -> None:
    peers = [bytes([i]) * 32 for i in range(20)]
    router = GossipRouter(fanout=5, rng=random.Random(1))
    mid, targets = router.receive(peers[0], "tx", b"m", peers)
    assert len(targets) == 5 and peers[0] not in targets and len(set(targets)) == 5
    assert router.receive(peers[1], "tx", b"m", peers) == (mid, None)
    assert router.publish("tx", b"m", peers) == (mid, [])
    _, all_peers = GossipRouter(fanout=50).publish("tx", b"n", peers)
    assert sorted(all_peers) == peers


def test_malformed_bans_at_once_invalid_after_repeats() -> None:
    clock = Clock()
    scores = PeerScores(ban_threshold=-100, ban_seconds=60, recovery=1.0, clock=clock)
    bad, noisy = b"b" * 32, b"n" * 32
    assert scores.penalise(bad, Offence.MALFORMED)
    assert scores.is_banned(bad) and scores.banned() == [bad]
    assert [scores.penalise(noisy, Offence.INVALID) for _ in range(4)] == [False] * 3 + [True]
    clock.now += 61
    assert not scores.is_banned(bad) and scores.score(bad) == 0


def test_score_heals_with_time_but_not_above_zero() -> None:
    clock = Clock()
    scores = PeerScores(recovery=2.0, clock=clock)
    peer = b"p" * 32
    scores.penalise(peer, Offence.INVALID)
    assert scores.score(peer) == -25
    clock.now += 5
    assert scores.score(peer) == -15
    clock.now += 100
    assert scores.score(peer) == 0
    for _ in range(3):
        assert not scores.penalise(peer, Offence.INVALID)
