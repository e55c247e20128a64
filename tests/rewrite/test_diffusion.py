"""One integer diffusion step run as an interaction net (focusflow.rewrite.diffusion)."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.rewrite.diffusion import (
    DEFAULT_ALPHA,
    MAX_ALPHA_DEN,
    MAX_EDGES,
    MAX_NODES,
    MAX_WEIGHT,
    RANK_SCALE,
    diffusion_step_float,
    diffusion_step_int,
    diffusion_step_via_rewrites,
    generate_program,
    parse_ranks,
    rounding_bound,
)
from focusflow.rewrite.parse import load_book


def random_graph(
    rng: np.random.Generator, n: int, nnz: int, *, simple: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays of a random graph; ``simple``: no self-loops, no repeated edges."""
    src = rng.integers(0, n, nnz)
    dst = rng.integers(0, n, nnz)
    if simple:
        keep = src != dst
        pairs = np.unique(np.stack([src[keep], dst[keep]], axis=1), axis=0)
        src, dst = pairs[:, 0], pairs[:, 1]
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    weights = rng.integers(1, MAX_WEIGHT + 1, dst.size)
    return indptr, dst, weights


def random_ranks(rng: np.random.Generator, n: int) -> np.ndarray:
    """A distribution in fixed point: ``RANK_SCALE`` units over n nodes, some of them 0."""
    p = rng.dirichlet(np.full(n, 0.5))
    ranks: np.ndarray = rng.multinomial(RANK_SCALE, p)
    return ranks


CASES = [(1, 0), (1, 2), (2, 1), (3, 4), (5, 3), (8, 20), (16, 40), (40, 100), (64, 200)]


