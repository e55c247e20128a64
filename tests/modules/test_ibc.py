"""Chains that verify each other: a hub and a rollup in one process, an echo app
on both, packets through the in-process relayer, and every lie a relayer can
tell refused on chain with its code."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.chain.block import Header, sign_certificate
from focusflow.chain.chain import Chain
from focusflow.chain.header_verify import LightBlock
from focusflow.chain.module import TxContext
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import KeyPair
from focusflow.modules import ante, default_modules
from focusflow.modules.ibc import Ibc, send_packet
from focusflow.node.relay import LocalEndpoint, Path, Relayer
from focusflow.state_schema.ibc import (
    CLOSED,
    Packet,
    channel_key,
    commitment_key,
    decode_ack,
    get_channel,
    get_client,
    seq_key,
)
from focusflow.store import Store
from focusflow.testing.chains import ALICE, BALANCE, STAKE, VALIDATOR

T0 = 1_700_000_000_000
HUB, ROLLUP = "hub-test", "rollup-test-0"


class Echo:
    """Answers each packet with its data reversed; sends on request."""

    port = "echo"

    def __init__(self) -> None:
        self.acks: list[tuple[int, bytes]] = []
        self.timeouts: list[int] = []

    def on_recv(self, ctx: TxContext, packet: Packet) -> bytes:
        if packet.data == b"fail":
            raise ValueError("refused")
        return packet.data[::-1]

    def on_ack(self, ctx: TxContext, packet: Packet, ack: bytes) -> None:
        self.acks.append((packet.sequence, ack))

    def on_timeout(self, ctx: TxContext, packet: Packet) -> None:
        self.timeouts.append(packet.sequence)


def _genesis(chain_id: str, role: str) -> Genesis:
    ref = {
        "chain_id": HUB, "genesis_time_ms": T0,
        "validators": [{"public_key": VALIDATOR.public_key.hex(), "power": 1}],
    }  # fmt: skip
    rollup = {**ref, "chain_id": ROLLUP, "bucket": 0}
    section: dict[str, object] = {"role": role, "buckets": 1, "hub": ref, "rollups": [rollup]}
    if role == "rollup":
        section["bucket"] = 0
    return Genesis.from_json(
        {
            "chain_id": chain_id,
            "genesis_time_ms": T0,
            "params": {"focus": {"mode": "diffusion"}},
            "accounts": [{"address": ALICE.address, "balance": BALANCE, "stake": STAKE}],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
            "interchain": section,
        }
    )


def _chain(path, chain_id: str, role: str, app: Echo) -> Chain:
    modules = [Ibc([app]) if m.name == "ibc" else m for m in default_modules()]
    return Chain(Store(path), _genesis(chain_id, role), modules, ante, validator_key=VALIDATOR)


class Net:
    """A hub and a rollup sharing one clock (a second a block)."""

    def __init__(self, tmp_path) -> None:
        self.ticks = itertools.count(1)
        self.apps = Echo(), Echo()
        self.hub = _chain(tmp_path / "hub", HUB, "hub", self.apps[0])
        self.rollup = _chain(tmp_path / "rollup", ROLLUP, "rollup", self.apps[1])
        self.a = LocalEndpoint(self.hub, ALICE, self.clock)
        self.b = LocalEndpoint(self.rollup, ALICE, self.clock)
        self.relayer = Relayer(self.a, self.b, Path("echo", "echo"))

    def clock(self) -> int:
        return T0 + 1000 * next(self.ticks)

    def send(
        self, chain: Chain, data: bytes, timeout_height: int = 10**6, timeout_ms: int = 0
    ) -> int:
        """A block on ``chain`` whose app sends ``data`` (the test plays the app)."""
        seq = 0

        def end_block(ctx) -> None:  # type: ignore[no-untyped-def]
            nonlocal seq
            seq = send_packet(ctx.state, "echo", "channel-0", data, timeout_height, timeout_ms)

        ibc = next(m for m in chain.modules if m.name == "ibc")
        ibc.end_block = end_block  # type: ignore[method-assign]
        try:
            chain.produce_block([], time_ms=self.clock())
        finally:
            del ibc.end_block
        return seq


@pytest.fixture
def net(tmp_path):
    n = Net(tmp_path)
    n.relayer.channel()
    yield n
    n.hub.close()
    n.rollup.close()


def test_genesis_without_interchain_writes_nothing(tmp_path):
    from focusflow.testing.chains import new_chain

    chain = new_chain(tmp_path / "c")
    with chain.reader() as r:
        assert list(r.items(b"/kv/ibc/")) == []
    chain.close()


def test_clients_at_genesis_and_a_channel_opens(net):
    with net.hub.reader() as r:
        assert get_client(r, ROLLUP) is not None and get_client(r, HUB) is None
        assert get_channel(r, "echo", "channel-0").state == 3
    with net.rollup.reader() as r:
        assert get_client(r, HUB) is not None
        assert get_channel(r, "echo", "channel-0").counterparty_channel == "channel-0"


def test_packets_are_received_in_order_and_acknowledged(net):
    for data in (b"abc", b"fail", b"xyz"):
        net.send(net.hub, data)
    assert net.relayer.step() == 6
    acks = net.apps[0].acks
    assert [s for s, _ in acks] == [1, 2, 3]
    assert decode_ack(acks[0][1]) == (True, b"cba")
    assert decode_ack(acks[1][1]) == (False, b"internal_error")
    assert net.relayer.step() == 0  # nothing left: commitments deleted
    with net.hub.reader() as r:
        assert r.get(commitment_key("echo", "channel-0", 1)) is None
    # and the other way
    net.send(net.rollup, b"back")
    assert net.relayer.step() == 2
    assert decode_ack(net.apps[1].acks[0][1]) == (True, b"kcab")


def _submit(ep: LocalEndpoint, *msgs: Msg) -> str:
    return ep.submit(list(msgs))


def _recv(net: Net, packet: Packet, proof: bytes | None = None, height: int | None = None) -> str:
    upd, h = _update(net.b, net.a)
    if proof is None:
        _, proof = net.a.prove(commitment_key("echo", "channel-0", packet.sequence), h)
    body = {"packet": packet.encode(), "proof": proof, "proof_height": height or h}
    return _submit(net.b, upd, Msg("ibc.recv_packet", body))


def _update(dst: LocalEndpoint, src: LocalEndpoint) -> tuple[Msg, int]:
    h = src.height()
    return Msg("ibc.update_client", {"client": src.chain_id, "header": src.light_block(h)}), h


def _packet(net: Net, seq: int) -> Packet:
    with net.hub.reader() as r:
        from focusflow.state_schema.ibc import packet_key

        return Packet.decode(r.get(packet_key("echo", "channel-0", seq)))


def test_forged_packet_data_is_refused(net):
    net.send(net.hub, b"real")
    packet = _packet(net, 1)
    upd, h = _update(net.b, net.a)
    _, proof = net.a.prove(commitment_key("echo", "channel-0", 1), h)
    forged = dataclasses.replace(packet, data=b"forged")
    body = {"packet": forged.encode(), "proof": proof, "proof_height": h}
    assert _submit(net.b, upd, Msg("ibc.recv_packet", body)) == "bad_proof"
    assert _recv(net, packet) == "ok"


def test_garbage_and_wrong_proofs_are_refused(net):
    net.send(net.hub, b"one")
    net.send(net.hub, b"two")
    packet = _packet(net, 1)
    assert _recv(net, packet, proof=b"\x00garbage") == "bad_proof"
    _, h = _update(net.b, net.a)
    _, other = net.a.prove(commitment_key("echo", "channel-0", 2), h)
    assert _recv(net, packet, proof=other) == "bad_proof"


def test_proof_at_a_height_the_client_lacks_is_refused(net):
    net.send(net.hub, b"one")
    assert _recv(net, _packet(net, 1), height=net.hub.height + 50) == "consensus_state_not_found"


def test_replayed_and_reordered_packets_are_refused(net):
    net.send(net.hub, b"one")
    net.send(net.hub, b"two")
    assert _recv(net, _packet(net, 2)) == "packet_out_of_order"
    assert _recv(net, _packet(net, 1)) == "ok"
    assert _recv(net, _packet(net, 1)) == "packet_replayed"
    assert _recv(net, _packet(net, 2)) == "ok"


def _forge(block_bytes: bytes, chain_id: str, key: KeyPair, **changes: object) -> bytes:
    header_cbor = decode(block_bytes, "light block")[0]
    header = dataclasses.replace(Header.from_cbor(decode(header_cbor, "header")), **changes)
    vset = ValidatorSet.create([Validator(key.public_key, 1)])
    if "validators_hash" not in changes:
        header = dataclasses.replace(header, validators_hash=vset.hash())
    cert = sign_certificate(key, chain_id, header.height, header.hash)
    block = LightBlock(header, header.hash, encode(header.to_cbor()), cert, vset)
    return encode(block.to_cbor())


def test_forged_headers_are_refused(net):
    mallory = KeyPair.from_seed(b"mallory".ljust(32, b"\0"))
    net.hub.produce_block([], time_ms=net.clock())
    h = net.hub.height
    good = net.a.light_block(h)
    # another validator set, properly self-certified
    forged = _forge(good, HUB, mallory, state_root=b"\x66" * 32)
    upd = Msg("ibc.update_client", {"client": HUB, "header": forged})
    assert _submit(net.b, upd) == "header_untrusted"
    # the real set's hash, a certificate by another key
    header_cbor, _, rows = decode(good, "light block")
    header = Header.from_cbor(decode(header_cbor, "header"))
    bad = dataclasses.replace(header, state_root=b"\x66" * 32)
    wrong_cert = sign_certificate(mallory, HUB, h, bad.hash)
    raw = encode([encode(bad.to_cbor()), _cert_bytes(wrong_cert), rows])
    upd = Msg("ibc.update_client", {"client": HUB, "header": raw})
    assert _submit(net.b, upd) == "bad_certificate"
    assert _submit(net.b, Msg("ibc.update_client", {"client": HUB, "header": b"\x01"})) == (
        "malformed_message"
    )
    assert _submit(net.b, Msg("ibc.update_client", {"client": HUB, "header": good})) == "ok"


def _cert_bytes(cert) -> bytes:  # type: ignore[no-untyped-def]
    from focusflow.consensus.certificate import encode_certificate

    return encode_certificate(cert)


def test_conflicting_header_freezes_the_client(net):
    net.hub.produce_block([], time_ms=net.clock())
    h = net.hub.height
    good = net.a.light_block(h)
    assert _submit(net.b, Msg("ibc.update_client", {"client": HUB, "header": good})) == "ok"
    # the hub's validator signs a second block at h: a fork
    header_cbor, _cert, rows = decode(good, "light block")
    header = Header.from_cbor(decode(header_cbor, "header"))
    fork = dataclasses.replace(header, state_root=b"\x77" * 32)
    cert = sign_certificate(VALIDATOR, HUB, h, fork.hash)
    raw = encode([encode(fork.to_cbor()), _cert_bytes(cert), rows])
    assert _submit(net.b, Msg("ibc.update_client", {"client": HUB, "header": raw})) == "ok"
    with net.rollup.reader() as r:
        assert get_client(r, HUB).frozen_height == h
    net.send(net.hub, b"one")
    assert _recv(net, _packet(net, 1)) == "client_frozen"


def test_expired_client_is_refused(net):
    net.send(net.hub, b"one")
    later = net.clock() + 15 * 24 * 3600 * 1000
    net.rollup.produce_block([], time_ms=later)
    net.ticks = itertools.count((later - T0) // 1000 + 1)
    assert _recv(net, _packet(net, 1)) == "client_expired"


def test_timeouts(net):
    # a packet that must arrive by the rollup's height + 3
    seq = net.send(net.hub, b"late", timeout_height=net.rollup.height + 3)
    packet = _packet(net, seq)

    def timeout(height_src: LocalEndpoint) -> str:
        upd, h = _update(net.a, net.b)
        value, proof = net.b.prove(seq_key("recv", "echo", "channel-0"), h)
        body = {
            "packet": packet.encode(), "next_recv": decode(value, "seq"), "proof": proof,
            "proof_height": h,
        }  # fmt: skip
        return _submit(net.a, upd, Msg("ibc.timeout", body))

    assert timeout(net.b) == "timeout_not_reached"
    for _ in range(3):
        net.rollup.produce_block([], time_ms=net.clock())
    assert _recv(net, packet) == "packet_timed_out"
    assert timeout(net.b) == "ok"
    assert net.apps[0].timeouts == [seq]
    with net.hub.reader() as r:
        assert get_channel(r, "echo", "channel-0").state == CLOSED
        assert r.get(channel_key("echo", "channel-0")) is not None


def test_ack_for_a_packet_never_sent_is_refused(net):
    packet = Packet(1, "echo", "channel-0", "echo", "channel-0", b"x", 10**6, 0)
    upd, h = _update(net.a, net.b)
    body = {"packet": packet.encode(), "ack": encode([1, b"x"]), "proof": b"", "proof_height": h}
    assert _submit(net.a, upd, Msg("ibc.acknowledge", body)) == "unknown_packet"


def test_the_relayer_times_out_an_expired_packet(net):
    net.send(net.hub, b"late", timeout_height=net.rollup.height + 1)
    net.rollup.produce_block([], time_ms=net.clock())
    net.relayer.step()
    assert net.apps[0].timeouts == [1]


def test_the_http_endpoint_reads_what_the_local_one_does(net):
    """The node's /v1/ibc routes and proofs, as the relayer's HTTP endpoint reads them."""
    from focusflow.chain.header_verify import decode_light_block
    from focusflow.node.relay import HttpEndpoint
    from focusflow.testing.lightnode import node_app, serve

    net.send(net.hub, b"one")
    net.send(net.hub, b"two")
    url, stop = serve(node_app(net.hub))
    http = HttpEndpoint(url, ALICE)
    try:
        local = net.a
        assert http.chain_id == HUB
        assert http.height() == local.height() and http.time_ms() == local.time_ms()
        assert http.connections() == local.connections()
        assert http.channels() == local.channels()
        assert http.client(ROLLUP) == local.client(ROLLUP)
        assert http.next_sequences("echo", "channel-0") == {"send": 3, "recv": 1, "ack": 1}
        assert http.packets("echo", "channel-0", 10) == local.packets("echo", "channel-0", 10)
        assert http.acks("echo", "channel-0", 1, 10) == []
        h = http.height()
        assert http.light_block(h) == local.light_block(h)
        assert decode_light_block(http.light_block(h), HUB, 1 << 20).height == h
        key = commitment_key("echo", "channel-0", 2)
        assert http.prove(key, h) == local.prove(key, h)
    finally:
        http.close()
        stop()
