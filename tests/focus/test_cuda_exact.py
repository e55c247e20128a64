"""The exact arithmetics on the cuda backend: the numba exact operator's bits, on a GPU.

Every comparison here is of bits (``tobytes``), not of values within a
tolerance: a chain commits focus quantised to 10^-15, and a last-bit
difference moves a committed value now and then. Runs where CuPy sees a GPU
(bench/cuda_exact.py and the device run the rest of the time).
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from focusflow.chain.focus_commit import focus_root, quantise
from focusflow.chain.focus_spec import CHAIN_FOCUS_DEFAULTS, NEW_CHAIN_FOCUS
from focusflow.core.errors import InvalidParameterError
from focusflow.core.structure import Check
from focusflow.focus import compute
from focusflow.focus.backends import get_backend
from focusflow.focus.backends.cuda import cuda_available
from focusflow.focus.backends.exact_tree import TreeAnderson
from focusflow.focus.engine import FocusEngine
from focusflow.focus.params import EXACT_V1, EXACT_V2, EXACT_V3, make_params
from focusflow.focus.spectral import SpringsState
from focusflow.graph import Cybergraph, Snapshot, rmat_edges
from tests.focus.test_arithmetic import hub_snapshot

OK, WHY = cuda_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"cuda backend unavailable: {WHY}")


def same_bits(a: object, b: object) -> bool:
    """Whether two vectors (host or device) hold the same float64 bits."""
    import cupy

    x = np.asarray(cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else a, dtype=np.float64)
    y = np.asarray(cupy.asnumpy(b) if isinstance(b, cupy.ndarray) else b, dtype=np.float64)
    return x.shape == y.shape and x.tobytes() == y.tobytes()


def _patched_snapshot(seed: int) -> Snapshot:
    """An R-MAT graph (hub rows of hundreds of entries) patched once, so that
    the in-link product has overlay rows besides its SELL groups."""
    g = Cybergraph(require_cids=False)
    rng = np.random.default_rng(seed)
    src, dst, _ = rmat_edges(12, 8, seed=seed)
    names = np.array([f"p{i}" for i in range(1 << 12)], dtype=object)
    g.add_links(names[src], names[dst], weights=rng.random(len(src)) + 0.01)
    g.snapshot()
    g.add_links(names[rng.integers(0, 4096, 500)], names[rng.integers(0, 4096, 500)])
    snap, _ = g.refresh()
    assert snap.overlay_nnz > 0
    return snap


@pytest.mark.parametrize(
    "arithmetic,graph",
    [(EXACT_V2, _patched_snapshot), (EXACT_V3, _patched_snapshot), (EXACT_V3, hub_snapshot)],
    ids=["v2", "v3", "v3-hubs"],
)
def test_each_kernel_gives_the_numba_exact_bits(arithmetic, graph):
    import cupy

    snap = graph(3)
    n = snap.n
    host = get_backend("numba").operator(snap, "float64", arithmetic)
    dev = get_backend("cuda").operator(snap, "float64", arithmetic)
    rng = np.random.default_rng(1)
    x = rng.random(n) ** 3
    x[rng.random(n) < 0.05] = -1e-18  # Anderson's iterates dip below 0
    x /= x.sum()
    prior = rng.random(n)
    prior /= prior.sum()

    # The diffusion step: y, its L1 change, the gathered vector it leaves.
    y_h, y_d = np.empty(n), cupy.empty(n)
    l1_h = host.diffusion(x, y_h, 0.85, prior)
    l1_d = dev.diffusion(cupy.asarray(x), y_d, 0.85, cupy.asarray(prior))
    assert same_bits(y_h, y_d) and l1_h == l1_d
    assert same_bits(host.z, dev.z)
    assert host.total(y_h) == dev.total(y_d) == dev.total(y_h)
    assert host.dot(x, y_h) == dev.dot(cupy.asarray(x), y_d)

    # The Laplacian product, a Chebyshev series, CG, and both side by side.
    for op in (host, dev):
        op.setup_laplacian("normalized")
    out_h, out_d = np.empty(n), cupy.empty(n)
    host.lap_matvec(x, out_h)
    dev.lap_matvec(cupy.asarray(x), out_d)
    assert same_bits(out_h, out_d)
    coeffs = np.array([0.6, -0.3, 0.08, -0.015, 0.002])
    assert same_bits(host.chebyshev(x, coeffs), dev.chebyshev(cupy.asarray(x), coeffs))
    s_h, s_d = SpringsState(), SpringsState()
    a = host.springs_solve(x, 0.5, s_h, 1e-12, 40)
    b = dev.springs_solve(cupy.asarray(x), 0.5, s_d, 1e-12, 40)
    assert s_h.iterations == s_d.iterations > 3 and same_bits(a, b)
    s_h, s_d = SpringsState(), SpringsState()
    sa, ha = host.springs_heat(x, 0.5, s_h, 1e-12, 40, True, prior, coeffs)
    x_d, prior_d = cupy.asarray(x), cupy.asarray(prior)
    sb, hb = dev.springs_heat(x_d, 0.5, s_d, 1e-12, 40, True, prior_d, coeffs)
    assert s_h.iterations == s_d.iterations and same_bits(sa, sb) and same_bits(ha, hb)

    # The blend and its L1 change.
    d_h, d_d = y_h.copy(), y_d.copy()
    r_h = host.blend(x, d_h, a, ha, (0.5, 0.3, 0.2))
    r_d = dev.blend(cupy.asarray(x), d_d, b, hb, (0.5, 0.3, 0.2))
    assert r_h == r_d and same_bits(d_h, d_d)


@pytest.mark.parametrize("arithmetic", [EXACT_V2, EXACT_V3])
def test_anderson_passes_give_the_numba_exact_bits(arithmetic):
    import cupy

    from focusflow.focus.anderson import Anderson

    n, m = 10_007, 4
    snap = _patched_snapshot(4)
    dev = get_backend("cuda").operator(snap, "float64", arithmetic)
    host_aa = Anderson(m, n, np, TreeAnderson() if arithmetic == EXACT_V3 else None, True)
    dev_aa = Anderson(m, n, cupy, dev.anderson_kernels, True)
    rng = np.random.default_rng(2)
    x = rng.random(n)
    x /= x.sum()
    mixed = 0
    for _ in range(9):
        gx = np.abs(x + rng.normal(0, 1e-3, n) * x)
        gx /= gx.sum()
        res = float(np.abs(gx - x).sum())
        out_h, out_d = np.empty(n), cupy.empty(n)
        got_h = host_aa.step(x, gx, res, out_h)
        got_d = dev_aa.step(cupy.asarray(x), cupy.asarray(gx), res, out_d)
        assert same_bits(got_h, got_d)
        mixed += got_h is out_h
        x = np.array(got_h)
    assert mixed >= 3 and host_aa.restarts == dev_aa.restarts


def _chain_graph(rng: np.random.Generator) -> tuple[Cybergraph, np.ndarray]:
    g = Cybergraph(require_cids=False, default_stake=0.0)
    names = np.array([f"p{i}" for i in range(6000)], dtype=object)
    g.add_neurons([f"n{i}" for i in range(12)], rng.random(12) * 100 + 1)
    _links(rng, g, names, 5000, 20_000)
    return g, names


def _links(rng: np.random.Generator, g: Cybergraph, names: np.ndarray, top: int, m: int) -> None:
    src, dst, _ = rmat_edges(13, 4, seed=int(rng.integers(1 << 30)))
    src, dst = src[:m] % top, dst[:m] % top
    keep = src != dst
    g.add_links(
        names[src[keep]], names[dst[keep]], [f"n{i}" for i in rng.integers(0, 12, int(keep.sum()))]
    )


@pytest.mark.parametrize(
    "focus",
    [
        NEW_CHAIN_FOCUS,
        {**NEW_CHAIN_FOCUS, "arithmetic": EXACT_V1},
        {**CHAIN_FOCUS_DEFAULTS, "arithmetic": EXACT_V1},
        {**NEW_CHAIN_FOCUS, "mode": "diffusion"},
        {**NEW_CHAIN_FOCUS, "prior": "stake", "springs_method": "auto"},
        {**NEW_CHAIN_FOCUS, "arithmetic": EXACT_V3},
        {**NEW_CHAIN_FOCUS, "arithmetic": EXACT_V3, "mode": "diffusion"},
        {**NEW_CHAIN_FOCUS, "arithmetic": EXACT_V3, "prior": "stake", "springs_method": "auto"},
    ],
    ids=[
        "new-v2",
        "new-v1",
        "first-v1",
        "diffusion-v2",
        "stake-auto-v2",
        "new-v3",
        "diffusion-v3",
        "stake-auto-v3",
    ],
)
def test_an_engine_commits_the_same_roots_block_after_block(focus):
    """A chain's engine on the GPU against the same engine on the CPU: a cold
    solve, then blocks of links (new particles among them) and stake
    changes; every block's focus is the same bits, and so its root."""
    params = make_params(None, **focus)
    roots = []
    for backend in ("numba", "cuda"):
        rng = np.random.default_rng(11)
        g, names = _chain_graph(rng)
        engine = FocusEngine(g, params, backend=backend)
        got = [engine.compute().focus]
        for block in range(5):
            _links(rng, g, names, 5000 + 200 * block, 1500)
            if block % 2:
                ids = g.add_neurons([f"n{int(i)}" for i in rng.integers(0, 12, 3)])
                g.set_stakes(ids, rng.random(len(ids)) * 50)
            got.append(engine.apply().focus)
        roots.append([focus_root(quantise(phi)) for phi in got])
        if backend == "numba":
            host = got
        else:
            assert all(same_bits(a, b) for a, b in zip(host, got, strict=True))
    assert roots[0] == roots[1]


