"""The Kademlia DHT (``net.dht``): the routing table against brute force, provider
records, and lookups among real QUIC nodes on loopback, with a node that lies."""

from __future__ import annotations

import asyncio
import os

import pytest

from focusflow.core.encoding import encode
from focusflow.core.keys import KeyPair
from focusflow.net import Node, RemoteError
from focusflow.net.dht import (
    FIND_NODE,
    FIND_PROVIDERS,
    MAX_PROVIDERS,
    Contact,
    Dht,
    K,
    ProviderStore,
    RoutingTable,
    RttEstimate,
    content_key,
    distance,
)
from tests.net.test_node import run


def _id() -> bytes:
    return os.urandom(32)


def test_the_table_keeps_k_per_bucket_and_answers_the_closest():
    me = _id()
    table = RoutingTable(me, k=4)
    contacts = [Contact(_id(), "127.0.0.1", 1000 + i) for i in range(300)]
    refused = 0
    for c in contacts:
        if table.update(c) is not None:
            refused += 1
    assert table.update(Contact(me, "127.0.0.1", 1)) is None and me not in {
        c.node_id for b in table.buckets for c in b.values()
    }
    assert all(len(b) <= 4 for b in table.buckets) and refused == 300 - len(table)
    kept = [c for b in table.buckets for c in b.values()]
    for _ in range(20):
        target = _id()
        want = sorted(kept, key=lambda c: distance(c.node_id, target))[:4]
        assert table.closest(target) == want
    # the top bucket (half of all ids) is full: a newcomer is refused, the oldest named
    top = table.buckets[255]
    newcomer = next(c for c in contacts if distance(me, c.node_id).bit_length() == 256)
    assert newcomer.node_id in top or table.update(newcomer) == next(iter(top.values()))
    oldest = next(iter(top.values()))
    table.remove(oldest.node_id)
    assert oldest.node_id not in top


def test_provider_records_expire_and_are_bounded():
    now = [0.0]
    store = ProviderStore(ttl=10.0, clock=lambda: now[0])
    key = _id()
    first = Contact(_id(), "127.0.0.1", 9)
    store.add(key, first)
    assert store.get(key) == [first]
    now[0] = 11.0
    assert store.get(key) == []
    for i in range(MAX_PROVIDERS + 5):
        store.add(key, Contact(_id(), "127.0.0.1", 100 + i))
    kept = store.get(key)
    assert len(kept) == MAX_PROVIDERS and kept[-1].port == 100 + MAX_PROVIDERS + 4


def test_round_trip_estimates_follow_rfc_6298():
    rtt = RttEstimate()
    assert rtt.timeout(3.0, 30.0) == 3.0  # nothing measured: the floor
    rtt.sample(2.0)
    assert (rtt.srtt, rtt.rttvar) == (2.0, 1.0)
    assert rtt.timeout(3.0, 30.0) == 6.0  # srtt + 4 * rttvar
    rtt.sample(1.0)
    assert rtt.rttvar == 0.75 * 1.0 + 0.25 * 1.0 and rtt.srtt == 0.875 * 2.0 + 0.125 * 1.0
    for _ in range(100):
        rtt.sample(0.01)
    assert rtt.timeout(3.0, 30.0) == 3.0  # never under the floor
    for _ in range(3):
        rtt.sample(60.0)
    assert rtt.timeout(3.0, 30.0) == 30.0  # nor over the ceiling


async def _network(n: int, timeout: float = 3.0) -> list[Dht]:
    nodes = [Node(KeyPair.generate()) for _ in range(n)]
    for node in nodes:
        await node.start()
    dhts = [Dht(node, timeout=timeout) for node in nodes]
    seed = nodes[0].peer_address
    for d in dhts[1:]:
        await d.bootstrap([seed])
    return dhts


async def _stop(dhts: list[Dht]) -> None:
    for d in dhts:
        await d.node.stop()


def test_lookups_find_the_closest_nodes_and_the_providers():
    async def main() -> None:
        dhts = await _network(24)
        try:
            others = [d.node.id for d in dhts if d is not dhts[7]]
            target = _id()
            found = await dhts[7].lookup(target)
            # exactly the k closest of the other 23 (the node asking is not its answer)
            want = sorted(others, key=lambda i: distance(i, target))[:K]
            assert [c.node_id for c in found] == want
            # a provider announced on one node is found from another
            key = content_key(b"some cid bytes")
            assert await dhts[3].provide(key) >= 1
            providers = await dhts[19].find_providers(key)
            assert [p.node_id for p in providers] == [dhts[3].node.id]
            assert providers[0].port == dhts[3].node.address[1]
            # a key nobody holds: none, after asking the nodes closest to it
            assert await dhts[19].find_providers(content_key(b"nobody")) == []
        finally:
            await _stop(dhts)

    run(main(), timeout=90)


