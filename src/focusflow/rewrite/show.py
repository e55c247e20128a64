"""Readback: the normal form of ``@main`` as HVM2 prints it.

Starting at the root variable, every port is followed through the
substitution map and printed as a tree: ``(a b)`` ``{a b}`` ``$(a b)``
``?(a b)``, ``*``, numbers by ``numbers.format_numb``, references as ``@name``
(a reference left in the result is not expanded), and a variable nobody
linked as ``v`` and its slot in lowercase hex, as HVM2's reference
interpreter names it (slot numbers depend on allocation, so only the shape
of the names is comparable; ``normalize_names`` renames them ``x0, x1, ...``
in order of first occurrence, as HVM2's test harness does).
"""

from __future__ import annotations

import numpy as np

from focusflow.rewrite.errors import HvmReadbackError
from focusflow.rewrite.numbers import format_numb
from focusflow.rewrite.ports import CON, DUP, ERA, NONE, NUM, OPR, REF, SWI, VAR

_OPEN = {CON: "(", DUP: "{", OPR: "$(", SWI: "?("}
_CLOSE = {CON: ")", DUP: "}", OPR: ")", SWI: ")"}


def follow(subst: np.ndarray, port: int) -> int:
    """``port`` through linked variables (HVM2's ``peek``): the port at the end,
    or an unlinked variable."""
    for _ in range(len(subst) + 1):  # a longer chain is a circle of wires
        if port & 7 != VAR:
            return port
        target = int(subst[port >> 3])
        if target in (0, NONE):
            return port
        port = target
    raise HvmReadbackError("the result is not a tree: a circle of linked variables")


def readback(node: np.ndarray, subst: np.ndarray, root: int, names: list[str]) -> str:
    """The tree at ``root`` of a net, as text (without changing the net)."""
    out: list[str] = []
    seen: set[int] = set()
    todo: list[int | str] = [root]  # ports to print, or literal text
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        port = follow(subst, item)
        tag, val = port & 7, port >> 3
        if tag == VAR:
            out.append(f"v{val:x}")
        elif tag == REF:
            out.append("@" + names[val & 0x0FFFFFFF])
        elif tag == ERA:
            out.append("*")
        elif tag == NUM:
            out.append(format_numb(val))
        else:
            if val in seen:
                raise HvmReadbackError(f"the result is not a tree: node {val} is reached twice")
            seen.add(val)
            pair = int(node[val])
            out.append(_OPEN[tag])
            todo += [_CLOSE[tag], pair >> 32, " ", pair & 0xFFFFFFFF]
    return "".join(out)


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/$")


def normalize_names(text: str) -> str:
    """``text`` with its variable names replaced by ``x0, x1, ...`` in order of
    first occurrence (references, symbols and numbers untouched)."""
    names: dict[str, str] = {}
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        j = i + 1
        if char == "[":
            j = text.find("]", i) + 1 or n
        elif char == "@" or (char in _NAME_CHARS and char not in "0123456789+-"):
            while j < n and text[j] in _NAME_CHARS:
                j += 1
        elif char in "0123456789+-":
            while j < n and (text[j].isalnum() or text[j] in "+-."):
                j += 1
        word = text[i:j]
        if char != "@" and char in _NAME_CHARS and char not in "0123456789+-":
            word = names.setdefault(word, f"x{len(names)}")
        out.append(word)
        i = j
    return "".join(out)
