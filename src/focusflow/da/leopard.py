"""Leopard-style Reed–Solomon erasure code over GF(2^8) and GF(2^16).

The extended data square must hold exactly the bytes Celestia's square holds,
and rsmt2d extends it with klauspost/reedsolomon's Leopard codec. That codec
follows Lin, Han and Chung, "Novel polynomial basis and its application to
Reed–Solomon erasure codes" (FOCS 2014): field elements are written in a
Cantor basis, a message of ``k`` symbols is read as the values of a polynomial
of degree ``< k`` at ``k`` points, and an additive FFT in the paper's
polynomial basis moves between values and coefficients in ``O(k log k)``.

Points. Element ``ω_j`` of the field is the element whose Cantor-basis
coordinates are the bits of ``j``; then ``ω_i + ω_j = ω_(i xor j)``. A codeword
of length ``2k`` holds the data at points ``ω_k .. ω_2k-1`` and the parity at
``ω_0 .. ω_k-1``; in rsmt2d's order (data first, then parity) the symbol at
position ``p`` is the polynomial's value at ``ω_(p xor k)``.

Encoding. Parity = FFT(IFFT(data, points ω_k..), points ω_0..).

Decoding (the paper's erasure decoder). With ``E`` the erased points and
``Π(x) = ∏_(e∈E) (x - ω_e)``, the product ``R = P·Π`` has degree ``< 2k`` and
known values at every point (zero where erased), so one IFFT yields it; its
formal derivative at an erased point is ``P(ω_e)·Π'(ω_e)``, so one more FFT and
a division restore every erased symbol.

Byte layout. In GF(2^8) each byte is one symbol. In GF(2^16) a shard is cut in
64-byte blocks whose first 32 bytes are the low bytes and last 32 bytes the high
bytes of 32 symbols (Leopard's layout, which klauspost keeps).

The field sizes match rsmt2d's choice: GF(2^8) while a codeword has at most 256
symbols (``k <= 128``), GF(2^16) above.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numba as nb
import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.da.errors import RepairError

# 64-bit words of one independent piece of a shard that a thread transforms at a
# time: the whole FFT runs over such a column slice while it is in cache.
_SLICE = 512


#: A field as the kernels take it: (modulus, bits, one, lane_mask, log, exp);
#: see :attr:`Field.kernel_args`.
FieldArgs = tuple[int, int, np.uint64, np.uint64, np.ndarray, np.ndarray]
#: A size or position handed to the kernels: an int, or an int64 where a constant
#: would be typed by numba as a literal (and compile the kernel again).
Index = int | np.int64


@dataclass(frozen=True, eq=False)
class Field:
    """A binary field GF(2^bits) in Leopard's Cantor-basis representation.

    ``log`` maps a nonzero element to its discrete logarithm and ``exp`` back;
    ``exp`` is written out over two periods so that ``exp[log[y] + l]`` needs no
    reduction for logarithms ``l`` below the modulus.
    """

    bits: int
    modulus: int
    log: np.ndarray
    exp: np.ndarray

    @property
    def kernel_args(self) -> FieldArgs:
        """What the kernels need, as one tuple: symbols are lanes of 64-bit words.

        ``one`` has the lowest bit of every lane set, ``lane_mask`` all bits of one lane.
        """
        lanes = 64 // self.bits
        one = sum(1 << (self.bits * i) for i in range(lanes))
        lane_mask = (1 << self.bits) - 1
        return (
            self.modulus,
            self.bits,
            np.uint64(one),
            np.uint64(lane_mask),
            self.log,
            self.exp,
        )


def _make_field(bits: int, polynomial: int, cantor_basis: tuple[int, ...]) -> Field:
    """Log and exp tables of the field in the Cantor-basis representation.

    An LFSR on ``polynomial`` gives logarithms in the ordinary polynomial
    representation; element ``j`` of the Cantor representation is the sum of
    the basis elements selected by the bits of ``j``.
    """
    order = 1 << bits
    modulus = order - 1
    poly_log = np.zeros(order, dtype=np.int64)
    state = 1
    for i in range(modulus):
        poly_log[state] = i
        state <<= 1
        if state >= order:
            state ^= polynomial
    cantor_to_poly = np.zeros(order, dtype=np.int64)
    for i, basis in enumerate(cantor_basis):
        width = 1 << i
        cantor_to_poly[width : 2 * width] = cantor_to_poly[:width] ^ basis
    log = poly_log[cantor_to_poly]
    exp = np.zeros(2 * order, dtype=np.uint16 if bits > 8 else np.uint8)
    exp[log[1:]] = np.arange(1, order)
    exp[modulus : 2 * modulus] = exp[:modulus]
    log[0] = modulus
    return Field(bits, modulus, log.astype(np.int32), exp)


# Cantor bases and generator polynomials of Leopard (catid/leopard LeopardFF8.h
# and LeopardFF16.h; klauspost/reedsolomon leopard8.go and leopard.go).
GF8 = _make_field(8, 0x11D, (1, 214, 152, 146, 86, 200, 88, 230))
GF16 = _make_field(
    16,
    0x1002D,
    (
        0x0001, 0xACCA, 0x3C0E, 0x163E, 0xC582, 0xED2E, 0x914C, 0x4012,
        0x6C98, 0x10D8, 0x6A72, 0xB900, 0xFDB8, 0xFB34, 0xFF38, 0x991E,
    ),
)  # fmt: skip


def field_for(k: int) -> Field:
    """The field rsmt2d uses for codewords of ``2k`` symbols."""
    return GF8 if 2 * k <= 256 else GF16


def _log_sum(field: Field, values: np.ndarray) -> int:
    """Sum of logarithms mod the multiplicative order, or -1 if a value is zero."""
    if np.any(values == 0):
        return -1
    return int(field.log[values].astype(np.int64).sum() % field.modulus)


@cache
def twiddles(field: Field, n: int, offset: int) -> np.ndarray:
    """Butterfly factors of an FFT over the ``n`` points ``ω_offset ..``.

    The butterfly of layer ``i`` (width ``d = 2^i``) on the block starting at
    ``r`` multiplies by the normalised subspace polynomial
    ``W̄_i(x) = ∏_(a<d) (x + ω_a) / ∏_(a<d) (ω_d + ω_a)`` at ``x = ω_(offset+r)``;
    entry ``r + d`` holds its logarithm, or ``modulus`` where it is zero (the
    butterfly then only adds).
    """
    table = np.full(n, field.modulus, dtype=np.int32)
    for j in range(1, n):
        d = j & -j
        span = np.arange(d)
        num = _log_sum(field, (offset + j - d) ^ span)
        den = _log_sum(field, d ^ span)
        if num >= 0:
            table[j] = (num - den) % field.modulus
    return table


@nb.njit(cache=True, inline="always")
def _lanes_times(
    yy: np.uint64, cols: np.ndarray, bits: int, one: np.uint64, lane_mask: np.uint64
) -> np.uint64:
    """Each symbol lane of the 64-bit word ``yy`` times the constant whose images of
    the basis symbols ``1 << b`` are broadcast in ``cols`` (multiplication by a
    constant is GF(2)-linear, so it is a sum of masked columns, and the masks and
    sums run on all lanes of a word at once)."""
    acc = np.uint64(0)
    for b in range(bits):
        acc ^= (((yy >> np.uint64(b)) & one) * lane_mask) & cols[b]
    return acc


@nb.njit(cache=True, inline="always")
def _columns(lm: int, log: np.ndarray, exp: np.ndarray, bits: int, one: np.uint64) -> np.ndarray:
    cols = np.empty(16, dtype=np.uint64)
    for b in range(bits):
        cols[b] = np.uint64(exp[log[1 << b] + lm]) * one
    return cols


@nb.njit(cache=True)
def _layer(
    work: np.ndarray, d: Index, tw: np.ndarray, gf: FieldArgs, lo: Index, hi: Index, inverse: bool
) -> None:
    """One butterfly layer of width ``d`` on words lo..hi.

    Forward: ``x += c·y`` then ``y += x``; inverse: the same steps undone in
    reverse order. ``c`` is the block's twiddle factor.
    """
    modulus, bits, one, lane_mask, log, exp = gf
    for r in range(0, work.shape[0], 2 * d):
        lm = tw[r + d]
        cols = _columns(lm, log, exp, bits, one)
        for i in range(r, r + d):
            x = work[i]
            y = work[i + d]
            if inverse:
                for t in range(lo, hi):
                    y[t] ^= x[t]
            if lm != modulus:
                for t in range(lo, hi):
                    x[t] ^= _lanes_times(y[t], cols, bits, one, lane_mask)
            if not inverse:
                for t in range(lo, hi):
                    y[t] ^= x[t]


@nb.njit(cache=True)
def _ifft_slice(work: np.ndarray, tw: np.ndarray, gf: FieldArgs, lo: Index, hi: Index) -> None:
    """Values at ``n`` points to coefficients in the novel basis, words lo..hi."""
    d = np.int64(1)  # a plain 1 is typed as the literal, and _layer compiled for it too
    while d < work.shape[0]:
        _layer(work, d, tw, gf, lo, hi, True)
        d *= 2


@nb.njit(cache=True)
def _fft_slice(work: np.ndarray, tw: np.ndarray, gf: FieldArgs, lo: Index, hi: Index) -> None:
    """Coefficients in the novel basis to values at ``n`` points, words lo..hi."""
    d = work.shape[0] // 2
    while d >= 1:
        _layer(work, d, tw, gf, lo, hi, False)
        d //= 2


@nb.njit(cache=True, parallel=True)
def _encode_kernel(
    work: np.ndarray, tw_data: np.ndarray, tw_parity: np.ndarray, gf: FieldArgs, step: int
) -> None:
    """In place: data symbols in ``work`` become parity symbols."""
    width = work.shape[1]
    for s in nb.prange((width + step - 1) // step):
        lo = s * step
        hi = min(width, lo + step)
        _ifft_slice(work, tw_data, gf, lo, hi)
        _fft_slice(work, tw_parity, gf, lo, hi)


@nb.njit(cache=True)
def _encode_serial(
    work: np.ndarray, tw_data: np.ndarray, tw_parity: np.ndarray, gf: FieldArgs
) -> None:
    """``_encode_kernel`` on one thread, for work that is one slice anyway."""
    width = work.shape[1]
    # the slice's start goes in as an int64 value: numba types a constant 0 as
    # a literal, and compiled both transforms (and each layer) again for it
    _ifft_slice(work, tw_data, gf, np.int64(0), width)
    _fft_slice(work, tw_parity, gf, np.int64(0), width)


@nb.njit(cache=True)
def _locator_logs(erased: np.ndarray, modulus: int, log: np.ndarray) -> np.ndarray:
    """``log ∏_(e∈E, e≠i) (ω_i + ω_e)`` for every point ``i``: ``Π(ω_i)``, or ``Π'(ω_i)``."""
    n = erased.shape[0]
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        acc = 0
        for e in range(n):
            if erased[e] and e != i:
                acc += log[i ^ e]
        out[i] = acc % modulus
    return out