@pytest.mark.parametrize(("n", "nnz"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_vm_equals_integer_reference_and_real_step(n: int, nnz: int, seed: int) -> None:
    rng = np.random.default_rng(1000 * n + nnz + seed)
    indptr, indices, weights = random_graph(rng, n, nnz)
    ranks = random_ranks(rng, n)
    alpha = DEFAULT_ALPHA if seed == 0 else (int(rng.integers(0, 11)), 10)
    got, interactions, seconds = diffusion_step_via_rewrites(indptr, indices, weights, ranks, alpha)
    want = diffusion_step_int(indptr, indices, weights, ranks, alpha)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    assert interactions > 0 and seconds >= 0
    real = diffusion_step_float(indptr, indices, weights, ranks, alpha)
    gap = real - got
    assert np.all(gap >= -1e-9)
    assert np.all(gap < rounding_bound(indices, n, alpha) + 1e-9)


@pytest.mark.parametrize("alpha", [(0, 1), (1, 1), (0, 255), (255, 255), (1, 3), (254, 255)])
def test_extreme_damping(alpha: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(alpha))
    indptr, indices, weights = random_graph(rng, 12, 30)
    ranks = random_ranks(rng, 12)
    got, _, _ = diffusion_step_via_rewrites(indptr, indices, weights, ranks, alpha)
    np.testing.assert_array_equal(got, diffusion_step_int(indptr, indices, weights, ranks, alpha))


def test_real_step_is_the_focus_engines() -> None:
    """The float64 reference is the engine's own diffusion operator D (docs/focus.md)."""
    import scipy.sparse as sp

    from focusflow.focus.energy import FreeEnergyModel

    rng = np.random.default_rng(7)
    n = 30
    indptr, indices, weights = random_graph(rng, n, 80, simple=True)
    ranks = random_ranks(rng, n)
    matrix = sp.csr_matrix((weights.astype(np.float64), indices, indptr), shape=(n, n))
    engine = FreeEnergyModel(matrix, alpha=DEFAULT_ALPHA[0] / DEFAULT_ALPHA[1])
    x = ranks / RANK_SCALE
    real = diffusion_step_float(indptr, indices, weights, ranks)
    np.testing.assert_allclose(real / RANK_SCALE, engine.diffusion(x), rtol=0, atol=1e-14)
    got, _, _ = diffusion_step_via_rewrites(indptr, indices, weights, ranks)
    gap = engine.diffusion(x) * RANK_SCALE - got
    assert np.all(gap >= -1e-9)
    assert np.all(gap < rounding_bound(indices, n) + 1e-9)


def test_largest_inputs_within_the_bound() -> None:
    """The bound's corner: 256 nodes, 512 edges of weight 255, all mass on the hub
    (``w * r = 255 * 2**16``), alpha 254/255: still exact, and every definition within
    HVM2's C runtime limit of 4095 nodes and redexes."""
    rng = np.random.default_rng(3)
    n = MAX_NODES
    dst = np.concatenate([np.arange(1, 256), rng.integers(0, n, MAX_EDGES - 255)])
    src = np.concatenate([np.zeros(255, dtype=np.int64), rng.integers(1, n, MAX_EDGES - 255)])
    order = np.argsort(src, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    indices = dst[order]
    weights = np.full(MAX_EDGES, MAX_WEIGHT)
    ranks = np.zeros(n, dtype=np.int64)
    ranks[0] = RANK_SCALE
    alpha = (MAX_ALPHA_DEN - 1, MAX_ALPHA_DEN)
    got, _, _ = diffusion_step_via_rewrites(indptr, indices, weights, ranks, alpha)
    np.testing.assert_array_equal(got, diffusion_step_int(indptr, indices, weights, ranks, alpha))
    book = load_book(generate_program(indptr, indices, weights, ranks, alpha))
    assert np.diff(book.node_start).max() <= 0xFFF
    assert np.diff(book.rbag_start).max() <= 0xFFF


def _small() -> tuple[list[int], list[int], list[int], list[int]]:
    return [0, 1, 2], [1, 0], [1, 1], [100, 200]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ranks": [RANK_SCALE, 1]}, r"ranks sum to 65537; .* bounded to a total of 65536"),
        ({"ranks": [-1, 5]}, r"ranks must be >= 0; node 0 has -1"),
        ({"weights": [1, MAX_WEIGHT + 1]}, r"weights must be integers in \[1, 255\]; edge 1"),
        ({"weights": [0, 1]}, r"weights must be integers in \[1, 255\]; edge 0 has weight 0"),
        ({"weights": [1.5, 1.0]}, r"weights must hold integers"),
        (
            {"alpha": (5, 256)},
            r"alpha must be integers \(a, b\) with 0 <= a <= b and 1 <= b <= 255",
        ),
        ({"alpha": (3, 2)}, r"alpha must be integers"),
        ({"indices": [2, 0]}, r"indices must lie in \[0, 2\)"),
        ({"indptr": [0, 1]}, r"indptr has 2 entries; 2 ranks need 3"),
    ],
)
def test_refusals(change: dict[str, object], message: str) -> None:
    indptr, indices, weights, ranks = _small()
    args: dict[str, object] = {
        "indptr": indptr,
        "indices": indices,
        "weights": weights,
        "ranks": ranks,
        "alpha": DEFAULT_ALPHA,
    }
    args.update(change)
    for fn in (generate_program, diffusion_step_int, diffusion_step_via_rewrites):
        with pytest.raises(ValueError, match=message):
            fn(**args)  # type: ignore[operator]


def test_size_bound_refused_precisely() -> None:
    n = MAX_NODES
    at_bound = ([0] * (n + 1), [], [], [0] * n)
    generate_program(*at_bound)  # 256 nodes: accepted
    with pytest.raises(ValueError, match=r"the graph has 257 nodes; .* bounded to 1\.\.256"):
        generate_program([0] * (n + 2), [], [], [0] * (n + 1))
    with pytest.raises(ValueError, match=r"the graph has 0 nodes"):
        generate_program([0], [], [], [])
    edges = MAX_EDGES
    generate_program([0, edges], [0] * edges, [1] * edges, [1])  # 512 edges: accepted
    with pytest.raises(ValueError, match=r"the graph has 513 edges; .* bounded to 512 edges"):
        generate_program([0, edges + 1], [0] * (edges + 1), [1] * (edges + 1), [1])


def test_parse_ranks_rejects_other_shapes() -> None:
    assert parse_ranks("(5 (0 *))", 2).tolist() == [5, 0]
    for text in ["(5 *)", "(5 (+3 *))", "((5 0) *)", "(5 (0 1))"]:
        with pytest.raises(ValueError, match="readback is not a tuple"):
            parse_ranks(text, 2)
