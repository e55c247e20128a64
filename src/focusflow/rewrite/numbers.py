"""HVM2's numbers: the 29-bit ``Numb`` word, its operators, casts, literals and printing.

A ``NUM`` port carries a 29-bit word: a 5-bit type in bits 0..4 and a 24-bit payload in
bits 5..28. The semantics are HVM2's (``Numb`` in ``src/hvm.rs``, the same functions in
``src/hvm.c``; literals and printing from ``src/ast.rs``), bit for bit, so a result
printed here can be compared with HVM2's output:

* type ``TY_SYM`` (0): an unapplied operator (payload ``OP_ADD``..``FP_SHR``) or a cast
  (payload ``TY_U24``/``TY_I24``/``TY_F24``), printed ``[+]``, ``[u24]``;
* ``TY_U24``, ``TY_I24``: 24-bit unsigned / two's-complement integers, arithmetic wraps;
* ``TY_F24``: the top 24 bits of an IEEE binary32 (sign, 8 exponent bits, 15 mantissa
  bits), so every f24 is exactly a float32 and float arithmetic is float32 arithmetic;
* types 4..0x16: a *partial* operator holding its left operand as the raw payload.

The word functions are numba ``njit`` functions, so the evaluator's kernels call
``operate`` directly; each one also works from plain Python (the parser and printer).
Everything is integer arithmetic on an explicitly masked int64, plus float32 arithmetic
for f24, so results do not depend on the host's integer width.

Where HVM2's runtimes disagree, this module follows the C runtime (the parallel runtime
users compare against), except where that crashes:

* **f24 rounding.** Rust rounds a float32 to f24 to nearest, ties to even; the C
  runtime's expression uses a logical instead of a bitwise not, so an exact tie rounds
  away from zero (up in magnitude), except when the kept bits are all zero, where it
  rounds down. ``new_f24`` (every operator result and the u24/i24 to f24 casts) does what
  C does. Literals are rounded by Rust in every HVM2 mode (the book is always built by the
  Rust parser), so ``parse_numb`` uses ``new_f24_even``, Rust's rounding: together they
  reproduce ``hvm run-c`` exactly.
* **i24 shifts and f24 ``:<<`` / ``:>>``.** The Rust interpreter panics (unreachable);
  C returns a zero of the operand's type (``+0``, ``0.0``); so do we. Likewise a partial
  whose type is not an operator (0x17..0x1F, unreachable from parsed programs) gives C's
  zero of the operand's type.
* **integer division and remainder by zero** (u24 and i24). Rust panics, C dies of
  SIGFPE, CUDA returns an unspecified value: none is a result. A total VM needs one, so
  ``x / 0 = 0`` and ``x % 0 = x``: the convention of proof assistants, which keeps
  ``x == (x / y) * y + x % y`` for every ``y``. f24 division by zero is IEEE (``inf``,
  ``NaN``), as everywhere in HVM2.
* **f24 ``sin``/``tan`` (``<<`` / ``>>``).** C evaluates them in double on the float32
  sum, Rust in float32; we use C's double. ``atan2``, ``log`` and ``pow`` are float32 in
  both (C's ``atan2f``, ``logf(n) / logf(x)``, ``powf``). These five go through the
  platform's math library, as in HVM2; everything else is exact IEEE arithmetic and gives
  the same bits on every CPU, up to which NaN a NaN result is (its payload follows the
  float unit, as in HVM2, and ``fmod`` returns its NaN operand as C's library does); every
  NaN prints ``+NaN``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, TypeAlias

import numpy as np
from numba import njit

#: What the word functions take and give: Python ints in plain Python, numpy scalars when
#: called from numba code (or with numpy values).
Int: TypeAlias = int | np.integer[Any]
Float: TypeAlias = float | np.floating[Any]

# Types (5 bits): a symbol, the three number types, and the operators (the type of a
# partial, or the payload of an unapplied operator symbol).
TY_SYM = 0x00
TY_U24 = 0x01
TY_I24 = 0x02
TY_F24 = 0x03
OP_ADD = 0x04
OP_SUB = 0x05
FP_SUB = 0x06
OP_MUL = 0x07
OP_DIV = 0x08
FP_DIV = 0x09
OP_REM = 0x0A
FP_REM = 0x0B
OP_EQ = 0x0C
OP_NEQ = 0x0D
OP_LT = 0x0E
OP_GT = 0x0F
OP_AND = 0x10
OP_OR = 0x11
OP_XOR = 0x12
OP_SHL = 0x13
FP_SHL = 0x14
OP_SHR = 0x15
FP_SHR = 0x16

NUMB_MASK = 0x1FFFFFFF  # a NUM port's value: 29 bits
U24_MASK = 0xFFFFFF
TYP_MASK = 0x1F
U24_MAX = 0xFFFFFF
I24_MIN = -0x800000
I24_MAX = 0x7FFFFF

#: The text of each operator code, as HVM2's parser reads it and its printer writes it.
OP_SYMBOLS = {
    OP_ADD: "+",
    OP_SUB: "-",
    FP_SUB: ":-",
    OP_MUL: "*",
    OP_DIV: "/",
    FP_DIV: ":/",
    OP_REM: "%",
    FP_REM: ":%",
    OP_EQ: "=",
    OP_NEQ: "!",
    OP_LT: "<",
    OP_GT: ">",
    OP_AND: "&",
    OP_OR: "|",
    OP_XOR: "^",
    OP_SHL: "<<",
    FP_SHL: ":<<",
    OP_SHR: ">>",
    FP_SHR: ":>>",
}
CAST_SYMBOLS = {TY_U24: "u24", TY_I24: "i24", TY_F24: "f24"}


# ---------------------------------------------------------------------------------------
# Words: constructors and accessors (njit, callable from Python too)


@njit(cache=True)
def new_sym(sym: Int) -> np.uint32:
    """The symbol word of an operator or cast code."""
    return np.uint32((np.int64(sym) << 5) & NUMB_MASK)


@njit(cache=True)
def get_sym(word: Int) -> Int:
    """The payload of a symbol word (its operator or cast code)."""
    return (np.int64(word) & NUMB_MASK) >> 5


@njit(cache=True)
def new_u24(val: Int) -> np.uint32:
    """The u24 word of ``val`` taken mod 2^24."""
    return np.uint32(((np.int64(val) & U24_MASK) << 5) | TY_U24)


@njit(cache=True)
def get_u24(word: Int) -> Int:
    """The payload of a word read as an unsigned 24-bit integer."""
    return (np.int64(word) & NUMB_MASK) >> 5


@njit(cache=True)
def new_i24(val: Int) -> np.uint32:
    """The i24 word of ``val`` wrapped to 24-bit two's complement."""
    return np.uint32(((np.int64(val) & U24_MASK) << 5) | TY_I24)


