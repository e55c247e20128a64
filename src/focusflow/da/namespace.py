"""Namespaces: the 29-byte labels that order shares and that NMT nodes range over.

A namespace is one version byte followed by a 28-byte id, compared as plain
bytes. Version 0 ids are 18 zero bytes followed by 10 free bytes. Some
namespaces are reserved: the lowest for the block's own data (transactions,
pay-for-blob transactions, the padding after them), the highest for tail
padding and for the parity shares of the extended square. The values are
Celestia's (go-square ``share/namespace.go``, celestia-app
``specs/src/specs/namespace.md``), so squares built here hash as theirs do.
"""

from __future__ import annotations

from focusflow.da.errors import InvalidShareError

NAMESPACE_VERSION_SIZE = 1
NAMESPACE_ID_SIZE = 28
NAMESPACE_SIZE = NAMESPACE_VERSION_SIZE + NAMESPACE_ID_SIZE

NAMESPACE_VERSION_ZERO = 0
NAMESPACE_VERSION_MAX = 0xFF
NAMESPACE_VERSION_ZERO_PREFIX_SIZE = 18
NAMESPACE_VERSION_ZERO_ID_SIZE = NAMESPACE_ID_SIZE - NAMESPACE_VERSION_ZERO_PREFIX_SIZE


def namespace(version: int, ns_id: bytes) -> bytes:
    """The namespace of ``version`` and a 28-byte ``ns_id``, validated."""
    if not 0 <= version <= 0xFF:
        raise InvalidShareError(f"namespace version {version} is not a byte")
    if len(ns_id) != NAMESPACE_ID_SIZE:
        raise InvalidShareError(f"namespace id has {len(ns_id)} bytes, {NAMESPACE_ID_SIZE} needed")
    if version == NAMESPACE_VERSION_ZERO and any(ns_id[:NAMESPACE_VERSION_ZERO_PREFIX_SIZE]):
        raise InvalidShareError("a version 0 namespace id starts with 18 zero bytes")
    if version not in (NAMESPACE_VERSION_ZERO, NAMESPACE_VERSION_MAX):
        raise InvalidShareError(f"namespace version {version} is not supported")
    return bytes([version]) + bytes(ns_id)


def namespace_v0(sub_id: bytes) -> bytes:
    """A version 0 namespace from up to 10 id bytes (left-padded with zeros)."""
    if len(sub_id) > NAMESPACE_VERSION_ZERO_ID_SIZE:
        raise InvalidShareError(
            f"a version 0 namespace id has at most {NAMESPACE_VERSION_ZERO_ID_SIZE} bytes"
        )
    return namespace(NAMESPACE_VERSION_ZERO, sub_id.rjust(NAMESPACE_ID_SIZE, b"\x00"))


def _primary_reserved(last: int) -> bytes:
    return namespace(NAMESPACE_VERSION_ZERO, bytes(NAMESPACE_ID_SIZE - 1) + bytes([last]))


def _secondary_reserved(last: int) -> bytes:
    return namespace(NAMESPACE_VERSION_MAX, b"\xff" * (NAMESPACE_ID_SIZE - 1) + bytes([last]))


TX_NAMESPACE = _primary_reserved(0x01)
INTERMEDIATE_STATE_ROOTS_NAMESPACE = _primary_reserved(0x02)
PAY_FOR_BLOB_NAMESPACE = _primary_reserved(0x04)
PRIMARY_RESERVED_PADDING_NAMESPACE = _primary_reserved(0xFF)
MAX_PRIMARY_RESERVED_NAMESPACE = _primary_reserved(0xFF)
MIN_SECONDARY_RESERVED_NAMESPACE = _secondary_reserved(0x00)
TAIL_PADDING_NAMESPACE = _secondary_reserved(0xFE)
PARITY_SHARE_NAMESPACE = _secondary_reserved(0xFF)

# focusflow's one application namespace (docs/da.md, "Namespace assignment"):
# blobs published through the chain, ordered inside it by top-level key prefix.
FOCUSFLOW_NAMESPACE = namespace_v0(b"focusflow")


def is_reserved(ns: bytes) -> bool:
    """Whether ``ns`` is reserved for the protocol (no blob may use it)."""
    return ns <= MAX_PRIMARY_RESERVED_NAMESPACE or ns >= MIN_SECONDARY_RESERVED_NAMESPACE


def check_blob_namespace(ns: bytes) -> bytes:
    """``ns`` if a blob may be published under it; raises otherwise."""
    if len(ns) != NAMESPACE_SIZE:
        raise InvalidShareError(f"namespace has {len(ns)} bytes, {NAMESPACE_SIZE} needed")
    namespace(ns[0], ns[1:])
    if is_reserved(ns):
        raise InvalidShareError(f"namespace {ns.hex()} is reserved")
    return ns
