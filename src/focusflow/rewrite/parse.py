"""The HVM2 IR text format: parser and book builder.

The grammar (docs/hvm.md) is the one HVM2's own parser accepts, down to its
quirks, so that every published program reads the same here: ``//`` comments
and whitespace between any two tokens, names of ``[A-Za-z0-9_.-/$]``, a tree
starting with a digit, ``+``, ``-`` or ``[`` being a number, and a repeated
definition keeping the last one. Numbers are read by ``numbers.parse_numb``.

``build_book`` turns the definitions into flat arrays (one root port, node
pairs and redex pairs per definition), the form the evaluator expands on a
CALL: nodes laid out in pre-order, variables numbered by first occurrence,
``main`` as definition 0 and the rest in byte-wise name order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focusflow.rewrite import numbers
from focusflow.rewrite.errors import HvmMissingMainError, HvmSyntaxError, HvmUnboundRefError
from focusflow.rewrite.ports import (
    CON,
    DUP,
    ERA,
    NUM,
    OPR,
    PAR_FLAG,
    REF,
    SWI,
    VAR,
    pair,
    port,
)

#: A tree is a tuple: ``(VAR, name)``, ``(REF, name)``, ``(NUM, word)``, ``(ERA,)``
#: or ``(CON|DUP|OPR|SWI, left, right)``.
Tree = tuple[int, str] | tuple[int, int] | tuple[int] | tuple[int, "Tree", "Tree"]
#: One redex of a net: (parallel hint, left tree, right tree).
Redex = tuple[bool, Tree, Tree]


@dataclass(frozen=True)
class Net:
    """A definition's body: its root tree and its redexes, in text order."""

    root: Tree
    redexes: list[Redex]


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/$")
_OPEN = {"(": (CON, ")"), "{": (DUP, "}")}
#: Why a variable occurs at most twice in a definition: it is a wire, and the
#: evaluators link its two ends through its one slot, which a third end would
#: overwrite while another wire owns it. Once is a free end, which the result
#: shows as a variable (as HVM2's runtimes do).
_PAIRED = "a variable is a wire with two ends, so it occurs at most twice in a definition"