@njit(cache=True)
def get_i24(word: Int) -> Int:
    """The payload of a word read as a signed 24-bit integer (bit 23 is the sign)."""
    return (((np.int64(word) & NUMB_MASK) >> 5) ^ 0x800000) - 0x800000


@njit(cache=True)
def get_typ(word: Int) -> Int:
    """The 5-bit type of a word."""
    return np.int64(word) & TYP_MASK


@njit(cache=True)
def f32_to_bits(val: Float) -> Int:
    """The IEEE binary32 bits of ``val`` (rounded to float32 first, to nearest even)."""
    return np.int64(np.float32(val).view(np.uint32))


@njit(cache=True)
def bits_to_f32(bits: Int) -> Float:
    """The float32 whose IEEE bits are the low 32 bits of ``bits``."""
    return np.uint32(np.int64(bits) & 0xFFFFFFFF).view(np.float32)


@njit(cache=True)
def _f24_round(bits: Int, ties_even: bool) -> np.uint32:
    # HVM2's new_f24: keep the top 24 of the 32 bits, rounding on the 8 dropped ones.
    # A carry out of the mantissa moves into the exponent (the largest finite values
    # round to infinity); a NaN gets its lowest kept bit set so it stays a NaN.
    bits = np.int64(bits) & 0xFFFFFFFF
    hi = bits >> 8
    lo = bits & 0xFF
    is_nan = (bits & 0x7F800000) == 0x7F800000 and (bits & 0x7FFFFF) != 0
    if is_nan:
        hi |= 1
    else:
        # At a tie (lo == 0x80) Rust stays down on an even ``hi``; C, whose ``!hi`` is a
        # logical not, stays down only on ``hi == 0`` and otherwise goes up in magnitude.
        keep = (lo >> 7) & ((~hi & 1) if ties_even else (1 if hi == 0 else 0))
        hi += (lo - keep) >> 7
    return np.uint32(((hi << 5) | TY_F24) & NUMB_MASK)


