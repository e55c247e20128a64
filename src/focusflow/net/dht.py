"""A Kademlia DHT over the node's QUIC transport: who is near a key, who holds it.

Node ids are the nodes' Ed25519 public keys (32 bytes), already uniform, and
a key is 32 bytes too (a CID's SHA-256 for content: :func:`content_key`);
distance is their XOR read as a big-endian integer (Maymounkov & Mazières
2002). Each node keeps a routing table of 256 *k-buckets*, bucket ``i``
holding up to ``k`` contacts whose distance has its highest set bit at ``i``,
least recently seen first. A full bucket keeps its old contacts (long-lived
nodes stay up longest) unless the oldest no longer answers; a contact whose
requests fail twice in a row, or that answers malformed, is dropped.

Requests ride the node's request/response streams (``net.reqresp``); every
one carries the asker's listening address, so an authenticated asker joins
the asked node's table (its id is proved by the transport; a false address
only fails its own dials):

``dht.find_node`` ``{"target": 32 bytes, "from": [host, port]}``
    -> ``[[id, host, port], ...]``: the ``k`` closest contacts known.
``dht.find_providers`` ``{"key": 32 bytes, "from": [host, port]}``
    -> ``{"providers": [[id, host, port], ...], "nodes": [[id, host, port], ...]}``
``dht.add_provider`` ``{"key": 32 bytes, "from": [host, port]}`` -> ``true``
    The asker (never anyone else: its id is the session's) holds the key's
    value; kept for ``record_ttl`` seconds.

A lookup (:meth:`Dht.lookup`) is iterative with ``alpha`` requests in flight:
it asks the closest contacts it has not asked yet, a new one as soon as any
answers (a slow contact holds up one of the ``alpha``, not the lookup), merges
what they answer, and stops when the ``k`` closest it knows have all answered
(or failed). Once ``MAX_FAILED_NAMED`` of the contacts one node named cannot be
reached, the others it named are skipped in that lookup. A provider lookup
stops as soon as it has found enough providers. Everything from the network is
bounded before it is used: answers of at most ``k`` contacts, hosts of at most
253 characters, ports in 1..65535, provider records per key and keys per node
capped.

Timeouts follow what this node measures (:class:`RttEstimate`, RFC 6298's
smoothed round-trip time plus four times its variation): per peer for its
requests, and over all peers for dials and for peers not measured yet, never
under the ``timeout`` the DHT is given nor over ``MAX_TIMEOUT``. A loaded
machine answers late rather than never, so a request that times out or loses
its connection is sent once more with twice the time, to a contact this node
knows (in its routing table) or one it reached in that attempt; a contact
only named by others gets one dial (made-up contacts must stay cheap). A join
whose lookup nobody answered is tried again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.net.errors import NetError, PeerUnavailableError
from focusflow.net.node import Node, PeerAddress

ID_BITS = 256
ID_SIZE = 32
#: Contacts per bucket and per answer.
K = 20
#: Requests in flight per lookup.
ALPHA = 3
#: How long a provider record is kept.
RECORD_TTL = 24 * 3600.0
#: Providers kept per key, and keys kept per node.
MAX_PROVIDERS = 2 * K
MAX_KEYS = 100_000
MAX_HOST = 253
#: Seconds a DHT request or dial is given at least (more when this node has
#: measured its peers to be slower: module docstring).
REQUEST_TIMEOUT = 5.0
#: Seconds a request or a dial is given at most, however slow the measurements.
MAX_TIMEOUT = 30.0
#: Tries of a request to a contact this node knows or reached: a timeout on a
#: loaded machine is most often a late answer, not a dead peer.
ATTEMPTS = 2
#: Peers whose round-trip time is kept (the least recently used forgotten).
MAX_ESTIMATES = 4096
#: Tries of the lookup that joins the network while nobody answers it (a node
#: whose join failed is known to no one and found by no lookup).
JOIN_ATTEMPTS = 3
#: Contacts a node may name in one lookup that cannot be reached before the
#: rest it named are skipped: a node that answers with made-up contacts would
#: otherwise cost a dial timeout for each.
MAX_FAILED_NAMED = 3
#: Seconds before a request that failed is sent again (a request lost with a
#: duplicate connection needs the surviving one to settle).
RETRY_AFTER = 0.05
#: Requests in a row a contact may fail before it leaves the routing table (one
#: timeout while a busy node joins is not a dead node).
STALE_AFTER = 2

FIND_NODE = "dht.find_node"
FIND_PROVIDERS = "dht.find_providers"
ADD_PROVIDER = "dht.add_provider"


def content_key(cid_bytes: bytes) -> bytes:
    """The DHT key of a piece of content: the SHA-256 of its CID's bytes."""
    return hashlib.sha256(cid_bytes).digest()


def distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


@dataclass(frozen=True)
class Contact:
    """A node and where it listens."""

    node_id: bytes
    host: str
    port: int

    @property
    def address(self) -> PeerAddress:
        return PeerAddress(self.node_id, self.host, self.port)

    def encoded(self) -> list[Any]:
        return [self.node_id, self.host, self.port]


def _contact(value: object, what: str) -> Contact:
    if not (isinstance(value, list) and len(value) == 3):
        raise DecodeError(f"malformed {what}: not [id, host, port]")
    node_id, host, port = value
    if type(node_id) is not bytes or len(node_id) != ID_SIZE:
        raise DecodeError(f"malformed {what}: id is not {ID_SIZE} bytes")
    if type(host) is not str or not 0 < len(host) <= MAX_HOST:
        raise DecodeError(f"malformed {what}: host is not 1..{MAX_HOST} characters")
    if type(port) is not int or not 0 < port < 65536:
        raise DecodeError(f"malformed {what}: port is not 1..65535")
    return Contact(node_id, host, port)


def _contacts(value: object, what: str) -> list[Contact]:
    if not isinstance(value, list) or len(value) > K:
        raise DecodeError(f"malformed {what}: not a list of at most {K} contacts")
    return [_contact(v, what) for v in value]


def _request(payload: bytes, field: str) -> tuple[bytes, tuple[str, int]]:
    """``(32-byte target or key, the asker's (host, port))`` of a request."""
    body = decode(payload, "dht request")
    if not isinstance(body, dict) or set(body) != {field, "from"}:
        raise DecodeError(f"malformed dht request: expected {{{field!r}, 'from'}}")
    key = body[field]
    if type(key) is not bytes or len(key) != ID_SIZE:
        raise DecodeError(f"malformed dht request: {field} is not {ID_SIZE} bytes")
    where = body["from"]
    if not (isinstance(where, list) and len(where) == 2):
        raise DecodeError("malformed dht request: from is not [host, port]")
    asker = _contact([bytes(ID_SIZE), *where], "dht request's from")
    return key, (asker.host, asker.port)


