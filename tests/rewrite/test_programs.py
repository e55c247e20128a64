"""HVM2's published test programs: the published result and HVM2's own count.

Each expected ``Result`` is verbatim from HVM2's snapshot for the program
(``tests/snapshots/run__file@<name>.snap`` in github.com/HigherOrderCO/HVM at
commit 6542760), with variables named ``x0, x1, ...`` as its harness does. The
interaction counts are not in the snapshots: they were measured by running
HVM2's reference interpreter (``hvm run``) on the same files; its C runtime
counts the same (on 1 thread, and on 4 where that was measured), except that
its IO driver adds a probe's CALL or two to ``hello-world`` and ``list``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from focusflow.rewrite.errors import HvmMissingMainError, HvmUnsafeCloneError
from focusflow.rewrite.run import run_text
from focusflow.rewrite.show import normalize_names

PROGRAMS = Path(__file__).parent / "programs"
HEAP = 1 << 24


def _run(name: str):
    return run_text((PROGRAMS / name).read_text(), nodes=HEAP, vars_=HEAP)


def _nest(items: str) -> str:
    """``{a {b ... *}}`` of the space-separated ``items`` (the numeric snapshots)."""
    words = items.split()
    return "".join("{" + w + " " for w in words) + "*" + "}" * len(words)


HELLO = (
    "((@String/Cons/tag (104 (((@String/Cons/tag (101 (((@String/Cons/tag (108 (((@String/Con"
    "s/tag (108 (((@String/Cons/tag (111 (((@String/Cons/tag (44 (((@String/Cons/tag (32 (((@"
    "String/Cons/tag (119 (((@String/Cons/tag (111 (((@String/Cons/tag (114 (((@String/Cons/t"
    "ag (108 (((@String/Cons/tag (100 (@String/Nil x0))) x0) x1))) x1) x2))) x2) x3))) x3) x4"
    "))) x4) x5))) x5) x6))) x6) x7))) x7) x8))) x8) x9))) x9) x10))) x10) x11))) x11)"
)
LIST = (
    "((@List/Cons/tag (((@List/Cons/tag (1 (((@List/Cons/tag (* (((@List/Cons/tag (* "
    "(@List/Nil x0))) x0) x1))) x1) x2))) x2) (@List/Nil x3))) x3)"
)
CASTS = _nest(
    "0 1234 4321 16771538 2 0 16777215 16777215 0 0 +0 +1234 +4321 -5678 +2 -12 +8388607 -8388608"
    " +8388607 -8388608 +0 +NaN +inf -inf 2.1500244 -2.1500244 0.15000153 -1234.0 1234.0 123456.0"
    " 16775936.0 [u24] [i24] [f24]"
)
F24 = _nest(
    "+inf -inf +NaN 2.5 -1.5 1.1499939 0.25 0.5 0 1 1 0 0 0 0 +NaN +inf -inf 1.019989 0.1000061"
    " 0.1000061 -0.1000061 -0.1000061 -8.908799e-6 1.0 8.908799e-6 1.0"
)
I24 = _nest("+12 +8 +20 +5 +0 0 1 0 1 +2 +10 +8 +8388607 -8388608 +1 +1 -1 -1")
U24 = _nest("12 8 20 5 0 0 1 0 1 2 10 8 40 2 16777215 0 3")

# (file, published result, interactions measured with HVM2's reference interpreter)
CASES = [
    ("hello-world.hvm", HELLO, 37),
    ("list.hvm", LIST, 179),
    ("numeric-casts.hvm", CASTS, 137),
    ("numerics_f24.hvm", F24, 187),
    ("numerics_i24.hvm", I24, 94),
    ("numerics_u24.hvm", U24, 89),
    ("tuples.hvm", "((0 (3 (4 (5 (6 (7 (8 (1 (2 x0))))))))) x0)", 48_144),
    ("sort_bitonic.hvm", "8386560", 9_480_165),
    ("sum_rec.hvm", "16252928", 25_165_807),
    ("sum_tree.hvm", "1048576", 44_040_165),
    ("stress.hvm", "0", 100_668_918),
    ("sort_radix.hvm", "16744448", 124_256_297),
]


@pytest.mark.parametrize(("name", "result", "itrs"), CASES, ids=[c[0] for c in CASES])
def test_published_program(name: str, result: str, itrs: int) -> None:
    out = _run(name)
    assert normalize_names(out.result) == result
    assert out.interactions == itrs


def test_demo_io_without_io_stops_at_the_first_call() -> None:
    # `hvm run` (no IO driver) on examples/demo_io/main.hvm: the result is the
    # first IO/Call (to OPEN); 470 interactions, measured with HVM2's interpreter.
    out = _run("demo_io.hvm")
    assert normalize_names(out.result).startswith(
        "((@IO/Call/tag (@IO/MAGIC (((@String/Cons/tag (79 (((@String/Cons/tag (80 "
    )
    assert out.interactions == 470


def test_empty_program_has_no_main() -> None:
    # HVM2's snapshot: a panic "missing `@main` definition"; here a precise error.
    with pytest.raises(HvmMissingMainError, match="no @main"):
        _run("empty.hvm")


def test_safety_check_refuses_to_clone_an_unsafe_reference() -> None:
    # HVM2's snapshot: "ERROR: attempt to clone a non-affine global reference."
    with pytest.raises(HvmUnsafeCloneError, match="non-affine global reference: @main__C0"):
        _run("safety-check.hvm")