@njit(cache=True)
def new_f24_from_bits(bits: Int) -> np.uint32:
    """The f24 word of the float32 with IEEE bits ``bits``, rounded as HVM2's C runtime."""
    return _f24_round(bits, False)


@njit(cache=True)
def new_f24_even_from_bits(bits: Int) -> np.uint32:
    """The f24 word of the float32 with IEEE bits ``bits``, rounded ties-to-even (Rust)."""
    return _f24_round(bits, True)


@njit(cache=True)
def new_f24(val: Float) -> np.uint32:
    """The f24 word of ``val`` (made a float32 first), rounded as HVM2's C runtime.

    This is the runtime's rounding (operator results, casts); see the module's docstring.
    """
    return _f24_round(f32_to_bits(val), False)


@njit(cache=True)
def new_f24_even(val: Float) -> np.uint32:
    """The f24 word of ``val`` (made a float32 first), rounded to nearest, ties to even.

    HVM2 rounds literals this way in every mode (its Rust parser builds the book).
    """
    return _f24_round(f32_to_bits(val), True)


@njit(cache=True)
def get_f24_bits(word: Int) -> Int:
    """The IEEE binary32 bits of a word's payload read as an f24 (low 8 bits zero)."""
    return ((np.int64(word) & NUMB_MASK) << 3) & 0xFFFFFF00


@njit(cache=True)
def get_f24(word: Int) -> Float:
    """The payload of a word read as an f24, as the float32 it denotes."""
    return bits_to_f32(get_f24_bits(word))


@njit(cache=True)
def is_num(word: Int) -> bool:
    """Whether a word is a plain number (u24, i24 or f24)."""
    typ = get_typ(word)
    return bool(TY_U24 <= typ <= TY_F24)


@njit(cache=True)
def is_cast(word: Int) -> bool:
    """Whether a word is a cast symbol (``[u24]``, ``[i24]``, ``[f24]``)."""
    return bool(get_typ(word) == TY_SYM and TY_U24 <= get_sym(word) <= TY_F24)


@njit(cache=True)
def partial(sym: Int, word: Int) -> np.uint32:
    """The partial of symbol ``sym`` applied to ``word``: its payload retagged.

    HVM2 ORs the symbol's whole payload into the word, not just 5 bits; for every symbol
    a program can write, the payload fits the type field and this is a plain retag.
    """
    return np.uint32(((np.int64(word) & NUMB_MASK & ~TYP_MASK) | get_sym(sym)) & NUMB_MASK)


# ---------------------------------------------------------------------------------------
# Casts and operators


@njit(cache=True)
def _f32_to_int(val: Float, lo: Int, hi: Int) -> Int:
    # HVM2's float-to-integer cast: NaN is 0, otherwise clamp then truncate toward zero.
    if val != val:
        return 0
    if val < lo:
        return lo
    if val > hi:
        return hi
    return int(val)


@njit(cache=True)
def cast(sym: Int, word: Int) -> np.uint32:
    """Cast number ``word`` by cast symbol ``sym`` (HVM2's ``Numb::cast``).

    Between u24 and i24 the 24 bits are reinterpreted; from f24 the value is truncated
    toward zero, saturating, NaN giving 0; to f24 the integer is converted to float32 and
    rounded to f24. Any other pair gives u24 0.
    """
    to = get_sym(sym)
    typ = get_typ(word)
    if to == typ and TY_U24 <= typ <= TY_F24:
        return np.uint32(np.int64(word) & NUMB_MASK)
    if to == TY_U24 and typ == TY_I24:
        return new_u24(get_u24(word))
    if to == TY_U24 and typ == TY_F24:
        return new_u24(_f32_to_int(get_f24(word), 0, U24_MAX))
    if to == TY_I24 and typ == TY_U24:
        return new_i24(get_i24(word))
    if to == TY_I24 and typ == TY_F24:
        return new_i24(_f32_to_int(get_f24(word), I24_MIN, I24_MAX))
    if to == TY_F24 and typ == TY_U24:
        return new_f24(np.float32(get_u24(word)))
    if to == TY_F24 and typ == TY_I24:
        return new_f24(np.float32(get_i24(word)))
    return new_u24(0)


