import base64
import hashlib

import pytest

from focusflow.core import InvalidCIDError, cid_of_text, validate_cid


def _reference_cidv1_raw(data: bytes) -> str:
    """CIDv1 by hand from the multiformats specs: <version 1><raw 0x55><sha2-256 0x12><32>."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def test_text_becomes_cidv1_raw_sha256():
    for text in ["hello", "", "focus", "ünïcödé"]:
        assert cid_of_text(text) == _reference_cidv1_raw(text.encode())


def test_valid_cids_pass_unchanged():
    v0 = "QmPcfxEfW317u3bbz8MbEhjoMZ5HMFsx5TbsEHWPd1kLLw"
    assert validate_cid(v0) == v0
    v1 = cid_of_text("x")
    assert validate_cid(v1) == v1


@pytest.mark.parametrize("bad", ["Q", "m", "QmShort", "", "not a cid", "bafy!!!"])
def test_invalid_cids_raise_with_stable_code(bad):
    with pytest.raises(InvalidCIDError) as info:
        validate_cid(bad)
    assert info.value.code == "invalid_cid"
    assert repr(bad) in str(info.value)


def test_binary_cids_round_trip_and_reject_garbage():
    from focusflow.core.cid import check_cid_bytes, cid_from_bytes, cid_to_bytes

    v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    v1 = cid_of_text("hello")
    for text in (v0, v1):
        raw = cid_to_bytes(text)
        check_cid_bytes(raw)
        assert cid_from_bytes(raw) == text
    good = cid_to_bytes(v1)
    bad = [
        b"",
        b"\x02" + good[1:],  # version 2
        good[:-1],  # digest shorter than stated
        good + b"\x00",  # trailing byte
        b"\x01\xff\xff\xff\x7f\x12\x20" + bytes(32),  # unregistered codec
        b"\x01\x55\xff\xff\x03\x20" + bytes(32),  # unregistered hash
        b"\x01\x55\x12\xff",  # truncated varint
    ]
    for raw in bad:
        with pytest.raises(InvalidCIDError):
            check_cid_bytes(raw)


def test_raw_cid_bytes_matches_multiformats():
    from focusflow.core.cid import cid_of_bytes, cid_to_bytes, raw_cid_bytes

    for data in (b"", b"hello", bytes(1000)):
        assert raw_cid_bytes(data) == cid_to_bytes(cid_of_bytes(data))


def _multiformats_accepts(text: str) -> bool:
    from multiformats import CID

    try:
        CID.decode(text)
    except Exception:  # noqa: BLE001 - the reference: any error means it refuses
        return False
    return True


def _spellings(seed: int) -> list[str]:
    """Real CID spellings and near misses: v0, base32 v1 of several codecs and
    hashes, and each with one character changed, dropped, doubled or upcased."""
    import random

    from multiformats import CID, multihash

    rng = random.Random(seed)
    out = []
    for _ in range(60):
        digest = rng.randbytes(32)
        v0 = str(CID("base58btc", 0, "dag-pb", multihash.get("sha2-256").wrap(digest)))
        codec = rng.choice(["raw", "dag-pb", "dag-cbor", "dag-json", "libp2p-key"])
        hasher = rng.choice(["sha2-256", "sha2-256", "blake2b-256", "sha3-256"])
        v1 = str(CID("base32", 1, codec, multihash.get(hasher).wrap(digest)))
        for good in (v0, v1):
            out.append(good)
            i = rng.randrange(1, len(good))
            alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0OIl=!"
            out.append(good[:i] + rng.choice(alphabet) + good[i + 1 :])
            out.append(good[:i] + good[i + 1 :])
            out.append(good[:i] + good[i] + good[i:])
            out.append(good[:i] + good[i].upper() + good[i + 1 :])
            out.append(good[:-1] + rng.choice("abcdefghijklmnopqrstuvwxyz234567"))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_fast_path_agrees_with_multiformats(seed):
    """validate_cid checks the common spellings itself (bulk imports); it must
    accept and refuse exactly what multiformats does."""
    for text in _spellings(seed):
        expected = _multiformats_accepts(text)
        try:
            validate_cid(text)
            got = True
        except InvalidCIDError:
            got = False
        assert got == expected, text


@pytest.mark.parametrize("seed", range(3))
def test_binary_forms_agree_with_multiformats(seed):
    """cid_to_bytes and cid_from_bytes take the same fast path: the bytes and
    the usual string must be multiformats' own, for every accepted spelling."""
    from multiformats import CID

    from focusflow.core.cid import cid_from_bytes, cid_to_bytes

    for text in _spellings(seed):
        if not _multiformats_accepts(text):
            continue
        cid = CID.decode(text)
        raw = cid_to_bytes(text)
        assert raw == bytes(cid), text
        usual = str(cid if cid.version == 0 else cid.set(base="base32"))
        assert cid_from_bytes(raw) == usual, text
