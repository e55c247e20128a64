"""The memory layout of the net: ports, pairs, tags and the rule table.

Everything the evaluator touches is a plain unsigned integer, so a net is two
flat numpy arrays a numba kernel can walk without objects:

* a **port** is 32 bits: the low 3 bits are its tag, the high 29 bits its
  value (``port = value << 3 | tag``). A ``VAR`` port's value is a variable
  slot, a ``REF`` port's a definition id (bit 28 is the book's parallel hint,
  masked off when used), ``ERA``'s is 0, a ``NUM`` port's the 29-bit number
  (see ``numbers``), and a binary port's (``CON DUP OPR SWI``) the index of
  the node it points at;
* a **pair** is 64 bits: the first port in the low 32 bits, the second in the
  high 32 bits. A binary node is stored as the pair of its two auxiliary
  ports; its principal port is implicit: it is the port pointing at the node,
  which carries the node's tag. A redex is a pair of two principal ports.

Slot value 0 means *free* for both nodes and variables (slot 0 itself is
never allocated, so no live node or link is 0); ``NONE`` marks a variable that
is allocated but not linked yet.

The rule for an active pair depends only on the two tags: ``RULES[ta, tb]``.
These values are the ones of the HVM2 IR, so books and counts are
comparable with its runtimes (docs/hvm.md).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Tags (3 bits).
VAR = 0
REF = 1
ERA = 2
NUM = 3
CON = 4
DUP = 5
OPR = 6
SWI = 7
TAG_NAMES = ("VAR", "REF", "ERA", "NUM", "CON", "DUP", "OPR", "SWI")

# Special port values.
FREE = 0
NONE = 0xFFFFFFFF
VAL_MASK = 0x1FFFFFFF  # 29 bits
FID_MASK = 0x0FFFFFFF  # a REF's definition id without the parallel hint
PAR_FLAG = 0x10000000

# Rules.
LINK = 0
CALL = 1
VOID = 2
ERAS = 3
ANNI = 4
COMM = 5
OPER = 6
SWIT = 7
RULE_NAMES = ("LINK", "CALL", "VOID", "ERAS", "ANNI", "COMM", "OPER", "SWIT")

_L, _C, _V, _E, _A, _M, _O, _S = LINK, CALL, VOID, ERAS, ANNI, COMM, OPER, SWIT
#: The rule of an active pair, indexed ``[tag of one side, tag of the other]``;
#: symmetric. A reference meets a duplicator by CALL, which copies it when its
#: definition is safe (has no duplicators) and refuses it otherwise.
RULES = np.array(
    [
        #  VAR REF ERA NUM CON DUP OPR SWI
        [_L, _L, _L, _L, _L, _L, _L, _L],  # VAR
        [_L, _V, _V, _V, _C, _C, _C, _C],  # REF
        [_L, _V, _V, _V, _E, _E, _E, _E],  # ERA
        [_L, _V, _V, _V, _E, _E, _O, _S],  # NUM
        [_L, _C, _E, _E, _A, _M, _M, _M],  # CON
        [_L, _C, _E, _E, _M, _A, _M, _M],  # DUP
        [_L, _C, _E, _O, _M, _M, _A, _M],  # OPR
        [_L, _C, _E, _S, _M, _M, _M, _A],  # SWI
    ],
    dtype=np.uint8,
)

#: High-priority rules (LINK VOID ERAS ANNI) shrink the net; they run first.
HIGH_PRIORITY = np.array([(0b00011101 >> r) & 1 for r in range(8)], dtype=np.uint8)
#: ``RULES`` flat, indexed ``tag_a << 3 | tag_b``.
PAIR_RULES = RULES.reshape(-1).copy()
#: Bit ``tag_a << 3 | tag_b`` set when that pair's rule is of high priority, as a
#: signed 64-bit word (the CPU kernels compute in int64): a kernel tests a pair
#: with a shift of a constant, where ``HIGH_PRIORITY[RULES[...]]`` costs two
#: dependent loads.
HIGH_PAIRS = np.uint64(sum(int(HIGH_PRIORITY[r]) << i for i, r in enumerate(PAIR_RULES))).view(
    np.int64
)


@njit(cache=True, inline="always")
def new_port(tag: int, val: int) -> np.uint32:
    """The port of ``tag`` carrying ``val`` (29 bits)."""
    return np.uint32(((np.uint32(val) & np.uint32(VAL_MASK)) << np.uint32(3)) | np.uint32(tag))


@njit(cache=True, inline="always")
def get_tag(port: np.uint32) -> int:
    """The 3-bit tag of a port."""
    return int(port & np.uint32(7))


@njit(cache=True, inline="always")
def get_val(port: np.uint32) -> int:
    """The 29-bit value of a port."""
    return int(port >> np.uint32(3))


@njit(cache=True, inline="always")
def new_pair(fst: np.uint32, snd: np.uint32) -> np.uint64:
    """The pair of two ports: ``fst`` in the low half."""
    return np.uint64((np.uint64(snd) << np.uint64(32)) | np.uint64(fst))


@njit(cache=True, inline="always")
def get_fst(pair: np.uint64) -> np.uint32:
    """The low port of a pair."""
    return np.uint32(pair & np.uint64(0xFFFFFFFF))


@njit(cache=True, inline="always")
def get_snd(pair: np.uint64) -> np.uint32:
    """The high port of a pair."""
    return np.uint32(pair >> np.uint64(32))


@njit(cache=True, inline="always")
def dispatch(a: np.uint32, b: np.uint32) -> int:
    """The rule for the active pair ``(a, b)``."""
    return int(RULES[a & np.uint32(7), b & np.uint32(7)])


def port(tag: int, val: int) -> int:
    """Python-side ``new_port`` (book building and readback)."""
    return ((val & VAL_MASK) << 3) | tag


def pair(fst: int, snd: int) -> int:
    """Python-side ``new_pair``."""
    return (snd << 32) | fst