@njit(cache=True)
def _int_div(x: Int, y: Int) -> Int:
    # C's integer division, truncating toward zero; by zero it is 0 (see the docstring).
    if y == 0:
        return 0
    q = (-x if x < 0 else x) // (-y if y < 0 else y)
    return -q if (x < 0) != (y < 0) else q


@njit(cache=True)
def _int_rem(x: Int, y: Int) -> Int:
    # C's remainder, with the sign of the dividend; by zero it is the dividend.
    if y == 0:
        return x
    return x - _int_div(x, y) * y


@njit(cache=True)
def _unflip(op: Int, x: Int, y: Int) -> tuple[Int, Int, Int]:
    # Each flipped operator (FP_SUB FP_DIV FP_REM FP_SHL FP_SHR) is the code after its
    # plain one and computes it with the operands swapped.
    if op in (FP_SUB, FP_DIV, FP_REM, FP_SHL, FP_SHR):
        return op - 1, y, x
    return op, x, y


_NO_RESULT = -(1 << 40)


@njit(cache=True)
def _int_op(op: Int, x: Int, y: Int) -> Int:  # noqa: PLR0911 (the operator table)
    # The integer operators on exact int64 operands; the caller wraps the result to 24
    # bits. Comparisons give 0/1. Returns -1 << 40 for a code without an integer meaning.
    if op == OP_ADD:
        return x + y
    if op == OP_SUB:
        return x - y
    if op == OP_MUL:
        return x * y
    if op == OP_DIV:
        return _int_div(x, y)
    if op == OP_REM:
        return _int_rem(x, y)
    if op == OP_EQ:
        return 1 if x == y else 0
    if op == OP_NEQ:
        return 1 if x != y else 0
    if op == OP_LT:
        return 1 if x < y else 0
    if op == OP_GT:
        return 1 if x > y else 0
    if op == OP_AND:
        return x & y
    if op == OP_OR:
        return x | y
    if op == OP_XOR:
        return x ^ y
    if op == OP_SHL:
        return x << (y & 31)
    if op == OP_SHR:
        return x >> (y & 31)
    return _NO_RESULT


@njit(cache=True)
def _op_u24(op: Int, x: Int, y: Int) -> np.uint32:
    # u24: 32-bit unsigned arithmetic in C, then the top 8 bits fall off; shifts are
    # logical and take the amount mod 32 (so a shift by 24..31 gives 0).
    op, x, y = _unflip(op, x, y)
    res = _int_op(op, x, y)
    if res == _NO_RESULT:
        return new_u24(0)
    return new_u24(res)


@njit(cache=True)
def _op_i24(op: Int, x: Int, y: Int) -> np.uint32:
    # i24: signed arithmetic wrapped to 24 bits, comparisons signed and typed u24.
    # Shifts have no i24 meaning: C's zero (the Rust interpreter would panic).
    if op in (OP_SHL, FP_SHL, OP_SHR, FP_SHR):
        return new_i24(0)
    op, x, y = _unflip(op, x, y)
    res = _int_op(op, x, y)
    if res == _NO_RESULT:
        return new_i24(0)
    if OP_EQ <= op <= OP_GT:
        return new_u24(res)
    return new_i24(res)


@njit(cache=True)
def _fmod32(x: Float, y: Float) -> Float:
    # C's fmodf (the remainder with the dividend's sign, exact). A NaN operand comes back
    # quieted, the dividend's first, as the C library does on x86-64.
    if x != x:
        return bits_to_f32(f32_to_bits(x) | 0x400000)
    if y != y:
        return bits_to_f32(f32_to_bits(y) | 0x400000)
    rem: Float = np.fmod(x, y)
    return rem


