"""A validator's bootstrap phases: from self-signed node certificates to the network's own CA.

A network starts with nothing to vouch for its nodes but their keys, and
ends with every connection between validators carrying certificates its own
CA issued (``modules.ca``, signed by the validators' threshold key). The
phases, the condition of each, and what the node does in it:

- **0, self-signed.** Condition: none. The node presents a self-signed
  certificate and takes any that carries the peer's key
  (``net.certs.SelfSigned``); where the genesis names a CA, it asks it for one.
- **1, ca-issued.** Condition: the chain holds a certificate for this node's
  key that is valid now and not revoked. The node presents it (in TLS and in
  ``Auth``) and verifies peers' CA certificates; it still takes self-signed ones.
- **2, ca-required.** Condition: every validator of the current set holds one.
  The node refuses a self-signed certificate from a validator that has shown
  it the CA's before (``Bootstrap._requires``: not from one that has not yet,
  which may lag behind the block that issued its certificate and could not
  learn of it without connecting); connections this node made under its
  self-signed certificate are closed and made again.
- **3, self-sufficient.** Condition: every other validator is connected, with
  the network's certificates on both ends. Nothing changes: the network's
  trust between validators rests on its own CA and chain alone.

Each phase's condition includes those of the phases before it. The phase is
recomputed from its conditions after every block, so it falls back as it
advances: a revoked or
expired certificate of this node takes it to phase 0 (self-signed, asking
again), a new validator without one to phase 1, a lost connection from 3 to 2.
The certificate is asked for ``RENEW_SHARE`` before it expires, so a running
network keeps its phase. A certificate is asked for in this node's
account's name ``node-<first 16 hex digits of the node id>`` (registered
first when nobody holds it), for ``CERT_HOURS``.

The name also says where the node listens: once it owns the name, the duty
sends ``name.address`` with its bound transport address whenever the chain's
record differs (not when it listens on an unspecified address such as
``0.0.0.0``, which nobody could dial). And the network's own name resolution
is primary for the addresses of validators: after every block, each
validator whose name ``node-<id>`` holds a certificate from the network's CA
for that validator's key (valid, not revoked) and an address is dialed at that
address from then on, instead of the one configured (``Node.set_peer_address``;
the configured one is the seed the node starts from). A name anybody could
register gives no address: only the CA's binding of the name to the key does.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from focusflow.chain import Msg
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.keys import KeyPair
from focusflow.modules.ca import serial_number, valid_certificate_of_name
from focusflow.net.certs import CertificatePolicy, CertKind, NetworkCA, SelfSigned
from focusflow.net.node import PeerAddress
from focusflow.state_schema.ca import (
    ASKED_PREFIX,
    REVOKED_PREFIX,
    certificate_for,
    is_revoked,
    load_group,
)
from focusflow.state_schema.names import address_of, join_host_port, resolve

if TYPE_CHECKING:
    from focusflow.chain.state import Readable
    from focusflow.node.extensions import ExtensionHost, NodeExtension
    from focusflow.node.runtime import BlockEvent
    from focusflow.store import Reader

log = logging.getLogger("focusflow.bootstrap")

#: How long a node certificate the duty asks for is valid.
CERT_HOURS = 24
#: The share of a certificate's life left at which a new one is asked for.
RENEW_SHARE = 1 / 3
#: Blocks after which an unanswered name registration or request is sent again.
RESEND_BLOCKS = 10


class Phase(enum.IntEnum):
    SELF_SIGNED = 0
    CA_ISSUED = 1
    CA_REQUIRED = 2
    SELF_SUFFICIENT = 3

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class Conditions:
    """What the phase is decided from (module docstring)."""

    network_ca: bool
    own_certificate: bool
    validators_certified: bool
    links_on_ca: bool


def phase_of(c: Conditions) -> Phase:
    """The phase whose condition holds, with all of those before it."""
    if not (c.network_ca and c.own_certificate):
        return Phase.SELF_SIGNED
    if not c.validators_certified:
        return Phase.CA_ISSUED
    if not c.links_on_ca:
        return Phase.CA_REQUIRED
    return Phase.SELF_SUFFICIENT


def node_name(node_id: bytes) -> str:
    """The name a node's certificate is asked for under."""
    return f"node-{node_id[:8].hex()}"


