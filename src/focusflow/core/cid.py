"""Content identifiers for particles.

A particle is named by its CID. We accept CIDv0 (base58btc ``Qm...``, an implicit
sha2-256 multihash of a dag-pb node) and CIDv1 in any multibase, validated by the
``multiformats`` package, and keep the string the user gave us as the particle's
key: bostrom stores CIDv0 strings and re-encoding them would break round trips.
Text that is not a CID becomes one with :func:`cid_of_text` (CIDv1, raw codec,
sha2-256), the same CID ``ipfs add --cid-version 1 --raw-leaves`` gives a small file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from multiformats import CID, multihash

from focusflow.core.errors import InvalidCIDError

_SHA2_256 = multihash.get("sha2-256")


def validate_cid(text: str) -> str:
    """Return ``text`` unchanged if it decodes as a CID, else raise InvalidCIDError."""
    if not isinstance(text, str) or not text:
        raise InvalidCIDError(f"invalid CID {text!r}: empty or not a string")
    try:
        CID.decode(text)
    except Exception as exc:
        raise InvalidCIDError(f"invalid CID {text!r}: {exc}") from None
    return text


def validate_cids(texts: Iterable[str]) -> None:
    """Validate many CIDs, decoding each distinct string once."""
    for text in set(texts):
        validate_cid(text)


def cid_of_bytes(data: bytes) -> str:
    """CIDv1 (raw codec, sha2-256, base32) of a byte string."""
    digest = _SHA2_256.wrap(hashlib.sha256(data).digest())
    return str(CID("base32", 1, "raw", digest))


def cid_of_text(text: str) -> str:
    """CIDv1 of the UTF-8 bytes of ``text``: how plain words become particles."""
    return cid_of_bytes(text.encode("utf-8"))