# IEEE division (x / 0 is an infinity or NaN) instead of Python's ZeroDivisionError.
@njit(cache=True, error_model="numpy")
def _op_f24(op: Int, x: Float, y: Float) -> np.uint32:  # noqa: C901, PLR0911, PLR0912 (the operator table)
    # f24: float32 arithmetic (C's ``float``), the result rounded to f24 the C way.
    # ``&``, ``|``, ``^`` are atan2, log base x, pow; ``<<``/``>>`` are sin/tan of the sum
    # in double; the flipped shifts have no f24 meaning (C's 0.0).
    if op == OP_SHL:
        return new_f24(math.sin(np.float64(x + y)))
    if op == OP_SHR:
        return new_f24(math.tan(np.float64(x + y)))
    if op in (FP_SHL, FP_SHR):
        return new_f24(0.0)
    if op in (FP_SUB, FP_DIV, FP_REM):
        op, x, y = op - 1, y, x
    if op == OP_ADD:
        return new_f24(x + y)
    if op == OP_SUB:
        return new_f24(x - y)
    if op == OP_MUL:
        return new_f24(x * y)
    if op == OP_DIV:
        return new_f24(x / y)
    if op == OP_REM:
        return new_f24(_fmod32(x, y))
    if op == OP_EQ:
        return new_u24(1 if x == y else 0)
    if op == OP_NEQ:
        return new_u24(1 if x != y else 0)
    if op == OP_LT:
        return new_u24(1 if x < y else 0)
    if op == OP_GT:
        return new_u24(1 if x > y else 0)
    if op == OP_AND:
        return new_f24(math.atan2(x, y))
    if op == OP_OR:
        return new_f24(np.float32(math.log(y)) / np.float32(math.log(x)))
    if op == OP_XOR:
        return new_f24(x**y)
    return new_f24(0.0)


@njit(cache=True)
def operate(a: Int, b: Int) -> np.uint32:  # noqa: PLR0911 (HVM2's case analysis)
    """The word HVM2's ``Numb::operate`` makes of two number words (29 bits each).

    Symmetric in its arguments. Two symbols give u24 0; a cast meets a number: the cast;
    a symbol meets anything else: the partial (the other's payload, retyped); two
    partials, or two plain numbers, give u24 0; a partial ``[op x]`` meets a number ``n``
    of type ``t``: ``x`` (the partial's payload read as ``t``) ``op n``, flipped operators
    computing ``n op x``. Comparisons give u24 0/1. The choices where HVM2's runtimes
    disagree are the module docstring's.
    """
    wa = np.int64(a) & NUMB_MASK
    wb = np.int64(b) & NUMB_MASK
    at = wa & TYP_MASK
    bt = wb & TYP_MASK
    if at == TY_SYM and bt == TY_SYM:
        return new_u24(0)
    if is_cast(wa) and is_num(wb):
        return cast(wa, wb)
    if is_cast(wb) and is_num(wa):
        return cast(wb, wa)
    if at == TY_SYM:
        return partial(wa, wb)
    if bt == TY_SYM:
        return partial(wb, wa)
    if (at >= OP_ADD) == (bt >= OP_ADD):
        return new_u24(0)
    if at >= OP_ADD:
        op, ty, p, n = at, bt, wa, wb
    else:
        op, ty, p, n = bt, at, wb, wa
    if ty == TY_U24:
        return _op_u24(op, get_u24(p), get_u24(n))
    if ty == TY_I24:
        return _op_i24(op, get_i24(p), get_i24(n))
    return _op_f24(op, get_f24(p), get_f24(n))


# ---------------------------------------------------------------------------------------
# Printing (plain Python): HVM2's ``Numb::show`` (``src/ast.rs``)

# Rust's ``{:?}`` of an f32 switches to exponent form below 1e-4 or from 1e16 (both
# compared as float32); as bit patterns of positive floats, order is value order.
_EXP_BELOW_BITS = int(np.float32(1e-4).view(np.uint32))
_EXP_FROM_BITS = int(np.float32(1e16).view(np.uint32))


def _f32_bits_value(bits: int) -> Fraction:
    # The exact value of a finite, non-negative float32.
    exp_field = (bits >> 23) & 0xFF
    mant = bits & 0x7FFFFF
    if exp_field == 0:
        return Fraction(mant) * Fraction(2) ** -149
    return Fraction(mant | 0x800000) * Fraction(2) ** (exp_field - 150)