class _Parser:
    """A cursor over the text that knows its line and column for errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        #: How many times each variable of the net being read has occurred.
        self.uses: dict[str, int] = {}
        #: The definition being read, for errors (" in @name").
        self.inside = ""

    def fail(self, message: str, pos: int | None = None) -> HvmSyntaxError:
        at = self.pos if pos is None else pos
        line = self.text.count("\n", 0, at) + 1
        column = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return HvmSyntaxError(message, line, column)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_trivia(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            char = text[self.pos]
            if char in " \t\n\r\x0b\x0c":
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            else:
                break

    def consume(self, token: str) -> None:
        self.skip_trivia()
        if not self.text.startswith(token, self.pos):
            found = self.peek()
            what = repr(found) if found else "end of input"
            raise self.fail(f"expected {token!r}, found {what}")
        self.pos += len(token)

    def name(self) -> str:
        self.skip_trivia()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _NAME_CHARS:
            self.pos += 1
        if self.pos == start:
            found = self.peek()
            raise self.fail(f"expected a name, found {repr(found) if found else 'end of input'}")
        return self.text[start : self.pos]

    def number(self) -> int:
        start = self.pos
        if self.peek() == "[":
            end = self.text.find("]", start)
            if end < 0:
                raise self.fail("number symbol '[' without its closing ']'", start)
            self.pos = end + 1
        else:
            while self.pos < len(self.text):
                char = self.text[self.pos]
                if not (char.isalnum() or char in "+-."):
                    break
                self.pos += 1
        token = self.text[start : self.pos]
        try:
            return int(numbers.parse_numb(token))
        except ValueError as exc:
            raise self.fail(f"invalid number {token!r}: {exc}", start) from None

    def tree(self) -> Tree:
        self.skip_trivia()
        char = self.peek()
        if char in _OPEN:
            tag, close = _OPEN[char]
            self.pos += 1
            left = self.tree()
            right = self.tree()
            self.consume(close)
            return (tag, left, right)
        if char in "$?":
            self.pos += 1
            self.consume("(")
            left = self.tree()
            right = self.tree()
            self.consume(")")
            return (OPR if char == "$" else SWI, left, right)
        if char == "@":
            self.pos += 1
            return (REF, self.name())
        if char == "*":
            self.pos += 1
            return (ERA,)
        if char and char in "0123456789+-[":
            return (NUM, self.number())
        start = self.pos
        name = self.name()
        uses = self.uses.get(name, 0)
        if uses == 2:
            raise self.fail(f"variable {name!r} occurs a third time{self.inside}; {_PAIRED}", start)
        self.uses[name] = uses + 1
        return (VAR, name)

    def net(self) -> Net:
        self.uses = {}
        root = self.tree()
        redexes: list[Redex] = []
        self.skip_trivia()
        while self.peek() == "&":
            self.pos += 1
            par = self.peek() == "!"
            if par:
                self.pos += 1
            left = self.tree()
            self.consume("~")
            right = self.tree()
            redexes.append((par, left, right))
            self.skip_trivia()
        return Net(root, redexes)

    def book(self) -> dict[str, Net]:
        defs: dict[str, Net] = {}
        self.skip_trivia()
        while self.pos < len(self.text):
            self.consume("@")
            name = self.name()
            self.consume("=")
            self.inside = f" in @{name}"
            defs[name] = self.net()  # a repeated name keeps the last definition
            self.skip_trivia()
        return defs


def parse_net(text: str) -> Net:
    """One net (a tree and its ``& a ~ b`` redexes) from ``text``."""
    parser = _Parser(text)
    try:
        net = parser.net()
        parser.skip_trivia()
    except RecursionError:
        raise parser.fail("trees nested too deeply") from None
    if parser.pos < len(text):
        raise parser.fail(f"unexpected {parser.peek()!r} after the net")
    return net


def parse_book(text: str) -> dict[str, Net]:
    """Every ``@name = net`` definition of ``text`` (an IR file)."""
    parser = _Parser(text)
    try:
        return parser.book()
    except RecursionError:
        raise parser.fail("trees nested too deeply") from None


@dataclass(frozen=True)
class Book:
    """Definitions as flat arrays, indexed by definition id (``main`` is 0).

    Definition ``i`` has root port ``roots[i]``, node pairs
    ``nodes[node_start[i]:node_start[i+1]]`` (ports whose values are indices
    into this slice or variable numbers below ``vars[i]``), redex pairs
    ``rbag[rbag_start[i]:rbag_start[i+1]]``, and ``safe[i]`` = 1 when neither
    it nor anything it refers to contains a duplicator (so a duplicator may
    copy a reference to it)."""

    names: list[str]
    roots: np.ndarray
    node_start: np.ndarray
    nodes: np.ndarray
    rbag_start: np.ndarray
    rbag: np.ndarray
    vars: np.ndarray
    safe: np.ndarray

    def fid(self, name: str) -> int:
        """The id of the definition ``name``."""
        return self.names.index(name)


class _DefBuilder:
    def __init__(self, fids: dict[str, int]) -> None:
        self.fids = fids
        self.nodes: list[list[int]] = []
        self.vars: dict[str, int] = {}
        self.uses: dict[str, int] = {}
        self.refs: set[int] = set()
        self.has_dup = False

    def build(self, tree: Tree) -> int:
        """The port of ``tree``, its nodes appended in pre-order.

        The shape tells the kinds apart (a node has two children, ERA none,
        NUM a word, VAR and REF a name), which is also what types each part."""
        if len(tree) == 3:
            tag, left, right = tree
            if tag == DUP:
                self.has_dup = True
            index = len(self.nodes)
            slot = [0, 0]
            self.nodes.append(slot)  # reserved before the children: pre-order
            slot[0] = self.build(left)
            slot[1] = self.build(right)
            return port(tag, index)
        if len(tree) == 1:
            return port(ERA, 0)
        tag, value = tree
        if isinstance(value, int):
            return port(NUM, value)
        if tag == VAR:
            index = self.vars.setdefault(value, len(self.vars))
            self.uses[value] = self.uses.get(value, 0) + 1
            return port(VAR, index)
        fid = self.fids.get(value)
        if fid is None:
            raise HvmUnboundRefError(f"reference to an undefined definition: @{value}")
        self.refs.add(fid)
        return port(REF, fid)


def build_book(defs: dict[str, Net]) -> Book:
    """The flat book of parsed definitions; refs resolved by name."""
    if "main" not in defs:
        raise HvmMissingMainError("the program has no @main definition")
    names = ["main", *sorted((n for n in defs if n != "main"), key=lambda n: n.encode())]
    fids = {name: fid for fid, name in enumerate(names)}
    roots, node_start, nodes, rbag_start, rbag, nvars = [], [0], [], [0], [], []
    refs: list[set[int]] = []
    safe: list[bool] = []
    for name in names:
        net = defs[name]
        builder = _DefBuilder(fids)
        root = builder.build(net.root)
        pairs = []
        for par, left, right in net.redexes:
            a = builder.build(left)
            b = builder.build(right)
            if par and a & 7 == REF:
                a |= PAR_FLAG << 3
            pairs.append(pair(a, b))
        for var, count in builder.uses.items():
            if count > 2:  # a net built in code; the parser has said where already
                raise HvmSyntaxError(f"variable {var!r} occurs {count} times in @{name}; {_PAIRED}")
        roots.append(root)
        nodes += [pair(fst, snd) for fst, snd in builder.nodes]
        node_start.append(len(nodes))
        rbag += pairs
        rbag_start.append(len(rbag))
        nvars.append(len(builder.vars))
        refs.append(builder.refs)
        safe.append(not builder.has_dup)
    changed = True
    while changed:  # a definition referring to an unsafe one is unsafe
        changed = False
        for fid in range(len(names)):
            if safe[fid] and any(not safe[ref] for ref in refs[fid]):
                safe[fid] = False
                changed = True
    return Book(
        names=names,
        roots=np.array(roots, dtype=np.uint32),
        node_start=np.array(node_start, dtype=np.int64),
        nodes=np.array(nodes, dtype=np.uint64),
        rbag_start=np.array(rbag_start, dtype=np.int64),
        rbag=np.array(rbag, dtype=np.uint64),
        vars=np.array(nvars, dtype=np.uint32),
        safe=np.array(safe, dtype=np.uint8),
    )


def load_book(text: str) -> Book:
    """Parse and build an IR program."""
    return build_book(parse_book(text))
