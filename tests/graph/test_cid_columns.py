"""The column-wide CID check agrees with the one-string fast path on every string."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from focusflow.core.cid import _B58, _plain_bytes, cid_of_text
from focusflow.core.cid_columns import plain_cid_mask

_B32 = "abcdefghijklmnopqrstuvwxyz234567"


def _column(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _cidv0(rng: random.Random) -> str:
    """A CIDv0 from random digest bytes (the base58 of ``0x12 0x20 digest``)."""
    value = int.from_bytes(bytes([0x12, 0x20]) + rng.randbytes(32), "big")
    digits = []
    while value:
        value, d = divmod(value, 58)
        digits.append(_B58[d])
    return "".join(reversed(digits))


def _mutations(text: str, rng: random.Random) -> list[str]:
    """The string with one character changed, cut, upper-cased or extended."""
    i = rng.randrange(len(text))
    alphabet = _B58 + _B32 + "0OIl+/=é"
    return [
        text[:i] + rng.choice(alphabet) + text[i + 1 :],
        text[:-1] + rng.choice(alphabet),
        text[:-1],
        text + rng.choice(alphabet),
        text.upper(),
        text[:i] + text[i + 1 :] + "a",
    ]


def test_mask_agrees_with_the_fast_path() -> None:
    rng = random.Random(7)
    texts: list[str] = ["", "b", "Qm", "Q" * 46, "Qm" + "z" * 44, "Qm" + "1" * 44, "b" + "a" * 58]
    for k in range(300):
        good = [cid_of_text(f"text {k}"), _cidv0(rng)]
        texts += good
        for text in good:
            texts += _mutations(text, rng)
    # random Qm strings: their numbers fall on both sides of 0x1220's range
    texts += ["Qm" + "".join(rng.choice(_B58) for _ in range(44)) for _ in range(2000)]
    texts += ["bafkrei" + "".join(rng.choice(_B32) for _ in range(52)) for _ in range(2000)]
    want = np.array([_plain_bytes(t) is not None for t in texts])
    data, offsets = _column(texts)
    got = plain_cid_mask(data, offsets[:-1], offsets[1:])
    assert want.sum() > 700 and (~want).sum() > 2000  # both answers well represented
    np.testing.assert_array_equal(got, want)


def test_mask_of_evenly_spaced_strings() -> None:
    """Keys of one length, read through a strided view, with and without
    separators between them, and one gathered odd one out."""
    rng = random.Random(3)
    keys = [cid_of_text(str(k)) for k in range(50)] + [_cidv0(rng) for _ in range(50)]
    keys[7] = keys[7][:-1] + "9"  # not a digit
    keys[60] = "Qm" + "z" * 44  # outside 0x1220's range
    want = np.array([_plain_bytes(k) is not None for k in keys])
    for sep in ("", "\x00", "\t\t"):
        blob = np.frombuffer(sep.join(keys).encode(), dtype=np.uint8)
        lengths = np.array([len(k) for k in keys])
        starts = np.concatenate(([0], np.cumsum(lengths + len(sep))[:-1]))
        np.testing.assert_array_equal(plain_cid_mask(blob, starts, starts + lengths), want)


def test_mask_of_no_strings() -> None:
    empty = np.empty(0, dtype=np.int64)
    assert plain_cid_mask(np.empty(0, dtype=np.uint8), empty, empty).shape == (0,)


def test_a_reader_still_asks_the_full_decoder(tmp_path: Path) -> None:
    """CIDs the column check leaves out (other multibases, a CIDv1 of another
    hash) are still particles; a non-CID is still refused with its line."""
    from multiformats import CID, multihash

    from focusflow.core.errors import InvalidCIDError
    from focusflow.graph.importers import read_bostrom

    plain = cid_of_text("x")
    odd = [
        CID.decode(plain).encode("base58btc"),
        CID.decode(plain).encode("base36"),
        str(CID("base32", 1, "raw", multihash.digest(b"y", "sha2-512"))),
    ]
    rows = [f"n,{plain},{k},0," for k in odd] + [f"n,{odd[0]},Qmnot-a-cid,0,"]
    path = tmp_path / "links.csv"
    path.write_text("neuron,particle_from,particle_to,height,timestamp\n" + "\n".join(rows) + "\n")
    with pytest.raises(InvalidCIDError, match=r"links\.csv:5: invalid CID 'Qmnot-a-cid'"):
        read_bostrom(path)
    graph = read_bostrom(path, skip_invalid=True)
    assert graph.particles.keys() == [plain, *odd]
    assert graph.skipped_invalid == 1