class RttEstimate:
    """A smoothed round-trip time and its variation (RFC 6298 §2: gains 1/8 and
    1/4, the first sample setting the variation to half of it), and the timeout
    they give, ``srtt + 4 * rttvar`` within the caller's bounds."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0

    def sample(self, seconds: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - seconds)
            self.srtt = 0.875 * self.srtt + 0.125 * seconds

    def timeout(self, floor: float, ceiling: float) -> float:
        """The timeout of the next request: ``floor`` until something is measured."""
        if self.srtt is None:
            return floor
        return min(ceiling, max(floor, self.srtt + 4 * self.rttvar))


class RoutingTable:
    """The k-buckets of one node (module docstring)."""

    def __init__(self, own_id: bytes, k: int = K) -> None:
        self.own_id = own_id
        self.k = k
        self.buckets: list[OrderedDict[bytes, Contact]] = [OrderedDict() for _ in range(ID_BITS)]

    def _bucket(self, node_id: bytes) -> OrderedDict[bytes, Contact]:
        return self.buckets[distance(self.own_id, node_id).bit_length() - 1]

    def update(self, contact: Contact) -> Contact | None:
        """Note that ``contact`` was seen. Returns the bucket's oldest contact
        when the bucket is full (the caller may check it and ``remove`` it),
        else None."""
        if contact.node_id == self.own_id:
            return None
        bucket = self._bucket(contact.node_id)
        if contact.node_id in bucket:
            bucket[contact.node_id] = contact
            bucket.move_to_end(contact.node_id)
            return None
        if len(bucket) < self.k:
            bucket[contact.node_id] = contact
            return None
        return next(iter(bucket.values()))

    def remove(self, node_id: bytes) -> None:
        if node_id != self.own_id:
            self._bucket(node_id).pop(node_id, None)

    def __contains__(self, node_id: object) -> bool:
        return (
            isinstance(node_id, bytes)
            and node_id != self.own_id
            and node_id in self._bucket(node_id)
        )

    def closest(self, target: bytes, n: int | None = None) -> list[Contact]:
        """The ``n`` (``k``) known contacts closest to ``target``."""
        every = [c for bucket in self.buckets for c in bucket.values()]
        every.sort(key=lambda c: distance(c.node_id, target))
        return every[: self.k if n is None else n]

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets)


class ProviderStore:
    """Who said they hold each key, until when (bounded: module docstring)."""

    def __init__(self, ttl: float = RECORD_TTL, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._records: OrderedDict[bytes, OrderedDict[bytes, tuple[Contact, float]]] = OrderedDict()

    def add(self, key: bytes, provider: Contact) -> None:
        records = self._records.get(key)
        if records is None:
            if len(self._records) >= MAX_KEYS:
                self._records.popitem(last=False)
            records = self._records[key] = OrderedDict()
        records[provider.node_id] = (provider, self.clock() + self.ttl)
        records.move_to_end(provider.node_id)
        while len(records) > MAX_PROVIDERS:
            records.popitem(last=False)

    def get(self, key: bytes) -> list[Contact]:
        records = self._records.get(key)
        if records is None:
            return []
        now = self.clock()
        for node_id in [n for n, (_, until) in records.items() if until <= now]:
            del records[node_id]
        if not records:
            del self._records[key]
            return []
        return [contact for contact, _ in records.values()]


class Dht:
    """One node's part of the DHT, over its :class:`Node` (module docstring)."""

    def __init__(
        self,
        node: Node,
        *,
        k: int = K,
        alpha: int = ALPHA,
        record_ttl: float = RECORD_TTL,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.node = node
        self.k = k
        self.alpha = alpha
        self.timeout = timeout
        self.table = RoutingTable(node.id, k)
        self.providers = ProviderStore(record_ttl)
        #: Keys this node provides, re-announced by :meth:`republish`.
        self.provided: set[bytes] = set()
        #: Requests sent by lookups (for measuring hops).
        self.requests = 0
        #: The last lookup's depth (1: it asked only contacts this node knew; a
        #: contact an answer names is one hop deeper than the one that named it)
        #: and the hop at which the closest contact it returned was first named
        #: (0: this node knew it).
        self.last_rounds = 0
        self.last_hops = 0
        #: Requests in a row that failed, by contact (dropped at ``STALE_AFTER``).
        self._failures: dict[bytes, int] = {}
        #: Round-trip times of requests, per peer and over all peers, and of dials.
        self._rtts: OrderedDict[bytes, RttEstimate] = OrderedDict()
        self.rtt = RttEstimate()
        self.dial_rtt = RttEstimate()
        node.register(FIND_NODE, self._find_node)
        node.register(FIND_PROVIDERS, self._find_providers)
        node.register(ADD_PROVIDER, self._add_provider)

    @property
    def contact(self) -> Contact:
        host, port = self.node.address
        return Contact(self.node.id, host, port)

    # --- serving ---------------------------------------------------------------

    def _seen(self, peer_id: bytes, where: tuple[str, int]) -> Contact:
        contact = Contact(peer_id, *where)
        self.table.update(contact)
        return contact

    async def _find_node(self, peer_id: bytes, payload: bytes) -> bytes:
        target, where = _request(payload, "target")
        self._seen(peer_id, where)
        return encode([c.encoded() for c in self.table.closest(target)])

    async def _find_providers(self, peer_id: bytes, payload: bytes) -> bytes:
        key, where = _request(payload, "key")
        self._seen(peer_id, where)
        providers = self.providers.get(key)[: self.k]
        nodes = self.table.closest(key)
        return encode(
            {"providers": [c.encoded() for c in providers], "nodes": [c.encoded() for c in nodes]}
        )

    async def _add_provider(self, peer_id: bytes, payload: bytes) -> bytes:
        key, where = _request(payload, "key")
        self.providers.add(key, self._seen(peer_id, where))
        return encode(True)

    # --- asking ----------------------------------------------------------------

    async def bootstrap(self, seeds: Iterable[PeerAddress]) -> int:
        """Join through ``seeds``: add them, then look up this node's own id (which
        fills the buckets near it and tells the nodes there about this one), up to
        ``JOIN_ATTEMPTS`` times while nobody answers. Returns the routing table's size."""
        contacts = [Contact(seed.node_id, seed.host, seed.port) for seed in seeds]
        for _ in range(JOIN_ATTEMPTS):
            for contact in contacts:
                self.table.update(contact)
            if await self.lookup(self.node.id):
                break
        return len(self.table)

    async def refresh(self) -> int:
        """Look up a random id in the range of each bucket from the farthest
        down to the nearest one holding a contact: a joined node learns of the
        nodes that joined after it, which only ever asked the nodes near their
        own ids (Kademlia's bucket refresh; a node runs it about hourly).
        Returns the routing table's size."""
        held = [i for i, bucket in enumerate(self.table.buckets) if bucket]
        if not held:
            return 0
        for i in range(ID_BITS - 1, min(held) - 1, -1):
            offset = (1 << i) | int.from_bytes(os.urandom(ID_SIZE), "big") & ((1 << i) - 1)
            target = (int.from_bytes(self.node.id, "big") ^ offset).to_bytes(ID_SIZE, "big")
            await self.lookup(target)
        return len(self.table)

    async def _ask(self, contact: Contact, name: str, body: dict[str, Any]) -> Any:
        """One request to ``contact`` (dialed if needed), tried again once when it
        times out or loses its connection and the contact is known or was reached
        (module docstring); its decoded answer. A contact that fails
        ``STALE_AFTER`` times in a row, or answers wrongly, is dropped from the
        table; the failure is reported with NetError or FocusflowError."""
        self.requests += 1
        known = contact.node_id in self.table
        try:
            answer = await self._attempts(contact, name, body, known)
            value = decode(answer, "dht answer")
        except (FocusflowError, TimeoutError, OSError) as exc:
            failures = self._failures[contact.node_id] = self._failures.get(contact.node_id, 0) + 1
            if failures >= STALE_AFTER or isinstance(exc, DecodeError):
                self.table.remove(contact.node_id)
                self._failures.pop(contact.node_id, None)
            if isinstance(exc, FocusflowError):
                raise
            raise NetError(f"dht request to {contact.address} failed: {exc}") from None
        self._failures.pop(contact.node_id, None)
        self.table.update(contact)
        return value

    async def _attempts(
        self, contact: Contact, name: str, body: dict[str, Any], known: bool
    ) -> bytes:
        """The answer of the first of ``ATTEMPTS`` tries that gets one, each with
        twice the time of the one before. Only a timeout or a lost connection
        earns another try (a refusal or a wrong key would only repeat), and only
        for a contact this node knows or reached in the try: two nodes that dial
        each other at once keep one of the two connections (net.node), and a
        request on the other is lost with it."""
        for attempt in range(ATTEMPTS):
            reached = False
            try:
                await self._dial(contact, 2**attempt)
                reached = True
                return await self._request(contact, name, body, 2**attempt)
            except (TimeoutError, PeerUnavailableError, OSError):
                if attempt + 1 == ATTEMPTS or not (known or reached):
                    raise
            await asyncio.sleep(RETRY_AFTER)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _dial(self, contact: Contact, scale: int) -> None:
        """Connect to ``contact`` unless connected; a dial made is measured."""
        if contact.node_id in self.node.connected_peers():
            return
        started = time.monotonic()
        timeout = scale * self.dial_rtt.timeout(self.timeout, MAX_TIMEOUT)
        await asyncio.wait_for(self.node.connect(contact.address), min(timeout, MAX_TIMEOUT))
        self.dial_rtt.sample(time.monotonic() - started)

    async def _request(
        self, contact: Contact, name: str, body: dict[str, Any], scale: int
    ) -> bytes:
        """One request on the connection to ``contact``, given ``scale`` times the
        timeout the measurements give (the peer's, or all peers' when that is
        longer: a node that grew busy is slow to everyone); an answer is measured."""
        peer = self._rtts.get(contact.node_id)
        if peer is not None:
            self._rtts.move_to_end(contact.node_id)
        measured = max(
            self.rtt.timeout(self.timeout, MAX_TIMEOUT),
            self.timeout if peer is None else peer.timeout(self.timeout, MAX_TIMEOUT),
        )
        started = time.monotonic()
        answer = await self.node.request(
            contact.node_id, name, encode(body), min(scale * measured, MAX_TIMEOUT)
        )
        self._measured(contact.node_id, time.monotonic() - started)
        return answer

    def _measured(self, node_id: bytes, seconds: float) -> None:
        """Keep a request's round-trip time, for its peer and for all peers."""
        self.rtt.sample(seconds)
        peer = self._rtts.get(node_id)
        if peer is None:
            peer = self._rtts[node_id] = RttEstimate()
            while len(self._rtts) > MAX_ESTIMATES:
                self._rtts.popitem(last=False)
        peer.sample(seconds)

    def _from(self) -> list[Any]:
        host, port = self.node.address
        return [host, port]

    async def lookup(self, target: bytes) -> list[Contact]:
        """The ``k`` contacts closest to ``target`` that answered (module docstring)."""
        found, _ = await self._iterate(target, FIND_NODE, "target", stop_at=0)
        return found

    async def find_providers(self, key: bytes, enough: int = 1) -> list[Contact]:
        """Nodes that said they hold ``key`` (this one first if it does): at least
        ``enough`` when the network knows of that many."""
        mine = [self.contact] if key in self.provided else []
        local = [c for c in self.providers.get(key) if c.node_id != self.node.id]
        if len(mine) + len(local) >= enough:
            return mine + local
        _, providers = await self._iterate(key, FIND_PROVIDERS, "key", stop_at=enough)
        found = {c.node_id: c for c in [*mine, *local, *providers]}
        return list(found.values())

    async def provide(self, key: bytes) -> int:
        """Announce that this node holds ``key`` to the ``k`` nodes closest to it;
        returns how many took the record."""
        self.provided.add(key)
        closest = await self.lookup(key)
        body = {"key": key, "from": self._from()}
        results = await asyncio.gather(
            *(self._ask(c, ADD_PROVIDER, body) for c in closest), return_exceptions=True
        )
        return sum(not isinstance(r, BaseException) for r in results)

    async def republish(self) -> int:
        """Announce every provided key again (records expire after ``record_ttl``)."""
        return sum([await self.provide(key) for key in sorted(self.provided)])

    async def _iterate(
        self, target: bytes, name: str, field: str, stop_at: int
    ) -> tuple[list[Contact], list[Contact]]:
        """The iterative lookup: ``(the k closest that answered, providers found)``.
        Up to ``alpha`` requests fly at once, and each answer lets the next one
        go: a slow contact does not hold up the others' answers."""
        body = {field: target, "from": self._from()}
        state = _Lookup(target, self.k, self.table.closest(target))
        flying: dict[asyncio.Future[Any], Contact] = {}
        try:
            while True:
                for contact in state.pending()[: self.alpha - len(flying)]:
                    state.ask(contact)
                    flying[asyncio.ensure_future(self._ask(contact, name, body))] = contact
                if not flying:
                    break
                done, _ = await asyncio.wait(flying, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._answered(state, flying.pop(task), task, name)
                if stop_at and len(state.providers) >= stop_at:
                    break
        finally:
            for task in flying:
                task.cancel()
            await asyncio.gather(*flying, return_exceptions=True)
        ranked = sorted(state.answered.values(), key=lambda c: distance(c.node_id, target))
        self.last_rounds = state.deepest
        self.last_hops = state.named_in.get(ranked[0].node_id, 0) if ranked else 0
        return ranked[: self.k], list(state.providers.values())

    def _answered(
        self, state: _Lookup, contact: Contact, task: asyncio.Future[Any], name: str
    ) -> None:
        """Take one finished request into the lookup: a failure, a malformed
        answer (reported, its sender dropped) or the contacts it names."""
        if task.exception() is not None:
            state.failed(contact)
            return
        try:
            nodes = state.read(task.result(), name == FIND_PROVIDERS)
        except DecodeError as exc:
            self.node.report(contact.node_id, why=exc.message)
            self.table.remove(contact.node_id)
            state.shortlist.pop(contact.node_id, None)
            return
        state.answered_by(contact, nodes, self.node.id)


class _Lookup:
    """What one iterative lookup knows: the contacts it may ask (never again
    one that was asked: the shortlist holds the unasked, the ones in flight and
    the ones that answered), who named each and how many of a node's named
    contacts failed, who answered, and the providers found."""

    def __init__(self, target: bytes, k: int, start: list[Contact]) -> None:
        self.target = target
        self.k = k
        self.shortlist: dict[bytes, Contact] = {c.node_id: c for c in start}
        self.named_by: dict[bytes, bytes] = {}
        self.failed_by: dict[bytes, int] = {}
        self.asked: set[bytes] = set()
        self.answered: dict[bytes, Contact] = {}
        self.providers: dict[bytes, Contact] = {}
        #: The hop at which each contact was first named (0: this node knew it
        #: before the lookup; one more than its namer's otherwise), and the
        #: deepest hop asked.
        self.named_in: dict[bytes, int] = {}
        self.deepest = 0

    def pending(self) -> list[Contact]:
        """The unasked among the ``k`` closest that have not failed."""
        ranked = sorted(self.shortlist.values(), key=lambda c: distance(c.node_id, self.target))
        return [c for c in ranked[: self.k] if c.node_id not in self.asked]

    def ask(self, contact: Contact) -> None:
        self.asked.add(contact.node_id)
        self.deepest = max(self.deepest, self.named_in.get(contact.node_id, 0) + 1)

    def failed(self, contact: Contact) -> None:
        self.shortlist.pop(contact.node_id, None)
        source = self.named_by.get(contact.node_id)
        if source is None:
            return
        self.failed_by[source] = self.failed_by.get(source, 0) + 1
        if self.failed_by[source] == MAX_FAILED_NAMED:
            # what else it named is not worth a dial each
            for node_id in [n for n, by in self.named_by.items() if by == source]:
                if node_id not in self.asked:
                    self.shortlist.pop(node_id, None)

    def read(self, result: object, with_providers: bool) -> list[Contact]:
        """The contacts of an answer (and its providers, kept); DecodeError for
        one that is not of the request's shape."""
        if not with_providers:
            return _contacts(result, "contact")
        if not isinstance(result, dict) or set(result) != {"providers", "nodes"}:
            raise DecodeError("malformed dht answer: not providers and nodes")
        providers = _contacts(result["providers"], "provider")
        nodes = _contacts(result["nodes"], "contact")
        for p in providers:
            self.providers.setdefault(p.node_id, p)
        return nodes

    def answered_by(self, contact: Contact, nodes: list[Contact], own_id: bytes) -> None:
        self.answered[contact.node_id] = contact
        if self.failed_by.get(contact.node_id, 0) >= MAX_FAILED_NAMED:
            return
        hop = self.named_in.get(contact.node_id, 0) + 1
        for c in nodes:
            known = c.node_id in self.shortlist or c.node_id in self.asked
            if c.node_id != own_id and not known:
                self.shortlist[c.node_id] = c
                self.named_by[c.node_id] = contact.node_id
                self.named_in.setdefault(c.node_id, hop)
