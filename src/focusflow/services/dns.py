"""Names of the chain over DNS: an authoritative server for one zone.

A name registered in the names module (``name.register``) answers at
``<name>.<zone>`` with TXT records ``cid=<particle CID>`` and ``owner=<address>``,
read from the newest committed state, so any resolver, ``dig`` or a browser
extension finds what a name points to without speaking the node's API. A name
whose owner said where its node listens (``name.address``) also answers:

* ``A`` or ``AAAA`` at ``<name>.<zone>`` when that host is an IP address;
* ``SRV`` at ``_focusflow._udp.<name>.<zone>``: ``0 0 <port> <target>``, the
  target the name itself (an IP host) or the host name it gave;
* ``TLSA`` at ``_<port>._udp.<name>.<zone>`` (DANE, RFC 6698: usage 3, selector
  1, matching type 1), the SHA-256 of the public key of the certificate the
  network's CA issued for ``<name>.focus`` while it is valid and not revoked:
  the CA's binding of the name to a node key, checkable by any DNS client.

Every datagram is hostile: one longer than 512 bytes (a plain query is far
shorter) is dropped unread; one that does not parse gets FORMERR when its
header can be read and nothing otherwise; only standard queries of one
question in class IN are answered. The server is authoritative only (no
recursion: REFUSED outside the zone) and answers ANY with NOTIMP (RFC 8482's
concern: ANY is the amplifier's query), so no answer is much larger than its
query (the largest, a TLSA or TXT record, is under 200 bytes). Names are
case-insensitive, as DNS is; the chain's names are lower case.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from focusflow.core.errors import InvalidParameterError

log = logging.getLogger("focusflow.services.dns")

#: Largest datagram read (RFC 1035's UDP message size; a query is ~40 bytes).
MAX_QUERY_BYTES = 512
#: Seconds a resolver may cache an answer: a name can change at the next block.
TTL = 5
#: The service label of a node's SRV record.
SERVICE = b"_focusflow"


@dataclass(frozen=True)
class NameRecord:
    """What a name answers: its particle and owner, and where its node listens
    with the SHA-256 of its certified public key (SubjectPublicKeyInfo DER)."""

    cid: str
    owner: str
    address: tuple[str, int] | None = None
    spki_sha256: bytes | None = None


#: ``lookup(label) -> NameRecord`` or None for an unknown name. The label is one
#: lower-cased DNS label, any bytes: the lookup judges it.
Lookup = Callable[[str], NameRecord | None]


@dataclass(frozen=True)
class DnsSettings:
    """Where the node's DNS server listens and which zone it serves."""

    host: str
    port: int
    zone: str

    @classmethod
    def from_json(cls, doc: Any) -> DnsSettings | None:
        """``{"listen": "host:port", "zone": "focus"}`` of a config, or None (no server)."""
        if doc is None:
            return None
        if not isinstance(doc, dict) or set(doc) - {"listen", "zone"}:
            raise InvalidParameterError('"dns" is {"listen": "host:port", "zone": "name"}')
        return cls.parse(doc.get("listen", "127.0.0.1:5353"), doc.get("zone", "focus"))

    @classmethod
    def parse(cls, listen: Any, zone: Any = "focus") -> DnsSettings:
        if not isinstance(listen, str) or ":" not in listen:
            raise InvalidParameterError(f"a DNS listen address is host:port, got {listen!r}")
        host, _, port = listen.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise InvalidParameterError(f"a DNS port is 0..65535, got {port!r}")
        try:
            dns.name.from_text(zone if isinstance(zone, str) else "")
        except (dns.exception.DNSException, ValueError):
            raise InvalidParameterError(f"not a DNS zone name: {zone!r}") from None
        if not isinstance(zone, str) or not zone.strip("."):
            raise InvalidParameterError(f"not a DNS zone name: {zone!r}")
        return cls(host.strip("[]"), int(port), zone.strip(".").lower())


