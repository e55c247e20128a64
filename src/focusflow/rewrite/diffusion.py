"""One diffusion step of the focus engine as an interaction net, in integer fixed point.

The focus engine's diffusion step (docs/focus.md §2) with uniform teleport is

    D(r)_i = alpha * sum_j P[j, i] r_j + (alpha * D + (1 - alpha) * M) / n

with ``D`` the mass of the dangling nodes, ``M`` the total mass, ``P[j, i] = w(j, i) / d_j``
and ``d_j`` node j's out-weight. Here it is computed exactly on the VM's u24 numbers,
every division a floor, in this order:

    d_j  = sum_k w_jk                                        (j's out-weight)
    q_jk = floor(w_jk * r_j / d_j)                           (one per edge j -> i)
    s_i  = sum of q_jk over the edges into i
    t    = floor((a * D + (b - a) * M) / (b * n))            (D dangling mass, M total)
    r'_i = floor(a * s_i / b) + t

with ``alpha = a / b``. Ranks are integers in units of ``2**-16`` (a distribution scaled
by ``RANK_SCALE``). ``generate_program`` writes the step as an IR program (docs/hvm.md,
"A focus kernel as rewrites"): the graph becomes the wiring of the net, each node with
out-edges a definition ``@spread<j>`` that duplicates its rank and computes its out-weight
and its shares, each node a definition ``@gather<i>`` that adds the shares it receives and
applies damping and teleport; ``@main`` passes each rank once and returns the new ranks
as the tuple ``(r'_0 (r'_1 (... (r'_{n-1} *))))``.

**The bound.** Every intermediate value stays at most ``2**24 - 1`` (u24 arithmetic
wraps) when

* the ranks are integers ``>= 0`` whose sum ``M`` is at most ``RANK_SCALE = 2**16``;
* the weights are integers in ``[1, MAX_WEIGHT = 255]``;
* ``alpha = a / b`` with integers ``0 <= a <= b`` and ``1 <= b <= MAX_ALPHA_DEN = 255``;
* the graph has ``1 .. MAX_NODES = 256`` nodes and at most ``MAX_EDGES = 512`` edges.

Then ``w * r_j <= 255 * 2**16``, ``d_j <= 255 * 512``, ``s_i <= M`` (node j hands out at
most ``r_j``), ``a * s_i``, ``a * D + (b - a) * M <= b * M <= 255 * 2**16`` and
``b * n <= 255 * 256``, all below ``2**24``. The node and edge limits also keep every
definition under HVM2's C runtime limit of 4095 nodes and redexes per definition. A graph
or rank vector beyond the bound is refused with a ``ValueError`` that names the quantity.

**Against the real step.** Each of the three floors loses less than one unit, so with
``k_i`` the number of edges into i, the exact rational step ``y_i`` (computed in float64
by ``diffusion_step_float``) satisfies ``0 <= y_i - r'_i < alpha * k_i + 2`` units of
``2**-16`` (``rounding_bound``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from focusflow.rewrite.run import run_text

RANK_BITS = 16
RANK_SCALE = 1 << RANK_BITS
MAX_WEIGHT = 255
MAX_ALPHA_DEN = 255
MAX_NODES = 256
MAX_EDGES = 512
#: 0.85, the engine's default damping, as ``(a, b)``.
DEFAULT_ALPHA = (17, 20)

# Heap for the VM: the step allocates a few dozen slots per edge; 2**20 is ample for
# MAX_EDGES and far cheaper to allocate than the VM's default.
_HEAP_SLOTS = 1 << 20


def _as_int_array(name: str, values: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if (
        arr.dtype.kind == "f"
        and np.all(np.isfinite(arr))
        and np.all(arr == np.floor(arr))
        and np.abs(arr).max() < 2**53
    ):
        return arr.astype(np.int64)
    raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")


def check_inputs(
    indptr: Sequence[int] | np.ndarray,
    indices: Sequence[int] | np.ndarray,
    weights: Sequence[int] | np.ndarray,
    ranks: Sequence[int] | np.ndarray,
    alpha: tuple[int, int] = DEFAULT_ALPHA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """The inputs as int64 arrays, or a ``ValueError`` naming what is malformed or
    what exceeds the bound of the module docstring."""
    ptr = _as_int_array("indptr", indptr)
    idx = _as_int_array("indices", indices)
    w = _as_int_array("weights", weights)
    r = _as_int_array("ranks", ranks)
    n = r.size
    if not 1 <= n <= MAX_NODES:
        raise ValueError(f"the graph has {n} nodes; the integer step is bounded to 1..{MAX_NODES}")
    if ptr.size != n + 1:
        raise ValueError(f"indptr has {ptr.size} entries; {n} ranks need {n + 1}")
    if ptr[0] != 0 or np.any(np.diff(ptr) < 0):
        raise ValueError("indptr must start at 0 and never decrease")
    nnz = int(ptr[-1])
    if idx.size != nnz or w.size != nnz:
        raise ValueError(
            f"indptr ends at {nnz} but there are {idx.size} indices and {w.size} weights"
        )
    if nnz > MAX_EDGES:
        raise ValueError(
            f"the graph has {nnz} edges; the integer step is bounded to {MAX_EDGES} edges"
        )
    if nnz and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must lie in [0, {n}); found {idx.min()}..{idx.max()}")
    if nnz and (w.min() < 1 or w.max() > MAX_WEIGHT):
        bad = int(np.flatnonzero((w < 1) | (w > MAX_WEIGHT))[0])
        raise ValueError(
            f"weights must be integers in [1, {MAX_WEIGHT}]; edge {bad} has weight {w[bad]}"
        )
    if r.min() < 0:
        raise ValueError(f"ranks must be >= 0; node {int(np.argmin(r))} has {r.min()}")
    total = int(r.sum())
    if total > RANK_SCALE:
        raise ValueError(
            f"the ranks sum to {total}; the integer step is bounded to a total of "
            f"{RANK_SCALE} (2**{RANK_BITS})"
        )
    a, b = (int(alpha[0]), int(alpha[1]))
    if (a, b) != tuple(alpha) or not (1 <= b <= MAX_ALPHA_DEN and 0 <= a <= b):
        raise ValueError(
            f"alpha must be integers (a, b) with 0 <= a <= b and 1 <= b <= {MAX_ALPHA_DEN}, "
            f"got {alpha!r}"
        )
    return ptr, idx, w, r, (a, b)


def diffusion_step_int(
    indptr: Sequence[int] | np.ndarray,
    indices: Sequence[int] | np.ndarray,
    weights: Sequence[int] | np.ndarray,
    ranks: Sequence[int] | np.ndarray,
    alpha: tuple[int, int] = DEFAULT_ALPHA,
) -> np.ndarray:
    """The integer step of the module docstring in numpy (int64, the same floors in the
    same order), independent of the IR."""
    return _step_int(*check_inputs(indptr, indices, weights, ranks, alpha))


def _step_int(
    ptr: np.ndarray, idx: np.ndarray, w: np.ndarray, r: np.ndarray, alpha: tuple[int, int]
) -> np.ndarray:
    a, b = alpha
    n = r.size
    outdeg = np.diff(ptr)
    src = np.repeat(np.arange(n), outdeg)
    d = np.zeros(n, dtype=np.int64)
    np.add.at(d, src, w)
    q = (w * r[src]) // d[src]
    s = np.zeros(n, dtype=np.int64)
    np.add.at(s, idx, q)
    dangling_mass = int(r[outdeg == 0].sum())
    teleport = (a * dangling_mass + (b - a) * int(r.sum())) // (b * n)
    out: np.ndarray = (a * s) // b + teleport
    return out


def diffusion_step_float(
    indptr: Sequence[int] | np.ndarray,
    indices: Sequence[int] | np.ndarray,
    weights: Sequence[int] | np.ndarray,
    ranks: Sequence[int] | np.ndarray,
    alpha: tuple[int, int] = DEFAULT_ALPHA,
) -> np.ndarray:
    """The real diffusion step ``D(r)`` (docs/focus.md §2, uniform teleport) in float64 with
    a dense transition matrix, in the units of ``ranks``."""
    ptr, idx, w, r, (a, b) = check_inputs(indptr, indices, weights, ranks, alpha)
    n = r.size
    al = a / b
    dense = np.zeros((n, n))
    np.add.at(dense, (np.repeat(np.arange(n), np.diff(ptr)), idx), w.astype(np.float64))
    out_w = dense.sum(axis=1)
    dangling = out_w == 0
    p = dense / np.where(dangling, 1.0, out_w)[:, None]
    x = r.astype(np.float64)
    mass = al * x[dangling].sum() + (1.0 - al) * x.sum()
    step: np.ndarray = al * (p.T @ x) + mass / n
    return step


def rounding_bound(
    indices: Sequence[int] | np.ndarray, n: int, alpha: tuple[int, int] = DEFAULT_ALPHA
) -> np.ndarray:
    """Per node, the strict upper bound ``alpha * k_i + 2`` on ``D(r)_i - r'_i`` (units of
    the ranks; the difference is also ``>= 0``), with ``k_i`` the edges into i."""
    k = np.bincount(np.asarray(indices, dtype=np.int64), minlength=n).astype(np.float64)
    bound: np.ndarray = alpha[0] / alpha[1] * k + 2.0
    return bound


# ---------------------------------------------------------------------------------------
# The IR program


def _tup(items: Sequence[str]) -> str:
    """``(a (b c))``: a right-nested tuple of at least one item."""
    text = items[-1]
    for item in reversed(items[:-1]):
        text = f"({item} {text})"
    return text


def _dups(names: Sequence[str]) -> str:
    """``{a {b c}}``: a duplicator tree handing one value to every name."""
    text = names[-1]
    for name in reversed(names[:-1]):
        text = f"{{{name} {text}}}"
    return text


def _sum(start: str, terms: Sequence[str], out: str) -> str:
    """A redex making ``out = start + terms[0] + ...`` (each term a variable)."""
    tree = out
    for term in reversed(terms):
        tree = f"$([+] $({term} {tree}))"
    return f"& {start} ~ {tree}"


def _library(a: int, b: int, n: int) -> list[str]:
    k = b * n
    return [
        "// q = floor(w * r / d): the share of one edge",
        "@share = ($([*] $(r $([/] $(d q)))) (d (r q)))",
        f"// y = floor({a} * s / {b}) + t: damping and teleport",
        f"@damp = ($([*{a}] $([:/{b}] $([+] $(t y)))) (t y))",
        f"// t = floor(({a} * D + {b - a} * (D + L)) / {k}): D dangling mass, L the others'",
        f"@teleport = ({{$([*{a}] $([+] $(c $([:/{k}] t)))) $([+] $(l $([*{b - a}] c)))}} (l t))",
    ]


def generate_program(
    indptr: Sequence[int] | np.ndarray,
    indices: Sequence[int] | np.ndarray,
    weights: Sequence[int] | np.ndarray,
    ranks: Sequence[int] | np.ndarray,
    alpha: tuple[int, int] = DEFAULT_ALPHA,
) -> str:
    """The IR program of one integer diffusion step (module docstring); ``ValueError``
    beyond the bound."""
    ptr, idx, w, r, (a, b) = check_inputs(indptr, indices, weights, ranks, alpha)
    n = r.size
    lines = _library(a, b, n)
    incoming: list[list[str]] = [[] for _ in range(n)]
    main_redexes: list[str] = []
    mass_terms: list[str] = []
    dangling: list[int] = []
    for j in range(n):
        lo, hi = int(ptr[j]), int(ptr[j + 1])
        if lo == hi:
            dangling.append(int(r[j]))
            continue
        m = hi - lo
        rs = [f"r{k}" for k in range(m)]
        ds = [f"d{k}" for k in range(m)]
        qs = [f"q{k}" for k in range(m)]
        wsum = "".join(f"$([+{int(w[e])}] " for e in range(lo, hi)) + _dups(ds) + ")" * m
        targets = ", ".join(str(int(i)) for i in idx[lo:hi])
        lines.append(f"// node {j}: {m} out-edge{'s' if m > 1 else ''}, to {targets}")
        lines.append(f"@spread{j} = ({_dups([*rs, 'mass'])} (mass {_tup(qs)}))")
        lines.append(f"  & 0 ~ {wsum}")
        lines.extend(
            f"  & @share ~ ({int(w[lo + k])} ({ds[k]} ({rs[k]} {qs[k]})))" for k in range(m)
        )
        shares = [f"e{e}" for e in range(lo, hi)]
        for e in range(lo, hi):
            incoming[int(idx[e])].append(f"e{e}")
        main_redexes.append(f"& @spread{j} ~ ({int(r[j])} (m{j} {_tup(shares)}))")
        mass_terms.append(f"m{j}")
    for i in range(n):
        ss = [f"s{k}" for k in range(len(incoming[i]))]
        if not ss:
            lines.append(f"@gather{i} = (t y)\n  & @damp ~ (0 (t y))")
        else:
            lines.append(f"@gather{i} = {_tup([*ss, '(t y)'])}")
            lines.append(f"  {_sum('0', ss, 'sum')}\n  & @damp ~ (sum (t y))")
        main_redexes.append(f"& @gather{i} ~ {_tup([*incoming[i], f'(t{i} y{i})'])}")
    dsum = "".join(f"$([+{x}] " for x in dangling) + "dm" + ")" * len(dangling)
    main_redexes.append(f"& 0 ~ {dsum}" if dangling else "& 0 ~ $([+0] dm)")
    main_redexes.append(_sum("0", mass_terms, "lm") if mass_terms else "& 0 ~ $([+0] lm)")
    main_redexes.append(f"& @teleport ~ (dm (lm {_dups([f't{i}' for i in range(n)])}))")
    lines.append(f"@main = {_tup([*(f'y{i}' for i in range(n)), '*'])}")
    lines.extend(f"  {redex}" for redex in main_redexes)
    return "\n".join(lines) + "\n"


_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def parse_ranks(result: str, n: int) -> np.ndarray:
    """The ranks of a readback ``(y0 (y1 (... *)))`` of ``n`` u24 numbers."""
    tokens = _TOKEN.findall(result)
    expected = n * 3 + 1
    values: list[int] = []
    ok = len(tokens) == expected and tokens[-n - 1 :] == ["*"] + [")"] * n
    if ok:
        for k in range(n):
            head, number = tokens[2 * k], tokens[2 * k + 1]
            if head != "(" or not number.isdigit():
                ok = False
                break
            values.append(int(number))
    if not ok:
        raise ValueError(f"readback is not a tuple of {n} u24 numbers: {result[:200]!r}")
    return np.array(values, dtype=np.int64)


def diffusion_step_via_rewrites(
    indptr: Sequence[int] | np.ndarray,
    indices: Sequence[int] | np.ndarray,
    weights: Sequence[int] | np.ndarray,
    ranks: Sequence[int] | np.ndarray,
    alpha: tuple[int, int] = DEFAULT_ALPHA,
) -> tuple[np.ndarray, int, float]:
    """Generate the step's program, run it on the VM and read the new ranks back:
    ``(ranks, interactions, seconds of reduction)``."""
    text = generate_program(indptr, indices, weights, ranks, alpha)
    res = run_text(text, nodes=_HEAP_SLOTS, vars_=_HEAP_SLOTS)
    return parse_ranks(res.result, len(np.asarray(ranks))), res.interactions, res.seconds


def measure(
    sizes: Sequence[tuple[int, int]] = ((16, 32), (64, 128), (128, 256), (256, 512)),
    seed: int = 0,
    repeats: int = 20,
) -> list[dict[str, float]]:
    """Interactions and times (best of ``repeats``) of the step on random graphs of
    ``(nodes, edges)``: generating the program, parsing and building it, the VM's
    reduction, and numpy's integer step (its arithmetic only, inputs already checked)."""
    import time

    from focusflow.rewrite.cpu import normalize
    from focusflow.rewrite.parse import load_book
    from focusflow.rewrite.show import readback

    rng = np.random.default_rng(seed)
    rows: list[dict[str, float]] = []
    diffusion_step_via_rewrites([0, 0], [], [], [1])  # load the compiled evaluator
    for n, nnz in sizes:
        src = np.sort(rng.integers(0, n, nnz))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
        indices = rng.integers(0, n, nnz)
        weights = rng.integers(1, MAX_WEIGHT + 1, nnz)
        ranks = rng.multinomial(RANK_SCALE, np.full(n, 1.0 / n))
        checked = check_inputs(indptr, indices, weights, ranks)
        want = _step_int(*checked)
        best = {"generate": np.inf, "build": np.inf, "reduce": np.inf, "numpy": np.inf}
        itrs = 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            text = generate_program(indptr, indices, weights, ranks)
            t1 = time.perf_counter()
            book = load_book(text)
            t2 = time.perf_counter()
            net = normalize(book, nodes=_HEAP_SLOTS, vars_=_HEAP_SLOTS)
            got = parse_ranks(readback(net.node, net.vars, net.root, book.names), n)
            if not np.array_equal(got, want):
                raise AssertionError(f"the net and numpy disagree on ({n}, {nnz})")
            t3 = time.perf_counter()
            _step_int(*checked)
            t4 = time.perf_counter()
            itrs = net.interactions
            for key, secs in (
                ("generate", t1 - t0),
                ("build", t2 - t1),
                ("reduce", net.seconds),
                ("numpy", t4 - t3),
            ):
                best[key] = min(best[key], secs)
        rows.append(
            {
                "nodes": n,
                "edges": nnz,
                "interactions": itrs,
                "per_edge": itrs / nnz,
                "generate_us": best["generate"] * 1e6,
                "parse_build_us": best["build"] * 1e6,
                "reduce_us": best["reduce"] * 1e6,
                "numpy_us": best["numpy"] * 1e6,
            }
        )
    return rows


if __name__ == "__main__":
    for row in measure():
        print(
            "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            )
        )
