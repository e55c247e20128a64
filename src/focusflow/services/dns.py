"""Names of the chain over DNS: an authoritative server for one zone.

A name registered in the names module (``name.register``) answers at
``<name>.<zone>`` with TXT records ``cid=<particle CID>`` and ``owner=<address>``,
read from the newest committed state, so any resolver, ``dig`` or a browser
extension finds what a name points to without speaking the node's API.

Every datagram is hostile: one longer than 512 bytes (a plain query is far
shorter) is dropped unread; one that does not parse gets FORMERR when its
header can be read and nothing otherwise; only standard queries of one
question in class IN are answered. The server is authoritative only (no
recursion: REFUSED outside the zone) and answers ANY with NOTIMP (RFC 8482's
concern: ANY is the amplifier's query), so no answer is much larger than its
query. Names are case-insensitive, as DNS is; the chain's names are lower case.
"""

from __future__ import annotations

import asyncio
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
#: ``lookup(label) -> (cid text, owner address)`` or None for an unknown name.
#: The label is one lower-cased DNS label, any bytes: the lookup judges it.
Lookup = Callable[[str], tuple[str, str] | None]


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
        """The answer of a name in the zone: TXT records, NODATA or NXDOMAIN."""
        labels = question.name.relativize(self.zone).labels
        if not labels or labels == (b"",):  # the zone's apex: it exists, holds no TXT
            return
        record = None
        if len(labels) == 1:
            record = self.lookup(labels[0].decode("ascii", "replace").lower())
        if record is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            cid, owner = record
            texts = [f'"cid={cid}"', f'"owner={owner}"']
            response.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "TXT", texts))


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
