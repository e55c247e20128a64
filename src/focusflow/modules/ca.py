"""The network's certificate authority: issuance decided by the chain, signed by a threshold.

The CA's key is a FROST(Ed25519, SHA-512) group key (RFC 9591,
``services.trust.frost``) whose shares the genesis ``ca.members`` hold (made
by a distributed key generation: no one ever held the key). A certificate is
issued in three kinds of chain messages, so that no single node can mint one,
revoked by a fourth, and the validators vote to vouch for other networks:

``ca.request`` ``{"name": str, "key": 32 bytes, "hours": int}``
    From the owner of ``name`` in the names module: a leaf certificate for
    ``<name>.focus`` and the Ed25519 node key ``key``, valid from the block's
    time for ``hours`` (1 to 2,160). The chain builds the ``tbsCertificate``
    (issuer the genesis root, serial from the transaction's hash) and keeps it
    under ``/kv/ca/req/<serial>``: every node derives the same bytes. One
    request per name is pending at a time.
``ca.commit`` ``{"serial": 16 bytes, "hiding": 32 bytes, "binding": 32 bytes}``
    From a member: its FROST round-one nonce commitment for that request. The
    first ``threshold`` members to commit are the signing set.
``ca.share`` ``{"serial": 16 bytes, "share": 32 bytes}``
    From a member of the signing set: its signature share over the
    ``tbsCertificate``, verified here against its verifying share before it
    is kept (a bad share is refused and costs its sender the fee). The
    ``threshold``-th share completes the Ed25519 signature, which is checked
    against the group key; the certificate is appended to the transparency log
    and kept under ``/kv/ca/cert/<serial>`` with its index there, and
    ``/kv/ca/key/<key>`` and ``/kv/ca/name/<name>`` name it as the newest for
    its key and its name.
``ca.revoke`` ``{"serial": 16 bytes}``
    From the account that asked for the certificate, or from the current
    owner of the name it certifies: it is listed as revoked and a new CRL of
    every revoked serial becomes a signing job like a request (its
    ``tbsCertList`` signed by the group through the same commitments and
    shares); the newest signed CRL is kept under ``/kv/ca/crl``.

A name that changes hands (``name.transfer``) takes its certificates with it
(:func:`release_name`): the ones still live are revoked in one new CRL and a
pending request for the name is dropped, so the old owner's node keys stop
speaking for the name. The chain finds them in ``/kv/ca/live/<name>``, an index
of at most ``MAX_NAME_CERTS`` entries (a request past that many live ones is
refused), not by scanning every certificate.

``ca.federate`` ``{"root": DER, "days": int, "permitted": [str]}``
    A validator's vote that the network vouch for another network's root (a
    self-signed Ed25519 CA). Decided by more than 2/3 of the power of the set
    deciding the block, its cross-certificate (``threshold_ca.cross_builder``)
    becomes a signing job like a request's (``kind`` ``cross``); signed, it is
    logged and kept under ``/kv/ca/cross/<sha256 of the root>``.
``ca.withdraw`` ``{"root_hash": 32 bytes}``
    The same vote to stop: decided, the cross-certificate is revoked (a new
    CRL, as ``ca.revoke`` makes).

A signing set that stays incomplete for ``STALL_BLOCKS`` restarts without its
silent members, and an undecided federation vote is dropped after
``FED_VOTE_BLOCKS`` (``end_block``).

The transparency log (RFC 6962: leaf ``SHA-256(0x00 || DER)``) lives in the
state: each leaf hash under ``/kv/ct/leaf/<index>`` and the tree head (size, root
hash and the hashes of the perfect subtrees it is made of) under ``/kv/ct/head``.
The state root commits the tree head, so a header signed by the validators is
its signature, and every node serves inclusion and consistency proofs
(``api.routes_ca``).

Consensus note: the ``tbsCertificate`` bytes come from ``cryptography``'s
X.509 builder (DER is canonical), so validators run the same major version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as field_
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from focusflow.chain.errors import (
    AlreadyVotedError,
    GenesisError,
    MalformedMessageError,
    NotOwnerError,
    NotValidatorError,
    TxError,
)
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.state import PendingState, Readable
from focusflow.consensus.validators import has_two_thirds
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import decode_address, encode_address
from focusflow.modules.accounts import field, only_fields
from focusflow.modules.names import check_name
from focusflow.services.trust import ctlog, frost
from focusflow.services.trust.frost import Commitment, FrostError
from focusflow.services.trust.threshold_ca import cross_builder
from focusflow.state_schema.ca import (
    ASKED_PREFIX,
    BY_KEY_PREFIX,
    BY_NAME_PREFIX,
    CERT_PREFIX,
    CRL_KEY,
    CRL_NUMBER_KEY,
    CROSS_PREFIX,
    FED_VOTES_PREFIX,
    GROUP_KEY,
    HEAD_KEY,
    LEAF_NAME_PREFIX,
    LIVE_PREFIX,
    REQUEST_PREFIX,
    REVOKED_PREFIX,
    Group,
    certificate_of_name,
    is_revoked,
    issued,
    leaf_key,
    load_group,
    log_head,
)
from focusflow.state_schema.names import resolve

#: Live certificates one name may hold: a node renews its certificate when a third
#: of its life is left, so two at a time is the norm; the bound keeps what a
#: transfer revokes (and the index it reads) small.
MAX_NAME_CERTS = 4
#: Blocks an undecided federation vote is kept.
FED_VOTE_BLOCKS = 100
#: Undecided federation votes one validator may hold.
MAX_FED_VOTES = 4
MAX_ROOT_BYTES = 4096
MAX_CROSS_DAYS = 3650
MAX_PERMITTED = 16
#: How long a CRL the group signs is current.
CRL_DAYS = 7
#: Blocks a full signing set may take to give its shares before the job restarts.
STALL_BLOCKS = 20
#: The longest a leaf certificate the chain issues is valid.
MAX_HOURS = 2160
SERIAL_BYTES = 16
_USAGES = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
#: A DNS name a cross-certificate may limit the other network to.
_DNS = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


class CaError(TxError):
    """A CA message the chain refuses: no CA, no such request, not a member,
    out of turn, or a signature share that does not verify."""

    code = "ca_refused"


def _member(group: Group, address: bytes) -> tuple[int, bytes]:
    """``(identifier, verifying share)`` of a member of the signing group."""
    found = group.members.get(address)
    if found is None:
        raise CaError("the sender is not a member of the CA's signing group")
    return found


def _group_from_genesis(ca: dict[str, Any]) -> Group:
    """The genesis section's group, its cryptography checked: points on the
    curve, and a root certificate whose key is the group key."""
    try:
        public_key = frost.check_element(bytes.fromhex(ca["public_key"]))
        members = {}
        for m in ca["members"]:
            share = frost.check_element(bytes.fromhex(m["verifying_share"]))
            members[decode_address(m["address"])] = (m["identifier"], share)
        root = bytes.fromhex(ca["root"])
        cert = x509.load_der_x509_certificate(root)
    except (FrostError, ValueError) as exc:
        raise GenesisError(f"ca: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, Ed25519PublicKey) or key.public_bytes_raw() != public_key:
        raise GenesisError("ca.root is not a certificate of the group's Ed25519 key")
    return Group(ca["threshold"], public_key, root, members)


@dataclass
class Request:
    """A signing job: a certificate (``kind`` ``cert``, for ``name``) or a CRL
    (``crl``, its CRL ``number``), the group's commitments and shares of this
    ``attempt``, the height its signing set filled (``since``), and the members
    barred from the next set (``excluded``: they left the last one unfinished)."""

    kind: str
    prefix: bytes
    tbs: bytes
    requester: bytes
    name: str
    number: int
    commits: list[tuple[int, bytes, bytes]]
    shares: list[tuple[int, int]]
    attempt: int = 0
    since: int = 0
    excluded: list[int] = field_(default_factory=list)

    def encode(self) -> bytes:
        shares = [[i, frost.scalar_bytes(z)] for i, z in self.shares]
        commits = [list(c) for c in self.commits]
        head = [self.kind, self.prefix, self.tbs, self.requester, self.name, self.number]
        return encode([*head, commits, shares, self.attempt, self.since, self.excluded])

    @classmethod
    def decode(cls, raw: bytes) -> Request:
        kind, prefix, tbs, requester, name, number, commits, shares, attempt, since, excluded = (
            decode(raw, "ca request")
        )
        return cls(
            kind,
            prefix,
            tbs,
            requester,
            name,
            number,
            [(i, h, b) for i, h, b in commits],
            [(i, frost.decode_scalar(z)) for i, z in shares],
            attempt,
            since,
            list(excluded),
        )

    def commitments(self) -> list[Commitment]:
        return [Commitment(i, h, b) for i, h, b in self.commits]


def leaf_template(
    group: Group, name: str, key: bytes, serial: int, not_before: dt.datetime, hours: int
) -> tuple[bytes, bytes]:
    """``(DER without its signature, tbsCertificate)`` of the leaf a request asks for."""
    root = x509.load_der_x509_certificate(group.root)
    issuer_key = Ed25519PublicKey.from_public_bytes(group.public_key)
    subject_key = Ed25519PublicKey.from_public_bytes(key)
    dns = f"{name}.focus"
    draft = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(root.subject)
        .public_key(subject_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage(_USAGES), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
        .sign(Ed25519PrivateKey.generate(), None)  # a throwaway key: its signature is replaced
    )
    der = draft.public_bytes(serialization.Encoding.DER)
    return der[:-64], draft.tbs_certificate_bytes


def cross_template(
    group: Group,
    other: x509.Certificate,
    serial: int,
    not_before: dt.datetime,
    days: int,
    permitted: list[str],
) -> tuple[bytes, bytes]:
    """``(DER without its signature, tbsCertificate)`` of the cross-certificate a
    federation vote decided (``threshold_ca.cross_builder``)."""
    root = x509.load_der_x509_certificate(group.root)
    builder = cross_builder(
        root.subject, other, serial, not_before, days, sorted(permitted) or None
    )
    draft = builder.sign(Ed25519PrivateKey.generate(), None)  # a throwaway key: replaced
    return draft.public_bytes(serialization.Encoding.DER)[:-64], draft.tbs_certificate_bytes


def serial_number(serial: bytes) -> int:
    """The X.509 serial number of a request's 16-byte serial: positive, under 2^127."""
    return int.from_bytes(serial, "big") >> 1 or 1