def named_address(state: Readable, node_id: bytes, now: dt.datetime) -> tuple[str, int] | None:
    """Where ``node-<id>`` says the node ``node_id`` listens, if the network's CA
    certified that name for that very key (valid now, not revoked); None
    otherwise: anyone may register a name, only the CA binds it to a key."""
    name = node_name(node_id)
    cert = valid_certificate_of_name(state, name, now)
    if cert is None:
        return None
    key = cert.public_key()
    if not isinstance(key, Ed25519PublicKey) or key.public_bytes_raw() != node_id:
        return None
    return address_of(state, name)


def standing(
    state: Readable, key: bytes, now: dt.datetime
) -> tuple[str, bytes, x509.Certificate] | None:
    """``(standing, serial, certificate)`` of the newest certificate issued for
    ``key``: ``valid`` at ``now``, ``revoked``, or ``expired`` (or not valid
    yet); None when there is none."""
    found = certificate_for(state, key)
    if found is None:
        return None
    serial, der = found
    cert = x509.load_der_x509_certificate(der)
    if is_revoked(state, serial):
        return "revoked", serial, cert
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return "expired", serial, cert
    return "valid", serial, cert


@dataclass
class ChainView:
    """What one block's state says for the phase (read off the loop)."""

    root_key: bytes | None
    own: tuple[bytes, x509.Certificate] | None
    validators: frozenset[bytes]
    certified: frozenset[bytes]
    #: Validators whose newest certificate is revoked.
    revoked_keys: frozenset[bytes]
    revoked: frozenset[int]
    name_owner: bytes | None
    asked: bool
    #: Where this node's name says it listens.
    own_address: tuple[str, int] | None = None
    #: Where other validators' CA-certified names say they listen.
    peer_addresses: dict[bytes, tuple[str, int]] = field(default_factory=dict)