def test_a_contact_slower_than_the_timeout_is_waited_for_and_measured():
    """A contact that answers after the timeout (as a loaded machine does) is asked
    again with twice the time, so the lookup still finds it; the round trip it
    took is measured, and its next request is given that long from the start."""

    async def main() -> None:
        dhts = await _network(4, timeout=1.0)
        asker, slow = dhts[1], dhts[2]
        answer = slow.node.handlers._handlers[FIND_NODE]
        asked: list[bytes] = []

        async def late(peer_id: bytes, payload: bytes) -> bytes:
            asked.append(peer_id)
            await asyncio.sleep(1.4)
            return await answer(peer_id, payload)

        slow.node.handlers._handlers[FIND_NODE] = late
        try:
            found = await asker.lookup(_id())
            assert slow.node.id in {c.node_id for c in found}
            assert asked.count(asker.node.id) == 2  # timed out once, answered the second
            assert asker._rtts[slow.node.id].timeout(1.0, 30.0) > 1.4
            asked.clear()
            found = await asker.lookup(_id())
            assert slow.node.id in {c.node_id for c in found}
            assert asked == [asker.node.id]  # given the time it takes: asked once
        finally:
            await _stop(dhts)

    run(main(), timeout=60)


def test_bad_requests_are_refused_with_a_code():
    async def main() -> None:
        dhts = await _network(2)
        a, b = dhts
        try:
            bad = [
                b"\xff",
                encode({"target": b"short", "from": ["127.0.0.1", 1]}),
                encode({"target": bytes(32), "from": ["127.0.0.1", 70000]}),
                encode({"target": bytes(32), "from": ["x" * 300, 1]}),
                encode({"target": bytes(32)}),
            ]
            for payload in bad:
                with pytest.raises(RemoteError) as info:
                    await b.node.request(a.node.id, FIND_NODE, payload)
                assert info.value.remote_code == "malformed"
            with pytest.raises(RemoteError):
                await b.node.request(
                    a.node.id, FIND_PROVIDERS, encode({"target": bytes(32), "from": ["h", 1]})
                )
        finally:
            await _stop(dhts)

    run(main())


def test_a_node_that_lies_about_contacts_does_not_stop_a_lookup():
    """A liar answers every find_node with unreachable contacts closer than
    anyone: the lookup drops them as they fail and still finds the provider."""

    async def main() -> None:
        dhts = await _network(10)
        liar = dhts[5]

        async def lie(peer_id: bytes, payload: bytes) -> bytes:
            return encode([[_id(), "127.0.0.1", 9] for _ in range(K)])

        async def lie_providers(peer_id: bytes, payload: bytes) -> bytes:
            fake = [[_id(), "127.0.0.1", 9] for _ in range(K)]
            return encode({"providers": [], "nodes": fake})

        liar.node.handlers._handlers[FIND_NODE] = lie
        liar.node.handlers._handlers[FIND_PROVIDERS] = lie_providers
        try:
            key = content_key(b"held")
            await dhts[2].provide(key)
            found = await dhts[8].find_providers(key)
            assert [p.node_id for p in found] == [dhts[2].node.id]
        finally:
            await _stop(dhts)

    run(main(), timeout=120)


def test_answers_over_k_contacts_are_refused_and_reported():
    async def main() -> None:
        dhts = await _network(3)
        bloated = dhts[1]

        async def too_many(peer_id: bytes, payload: bytes) -> bytes:
            return encode([[_id(), "127.0.0.1", 9] for _ in range(K + 1)])

        bloated.node.handlers._handlers[FIND_NODE] = too_many
        try:
            await dhts[2].lookup(_id())
            assert dhts[2].node.scores.score(bloated.node.id) < 0
            assert bloated.node.id not in {c.node_id for c in dhts[2].table.closest(_id(), 99)}
        finally:
            await _stop(dhts)

    run(main())


def test_lookup_requests_grow_with_the_log_of_the_network():
    async def main() -> None:
        dhts = await _network(16)
        try:
            asker = dhts[9]
            before = asker.requests
            await asker.lookup(_id())
            asked = asker.requests - before
            assert asked <= 16  # at most every other node, never a flood
        finally:
            await _stop(dhts)

    run(main(), timeout=60)