@nb.njit(cache=True)
def _scale_row(row: np.ndarray, lm: int, gf: FieldArgs) -> None:
    _, bits, one, lane_mask, log, exp = gf
    cols = _columns(lm, log, exp, bits, one)
    for t in range(row.shape[0]):
        row[t] = _lanes_times(row[t], cols, bits, one, lane_mask)


@nb.njit(cache=True)
def _decode_kernel(work: np.ndarray, erased: np.ndarray, tw: np.ndarray, gf: FieldArgs) -> None:
    """In place: the erased rows of a codeword held by point index get their values.

    The other rows are left holding ``R + R'`` and must be discarded.
    """
    modulus = gf[0]
    n = work.shape[0]
    width = work.shape[1]
    loc = _locator_logs(erased, modulus, gf[4])
    for i in range(n):
        if erased[i]:
            work[i, :] = 0
        else:
            _scale_row(work[i], loc[i], gf)
    _ifft_slice(work, tw, gf, np.int64(0), width)
    # Formal derivative in the novel basis, plus the polynomial itself (which is
    # zero at the erased points, where alone the result is read).
    for i in range(1, n):
        w = i & -i
        for j in range(w):
            a = work[i - w + j]
            b = work[i + j]
            for t in range(width):
                a[t] ^= b[t]
    _fft_slice(work, tw, gf, np.int64(0), width)
    for i in range(n):
        if erased[i]:
            _scale_row(work[i], (modulus - loc[i]) % modulus, gf)