@dataclass
class Bootstrap:
    """The node extension that runs the phases (module docstring)."""

    node_key: KeyPair
    account: KeyPair
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    host: ExtensionHost | None = None
    phase: Phase = Phase.SELF_SIGNED
    view: ChainView | None = None
    #: When each phase was first reached (seconds since the epoch).
    reached: dict[int, float] = field(default_factory=dict)
    #: Validators that have shown this node the CA's certificate on a connection.
    shown: set[bytes] = field(default_factory=set)
    #: The connections' certificate kinds at the last evaluation, by peer.
    links: dict[bytes, tuple[CertKind, CertKind]] = field(default_factory=dict)
    _presented: bytes | None = None
    _sent: dict[str, int] = field(default_factory=dict)
    #: Validators dialed at the address their names give (the rest as configured).
    named: dict[bytes, PeerAddress] = field(default_factory=dict)

    def attach(self, host: ExtensionHost) -> None:
        """Called on the loop before the transport starts: the phase the stored
        chain already supports is taken at once, so a validator that restarts
        in a network past phase 1 presents its certificate from its first dial
        (its peers would refuse a self-signed one, and with them the blocks
        that could tell it so)."""
        self.host = host
        host.on_commit(self.on_block)
        if host.net is not None:
            with host.chain.reader() as r:
                self.evaluate(self._read(r, host, self.now()))

    async def stop(self) -> None:
        return None

    # --- after each block (a worker thread) ------------------------------------

    def on_block(self, event: BlockEvent) -> None:
        host = self.host
        assert host is not None
        height = event.result.block.height
        now = self.now()
        with host.chain.reader() as r:
            view = self._read(r, host, now)
        if view.root_key is not None:
            try:
                self._ask(host, view, height, now)
                self._advertise(host, view, height)
            except Exception:  # the duty must not stop the node's other listeners
                log.exception("bootstrap duty failed")
        if host.net is not None:
            host.call_soon(self.evaluate, view)

    def _read(self, r: Reader, host: ExtensionHost, now: dt.datetime) -> ChainView:
        group = load_group(r)
        validators = frozenset(v.public_key for v in host.chain.validators.validators)
        if group is None:
            none: frozenset[Any] = frozenset()
            return ChainView(None, None, validators, none, none, none, None, False)
        me = self.node_key.public_key
        standings = {k: standing(r, k, now) for k in validators | {me}}
        mine = standings[me]
        own = (mine[1], mine[2]) if mine is not None and mine[0] == "valid" else None
        certified, revoked_keys = (
            frozenset(k for k in validators if (s := standings[k]) is not None and s[0] == kind)
            for kind in ("valid", "revoked")
        )
        revoked = frozenset(
            serial_number(key[len(REVOKED_PREFIX) :]) for key, _ in r.items(REVOKED_PREFIX)
        )
        name = node_name(me)
        record = resolve(r, name)
        asked = r.get(ASKED_PREFIX + name.encode()) is not None
        return ChainView(
            group.public_key,
            own,
            validators,
            certified,
            revoked_keys,
            revoked,
            None if record is None else record[1],
            asked,
            address_of(r, name),
            {v: where for v in validators - {me} if (where := named_address(r, v, now))},
        )

    def _ask(self, host: ExtensionHost, view: ChainView, height: int, now: dt.datetime) -> None:
        """Register the node's name, then ask the CA for a certificate, when this
        node has none that lasts beyond its renewal point."""
        if view.own is not None:
            cert = view.own[1]
            life = cert.not_valid_after_utc - cert.not_valid_before_utc
            if cert.not_valid_after_utc - now > life * RENEW_SHARE:
                return
        if view.asked:
            return
        name = node_name(self.node_key.public_key)
        if view.name_owner is None:
            if self._due("register", height):
                body: dict[str, Any] = {
                    "name": name,
                    "cid": raw_cid_bytes(self.node_key.public_key),
                }
                self._send(host, Msg("name.register", body))
            return
        if view.name_owner != self.account.address_raw:
            if self._due("taken", height):
                log.warning(
                    "the node's certificate name is held by another account",
                    extra={"fields": {"name": name}},
                )
            return
        if self._due("request", height):
            ask = {"name": name, "key": self.node_key.public_key, "hours": CERT_HOURS}
            self._send(host, Msg("ca.request", ask))

    def _advertise(self, host: ExtensionHost, view: ChainView, height: int) -> None:
        """Say on the chain where this node listens, when its name says otherwise."""
        if host.net is None or view.name_owner != self.account.address_raw:
            return
        ip, port = host.net.address
        if not ip or ipaddress.ip_address(ip).is_unspecified:
            if self._due("unspecified", height):
                log.warning(
                    "listening on an unspecified address: the node's name gets none",
                    extra={"fields": {"p2p": f"{ip}:{port}"}},
                )
            return
        here = (ipaddress.ip_address(ip).compressed, port)
        if view.own_address != here and self._due("address", height):
            where = join_host_port(ip, port)
            body = {"name": node_name(self.node_key.public_key), "address": where}
            self._send(host, Msg("name.address", body))

    def _due(self, what: str, height: int) -> bool:
        last = self._sent.get(what)
        if last is not None and height - last < RESEND_BLOCKS:
            return False
        self._sent[what] = height
        return True

    def _send(self, host: ExtensionHost, msg: Msg) -> None:
        host.submit_as(self.account, [msg])
        log.info("bootstrap duty sent", extra={"fields": {"type": msg.type}})

    # --- on the event loop -----------------------------------------------------

    def evaluate(self, view: ChainView | None = None) -> Phase:
        """The phase now, with the certificates it presents and requires put in
        place on the transport (on the event loop)."""
        assert self.host is not None and self.host.net is not None
        net = self.host.net
        if view is not None:
            self.view = view
        view = self.view
        if view is None:
            return self.phase
        me = self.node_key.public_key
        others = view.validators - {me}
        links = self.links = net.link_certificates()
        self.shown |= {peer for peer, (_, theirs) in links.items() if theirs == "ca"}
        conditions = Conditions(
            network_ca=view.root_key is not None,
            own_certificate=view.own is not None,
            validators_certified=view.validators <= view.certified,
            links_on_ca=all(links.get(v) == ("ca", "ca") for v in others),
        )
        phase = phase_of(conditions)
        for node_id, (host, port) in view.peer_addresses.items():
            peer = PeerAddress(node_id, host, port)
            if net.set_peer_address(peer):
                fields = {"peer": str(peer)}
                log.info("dialing a validator where its name says", extra={"fields": fields})
            self.named[node_id] = peer
        policy = self._policy(phase, view)
        presented = policy.presented().tbs_certificate_bytes + bytes([phase >= Phase.CA_REQUIRED])
        if presented != self._presented:
            self._presented = presented
            closed = net.set_certificates(policy)
            log.info(
                "bootstrap certificates changed",
                extra={"fields": {"phase": int(phase), "links_closed": closed}},
            )
        if phase != self.phase or int(phase) not in self.reached:
            # a phase's conditions include those before it: one block may
            # satisfy several at once
            for p in range(int(phase) + 1):
                self.reached.setdefault(p, time.time())
            log.info(
                f"bootstrap phase {int(phase)} ({phase.label})",
                extra={"fields": {"phase": int(phase), "from": int(self.phase)}},
            )
            self.phase = phase
        return phase

    def _policy(self, phase: Phase, view: ChainView) -> CertificatePolicy:
        if phase == Phase.SELF_SIGNED or view.own is None or view.root_key is None:
            return SelfSigned(self.node_key)
        strict = phase >= Phase.CA_REQUIRED
        return NetworkCA(
            own=view.own[1],
            root_key=view.root_key,
            revoked=lambda serial: serial in view.revoked,
            required=lambda node_id: strict and self._requires(node_id, view),
            now=self.now,
        )

    def _requires(self, node_id: bytes, view: ChainView) -> bool:
        """Whether a validator must show the CA's certificate: once it has shown
        this node one, for as long as its newest certificate is valid or
        revoked (not expired). A validator that has not shown one yet may lag
        behind the block that issued it, and could not learn of it without
        connecting: it is taken self-signed until it does. One whose
        certificate expired while it was away is taken self-signed, so it can
        catch up and ask again; a revoked one stays refused (its key is to be
        replaced)."""
        return (
            node_id in view.validators
            and node_id in self.shown
            and (node_id in view.certified or node_id in view.revoked_keys)
        )

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/bootstrap`` answers."""
        view, links = self.view, self.links
        return {
            "phase": int(self.phase),
            "name": self.phase.label,
            "certificate": None if view is None or view.own is None else view.own[0].hex(),
            "reached": {str(k): v for k, v in sorted(self.reached.items())},
            "links": [
                {"peer": peer.hex(), "own": own, "peer_certificate": theirs}
                for peer, (own, theirs) in sorted(links.items())
            ],
            "peers": self._dialed(),
        }

    def _dialed(self) -> list[dict[str, str]]:
        """Where each validator is dialed, and whether its name or the config said so."""
        net = self.host.net if self.host is not None else None
        if net is None or self.view is None:
            return []
        out = []
        for node_id in sorted(self.view.validators - {self.node_key.public_key}):
            peer = net.dial_address(node_id)
            if peer is None:
                continue
            named = self.named.get(node_id) == peer
            where = join_host_port(peer.host, peer.port)
            source = "names" if named else "config"
            out.append({"node_id": node_id.hex(), "address": where, "from": source})
        return out


def bootstrap_extensions(node_key: KeyPair, account: KeyPair | None) -> list[NodeExtension]:
    """The bootstrap duty of a validator (a full node runs none: it has no account)."""
    return [] if account is None else [Bootstrap(node_key, account)]
