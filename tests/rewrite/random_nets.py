"""Random well-formed IR programs that always terminate, for cross-evaluator tests.

A program is a random straight-line computation on u24 numbers, written as a
net: binary operators (``& [op] ~ $(x $(y r))``), switches
(``& v ~ ?((z (p q)) r) & [+k] ~ $(p q)``), pairs built and taken apart
(``& (x y) ~ (p q)`` after the pair may have been duplicated, so duplicators
meet constructors), calls of two small definitions (one copies its argument
with a duplicator, one holds a switch), values used several times through
trees of duplicators and unused ones erased. Every variable occurs exactly
twice and nothing recurses, so each program reaches a normal form: the tuple
``(v1 (v2 ... *))`` of some values. The reference value of each is computed
here in Python as the program is generated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

MASK = 0xFFFFFF
OPS = {
    "+": lambda x, y: (x + y) & MASK,
    "-": lambda x, y: (x - y) & MASK,
    "*": lambda x, y: (x * y) & MASK,
    "&": lambda x, y: x & y,
    "|": lambda x, y: x | y,
    "^": lambda x, y: x ^ y,
    "<": lambda x, y: int(x < y),
    ">": lambda x, y: int(x > y),
    "=": lambda x, y: int(x == y),
}
LIBRARY = """
@sq = ({x1 x2} r) & [*] ~ $(x1 $(x2 r))
@pred_or = (v (d r)) & v ~ ?((d (p q)) r) & [+0] ~ $(p q)
"""


@dataclass
class _Value:
    """A number the program computes: its port's name (or a literal) and its value."""

    name: str
    value: int
    literal: bool = False
    uses: list[str] = field(default_factory=list)


@dataclass
class RandomProgram:
    """The program's text and the values its result must hold."""

    text: str
    expected: list[int]

    @property
    def result(self) -> str:
        """The result as the VM prints it."""
        return "".join(f"({v} " for v in self.expected) + "*" + ")" * len(self.expected)


def random_program(seed: int, steps: int = 30) -> RandomProgram:
    """A random terminating program of about ``steps`` operations."""
    rng = random.Random(seed)
    redexes: list[str] = []
    values: list[_Value] = []
    fresh = iter(range(1_000_000))

    def new_var() -> str:
        return f"v{next(fresh)}"

    def literal() -> _Value:
        n = rng.randrange(0, 1 << 24) if rng.random() < 0.3 else rng.randrange(0, 20)
        return _Value(str(n), n, literal=True)

    def use(v: _Value) -> str:
        """A port to read ``v`` through (its occurrence is wired up at the end)."""
        if v.literal:
            return v.name
        port = new_var()
        v.uses.append(port)
        return port

    def pick() -> _Value:
        if not values or rng.random() < 0.2:
            return literal()
        return rng.choice(values)

    for _ in range(steps):
        kind = rng.random()
        out = _Value(new_var(), 0)
        if kind < 0.45:
            op = rng.choice(list(OPS))
            x, y = pick(), pick()
            redexes.append(f"[{op}] ~ $({use(x)} $({use(y)} {out.name}))")
            out.value = OPS[op](x.value, y.value)
        elif kind < 0.6:
            v, z, k = pick(), literal(), rng.randrange(0, 50)
            p, q = new_var(), new_var()
            redexes.append(f"{use(v)} ~ ?(({z.name} ({p} {q})) {out.name})")
            redexes.append(f"[+{k}] ~ $({p} {q})")
            out.value = z.value if v.value == 0 else (v.value - 1 + k) & MASK
        elif kind < 0.8:
            # a pair of two values, used twice (a duplicator meets the pair),
            # each copy taken apart: the sum of one copy's halves, and the
            # other's first half
            x, y = pick(), pick()
            pair, c1, c2 = new_var(), new_var(), new_var()
            a1, b1, a2 = new_var(), new_var(), new_var()
            redexes.append(f"({use(x)} {use(y)}) ~ {{{c1} {c2}}}")
            redexes.append(f"{c1} ~ ({a1} {b1})")
            redexes.append(f"{c2} ~ ({a2} *)")
            sum_ = new_var()
            redexes.append(f"[+] ~ $({a1} $({b1} {sum_}))")
            values.append(_Value(sum_, (x.value + y.value) & MASK))
            redexes.append(f"[+0] ~ $({a2} {out.name})")
            del pair
            out.value = x.value
        elif kind < 0.9:
            x = pick()
            redexes.append(f"@sq ~ ({use(x)} {out.name})")
            out.value = (x.value * x.value) & MASK
        else:
            v, d = pick(), pick()
            redexes.append(f"@pred_or ~ ({use(v)} ({use(d)} {out.name}))")
            out.value = d.value if v.value == 0 else (v.value - 1) & MASK
        values.append(out)
    shown = rng.sample(values, k=min(len(values), rng.randrange(1, 6)))
    root = "".join(f"({use(v)} " for v in shown) + "*" + ")" * len(shown)
    for v in values:
        # the value's own port meets its uses: none (erased), one (a wire), or
        # many (a tree of duplicators)
        if not v.uses:
            redexes.append(f"{v.name} ~ *")
            continue
        tree = v.uses[-1]
        for port in reversed(v.uses[:-1]):
            tree = f"{{{port} {tree}}}"
        redexes.append(f"{v.name} ~ {tree}")
    text = "@main = " + root + "".join(f"\n  & {r}" for r in redexes) + "\n" + LIBRARY
    return RandomProgram(text, [v.value for v in shown])