def _to_symbols(field: Field, shards: np.ndarray) -> np.ndarray:
    """Shards of bytes to symbols in the field's layout (a copy)."""
    if field.bits == 8:
        return np.array(shards, dtype=np.uint8, copy=True, order="C")
    count, size = shards.shape
    blocks = shards.reshape(count, size // 64, 2, 32).astype(np.uint16)
    return np.ascontiguousarray(blocks[:, :, 0, :] | (blocks[:, :, 1, :] << 8)).reshape(
        count, size // 2
    )


def _to_bytes(field: Field, symbols: np.ndarray) -> np.ndarray:
    """Inverse of ``_to_symbols``."""
    if field.bits == 8:
        return symbols
    count, width = symbols.shape
    sym = symbols.reshape(count, width // 32, 32)
    out = np.empty((count, width // 32, 2, 32), dtype=np.uint8)
    out[:, :, 0, :] = sym & 0xFF
    out[:, :, 1, :] = sym >> 8
    return out.reshape(count, width * 2)


def _check_shape(k: int, size: int) -> None:
    if k < 1 or k & (k - 1):
        raise InvalidParameterError(f"the number of data shards must be a power of two, got {k}")
    if size % 64:
        raise InvalidParameterError(f"the shard size must be a multiple of 64 bytes, got {size}")


def encode(data: np.ndarray) -> np.ndarray:
    """Parity shards of ``k`` data shards (``k x size`` bytes), as rsmt2d's codec makes them."""
    k, size = data.shape
    _check_shape(k, size)
    if k == 1:
        return np.array(data, dtype=np.uint8, copy=True)
    field = field_for(k)
    work = _to_symbols(field, data)
    words = work.view(np.uint64)
    tw_data, tw_parity = twiddles(field, k, k), twiddles(field, k, 0)
    if words.shape[1] <= _SLICE:
        # One slice (a block of up to 16 x 16 shares): nothing to share out,
        # and waking the thread pool only risks its join waiting for a core
        # on a busy machine (measured: 7 ms per call instead of 0.1 ms).
        _encode_serial(words, tw_data, tw_parity, field.kernel_args)
    else:
        _encode_kernel(words, tw_data, tw_parity, field.kernel_args, _SLICE)
    return _to_bytes(field, work)


def decode(codeword: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The full codeword (``2k x size``, data then parity) from any ``k`` present shards.

    Rows of ``codeword`` where ``present`` is false are ignored and restored.
    Raises ``RepairError`` when fewer than ``k`` shards are present.
    """
    n, size = codeword.shape
    k = n // 2
    _check_shape(k, size)
    present = np.asarray(present, dtype=np.bool_)
    if int(present.sum()) < k:
        raise RepairError(f"{int(present.sum())} of {n} shards present, {k} needed")
    if present.all():
        return np.array(codeword, dtype=np.uint8, copy=True)
    field = field_for(k)
    # Position p (data first, then parity) holds the value at point p xor k.
    order = np.arange(n) ^ k
    work = _to_symbols(field, codeword[order])
    erased = ~present[order]
    _decode_kernel(work.view(np.uint64), erased, twiddles(field, n, 0), field.kernel_args)
    out = np.array(codeword, dtype=np.uint8, copy=True)
    out[~present] = _to_bytes(field, work)[order][~present]
    return out
