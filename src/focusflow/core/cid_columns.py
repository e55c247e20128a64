"""CID strings checked as a column: the fast path of ``core.cid`` over arrays.

A graph file names hundreds of thousands of distinct particles, and decoding
each CID in Python (the base58 big integer, base32 through ``base64``) cost a
reader seconds: WordNet's 265k CIDs took 6 s of a 7.8 s load. Here a whole
column's digits are decoded as numpy arrays by the same rules as
``core.cid._plain_bytes``; a string they do not accept is left to
``validate_cid``, which decides it and words its error. Kept apart from
``core.cid`` so that importing that module (every CLI command does) does not
import numpy.
"""

from __future__ import annotations

import math

import numpy as np

from focusflow.core.cid import _B58, _V1_SHA256

#: Byte -> digit value (255: not a digit) of the two alphabets the fast path reads.
_B58_DIGIT = np.full(256, 255, dtype=np.uint8)
_B58_DIGIT[np.frombuffer(_B58.encode(), dtype=np.uint8)] = np.arange(58, dtype=np.uint8)
_B32_DIGIT = np.full(256, 255, dtype=np.uint8)
_B32_DIGIT[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)] = np.arange(32)
_V1_PREFIX_WORDS = np.array(sorted(int.from_bytes(p, "big") for p in _V1_SHA256), dtype=np.uint64)
#: Keys checked at once by :func:`plain_cid_mask` (bounds its index arrays to ~30 MB).
_MASK_CHUNK = 1 << 16


def plain_cid_mask(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which strings of a column are CIDs by :func:`_plain_bytes`' rules, all at once.

    String ``i`` is ``data[starts[i]:ends[i]]`` (UTF-8 bytes: an Arrow column's
    offsets, or keys with separators between them). A reader meets hundreds
    of thousands of distinct CIDs, and decoding each in Python (the base58 big
    integer, base32 through ``base64``) cost seconds; here a column's digits
    are decoded as arrays. False means "ask :func:`validate_cid`", as None
    does there.
    """
    data = np.asarray(data, dtype=np.uint8)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(ends, dtype=np.int64) - starts
    ok = np.zeros(len(starts), dtype=bool)
    v1 = np.flatnonzero(lengths == 59)
    v1 = v1[data[starts[v1]] == ord("b")]
    v0 = np.flatnonzero(lengths == 46)
    v0 = v0[(data[starts[v0]] == ord("Q")) & (data[starts[v0] + 1] == ord("m"))]
    for rows, skip, width, check in ((v1, 1, 58, _v1_ok), (v0, 0, 46, _v0_ok)):
        for lo in range(0, len(rows), _MASK_CHUNK):
            part = rows[lo : lo + _MASK_CHUNK]
            ok[part] = check(_chars(data, starts[part] + skip, width))
    return ok


def _chars(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes from each start as rows: strings evenly spaced (every key
    of a column the same length) through a strided view of ``data``, others
    gathered."""
    step = int(starts[1] - starts[0]) if len(starts) > 1 else width
    last = int(starts[-1]) + width if len(starts) else 0
    if step >= width and last <= len(data) and np.all(np.diff(starts) == step):
        return np.lib.stride_tricks.as_strided(
            data[int(starts[0]) :], shape=(len(starts), width), strides=(step, 1), writeable=False
        )
    rows: np.ndarray = data[starts[:, None] + np.arange(width)]
    return rows


def _v1_ok(chars: np.ndarray) -> np.ndarray:
    """Base32 CIDv1 rows (58 characters after the ``b``): every character a
    lowercase digit, the last one's two padding bits zero (canonical), and the
    first four bytes a sha2-256 prefix of the fast path.

    The alphabet is two runs, a-z and 2-7, tested by wrapping subtraction on
    the bytes (a table lookup indexes through a machine word per character,
    several times slower); only the eight digits whose values count are looked up.
    """
    letter = (chars - np.uint8(ord("a"))) < 26
    number = (chars - np.uint8(ord("2"))) < 6
    good: np.ndarray = np.all(letter | number, axis=1)
    digits = _B32_DIGIT[chars[:, [0, 1, 2, 3, 4, 5, 6, 57]]]
    good &= (digits[:, 7] & 3) == 0
    head = np.zeros(len(chars), dtype=np.uint64)
    for j in range(7):  # 35 bits: the 32 of the prefix and 3 of the digest
        head = (head << np.uint64(5)) | digits[:, j].astype(np.uint64)
    good &= np.isin(head >> np.uint64(3), _V1_PREFIX_WORDS)
    return good


def _v0_ok(chars: np.ndarray) -> np.ndarray:
    """Base58 CIDv0 rows (46 characters): the number they spell, in 32-bit
    limbs, is ``0x12 0x20`` followed by 32 bytes (its top limb is exactly 0x1220).

    58^46 < 2^270, so nine limbs hold any row; five digits enter at a time
    (58^5 < 2^30 keeps a limb times it plus the carry within 64 bits).
    """
    digits = _B58_DIGIT[chars]
    good: np.ndarray = np.all(digits != 255, axis=1)
    d = np.where(digits == 255, 0, digits).astype(np.uint64)
    limbs = np.zeros((9, len(d)), dtype=np.uint64)
    mask = np.uint64(0xFFFFFFFF)
    for lo in range(0, 46, 5):
        group = d[:, lo : lo + 5]
        scale = np.uint64(58 ** group.shape[1])
        carry = np.zeros(len(d), dtype=np.uint64)
        for j in range(group.shape[1]):
            carry = carry * np.uint64(58) + group[:, j]
        # limbs above the number's size so far are zero and stay so
        for k in range(min(9, math.ceil((lo + group.shape[1]) * math.log2(58) / 32))):
            t = limbs[k] * scale + carry
            limbs[k] = t & mask
            carry = t >> np.uint64(32)
    good &= limbs[8] == np.uint64(0x1220)
    return good
