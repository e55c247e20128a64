"""Names in the state: the particle and owner a name holds, and where its
owner's node listens.

``/kv/name/<name>`` holds ``[cid, owner]``; ``/kv/name_addr/<name>`` holds
``[host, port]`` (``modules.names`` says which names and addresses are valid).
"""

from __future__ import annotations

from focusflow.chain.state import Readable
from focusflow.core.encoding import decode

NAME_PREFIX = b"/kv/name/"
ADDRESS_PREFIX = b"/kv/name_addr/"


def name_key(name: str) -> bytes:
    return NAME_PREFIX + name.encode("utf-8")


def address_key(name: str) -> bytes:
    return ADDRESS_PREFIX + name.encode("utf-8")


def resolve(state: Readable, name: str) -> tuple[bytes, bytes] | None:
    """``(cid, owner)`` of a registered name, None if unknown."""
    raw = state.get(name_key(name))
    if raw is None:
        return None
    cid, owner = decode(raw, "name record")
    return cid, owner


def address_of(state: Readable, name: str) -> tuple[str, int] | None:
    """``(host, port)`` a name says its owner's node listens at, None if unset."""
    raw = state.get(address_key(name))
    if raw is None:
        return None
    host, port = decode(raw, "name address")
    return host, port


def join_host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