def _shortest_digits(bits: int) -> tuple[str, int]:
    """The shortest decimal that reads back as this positive finite float32.

    Returns ``(digits, exp)`` with value ``0.digits × 10^exp``; of several shortest
    candidates, the nearest to the float, the larger of two equally near ones (Rust's
    ``flt2dec`` shortest mode). A
    candidate on the rounding interval's edge counts when the mantissa is even, since
    reading it back rounds ties to even.
    """
    value = _f32_bits_value(bits)
    below = _f32_bits_value(bits - 1) if bits > 1 else Fraction(0)
    above = _f32_bits_value(bits + 1)
    lo = (below + value) / 2
    hi = (value + above) / 2
    inclusive = bits & 1 == 0
    # Decimal exponent k with 10^k <= value < 10^(k+1).
    k = math.floor(math.log10(float(value)))
    while Fraction(10) ** k > value:
        k -= 1
    while Fraction(10) ** (k + 1) <= value:
        k += 1
    for ndigits in range(1, 12):
        scale = Fraction(10) ** (k - ndigits + 1)
        base = math.floor(value / scale)
        best: int | None = None
        for cand in (base, base + 1):
            cval = cand * scale
            inside = (lo <= cval <= hi) if inclusive else (lo < cval < hi)
            # ``<=``: of two equally near candidates the upper one, as Rust picks.
            if inside and (best is None or abs(cval - value) <= abs(best * scale - value)):
                best = cand
        if best is not None:
            text = str(best)
            exp = k + 1 + len(text) - ndigits  # a carry to 10^ndigits adds a digit
            return text.rstrip("0") or "0", exp
    raise AssertionError("a float32 always has a 9-digit decimal")  # pragma: no cover


def format_f32(bits: int) -> str:
    """A float32 (by its IEEE bits) as Rust's ``{:?}`` writes it.

    Shortest round-trip digits with at least one fractional digit, in exponent form
    (``8.908799e-6``, ``1e16``) below 1e-4 or from 1e16; ``-0.0`` keeps its sign; ``inf``,
    ``-inf`` and ``NaN`` as Rust writes them (HVM2 replaces those before calling it).
    """
    bits &= 0xFFFFFFFF
    sign = "-" if bits & 0x80000000 else ""
    mag = bits & 0x7FFFFFFF
    if mag > 0x7F800000:
        return "NaN"
    if mag == 0x7F800000:
        return sign + "inf"
    if mag == 0:
        return sign + "0.0"
    digits, exp = _shortest_digits(mag)
    if mag < _EXP_BELOW_BITS or mag >= _EXP_FROM_BITS:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{exp - 1}"
    if exp <= 0:
        return f"{sign}0.{'0' * -exp}{digits}"
    if exp < len(digits):
        return f"{sign}{digits[:exp]}.{digits[exp:]}"
    return f"{sign}{digits}{'0' * (exp - len(digits))}.0"


def format_numb(numb: Int) -> str:
    """A number word as HVM2 prints it in a result (``Numb::show``, ``src/ast.rs``).

    u24 ``123``; i24 always signed (``+0``, ``-5``); f24 ``+inf``, ``-inf``, ``+NaN`` or
    Rust's ``{:?}`` of the float (``2.5``, ``-8.908799e-6``); symbols ``[+]``, ``[u24]``
    (unknown ``[?]``); partials ``[*0x0000002]`` (7 upper-case hex digits; unknown
    operator ``[?0x…]``). Every output re-parses to the same word, except NaN payloads.
    """
    word = int(numb) & NUMB_MASK
    typ = word & TYP_MASK
    payload = word >> 5
    if typ == TY_SYM:
        name = CAST_SYMBOLS.get(payload) or OP_SYMBOLS.get(payload) or "?"
        return f"[{name}]"
    if typ == TY_U24:
        return str(payload)
    if typ == TY_I24:
        return f"{(payload ^ 0x800000) - 0x800000:+d}"
    if typ == TY_F24:
        bits = (word << 3) & 0xFFFFFF00
        mag = bits & 0x7FFFFFFF
        if mag == 0x7F800000:
            return "-inf" if bits & 0x80000000 else "+inf"
        if mag > 0x7F800000:
            return "+NaN"
        return format_f32(bits)
    return f"[{OP_SYMBOLS.get(typ, '?')}0x{payload:07X}]"


