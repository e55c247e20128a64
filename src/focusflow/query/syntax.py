"""Datalog programs in Soufflé's rule syntax, parsed into a small AST.

The language is Soufflé's without declarations: relations are created by the
rules that define them and typed by inference (``analysis.py``). Any
identifier in a term position is a variable, ``_`` is anonymous, constants
are ``"strings"`` and numbers. A body literal is an atom, a negated atom
``!p(x)``, a comparison ``x < y + 1``, a binding ``z = x * 2`` or an
aggregate ``c = count : { link(x, _) }`` (also ``sum e``, ``min e``,
``max e``). ``count``, ``sum``, ``min`` and ``max`` are reserved words, as in
Soufflé. Comments are ``// ...`` and ``/* ... */``.

The parser is hand-written (a tokenizer and recursive descent) so that every
error names the line and column where the program stops making sense.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from focusflow.query.errors import QuerySyntaxError

MAX_PROGRAM_BYTES = 1 << 20
MAX_DEPTH = 64
AGGREGATES = frozenset({"count", "sum", "min", "max"})
COMPARISONS = ("<=", ">=", "!=", "=", "<", ">")


@dataclass(frozen=True)
class Pos:
    line: int
    column: int


@dataclass(frozen=True)
class Var:
    name: str
    pos: Pos


@dataclass(frozen=True)
class Wildcard:
    pos: Pos


@dataclass(frozen=True)
class Const:
    value: str | int | float
    pos: Pos


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr
    pos: Pos


@dataclass(frozen=True)
class Neg:
    arg: Expr
    pos: Pos


Expr = Var | Wildcard | Const | BinOp | Neg


@dataclass(frozen=True)
class Atom:
    name: str
    args: tuple[Expr, ...]
    pos: Pos
    negated: bool = False


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    pos: Pos


@dataclass(frozen=True)
class Aggregate:
    """``target = func expr : { body }``: ``expr`` is None for ``count``."""

    target: Var
    func: str
    expr: Expr | None
    body: tuple[Literal, ...]
    pos: Pos


Literal = Atom | Compare | Aggregate


@dataclass(frozen=True)
class Rule:
    head: Atom
    body: tuple[Literal, ...]
    pos: Pos


@dataclass(frozen=True)
class Program:
    rules: tuple[Rule, ...]


_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>//[^\n]*|/\*(?:.|\n)*?\*/)
  | (?P<number>(?:\d+\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:-|<=|>=|!=|[-+*/%(),.:{}!=<>])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: Pos


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    line, line_start = 1, 0
    while i < len(text):
        pos = Pos(line, i - line_start + 1)
        if text.startswith("/*", i) and text.find("*/", i + 2) < 0:
            raise QuerySyntaxError("unterminated comment", pos.line, pos.column)
        m = _TOKEN.match(text, i)
        if m is None:
            if text[i] == '"':
                raise QuerySyntaxError("unterminated string", pos.line, pos.column)
            raise QuerySyntaxError(f"unexpected character {text[i]!r}", pos.line, pos.column)
        kind = m.lastgroup or ""
        chunk = m.group()
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, chunk, pos))
        newlines = chunk.count("\n")
        if newlines:
            line += newlines
            line_start = i + chunk.rfind("\n") + 1
        i = m.end()
    out.append(_Tok("end", "", Pos(line, i - line_start + 1)))
    return out


def _unquote(tok: _Tok) -> str:
    body = tok.text[1:-1]
    out: list[str] = []
    k = 0
    while k < len(body):
        ch = body[k]
        if ch == "\\":
            esc = body[k + 1]
            if esc not in _ESCAPES:
                raise QuerySyntaxError(
                    f"unknown escape \\{esc} in string", tok.pos.line, tok.pos.column + k + 1
                )
            out.append(_ESCAPES[esc])
            k += 2
        else:
            out.append(ch)
            k += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    # --- token helpers -------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def _fail(self, message: str, tok: _Tok | None = None) -> QuerySyntaxError:
        t = tok or self.tok
        found = "end of program" if t.kind == "end" else repr(t.text)
        return QuerySyntaxError(f"{message}, found {found}", t.pos.line, t.pos.column)

    def _take(self, text: str, what: str | None = None) -> _Tok:
        if self.tok.text != text or self.tok.kind in ("string", "end"):
            raise self._fail(f"expected {what or repr(text)}")
        tok = self.tok
        self.i += 1
        return tok

    def _at(self, text: str) -> bool:
        return self.tok.text == text and self.tok.kind == "op"

    # --- grammar -------------------------------------------------------------
    def program(self) -> Program:
        rules = []
        while self.tok.kind != "end":
            if self._at("."):
                nxt = self._peek()
                if nxt.kind == "ident":
                    raise QuerySyntaxError(
                        f"directives such as .{nxt.text} are not needed: relations are "
                        "declared by their rules and the output is chosen by --output",
                        self.tok.pos.line,
                        self.tok.pos.column,
                    )
            rules.append(self.rule())
        return Program(tuple(rules))

    def rule(self) -> Rule:
        start = self.tok.pos
        head = self.atom(head=True)
        body: list[Literal] = []
        if self._at(":-"):
            self.i += 1
            body = self.body(closer=".")
        self._take(".", "'.' at the end of the rule")
        return Rule(head, tuple(body), start)

    def body(self, closer: str) -> list[Literal]:
        items = [self.literal()]
        while self._at(","):
            self.i += 1
            items.append(self.literal())
        if not self._at(closer):
            raise self._fail(f"expected ',' or '{closer}'")
        return items

    def literal(self) -> Literal:
        tok = self.tok
        if self._at("!"):
            self.i += 1
            atom = self.atom(head=False)
            return Atom(atom.name, atom.args, tok.pos, negated=True)
        if tok.kind == "ident" and self._peek().text == "(" and tok.text not in AGGREGATES:
            return self.atom(head=False)
        if tok.kind == "ident" and self._peek().text == "=" and self._peek(2).text in AGGREGATES:
            return self.aggregate()
        left = self.expr()
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            op = self.tok.text
            self.i += 1
            right = self.expr()
            return Compare(op, left, right, tok.pos)
        raise self._fail("expected an atom, a comparison or an aggregate")

    def aggregate(self) -> Aggregate:
        name = self.tok
        self.i += 2
        func_tok = self.tok
        func = func_tok.text
        self.i += 1
        expr: Expr | None = None
        if func == "count":
            if not self._at(":"):
                raise self._fail("count takes no expression: expected ':'")
        else:
            if self._at(":"):
                raise self._fail(f"{func} needs an expression before ':'")
            expr = self.expr()
        self._take(":", "':' after the aggregate")
        if self._at("{"):
            self.i += 1
            self._enter()
            body = self.body(closer="}")
            self.depth -= 1
            self._take("}")
        else:
            body = [self.atom(head=False)]
        return Aggregate(Var(name.text, name.pos), func, expr, tuple(body), func_tok.pos)

    def atom(self, head: bool) -> Atom:
        tok = self.tok
        if tok.kind != "ident":
            raise self._fail("expected a relation name")
        if tok.text in AGGREGATES:
            raise self._fail(f"{tok.text} is a reserved word and cannot name a relation")
        self.i += 1
        self._take("(", f"'(' after {tok.text}")
        args: list[Expr] = []
        if not self._at(")"):
            args.append(self.expr() if head else self.term())
            while self._at(","):
                self.i += 1
                args.append(self.expr() if head else self.term())
        self._take(")", "',' or ')'")
        return Atom(tok.text, tuple(args), tok.pos)

    def term(self) -> Expr:
        """An argument of a body atom: a variable, ``_`` or a constant."""
        tok = self.tok
        if self._at("-") and self._peek().kind == "number":
            self.i += 2
            value = self._number(self.toks[self.i - 1])
            return Const(-value, tok.pos)
        if tok.kind in ("ident", "number", "string"):
            return self.primary()
        raise self._fail("expected a variable, '_' or a constant")

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._fail(f"nesting deeper than {MAX_DEPTH}")

    def expr(self) -> Expr:
        self._enter()
        left = self.product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.tok
            self.i += 1
            left = BinOp(op.text, left, self.product(), op.pos)
        self.depth -= 1
        return left

    def product(self) -> Expr:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/", "%"):
            op = self.tok
            self.i += 1
            left = BinOp(op.text, left, self.unary(), op.pos)
        return left

    def unary(self) -> Expr:
        if self._at("-"):
            tok = self.tok
            self.i += 1
            self._enter()
            inner = self.unary()
            self.depth -= 1
            if isinstance(inner, Const) and not isinstance(inner.value, str):
                return Const(-inner.value, tok.pos)
            return Neg(inner, tok.pos)
        return self.primary()

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            return Const(self._number(tok), tok.pos)
        if tok.kind == "string":
            self.i += 1
            return Const(_unquote(tok), tok.pos)
        if tok.kind == "ident":
            if tok.text in AGGREGATES:
                raise self._fail(f"{tok.text} is a reserved word: write 'v = {tok.text} ...'")
            self.i += 1
            if tok.text == "_":
                return Wildcard(tok.pos)
            return Var(tok.text, tok.pos)
        if self._at("("):
            self.i += 1
            inner = self.expr()
            self._take(")", "')'")
            return inner
        raise self._fail("expected a value")

    @staticmethod
    def _number(tok: _Tok) -> int | float:
        text = tok.text
        if re.fullmatch(r"\d+", text):
            value = int(text)
            if value >= 1 << 63:
                raise QuerySyntaxError(
                    "integer does not fit in 64 bits", tok.pos.line, tok.pos.column
                )
            return value
        return float(text)


def parse(text: str) -> Program:
    """Parse a whole program; raises :class:`QuerySyntaxError` with line and column."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PROGRAM_BYTES:
        raise QuerySyntaxError(f"program longer than {MAX_PROGRAM_BYTES} bytes", 1, 1)
    program = _Parser(text).program()
    if not program.rules:
        raise QuerySyntaxError("the program has no rules", 1, 1)
    return program


def variables(expr: Expr | None) -> list[Var]:
    """Variables of an expression, in order of appearance."""
    if expr is None or isinstance(expr, (Const, Wildcard)):
        return []
    if isinstance(expr, Var):
        return [expr]
    if isinstance(expr, Neg):
        return variables(expr.arg)
    return variables(expr.left) + variables(expr.right)