@pytest.mark.parametrize("arithmetic", [EXACT_V2, EXACT_V3])
def test_a_one_off_exact_solve_matches_and_float32_is_refused(arithmetic):
    src, dst, _ = rmat_edges(11, 8, seed=5)
    w = np.random.default_rng(5).random(len(src)) + 0.1
    snap = Snapshot(1 << 11, src, dst, w)
    for mode in ("tri", "diffusion"):
        a = compute(snap, mode=mode, backend="numba", arithmetic=arithmetic)
        b = compute(snap, mode=mode, backend="cuda", arithmetic=arithmetic)
        assert a.diagnostics.iterations == b.diagnostics.iterations
        assert same_bits(a.focus, b.focus)
    with pytest.raises(InvalidParameterError, match="float64 only"):
        compute(snap, backend="cuda", arithmetic=EXACT_V2, precision="float32")


@pytest.mark.parametrize("arithmetic", [EXACT_V2, EXACT_V3])
def test_an_engine_moves_to_the_host_and_back_with_the_same_bits(arithmetic):
    """A GPU engine's state in numba form (what a checkpoint holds), pickled
    and checked as a peer's state is, and such a state taken back to the GPU:
    all three go on computing the same bits, block after block."""
    params = make_params(None, **{**NEW_CHAIN_FOCUS, "arithmetic": arithmetic})
    rng = np.random.default_rng(12)
    g, names = _chain_graph(rng)
    gpu = FocusEngine(g, params, backend="cuda")
    gpu.compute()
    _links(rng, g, names, 5000, 1500)
    gpu.apply()
    host = pickle.loads(pickle.dumps(gpu.moved("numba")))
    host.check_structure(Check(), host.graph, params, "numba")
    back = pickle.loads(pickle.dumps(gpu.moved("numba"))).moved("cuda")
    assert (gpu.backend.name, host.backend.name, back.backend.name) == ("cuda", "numba", "cuda")
    for _ in range(3):
        seed = int(rng.integers(1 << 30))
        got = []
        for engine in (gpu, host, back):
            _links(np.random.default_rng(seed), engine.graph, names, 5200, 1500)
            got.append(engine.apply().focus)
        assert same_bits(got[0], got[1]) and same_bits(got[0], got[2])


