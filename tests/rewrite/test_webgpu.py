"""The WGSL evaluator against the CPU's numbers and HVM2's published results and counts.

Runs on whatever adapter wgpu finds; in CI that is Mesa's llvmpipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from focusflow.rewrite import numbers
from focusflow.rewrite.errors import HvmOutOfMemoryError, HvmUnsafeCloneError
from focusflow.rewrite.parse import load_book
from focusflow.rewrite.show import normalize_names, readback
from focusflow.rewrite.webgpu import available, normalize_webgpu, operate_words
from tests.rewrite.test_programs import CASES

OK, WHY = available()
pytestmark = pytest.mark.skipif(not OK, reason=f"wgpu unavailable: {WHY}")

PROGRAMS = Path(__file__).parent / "programs"
FAST = ("hello-world.hvm", "list.hvm", "numeric-casts.hvm", "numerics_f24.hvm",
        "numerics_i24.hvm", "numerics_u24.hvm", "tuples.hvm")  # fmt: skip
HEAP = 1 << 18


def _words(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random number words: every type, operator and cast, partials of every operator."""
    payload = rng.integers(0, 1 << 24, n)
    typ = rng.integers(0, 0x17, n)
    # symbols: mostly operator and cast codes, as programs write them
    sym = typ == 0
    payload[sym] = rng.integers(0, 0x17, int(sym.sum()))
    # f24 payloads near 1 as often as anywhere, so sums and products stay normal
    f = rng.random(n) < 0.5
    payload[f] = (rng.integers(0x3E00, 0x4200, int(f.sum())) << 8) | rng.integers(
        0, 256, int(f.sum())
    )
    payload[f] |= rng.integers(0, 2, int(f.sum())) << 23
    return ((payload << 5) | typ).astype(np.uint32)


def _subnormal_or_nan(word: int) -> bool:
    bits = numbers.get_f24_bits(word)
    mag = bits & 0x7FFFFFFF
    return mag > 0x7F800000 or 0 < mag < 0x00800000


def test_numbers_match_the_cpu() -> None:
    """u24, i24, casts, partials and symbols bit for bit; f24 add, sub, mul, %, and
    comparisons too (off subnormals, which a device may flush); a NaN for a NaN."""
    rng = np.random.default_rng(7)
    n = 40_000
    a, b = _words(rng, n), _words(rng, n)
    got = operate_words(np.stack([a, b], axis=1))
    exact_f24 = {numbers.OP_ADD, numbers.OP_SUB, numbers.FP_SUB, numbers.OP_MUL, numbers.OP_REM,
                 numbers.FP_REM, numbers.OP_EQ, numbers.OP_NEQ, numbers.OP_LT, numbers.OP_GT,
                 numbers.FP_SHL, numbers.FP_SHR}  # fmt: skip
    checked = {"int": 0, "f24": 0}
    for x, y, g in zip(a.tolist(), b.tolist(), got.tolist(), strict=True):
        want = int(numbers.operate(x, y))
        tx, ty = x & 0x1F, y & 0x1F
        partial_f24 = {tx, ty} & {numbers.TY_F24} and max(tx, ty) >= numbers.OP_ADD
        if not partial_f24:
            assert g == want, (hex(x), hex(y), hex(g), hex(want))
            checked["int"] += 1
            continue
        op = max(tx, ty)
        if op not in exact_f24 or _subnormal_or_nan(x) or _subnormal_or_nan(y):
            continue
        if _subnormal_or_nan(want) or (
            want & 0x1F == 3 and 0 < numbers.get_f24_bits(want) & 0x7FFFFFFF <= 0x00810000
        ):
            assert _subnormal_or_nan(g) == _subnormal_or_nan(want) or want & 0x1F != 3
            continue
        assert g == want, (hex(x), hex(y), hex(g), hex(want))
        checked["f24"] += 1
    assert checked["int"] > 20_000 and checked["f24"] > 1_000, checked


def test_transcendentals_are_near_the_cpu() -> None:
    """sin, tan (exact reduction near multiples of pi/2), atan2, log, pow and division
    within a few f24 units of the CPU's."""
    rng = np.random.default_rng(3)
    ops = [
        numbers.OP_SHL,
        numbers.OP_SHR,
        numbers.OP_AND,
        numbers.OP_OR,
        numbers.OP_XOR,
        numbers.OP_DIV,
    ]
    xs = rng.uniform(0.1, 4.0, 2000).astype(np.float32)
    ys = rng.uniform(0.1, 4.0, 2000).astype(np.float32)
    pairs = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        op = ops[i % len(ops)]
        p = int(numbers.partial(numbers.new_sym(op), numbers.new_f24(x)))
        pairs.append((p, int(numbers.new_f24(y))))
    got = operate_words(np.array(pairs, dtype=np.uint32))
    for (p, q), g in zip(pairs, got.tolist(), strict=True):
        want = int(numbers.operate(p, q))
        diff = abs(numbers.get_f24(g) - numbers.get_f24(want))
        assert diff <= 4e-4 * max(1.0, abs(numbers.get_f24(want))), (hex(p), hex(q), g, want)


@pytest.mark.parametrize("invocations", [1, 64])
def test_published_programs(invocations: int) -> None:
    for name, result, itrs in CASES:
        if name not in FAST:
            continue
        book = load_book((PROGRAMS / name).read_text())
        net = normalize_webgpu(book, nodes=HEAP, vars_=HEAP, invocations=invocations)
        text = readback(net.node, net.vars, net.root, book.names)
        assert normalize_names(text) == result, name
        assert net.interactions == itrs, name


def test_node_array_is_the_cpu_layout() -> None:
    book = load_book("@main = (1 (2 *))")
    net = normalize_webgpu(book, nodes=64, vars_=64, invocations=1)
    assert net.node.dtype == np.uint64 and net.vars.dtype == np.uint32
    assert readback(net.node, net.vars, net.root, book.names) == "(1 (2 *))"
    live = net.node[net.node != 0]
    assert len(live) == 2 and all(int(p) & 0xFFFFFFFF != 0 for p in live)


def test_a_tiny_heap_is_out_of_memory() -> None:
    book = load_book((PROGRAMS / "tuples.hvm").read_text())
    with pytest.raises(HvmOutOfMemoryError, match="outgrew the heap"):
        normalize_webgpu(book, nodes=40, vars_=40, invocations=1)
    with pytest.raises(HvmOutOfMemoryError, match="outgrew the heap"):
        normalize_webgpu(book, nodes=256, vars_=256, invocations=64)


def test_unsafe_clone_is_refused() -> None:
    book = load_book((PROGRAMS / "safety-check.hvm").read_text())
    with pytest.raises(HvmUnsafeCloneError, match="non-affine global reference: @main__C0"):
        normalize_webgpu(book, nodes=HEAP, vars_=HEAP, invocations=4)
