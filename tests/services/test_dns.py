"""The names' DNS server: answers built by dnspython's client side read back,
and every hostile datagram dropped or refused without an amplified answer."""

from __future__ import annotations

import asyncio
import hashlib
import os

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.services.dns import MAX_QUERY_BYTES, DnsSettings, NameRecord, Resolver, serve_dns

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
OWNER = "cyber1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v8"
SPKI = hashlib.sha256(b"a public key's DER").digest()
NAMES = {
    "kitty": NameRecord(CID, OWNER),
    "node-one": NameRecord(CID, OWNER, ("10.1.2.3", 26656), SPKI),
    "node-six": NameRecord(CID, OWNER, ("2001:db8::6", 443)),
    "node-far": NameRecord(CID, OWNER, ("seed.example.org", 9000), SPKI),
}


def _resolver() -> Resolver:
    return Resolver("focus", NAMES.get)


def _ask(name: str, rdtype: str = "TXT", **kw) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)
    wire = _resolver().answer(query.to_wire())
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.id == query.id
    return response


def test_a_registered_name_answers_its_cid_and_owner():
    r = _ask("kitty.focus.")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert not r.flags & dns.flags.RA
    (rrset,) = r.answer
    texts = sorted(b"".join(rd.strings).decode() for rd in rrset)
    assert texts == [f"cid={CID}", f"owner={OWNER}"]
    assert rrset.ttl == 5
    assert _ask("KiTTy.FOCUS.").answer[0].name.to_text().lower() == "kitty.focus."


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode", "answers"),
    [
        ("nobody.focus.", "TXT", dns.rcode.NXDOMAIN, 0),
        ("a.kitty.focus.", "TXT", dns.rcode.NXDOMAIN, 0),
        ("kitty.focus.", "A", dns.rcode.NOERROR, 0),  # the name exists, holds no address
        ("focus.", "TXT", dns.rcode.NOERROR, 0),  # the apex
        ("kitty.example.", "TXT", dns.rcode.REFUSED, 0),  # not ours: no recursion
        ("kitty.focus.", "ANY", dns.rcode.NOTIMP, 0),  # the amplifier's query
    ],
)
def test_what_is_not_a_registered_names_txt(name, rdtype, rcode, answers):
    r = _ask(name, rdtype)
    assert (r.rcode(), len(r.answer)) == (rcode, answers)


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("node-one.focus.", "A", ["10.1.2.3"]),
        ("node-one.focus.", "AAAA", []),
        ("node-six.focus.", "AAAA", ["2001:db8::6"]),
        ("node-six.focus.", "A", []),
        ("node-far.focus.", "A", []),  # a host name: no address here, SRV names it
        ("_focusflow._udp.node-one.focus.", "SRV", ["0 0 26656 node-one.focus."]),
        ("_focusflow._udp.node-far.focus.", "SRV", ["0 0 9000 seed.example.org."]),
        ("_focusflow._udp.kitty.focus.", "SRV", []),  # no address: the name exists, no SRV
        ("_26656._udp.node-one.focus.", "TLSA", [f"3 1 1 {SPKI.hex()}"]),
        ("_26656._UDP.NODE-ONE.focus.", "TLSA", [f"3 1 1 {SPKI.hex()}"]),
        ("_26656._udp.node-one.focus.", "TXT", []),
        ("_443._udp.node-six.focus.", "TLSA", []),  # no valid certificate for it
    ],
)
def test_a_node_address_answers_a_aaaa_srv_and_tlsa(name, rdtype, expected):
    r = _ask(name, rdtype)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    got = [rd.to_text() for rrset in r.answer for rd in rrset]
    assert got == expected


@pytest.mark.parametrize(
    "name",
    [
        "_9999._udp.node-one.focus.",  # not the port its node listens on
        "_focusflow._tcp.node-one.focus.",
        "_focusflow._udp.nobody.focus.",
        "x._focusflow._udp.node-one.focus.",
        "_udp.node-one.focus.",
    ],
)
def test_names_under_a_node_that_do_not_exist(name):
    assert _ask(name, "TLSA").rcode() == dns.rcode.NXDOMAIN


def test_other_classes_and_opcodes_are_refused():
    assert _ask("kitty.focus.", "TXT", rdclass="CH").rcode() == dns.rcode.REFUSED
    query = dns.message.make_query("kitty.focus.", "TXT")
    query.set_opcode(dns.opcode.NOTIFY)
    wire = _resolver().answer(query.to_wire())
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NOTIMP


def test_hostile_datagrams():
    resolver = _resolver()
    query = dns.message.make_query("kitty.focus.", "TXT")
    wire = query.to_wire()
    assert resolver.answer(b"") is None
    assert resolver.answer(b"\x00" * 5) is None  # not even a header
    assert resolver.answer(os.urandom(MAX_QUERY_BYTES + 1)) is None  # dropped unread
    # a header and garbage: FORMERR with the query's id, no sections
    bad = resolver.answer(wire[:12] + b"\xff" * 20)
    assert bad is not None and len(bad) == 12 and bad[:2] == wire[:2]
    assert dns.message.from_wire(bad).rcode() == dns.rcode.FORMERR
    # a response is never answered (two servers must not ping-pong)
    response = dns.message.make_response(query).to_wire()
    assert resolver.answer(response) is None
    assert resolver.answer(response[:12] + b"\xff" * 20) is None
    # two questions
    two = bytearray(wire)
    two[5] = 2
    two += wire[12:]
    assert dns.message.from_wire(resolver.answer(bytes(two))).rcode() == dns.rcode.FORMERR
    # random bytes of every length: an answer, when there is one, is never
    # larger than the largest real answer, and nothing raises
    tlsa = dns.message.make_query("_26656._udp.node-one.focus.", "TLSA").to_wire()
    biggest = max(len(resolver.answer(wire)), len(resolver.answer(tlsa)))
    assert biggest < 200
    for n in range(MAX_QUERY_BYTES + 1):
        out = resolver.answer(os.urandom(n))
        assert out is None or len(out) <= max(biggest, n)


def test_settings_are_checked():
    assert DnsSettings.parse("127.0.0.1:5353") == DnsSettings("127.0.0.1", 5353, "focus")
    assert DnsSettings.from_json(None) is None
    assert DnsSettings.from_json({"listen": "[::1]:53", "zone": "Names.Example."}) == (
        DnsSettings("::1", 53, "names.example")
    )
    for bad in ("5353", "host:port", "h:70000", ""):
        with pytest.raises(InvalidParameterError):
            DnsSettings.parse(bad)
    for doc in ([], {"listen": "127.0.0.1:1", "extra": 1}, {"listen": "h:1", "zone": ""}):
        with pytest.raises(InvalidParameterError):
            DnsSettings.from_json(doc)


def test_the_server_answers_over_udp_on_loopback():
    async def main():
        transport = await serve_dns(DnsSettings("127.0.0.1", 0, "focus"), NAMES.get)
        try:
            port = transport.get_extra_info("sockname")[1]
            query = dns.message.make_query("kitty.focus.", "TXT")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                None, lambda: dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
            )
        finally:
            transport.close()

    r = asyncio.run(main())
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1


def test_a_taken_port_is_a_clear_error():
    import socket

    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            with pytest.raises(InvalidParameterError, match=f"cannot listen on 127.0.0.1:{port}"):
                await serve_dns(DnsSettings("127.0.0.1", port, "focus"), NAMES.get)

    asyncio.run(main())