def crl_template(
    group: Group, revoked: list[tuple[int, int]], number: int, when: int
) -> tuple[bytes, bytes]:
    """``(DER without its signature, tbsCertList)`` of CRL ``number`` listing
    ``revoked`` (serial number, revocation time in seconds) in serial order."""
    root = x509.load_der_x509_certificate(group.root)
    at = dt.datetime.fromtimestamp(when, dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(at)
        .next_update(at + dt.timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                Ed25519PublicKey.from_public_bytes(group.public_key)
            ),
            critical=False,
        )
    )
    for serial, revoked_at in sorted(revoked):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(dt.datetime.fromtimestamp(revoked_at, dt.UTC))
            .build()
        )
    draft = builder.sign(Ed25519PrivateKey.generate(), None)  # a throwaway key, replaced
    der = draft.public_bytes(serialization.Encoding.DER)
    return der[:-64], draft.tbs_certlist_bytes


# --- the transparency log in the state ----------------------------------------------


def _append_leaf(state: PendingState, entry: bytes) -> int:
    """Append ``entry`` to the log; returns its index. The frontier is a binary
    counter of perfect subtrees; the root folds it from the right (RFC 6962's
    split at the largest power of two)."""
    size, _, frontier = log_head(state)
    leaf = ctlog.leaf_hash(entry)
    state.put(leaf_key(size), leaf)
    merged, carry = leaf, size
    while carry & 1:
        merged = ctlog.node_hash(frontier.pop(), merged)
        carry >>= 1
    frontier.append(merged)
    root = frontier[-1]
    for subtree in reversed(frontier[:-1]):
        root = ctlog.node_hash(subtree, root)
    state.put(HEAD_KEY, encode([size + 1, root, frontier]))
    return size