def test_a_deep_copy_of_a_gpu_engine_goes_on_alone_with_the_same_bits():
    """What a proposal does to a chain's focus (``copy.deepcopy``): the copy
    holds device vectors of its own. The copies take a block the originals
    never see, then every engine takes the same block: the GPU original still
    computes what its CPU twin computes (the copy's block did not reach it),
    and so does the GPU copy."""
    params = make_params(None, **NEW_CHAIN_FOCUS)
    engines = {}
    for backend in ("numba", "cuda"):
        g, names = _chain_graph(np.random.default_rng(13))
        engines[backend] = FocusEngine(g, params, backend=backend)
        engines[backend].compute()
    gpu, host = engines["cuda"], engines["numba"]
    copies = {"cuda": copy.deepcopy(gpu), "numba": copy.deepcopy(host)}
    for engine in copies.values():
        _links(np.random.default_rng(1), engine.graph, names, 5100, 1500)
        engine.apply()
    got = {}
    for key, engine in (("gpu", gpu), ("host", host), ("gpu copy", copies["cuda"]),
                        ("host copy", copies["numba"])):  # fmt: skip
        _links(np.random.default_rng(2), engine.graph, names, 5200, 1500)
        got[key] = engine.apply().focus
    assert same_bits(got["gpu"], got["host"])
    assert same_bits(got["gpu copy"], got["host copy"])
    assert not same_bits(got["gpu"], got["gpu copy"])


@pytest.mark.parametrize("n", [1, 1023, 1025, 3 * 1024 + 5, 777_777])
def test_v3_sums_and_their_pairs_give_the_numba_bits_launch_after_launch(n):
    """A sum's chunks and its tree run in one launch, the last chunk's warp
    adding the tree, and a pair of sums shares the launch: for lengths of one
    chunk, a chunk and a bit, and hundreds of chunks (an odd count, so the
    tree carries values up), each result equals the CPU's, and equals it again
    on the next launches (each sum's ticket count starts at 0 again)."""
    import cupy

    snap = _patched_snapshot(2)
    host = get_backend("numba").operator(snap, "float64", EXACT_V3)
    dev = get_backend("cuda").operator(snap, "float64", EXACT_V3)
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
    b = rng.standard_normal(n)
    a_d, b_d = cupy.asarray(a), cupy.asarray(b)
    kernels = dev._device
    for _ in range(3):
        assert dev.total(a_d) == host.total(a)
        assert dev.dot(a_d, b_d) == host.dot(a, b)
        ab, aa = kernels._two((a_d, b_d, 1), (a_d, a_d, 1), n)
        assert (ab, aa) == (host.dot(a, b), host.dot(a, a))
        l1, total = kernels._two((a_d, b_d, 2), (a_d, None, 0), n)
        assert l1 == host.total(np.abs(a - b)) and total == host.total(a)
