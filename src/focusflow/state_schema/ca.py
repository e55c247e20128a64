"""The network certificate authority's records in the state.

The signing group (``/kv/ca/group``), pending requests, issued certificates and
their indexes by key and by name, revocations, the newest CRL, cross-
certificates for other networks, and the certificate transparency log (its
leaf hashes and head). ``modules.ca`` holds the rules that write them; the API
and the node's CA signer read them through the readers here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from focusflow.chain.state import Readable
from focusflow.core.encoding import decode

GROUP_KEY = b"/kv/ca/group"
REQUEST_PREFIX = b"/kv/ca/req/"
CERT_PREFIX = b"/kv/ca/cert/"
LEAF_PREFIX = b"/kv/ct/leaf/"
HEAD_KEY = b"/kv/ct/head"
REVOKED_PREFIX = b"/kv/ca/revoked/"
#: name -> the serial of its pending request (one at a time per name).
ASKED_PREFIX = b"/kv/ca/asked/"
#: Ed25519 key (32 bytes) -> the serial of the newest certificate issued for it.
BY_KEY_PREFIX = b"/kv/ca/key/"
#: Name -> serial of the newest certificate issued for ``<name>.focus``.
BY_NAME_PREFIX = b"/kv/ca/name/"
#: Name -> ``[[serial, notAfter in seconds], ...]``: its certificates that may be
#: live, oldest first (expired and revoked ones are dropped whenever it is written).
LIVE_PREFIX = b"/kv/ca/live/"
#: Serial of a leaf certificate -> the name it certifies (whose owner may revoke it).
LEAF_NAME_PREFIX = b"/kv/ca/leaf_name/"
#: sha256 of a federation vote's ``[action, body]`` -> ``[action, body, height, voters]``.
FED_VOTES_PREFIX = b"/kv/ca/fed_votes/"
#: sha256 of another network's root DER -> ``[serial, cross-certificate DER]``.
CROSS_PREFIX = b"/kv/ca/cross/"
CRL_NUMBER_KEY = b"/kv/ca/crl_number"
CRL_KEY = b"/kv/ca/crl"


@dataclass(frozen=True)
class Group:
    """The signing group: ``threshold`` of its members sign with the group key."""

    threshold: int
    public_key: bytes
    root: bytes
    #: address -> (identifier, verifying share)
    members: Mapping[bytes, tuple[int, bytes]]


def load_group(state: Readable) -> Group | None:
    raw = state.get(GROUP_KEY)
    if raw is None:
        return None
    threshold, public_key, root, members = decode(raw, "ca group")
    return Group(threshold, public_key, root, {a: (i, v) for a, i, v in members})


def latest_crl(state: Readable) -> tuple[int, bytes] | None:
    """``(CRL number, DER)`` of the newest CRL the group signed, None if none."""
    raw = state.get(CRL_KEY)
    if raw is None:
        return None
    number, der = decode(raw, "ca crl")
    return number, der


def log_head(state: Readable) -> tuple[int, bytes, list[bytes]]:
    """``(size, root hash, perfect subtree hashes largest first)`` of the log."""
    raw = state.get(HEAD_KEY)
    if raw is None:
        return 0, hashlib.sha256(b"").digest(), []
    size, root, frontier = decode(raw, "ct head")
    return size, root, list(frontier)


def leaf_key(index: int) -> bytes:
    return LEAF_PREFIX + index.to_bytes(8, "big")


def log_leaves(state: Readable, end: int, start: int = 0) -> list[bytes]:
    """The leaf hashes ``start`` to ``end`` (for proofs)."""
    return [state.get(leaf_key(i)) or b"" for i in range(start, end)]


def issued(state: Readable, serial: bytes) -> tuple[int, bytes] | None:
    """``(log index, DER)`` of an issued certificate, None if there is none."""
    raw = state.get(CERT_PREFIX + serial)
    if raw is None:
        return None
    index, der, _ = decode(raw, "ca certificate")
    return index, der


def certificate_for(state: Readable, key: bytes) -> tuple[bytes, bytes] | None:
    """``(serial, DER)`` of the newest certificate issued for the Ed25519 ``key``
    (revoked or expired ones too: the caller judges), None if there is none."""
    serial = state.get(BY_KEY_PREFIX + key)
    if serial is None:
        return None
    found = issued(state, serial)
    return None if found is None else (serial, found[1])


def certificate_of_name(state: Readable, name: str) -> tuple[bytes, bytes] | None:
    """``(serial, DER)`` of the newest certificate issued for ``<name>.focus``
    (revoked or expired ones too: the caller judges), None if there is none."""
    serial = state.get(BY_NAME_PREFIX + name.encode())
    if serial is None:
        return None
    found = issued(state, serial)
    return None if found is None else (serial, found[1])


def is_revoked(state: Readable, serial: bytes) -> bool:
    return state.get(REVOKED_PREFIX + serial) is not None