class Resolver:
    """Answers one query datagram for ``zone`` from ``lookup`` (pure: no sockets)."""

    def __init__(self, zone: str, lookup: Lookup) -> None:
        self.zone = dns.name.from_text(zone)
        self.lookup = lookup

    def answer(self, wire: bytes) -> bytes | None:
        """The response's bytes, or None for a datagram that gets no answer."""
        if len(wire) > MAX_QUERY_BYTES:
            return None
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        if query.flags & dns.flags.QR:  # a response: answering would loop
            return None
        response = dns.message.make_response(query)
        response.flags &= ~dns.flags.RA
        refused = self._refusal(query)
        if refused is not None:
            response.set_rcode(refused)
        else:
            response.flags |= dns.flags.AA
            self._fill(query.question[0], response)
        return response.to_wire()

    def _refusal(self, query: dns.message.Message) -> dns.rcode.Rcode | None:
        """The rcode of a query this server does not answer, else None."""
        if query.opcode() != dns.opcode.QUERY:
            return dns.rcode.NOTIMP
        if len(query.question) != 1:
            return dns.rcode.FORMERR
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN or not question.name.is_subdomain(self.zone):
            return dns.rcode.REFUSED
        if question.rdtype == dns.rdatatype.ANY:
            return dns.rcode.NOTIMP
        return None

    def _fill(self, question: dns.rrset.RRset, response: dns.message.Message) -> None:
        """The answer of a name in the zone: its records, NODATA or NXDOMAIN."""
        labels = question.name.relativize(self.zone).labels
        if not labels or labels == (b"",):  # the zone's apex: it exists, holds nothing
            return
        if len(labels) not in (1, 3) or (len(labels) == 3 and labels[1].lower() != b"_udp"):
            response.set_rcode(dns.rcode.NXDOMAIN)
            return
        record = self.lookup(labels[-1].decode("ascii", "replace").lower())
        if record is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return
        if len(labels) == 1:
            rdata = self._at_name(question.rdtype, record)
        elif labels[0].lower() == SERVICE:
            rdata = self._service(question.rdtype, record, labels[-1].decode("ascii"))
        else:
            rdata = self._tlsa(question.rdtype, record, labels[0])
            if rdata is None and not _port_label(labels[0], record):
                response.set_rcode(dns.rcode.NXDOMAIN)
                return
        if rdata is not None:
            rdtype, texts = rdata
            response.answer.append(
                dns.rrset.from_text_list(question.name, TTL, "IN", rdtype, texts)
            )

    @staticmethod
    def _at_name(rdtype: int, record: NameRecord) -> tuple[str, list[str]] | None:
        if rdtype == dns.rdatatype.TXT:
            return "TXT", [f'"cid={record.cid}"', f'"owner={record.owner}"']
        if record.address is None:
            return None
        host = record.address[0]
        version = _ip_version(host)
        if (rdtype, version) in ((dns.rdatatype.A, 4), (dns.rdatatype.AAAA, 6)):
            return ("A" if version == 4 else "AAAA"), [host]
        return None

    def _service(self, rdtype: int, record: NameRecord, name: str) -> tuple[str, list[str]] | None:
        if rdtype != dns.rdatatype.SRV or record.address is None:
            return None
        host, port = record.address
        target = f"{name}.{self.zone.to_text()}" if _ip_version(host) else f"{host}."
        return "SRV", [f"0 0 {port} {target}"]

    @staticmethod
    def _tlsa(rdtype: int, record: NameRecord, label: bytes) -> tuple[str, list[str]] | None:
        if rdtype != dns.rdatatype.TLSA or record.spki_sha256 is None:
            return None
        if not _port_label(label, record):
            return None
        return "TLSA", [f"3 1 1 {record.spki_sha256.hex()}"]


def _port_label(label: bytes, record: NameRecord) -> bool:
    """Whether ``label`` is ``_<port>`` of the port the name's node listens on."""
    return record.address is not None and label == f"_{record.address[1]}".encode()


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR echoing the query's id, when at least its 12-byte header is there."""
    if len(wire) < 12:
        return None
    header = bytearray(wire[:12])
    if header[2] & 0x80:  # QR set: a malformed response, not a query
        return None
    header[2] = 0x80 | (header[2] & 0x78)  # QR, the query's opcode, no AA/TC/RD
    header[3] = dns.rcode.FORMERR
    header[4:12] = bytes(8)  # no sections
    return bytes(header)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            out = self.resolver.answer(data)
        except Exception:  # a bug must not stop the server: log it, drop the datagram
            log.exception("dns: answering a query failed")
            out = None
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


async def serve_dns(settings: DnsSettings, lookup: Lookup) -> asyncio.DatagramTransport:
    """Listen on UDP ``settings.host:port`` in the running loop; close the transport to stop."""
    loop = asyncio.get_running_loop()
    resolver = Resolver(settings.zone, lookup)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(resolver), local_addr=(settings.host, settings.port)
        )
    except OSError as exc:
        raise InvalidParameterError(
            f"DNS cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    return transport
