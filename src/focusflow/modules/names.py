"""Names: short human names for particles.

Messages
    ``name.register`` ``{"name": str, "cid": bytes}``
    ``name.update``   ``{"name": str, "cid": bytes}`` (owner only)
    ``name.transfer`` ``{"name": str, "to": address}`` (owner only)
    ``name.address``  ``{"name": str, "address": "host:port" or ""}`` (owner only)

Rules: 3 to 32 characters of ``a-z``, ``0-9`` and ``-``, starting with a
letter, not ending with ``-`` and without ``--`` (no look-alike spellings, and
every name is a valid DNS label). Registering burns ``name_fee``, ten times
that for names of 3 or 4 characters (short names are scarce). A name is owned
forever by its registrant until transferred: names do not lapse, and a
transfer is the one way a name changes owner. State: ``/kv/name/<name>`` holds
``[cid, owner]``.

A transfer to another account revokes the certificates the network's CA issued
for ``<name>.focus`` and drops a pending request for one
(``modules.ca.release_name``): a certificate vouches that a node key speaks
for the name, which the old owner no longer holds.

A name may also say where its owner's node listens: ``name.address`` keeps
``[host, port]`` under ``/kv/name_addr/<name>`` (an IPv4 or IPv6 literal, or a
DNS host name of at most 253 characters; port 1 to 65535; the empty string
removes it), and a transfer removes it (the new owner says where its node
is). The node's DNS server answers it as A/AAAA and SRV records, and a node
dials a validator at the address of the name the network's CA certified for
that validator's node key (``node.bootstrap``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from focusflow.chain.errors import InvalidNameError, NameTakenError, NotOwnerError, UnknownNameError
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.state import PendingState
from focusflow.core.cid import check_cid_bytes
from focusflow.core.encoding import encode
from focusflow.modules.accounts import address_field, debit, field, only_fields
from focusflow.state_schema.names import address_key, name_key, resolve

_NAME = re.compile(r"[a-z][a-z0-9-]{1,30}[a-z0-9]")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
MAX_HOST = 253


def check_address(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (an IPv6 host in brackets); InvalidNameError
    for anything else: a host that is neither an IP literal nor a DNS host name,
    a port outside 1..65535."""
    host, sep, port = text.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65535:
        raise InvalidNameError(f"a node address is host:port with a port of 1..65535: {text!r}")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        ip = None
    if ip is not None:
        if (ip.version == 6) != (bare != host):
            raise InvalidNameError(f"an IPv6 host is written in brackets: {text!r}")
        return ip.compressed, int(port)
    name = host.lower().rstrip(".")
    if not 0 < len(name) <= MAX_HOST or not all(_HOST_LABEL.fullmatch(p) for p in name.split(".")):
        raise InvalidNameError(f"not an IP address or a DNS host name: {host!r}")
    return name, int(port)


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or "--" in name:
        raise InvalidNameError(
            f"invalid name {name!r}: 3-32 of a-z 0-9 -, starting with a letter, "
            "not ending with '-', no '--'"
        )


def name_fee(name: str, base: int) -> int:
    return base * 10 if len(name) <= 4 else base


def _release_certificates(ctx: TxContext, name: str) -> None:
    """Revoke the name's certificates as it changes hands. ``modules.ca`` imports
    this module for the name rules, so it is imported when a transfer runs rather
    than with this module."""
    from focusflow.modules.ca import release_name

    release_name(ctx, name)


class Names:
    name = "names"

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "name.register": self.register,
            "name.update": self.update,
            "name.transfer": self.transfer,
            "name.address": self.address,
        }

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        return None

    def end_block(self, ctx: BlockContext) -> None:
        return None

    def register(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "name", "cid")
        name = field(body, "name", str)
        cid = field(body, "cid", bytes)
        check_name(name)
        check_cid_bytes(cid)
        if resolve(ctx.state, name) is not None:
            raise NameTakenError(f"name {name!r} is already registered")
        debit(ctx.state, ctx.sender, name_fee(name, ctx.params.name_fee), f"name {name!r}")
        ctx.state.put(name_key(name), encode([cid, ctx.sender]))
        ctx.emit("name.register", name=name, cid=cid, owner=ctx.sender)

    def update(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "name", "cid")
        name = field(body, "name", str)
        cid = field(body, "cid", bytes)
        check_cid_bytes(cid)
        self._owned(ctx, name)
        ctx.state.put(name_key(name), encode([cid, ctx.sender]))
        ctx.emit("name.update", name=name, cid=cid)

    def transfer(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "name", "to")
        name = field(body, "name", str)
        to = address_field(body, "to")
        cid, owner = self._owned(ctx, name)
        ctx.state.put(name_key(name), encode([cid, to]))
        if ctx.state.get(address_key(name)) is not None:
            ctx.state.delete(address_key(name))
        ctx.emit("name.transfer", name=name, to=to)
        if to != owner:
            _release_certificates(ctx, name)

    def address(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "name", "address")
        name = field(body, "name", str)
        text = field(body, "address", str)
        self._owned(ctx, name)
        if not text:
            if ctx.state.get(address_key(name)) is not None:
                ctx.state.delete(address_key(name))
            ctx.emit("name.address", name=name, address="")
            return
        if len(text) > MAX_HOST + 8:
            raise InvalidNameError(f"a node address is at most {MAX_HOST + 8} characters")
        host, port = check_address(text)
        ctx.state.put(address_key(name), encode([host, port]))
        ctx.emit("name.address", name=name, address=text)

    def _owned(self, ctx: TxContext, name: str) -> tuple[bytes, bytes]:
        record = resolve(ctx.state, name) if _NAME.fullmatch(name) else None
        if record is None:
            raise UnknownNameError(f"name {name!r} is not registered")
        if record[1] != ctx.sender:
            raise NotOwnerError(f"name {name!r} belongs to someone else")
        return record