def valid_certificate_of_name(
    state: Readable, name: str, now: dt.datetime
) -> x509.Certificate | None:
    """The newest certificate issued for ``<name>.focus`` if it is valid at ``now``
    and not revoked: the network's binding of the name to a node key."""
    found = certificate_of_name(state, name)
    if found is None or is_revoked(state, found[0]):
        return None
    cert = x509.load_der_x509_certificate(found[1])
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return None
    return cert


def pending_serials(reader: Any) -> list[bytes]:
    """Serials of the requests still waiting for commitments or shares."""
    return [key[len(REQUEST_PREFIX) :] for key, _ in reader.items(REQUEST_PREFIX)]


# --- the module ----------------------------------------------------------------------


class NetworkCa:
    """The network's CA as a chain module (``ca.*`` messages): issuance decided
    by the chain, signed by the members' threshold key. Not the standalone CA
    of one directory (``services.trust.ca.StandaloneCa``), whose X.509 and
    log machinery this one uses."""

    name = "ca"

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "ca.request": self.request,
            "ca.commit": self.commit,
            "ca.share": self.share,
            "ca.revoke": self.revoke,
            "ca.federate": self.federate,
            "ca.withdraw": self.withdraw,
        }

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        if genesis.ca is None:
            return
        g = _group_from_genesis(genesis.ca)
        members = sorted([a, i, v] for a, (i, v) in g.members.items())
        state.put(GROUP_KEY, encode([g.threshold, g.public_key, g.root, members]))

    def end_block(self, ctx: BlockContext) -> None:
        """Restart the jobs whose signing set filled ``STALL_BLOCKS`` ago and has
        not finished: a member that committed and went silent must not hold a
        certificate up. The silent members are barred from the next set (unless
        that would leave fewer than ``threshold`` members), and everyone's
        nonces of the stalled attempt are abandoned (a new attempt draws new
        ones: a nonce signs once)."""
        group = load_group(ctx.state)
        if group is None:
            return
        for key, raw in ctx.state.scan(FED_VOTES_PREFIX):
            if ctx.height - decode(raw, "ca federation votes")[2] >= FED_VOTE_BLOCKS:
                ctx.state.delete(key)
        for key, raw in ctx.state.scan(REQUEST_PREFIX):
            req = Request.decode(raw)
            full = len(req.commits) >= group.threshold
            if not full or ctx.height - req.since < STALL_BLOCKS:
                continue
            gave = {i for i, _ in req.shares}
            silent = sorted(i for i, _, _ in req.commits if i not in gave)
            left = len(group.members) - len(silent)
            req.excluded = silent if left >= group.threshold else []
            req.attempt += 1
            req.commits, req.shares, req.since = [], [], 0
            ctx.state.put(key, req.encode())
            ctx.events.append(
                {"type": "ca.restart", "serial": key[len(REQUEST_PREFIX) :], "silent": silent}
            )

    def request(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "name", "key", "hours")
        name = field(body, "name", str)
        key = field(body, "key", bytes, size=32)
        hours = field(body, "hours", int)
        group = _group(ctx.state)
        check_name(name)
        record = resolve(ctx.state, name)
        if record is None or record[1] != ctx.sender:
            raise NotOwnerError(f"a certificate for {name!r} is asked for by the name's owner")
        if not 0 < hours <= MAX_HOURS:
            raise MalformedMessageError(f"hours must be 1..{MAX_HOURS}")
        # Every request costs each member two transactions: one pending at a
        # time per name bounds what one owner can make the group do.
        if ctx.state.get(ASKED_PREFIX + name.encode()) is not None:
            raise CaError(f"a certificate for {name!r} is being signed already")
        if len(_live(ctx.state, name, ctx.block.time_ms // 1000)) >= MAX_NAME_CERTS:
            raise CaError(
                f"{name!r} holds {MAX_NAME_CERTS} live certificates, the most one name may "
                "hold: revoke one first"
            )
        try:
            Ed25519PublicKey.from_public_bytes(key)
        except ValueError:
            raise MalformedMessageError("key is not an Ed25519 public key") from None
        digest = hashlib.sha256(
            b"focusflow/ca-serial/" + ctx.tx.hash + ctx.msg_index.to_bytes(4, "big")
        ).digest()
        serial = digest[:SERIAL_BYTES]
        number = serial_number(serial)
        start = dt.datetime.fromtimestamp(ctx.block.time_ms // 1000, dt.UTC)
        prefix, tbs = leaf_template(group, name, key, number, start, hours)
        ctx.state.put(
            REQUEST_PREFIX + serial,
            Request("cert", prefix, tbs, ctx.sender, name, 0, [], []).encode(),
        )
        ctx.state.put(ASKED_PREFIX + name.encode(), serial)
        ctx.emit("ca.request", serial=serial, name=name)

    def commit(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "serial", "hiding", "binding")
        serial = field(body, "serial", bytes, size=SERIAL_BYTES)
        hiding = field(body, "hiding", bytes, size=32)
        binding = field(body, "binding", bytes, size=32)
        group = _group(ctx.state)
        identifier, _ = _member(group, ctx.sender)
        req = _pending(ctx.state, serial)
        if len(req.commits) >= group.threshold:
            raise CaError("the request's signing set is full")
        if identifier in req.excluded:
            raise CaError("this member left the last signing set of the request unfinished")
        if any(i == identifier for i, _, _ in req.commits):
            raise CaError("this member has committed to the request already")
        try:
            frost.check_element(hiding)
            frost.check_element(binding)
        except FrostError as exc:
            raise MalformedMessageError(f"a nonce commitment: {exc.message}") from None
        req.commits.append((identifier, hiding, binding))
        if len(req.commits) == group.threshold:
            req.since = ctx.height
        ctx.state.put(REQUEST_PREFIX + serial, req.encode())
        ctx.emit("ca.commit", serial=serial, identifier=identifier)

    def share(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "serial", "share")
        serial = field(body, "serial", bytes, size=SERIAL_BYTES)
        raw_share = field(body, "share", bytes, size=32)
        group = _group(ctx.state)
        identifier, verifying = _member(group, ctx.sender)
        req = _pending(ctx.state, serial)
        if len(req.commits) < group.threshold:
            raise CaError("the request's signing set is not complete yet")
        if all(i != identifier for i, _, _ in req.commits):
            raise CaError("this member is not in the request's signing set")
        if any(i == identifier for i, _ in req.shares):
            raise CaError("this member has given its share already")
        try:
            z = frost.decode_scalar(raw_share)
            frost.verify_share(
                identifier, verifying, z, req.tbs, req.commitments(), group.public_key
            )
        except FrostError as exc:
            raise CaError(f"signature share refused: {exc.message}") from None
        req.shares.append((identifier, z))
        ctx.emit("ca.share", serial=serial, identifier=identifier)
        if len(req.shares) < group.threshold:
            ctx.state.put(REQUEST_PREFIX + serial, req.encode())
            return
        signature = frost.aggregate(
            req.commitments(), req.tbs, group.public_key, [z for _, z in req.shares]
        )
        try:
            Ed25519PublicKey.from_public_bytes(group.public_key).verify(signature, req.tbs)
        except InvalidSignature:
            raise CaError("the aggregated signature does not verify") from None
        der = req.prefix + signature
        ctx.state.delete(REQUEST_PREFIX + serial)
        if req.kind == "cert":
            ctx.state.delete(ASKED_PREFIX + req.name.encode())
        if req.kind == "crl":
            current = ctx.state.get(CRL_KEY)
            if current is None or decode(current, "ca crl")[0] < req.number:
                ctx.state.put(CRL_KEY, encode([req.number, der]))
            ctx.emit("ca.crl", number=req.number)
            return
        index = _append_leaf(ctx.state, der)
        ctx.state.put(CERT_PREFIX + serial, encode([index, der, req.requester]))
        if req.kind == "cross":
            root_hash = bytes.fromhex(req.name)
            ctx.state.put(CROSS_PREFIX + root_hash, encode([serial, der]))
            ctx.emit("ca.federated", serial=serial, root_hash=root_hash, leaf_index=index)
            return
        cert = x509.load_der_x509_certificate(der)
        subject = cert.public_key()
        assert isinstance(subject, Ed25519PublicKey)  # leaf_template's subject key
        ctx.state.put(BY_KEY_PREFIX + subject.public_bytes_raw(), serial)
        ctx.state.put(BY_NAME_PREFIX + req.name.encode(), serial)
        ctx.state.put(LEAF_NAME_PREFIX + serial, req.name.encode())
        until = int(cert.not_valid_after_utc.timestamp())
        live = _live(ctx.state, req.name, ctx.block.time_ms // 1000)
        _keep_live(ctx.state, req.name, [*live, [serial, until]])
        ctx.emit("ca.issued", serial=serial, name=req.name, leaf_index=index)

    def revoke(self, ctx: TxContext, body: MessageBody) -> None:
        """The certificate's requester, or the current owner of the name it
        certifies, revokes it: a new CRL of every revoked serial is built and
        signed by the group as a certificate is. The owner may because the name
        is what the certificate vouches for: whoever holds the name now decides
        which keys speak for it."""
        only_fields(body, "serial")
        serial = field(body, "serial", bytes, size=SERIAL_BYTES)
        group = _group(ctx.state)
        raw = ctx.state.get(CERT_PREFIX + serial)
        if raw is None:
            raise CaError(f"no certificate {serial.hex()} was issued on this chain")
        _, _, requester = decode(raw, "ca certificate")
        name = _leaf_name(ctx.state, serial)
        owner = None if name is None else resolve(ctx.state, name)
        if ctx.sender not in (requester, None if owner is None else owner[1]):
            raise NotOwnerError(
                "a certificate is revoked by the account that asked for it or by the "
                "current owner of the name it certifies"
            )
        if ctx.state.get(REVOKED_PREFIX + serial) is not None:
            raise CaError(f"certificate {serial.hex()} is revoked already")
        _revoke(ctx, group, [serial])
        if name is not None:
            _keep_live(ctx.state, name, _live(ctx.state, name, ctx.block.time_ms // 1000))

    # --- federation: validators' votes --------------------------------------------

    def federate(self, ctx: TxContext, body: MessageBody) -> None:
        """A validator's vote that the network vouch for another network's root:
        decided, the group signs a cross-certificate of it (a signing job like a
        request's, ``kind`` ``cross``)."""
        only_fields(body, "root", "days", "permitted")
        der = field(body, "root", bytes)
        days = field(body, "days", int)
        permitted = field(body, "permitted", list)
        group = _group(ctx.state)
        other = _other_root(group, der)
        if not 0 < days <= MAX_CROSS_DAYS:
            raise MalformedMessageError(f"days must be 1..{MAX_CROSS_DAYS}")
        if len(permitted) > MAX_PERMITTED or not all(
            isinstance(d, str) and _DNS.fullmatch(d) for d in permitted
        ):
            raise MalformedMessageError(
                f"permitted must be at most {MAX_PERMITTED} DNS names (a-z 0-9 - .)"
            )
        root_hash = hashlib.sha256(der).digest()
        if ctx.state.get(CROSS_PREFIX + root_hash) is not None:
            raise CaError(f"the root {root_hash.hex()} is trusted already")
        if not _vote(ctx, "federate", [der, days, sorted(permitted)]):
            return
        serial = hashlib.sha256(
            b"focusflow/ca-cross/" + ctx.tx.hash + ctx.msg_index.to_bytes(4, "big")
        ).digest()[:SERIAL_BYTES]
        start = dt.datetime.fromtimestamp(ctx.block.time_ms // 1000, dt.UTC)
        prefix, tbs = cross_template(group, other, serial_number(serial), start, days, permitted)
        job = Request("cross", prefix, tbs, b"", root_hash.hex(), 0, [], [])
        ctx.state.put(REQUEST_PREFIX + serial, job.encode())
        ctx.emit("ca.federate", serial=serial, root_hash=root_hash)

    def withdraw(self, ctx: TxContext, body: MessageBody) -> None:
        """A validator's vote that the network stop vouching for a root it
        cross-certified: decided, the cross-certificate is revoked (a new CRL)."""
        only_fields(body, "root_hash")
        root_hash = field(body, "root_hash", bytes, size=32)
        group = _group(ctx.state)
        raw = ctx.state.get(CROSS_PREFIX + root_hash)
        if raw is None:
            raise CaError(f"the root {root_hash.hex()} is not trusted")
        if not _vote(ctx, "withdraw", [root_hash]):
            return
        serial, _ = decode(raw, "ca cross")
        ctx.state.delete(CROSS_PREFIX + root_hash)
        ctx.emit("ca.withdraw", serial=serial, root_hash=root_hash)
        _revoke(ctx, group, [serial])


def _revoke(ctx: TxContext, group: Group, serials: list[bytes]) -> None:
    """List ``serials`` as revoked and make the new CRL (one for all of them) a
    signing job. The job's id takes the CRL number too: one message may revoke
    twice (a contract's packets transferring two names)."""
    when = ctx.block.time_ms // 1000
    for serial in serials:
        ctx.state.put(REVOKED_PREFIX + serial, encode([when]))
    number = int.from_bytes(ctx.state.get(CRL_NUMBER_KEY) or b"\0", "big") + 1
    ctx.state.put(CRL_NUMBER_KEY, number.to_bytes(8, "big"))
    revoked = [
        (serial_number(key[len(REVOKED_PREFIX) :]), decode(value, "ca revoked")[0])
        for key, value in ctx.state.scan(REVOKED_PREFIX)
    ]
    prefix, tbs = crl_template(group, revoked, number, when)
    seed = ctx.tx.hash + ctx.msg_index.to_bytes(4, "big") + number.to_bytes(8, "big")
    job = hashlib.sha256(b"focusflow/ca-crl/" + seed).digest()[:SERIAL_BYTES]
    ctx.state.put(
        REQUEST_PREFIX + job,
        Request("crl", prefix, tbs, ctx.sender, "", number, [], []).encode(),
    )
    for serial in serials:
        ctx.emit("ca.revoke", serial=serial, crl_job=job, number=number)


def release_name(ctx: TxContext, name: str) -> None:
    """``name`` changed hands: revoke its live certificates (one new CRL) and drop
    a pending request for it, so that no key the old owner chose speaks for the
    name any more. Found through the name's own index (and the newest
    certificate of the name, which a chain kept before the index did), never by
    scanning every certificate. Nothing to do on a chain without a CA."""
    group = load_group(ctx.state)
    if group is None:
        return
    key = name.encode()
    asked = ctx.state.get(ASKED_PREFIX + key)
    if asked is not None:
        ctx.state.delete(ASKED_PREFIX + key)
        ctx.state.delete(REQUEST_PREFIX + asked)
        ctx.emit("ca.cancel", serial=asked, name=name)
    now = ctx.block.time_ms // 1000
    serials = [serial for serial, _ in _live(ctx.state, name, now)]
    newest = ctx.state.get(BY_NAME_PREFIX + key)
    if newest is not None and newest not in serials and _is_live(ctx.state, newest, now):
        serials.append(newest)
    _keep_live(ctx.state, name, [])
    if serials:
        _revoke(ctx, group, serials)


def _live(state: Readable, name: str, now: int) -> list[list[Any]]:
    """``[[serial, notAfter], ...]`` of the name's indexed certificates still live
    at ``now`` (seconds): not expired, not revoked."""
    raw = state.get(LIVE_PREFIX + name.encode())
    entries = [] if raw is None else decode(raw, "ca live certificates")
    return [[s, until] for s, until in entries if until > now and not is_revoked(state, s)]


def _keep_live(state: PendingState, name: str, entries: list[list[Any]]) -> None:
    """Write the name's index (deleted when empty, so a name without live
    certificates costs no state)."""
    key = LIVE_PREFIX + name.encode()
    if entries:
        state.put(key, encode(entries))
    elif state.get(key) is not None:
        state.delete(key)


def _is_live(state: Readable, serial: bytes, now: int) -> bool:
    """Whether an issued certificate is neither revoked nor expired at ``now``."""
    found = issued(state, serial)
    if found is None or is_revoked(state, serial):
        return False
    return x509.load_der_x509_certificate(found[1]).not_valid_after_utc.timestamp() > now


def _leaf_name(state: Readable, serial: bytes) -> str | None:
    """The name a leaf certificate certifies (None: a cross-certificate, or a leaf
    issued before the chain kept the link)."""
    raw = state.get(LEAF_NAME_PREFIX + serial)
    return None if raw is None else raw.decode()


def _vote(ctx: TxContext, action: str, body: list[Any]) -> bool:
    """Count the sender's vote for ``[action, body]``: True once the voters hold
    more than 2/3 of the power of the set deciding the block (the votes are then
    deleted), False while undecided (kept for ``FED_VOTE_BLOCKS``)."""
    validators = ctx.block.validators
    if validators is None or not validators.power_of(ctx.sender_key):
        raise NotValidatorError(
            f"{encode_address(ctx.sender)} is not in the validator set of block "
            f"{ctx.height}: only its members vote on federation"
        )
    key = FED_VOTES_PREFIX + hashlib.sha256(encode([action, body])).digest()
    raw = ctx.state.get(key)
    voters = set() if raw is None else set(decode(raw, "ca federation votes")[3])
    if ctx.sender_key in voters:
        raise AlreadyVotedError(f"{encode_address(ctx.sender)} voted for this already")
    voters.add(ctx.sender_key)
    power = sum(validators.power_of(v) for v in voters)
    decided = has_two_thirds(power, validators.total_power)
    ctx.emit(
        "ca.vote", action=action, validator=ctx.sender, power=power, total=validators.total_power
    )
    if decided:
        ctx.state.delete(key)
        return True
    held = sum(
        1
        for _, value in ctx.state.scan(FED_VOTES_PREFIX)
        if ctx.sender_key in decode(value, "ca federation votes")[3]
    )
    if held >= MAX_FED_VOTES:
        raise CaError(
            f"{encode_address(ctx.sender)} holds {MAX_FED_VOTES} undecided federation votes, "
            "the most one validator may hold"
        )
    ctx.state.put(key, encode([action, body, ctx.height, sorted(voters)]))
    return False


def _other_root(group: Group, der: bytes) -> x509.Certificate:
    """Another network's root as a federation vote names it: a self-signed
    Ed25519 CA certificate (at most ``MAX_ROOT_BYTES``), not this network's."""
    if not 0 < len(der) <= MAX_ROOT_BYTES:
        raise MalformedMessageError(f"root must be 1..{MAX_ROOT_BYTES} bytes of DER")
    if der == group.root:
        raise MalformedMessageError("root is this network's own")
    try:
        cert = x509.load_der_x509_certificate(der)
        key = cert.public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("its key is not Ed25519")
        key.verify(cert.signature, cert.tbs_certificate_bytes)
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise ValueError("it is not a CA certificate")
    except (ValueError, InvalidSignature, x509.ExtensionNotFound) as exc:
        raise MalformedMessageError(f"root is not a self-signed Ed25519 CA root: {exc}") from None
    return cert


def _group(state: Readable) -> Group:
    group = load_group(state)
    if group is None:
        raise CaError("this chain has no certificate authority (its genesis names none)")
    return group


def _pending(state: Readable, serial: bytes) -> Request:
    raw = state.get(REQUEST_PREFIX + serial)
    if raw is None:
        raise CaError(f"no pending certificate request {serial.hex()}")
    return Request.decode(raw)