# ---------------------------------------------------------------------------------------
# Literals (plain Python): HVM2's ``parse_numb`` (``src/ast.rs``, TSPL's ``parse_u64``)

_LITERAL_CHARS = frozenset("+-.")
# Rust's ``str::parse::<f32>`` grammar (case-insensitive inf/infinity/nan).
_RUST_FLOAT = re.compile(
    r"(?P<sign>[+-]?)(?:(?P<special>inf|infinity|nan)|"
    r"(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?:[eE](?P<exp>[+-]?[0-9]+))?)",
    re.IGNORECASE,
)
# Operator texts in the order HVM2 tries them (a prefix is tried after its extensions).
_OP_ORDER = (
    ("+", OP_ADD),
    ("-", OP_SUB),
    (":-", FP_SUB),
    ("*", OP_MUL),
    ("/", OP_DIV),
    (":/", FP_DIV),
    ("%", OP_REM),
    (":%", FP_REM),
    ("=", OP_EQ),
    ("!", OP_NEQ),
    ("<<", OP_SHL),
    (":<<", FP_SHL),
    (">>", OP_SHR),
    (":>>", FP_SHR),
    ("<", OP_LT),
    (">", OP_GT),
    ("&", OP_AND),
    ("|", OP_OR),
    ("^", OP_XOR),
)


def _round_to_f32_bits(value: Fraction) -> int:
    # Correctly rounded (to nearest, ties to even) float32 bits of a non-negative value,
    # as Rust's float parser gives: going through a double could round twice.
    if value == 0:
        return 0
    e = value.numerator.bit_length() - value.denominator.bit_length()
    if Fraction(2) ** e > value:
        e -= 1  # now 2^e <= value < 2^(e+1)
    quantum = Fraction(2) ** (max(e, -126) - 23)
    mant = round(value / quantum)  # Fraction rounds half to even
    rounded = mant * quantum
    if rounded >= Fraction(2) ** 128:
        return 0x7F800000
    return int(np.float32(float(rounded)).view(np.uint32))


def parse_f32_bits(text: str) -> int:
    """The float32 bits Rust's ``str::parse::<f32>`` reads from ``text``.

    Raises ``ValueError`` for text outside Rust's grammar (sign, digits with an optional
    ``.`` and exponent, or ``inf``/``infinity``/``nan`` in any case).
    """
    match = _RUST_FLOAT.fullmatch(text)
    if match is None or (match["special"] is None and not (match["int"] or match["frac"])):
        raise ValueError(f"invalid float literal {text!r}")
    sign = 0x80000000 if match["sign"] == "-" else 0
    special = match["special"]
    if special is not None:
        return sign | (0x7FC00000 if special.lower() == "nan" else 0x7F800000)
    digits = (match["int"] or "") + (match["frac"] or "")
    exp10 = int(match["exp"] or "0") - len(match["frac"] or "")
    significant = digits.lstrip("0")
    if not significant:
        return sign
    # Out of float32's range whatever the digits: skip the exact (and huge) arithmetic.
    magnitude = exp10 + len(significant)  # value < 10^magnitude
    if magnitude > 40:
        return sign | 0x7F800000
    if magnitude < -46:
        return sign
    return sign | _round_to_f32_bits(Fraction(int(significant)) * Fraction(10) ** exp10)


def _parse_u64(text: str, literal: str) -> int:
    # TSPL's parse_u64: an optional 0x/0b prefix, then the longest run of digits of that
    # radix (underscores allowed between them); whatever follows is ignored, as HVM2 does.
    radix = 10
    if text.startswith("0x"):
        radix, text = 16, text[2:]
    elif text.startswith("0b"):
        radix, text = 2, text[2:]
    allowed = "0123456789abcdefABCDEF"[: 22 if radix == 16 else radix] + "_"
    end = 0
    while end < len(text) and text[end] in allowed:
        end += 1
    digits = text[:end].replace("_", "")
    if not digits:
        found = repr(text[0]) if text else "its end"
        raise ValueError(f"number literal {literal!r} needs a digit, found {found}")
    value = int(digits, radix)
    if value >= 1 << 64:
        raise ValueError(f"number literal {literal!r} does not fit in 64 bits")
    return value


