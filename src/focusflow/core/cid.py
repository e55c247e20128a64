"""Content identifiers for particles.

A particle is named by its CID. We accept CIDv0 (base58btc ``Qm...``, an implicit
sha2-256 multihash of a dag-pb node) and CIDv1 in any multibase, validated by the
``multiformats`` package, and keep the string the user gave us as the particle's
key: bostrom stores CIDv0 strings and re-encoding them would break round trips.
Text that is not a CID becomes one with :func:`cid_of_text` (CIDv1, raw codec,
sha2-256), the same CID ``ipfs add --cid-version 1 --raw-leaves`` gives a small file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from focusflow.core.errors import InvalidCIDError, InvalidParameterError

if TYPE_CHECKING:
    from multiformats import CID


def _cid_class() -> type[CID]:
    """``multiformats.CID``, imported by the first CID the fast path leaves to
    it: the import costs a process 0.04 s, and nearly every real CID never
    needs it."""
    from multiformats import CID

    return CID


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_B32_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz234567")
#: CIDv1 prefixes (version, codec, sha2-256, 32) the fast path accepts:
#: raw, dag-pb and dag-cbor, which is what bostrom and IPFS hold.
_V1_SHA256 = frozenset(bytes([0x01, codec, 0x12, 0x20]) for codec in (0x55, 0x70, 0x71))


def _plain_bytes(text: str) -> bytes | None:
    """The binary CID of the two spellings nearly every real CID has, decoded
    without ``multiformats`` (its runtime type checks cost ~0.3 ms a CID,
    minutes on a bostrom dump): CIDv0 (46 base58btc characters of ``0x12 0x20
    digest``) and base32 CIDv1 of a sha2-256 raw, dag-pb or dag-cbor block.
    None means "ask multiformats", which decides and words the error.
    """
    if len(text) == 46 and text.startswith("Qm"):
        value = 0
        for c in text:
            digit = _B58_INDEX.get(c)
            if digit is None:
                return None
            value = value * 58 + digit
        if value.bit_length() > 272:
            return None
        raw = value.to_bytes(34, "big")
        return raw if raw[0] == 0x12 and raw[1] == 0x20 else None
    if len(text) == 59 and text[0] == "b" and _B32_CHARS.issuperset(text[1:]):
        raw = base64.b32decode(text[1:].upper() + "======")
        # 36 bytes are 57.6 characters: the last one's low 2 bits must be zero
        # (canonical), which re-encoding checks.
        if _b32(raw) != text[1:]:
            return None
        return raw if raw[:4] in _V1_SHA256 else None
    return None


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=").lower()


def _plain_text(raw: bytes) -> str | None:
    """The usual string of a CIDv0 or fast-path CIDv1, or None (ask multiformats)."""
    if len(raw) == 34 and raw[0] == 0x12 and raw[1] == 0x20:
        value = int.from_bytes(raw, "big")
        digits = []
        while value:
            value, digit = divmod(value, 58)
            digits.append(_B58[digit])
        return "".join(reversed(digits))
    if len(raw) == 36 and raw[:4] in _V1_SHA256:
        return "b" + _b32(raw)
    return None


def validate_cid(text: str) -> str:
    """Return ``text`` unchanged if it decodes as a CID, else raise InvalidCIDError."""
    if not isinstance(text, str) or not text:
        raise InvalidCIDError(f"invalid CID {text!r}: empty or not a string")
    if _plain_bytes(text) is not None:
        return text
    try:
        _cid_class().decode(text)
    except Exception as exc:  # noqa: BLE001 - a third-party decoder on untrusted text
        raise InvalidCIDError(f"invalid CID {text!r}: {exc}") from None
    return text


def validate_cids(texts: Iterable[str]) -> None:
    """Validate many CIDs, decoding each distinct string once."""
    for text in set(texts):
        validate_cid(text)


def cid_of_bytes(data: bytes) -> str:
    """CIDv1 (raw codec, sha2-256, base32) of a byte string."""
    return "b" + _b32(raw_cid_bytes(data))


def raw_cid_bytes(data: bytes) -> bytes:
    """Binary CIDv1 (raw codec 0x55, sha2-256) of ``data``, built without multiformats.

    The same bytes as ``cid_to_bytes(cid_of_bytes(data))`` at a hundredth of the cost:
    the chain derives one per stored blob.
    """
    return b"\x01\x55\x12\x20" + hashlib.sha256(data).digest()


def cid_of_text(text: str) -> str:
    """CIDv1 of the UTF-8 bytes of ``text``: how plain words become particles."""
    return cid_of_bytes(text.encode("utf-8"))


#: Longest digest we accept in a binary CID (sha2-512, blake2b-512).
MAX_DIGEST = 64


def cid_to_bytes(text: str) -> bytes:
    """The binary form of a CID string, which names the particle on chain.

    One CID has many string forms (multibases); the binary form is unique, so
    the chain keys particles by it and two spellings never become two particles.
    """
    raw = _plain_bytes(text) if isinstance(text, str) else None
    if raw is not None:
        return raw
    validate_cid(text)
    return bytes(_cid_class().decode(text))


def cid_from_bytes(raw: bytes) -> str:
    """The usual string of a binary CID: base58btc for v0, base32 for v1."""
    check_cid_bytes(raw)
    text = _plain_text(raw)
    if text is not None:
        return text
    cid = _cid_class().decode(bytes(raw))
    return str(cid if cid.version == 0 else cid.set(base="base32"))


def check_cid_bytes(raw: bytes) -> None:
    """Validate a binary CID without building objects (the chain checks thousands a block).

    CIDv0 is the 34-byte sha2-256 multihash ``0x12 0x20 digest``. CIDv1 is
    ``0x01 varint(codec) varint(hash code) varint(length) digest``; the codec and
    hash must be registered multicodecs and the digest exactly its stated length.
    """
    if not isinstance(raw, bytes):
        raise InvalidCIDError(f"invalid CID: expected bytes, got {type(raw).__name__}")
    if len(raw) == 34 and raw[0] == 0x12 and raw[1] == 0x20:
        return
    if not raw or raw[0] != 0x01:
        raise InvalidCIDError(f"invalid CID {raw[:8].hex()}...: not CIDv0 or CIDv1")
    codec, pos = _varint(raw, 1)
    code, pos = _varint(raw, pos)
    size, pos = _varint(raw, pos)
    if size > MAX_DIGEST or len(raw) - pos != size:
        raise InvalidCIDError(f"invalid CID {raw.hex()}: digest length does not match")
    if not _known_codec(codec):
        raise InvalidCIDError(f"invalid CID {raw.hex()}: unknown codec 0x{codec:x}")
    if not _known_hash(code):
        raise InvalidCIDError(f"invalid CID {raw.hex()}: unknown hash 0x{code:x}")


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(raw) or shift > 56:
            raise InvalidCIDError(f"invalid CID {raw.hex()}: truncated varint")
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


@functools.cache
def _known_codec(code: int) -> bool:
    from multiformats import multicodec

    return multicodec.exists(code=code)


@functools.cache
def _known_hash(code: int) -> bool:
    from multiformats import multihash

    return multihash.exists(code=code)


#: Strings that are meant as CIDs: CIDv0 (``Qm`` + base58) or a CIDv1 in base32
#: (``baf...``). One that does not decode is a typo, not text to hash.
_CID_LIKE = re.compile(r"(Qm|baf[a-z])[0-9A-Za-z]{40,}")


def particle_cid(arg: str, *, as_text: bool = False) -> str:
    """The CID a user means by ``arg``: the CID itself, or text hashed to one.

    With ``as_text`` every argument is text. Otherwise a string that decodes as
    a CID is that CID, one that looks like a CID but does not decode is an
    ``invalid_cid`` error (rather than silently naming a typo's hash), and
    anything else is text, turned into its CIDv1 by :func:`cid_of_text`.
    """
    if arg == "":
        raise InvalidParameterError("a particle cannot be the empty string")
    if not as_text:
        try:
            validate_cid(arg)
        except InvalidCIDError:
            if _CID_LIKE.fullmatch(arg):
                raise InvalidCIDError(
                    f"invalid CID {arg!r}: it looks like a CID but does not decode "
                    "(use --text to take it as text)"
                ) from None
        else:
            return arg
    return cid_of_text(arg)