def _parse_literal(run: str) -> int:
    # HVM2's parse_numb_lit on its run of alphanumeric and ``+-.`` characters.
    if "." in run or "inf" in run or "NaN" in run:
        return int(new_f24_even_from_bits(parse_f32_bits(run)))
    if run[:1] in ("+", "-"):
        val = _parse_u64(run[1:], run) & 0xFFFFFFFF  # Rust's ``as i32`` keeps 32 bits
        return int(new_i24(-val if run[0] == "-" else val))
    return int(new_u24(_parse_u64(run, run)))


def _skip_trivia(text: str, pos: int) -> int:
    # ASCII whitespace and ``//`` comments to the end of the line.
    while pos < len(text):
        if text[pos] in " \t\n\r\f\v":
            pos += 1
        elif text.startswith("//", pos):
            newline = text.find("\n", pos)
            pos = len(text) if newline < 0 else newline + 1
        else:
            break
    return pos


def _literal_end(text: str, pos: int) -> int:
    while pos < len(text) and (text[pos].isalnum() or text[pos] in _LITERAL_CHARS):
        pos += 1
    return pos


def _parse_symbol(text: str) -> int:
    # ``[cast]``, ``[op]`` or ``[op literal]``; trivia may follow the operator and precede
    # the closing bracket, not precede the operator (HVM2's parse_numb_sym).
    for code, name in CAST_SYMBOLS.items():
        if text.startswith(name, 1):
            close = _skip_trivia(text, 1 + len(name))
            if text[close : close + 1] != "]":
                raise ValueError(f"cast symbol {text!r}: a cast takes no operand, expected ']'")
            return _end_of_symbol(text, close, int(new_sym(code)))
    found_op = next(((n, c) for n, c in _OP_ORDER if text.startswith(n, 1)), None)
    if found_op is None:
        raise ValueError(f"number symbol {text!r}: expected an operator or cast after '['")
    name, code = found_op
    pos = _skip_trivia(text, 1 + len(name))
    word = int(new_sym(code))
    if text[pos : pos + 1] != "]":
        end = _literal_end(text, pos)
        try:
            operand = _parse_literal(text[pos:end])
        except ValueError as exc:
            raise ValueError(f"number symbol {text!r}: {exc}") from None
        word = int(partial(word, operand))
        pos = _skip_trivia(text, end)
        if text[pos : pos + 1] != "]":
            found = repr(text[pos]) if pos < len(text) else "its end"
            raise ValueError(
                f"number symbol {text!r}: expected ']' after the operand, found {found}"
            )
    return _end_of_symbol(text, pos, word)


def _end_of_symbol(text: str, close: int, word: int) -> int:
    if close + 1 != len(text):
        raise ValueError(f"number symbol {text!r}: unexpected text after ']'")
    return word


def parse_numb(text: str) -> int:
    """The 29-bit word of a number literal, as HVM2's parser reads it (``src/ast.rs``).

    ``text`` is one literal: ``[cast]``, ``[op]``, ``[op literal]`` (a partial holding the
    literal's payload bits, whatever its type), or a run of alphanumeric and ``+-.``
    characters: with ``.``, ``inf`` or ``NaN`` an f24 (Rust's float syntax, rounded ties to
    even), else signed (``+``/``-``) an i24, else a u24; integers are decimal, ``0x`` hex or
    ``0b`` binary, wrap to 24 bits, and end at the first non-digit (``1e5`` is 1, as in
    HVM2). Raises ``ValueError`` saying what is wrong with a literal HVM2 rejects.
    """
    if not text:
        raise ValueError("empty number literal")
    if text[0] == "[":
        return _parse_symbol(text)
    end = _literal_end(text, 0)
    if end != len(text):
        raise ValueError(f"number literal {text!r}: unexpected character {text[end]!r}")
    if text[0] not in "0123456789+-":
        raise ValueError(f"number literal {text!r} must start with a digit, '+' or '-'")
    return _parse_literal(text)
