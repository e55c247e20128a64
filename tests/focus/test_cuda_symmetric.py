"""The scaled symmetric matrix built on the GPU against the host's, array for array.

The exact operator on a GPU builds ``N = sigma (W + W^T) sigma`` on the device
from its copies of the snapshot's links, which follow patches entry by entry.
Every array must be the host build's (``ScaledSymmetric``) bit for bit, after
any sequence of patches: new particles, new pairs in the overlay, base
entries re-weighed. Runs where CuPy sees a GPU (the device run).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from focusflow.core.structure import Check
from focusflow.focus.backends.cuda import cuda_available
from focusflow.focus.backends.numba_lap import ScaledSymmetric
from focusflow.graph import Cybergraph, rmat_edges

OK, WHY = cuda_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"cuda backend unavailable: {WHY}")

FIELDS = ("nnz", "sigma", "diag", "lam_max", "grows", "glen", "gptr", "bounds", "sidx", "sval")


def _same(host: ScaledSymmetric, dev: ScaledSymmetric) -> list[str]:
    """The fields whose bytes differ (empty when the matrices are the same)."""
    differ = []
    for name in FIELDS:
        a, b = getattr(host, name), getattr(dev, name)
        if isinstance(a, np.ndarray):
            if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                differ.append(name)
        elif a != b:
            differ.append(name)
    return differ


def _graph(seed: int) -> tuple[Cybergraph, np.ndarray, np.random.Generator, np.ndarray]:
    """An R-MAT graph (hub rows), its particle names, a generator, and its
    first links (``(2, m)`` name indices) to repeat later."""
    rng = np.random.default_rng(seed)
    # Patches, not rebuilds, for the few thousand links the tests add.
    g = Cybergraph(require_cids=False, compact_ratio=0.5)
    names = np.array([f"p{i}" for i in range(6000)], dtype=object)
    src, dst, _ = rmat_edges(12, 8, seed=seed)
    g.add_links(names[src], names[dst], weights=rng.random(len(src)) * 3 + 0.01)
    g.snapshot()
    return g, names, rng, np.stack([src, dst])


@pytest.mark.parametrize("kind", ["normalized", "combinatorial"])
def test_the_device_build_is_the_host_build_after_every_patch(kind):
    """Five patches: each adds links among old and new particles (new overlay
    pairs and repeats of base pairs, whose weights are rewritten), and the
    device's link copies follow each patch by its record alone."""
    import cupy

    from focusflow.focus.backends.cuda_exact import _module
    from focusflow.focus.backends.cuda_symmetric import DeviceLinks, DeviceSymmetric, build

    g, names, rng, first = _graph(4)
    snap, _ = g.refresh()
    links = DeviceLinks()
    links.sync(snap)
    module = _module(cupy, "symmetric.cu")
    for step in range(5):
        dev = build(links, snap.n, kind, module)
        host = ScaledSymmetric(snap, kind, np.float64)
        assert isinstance(dev, DeviceSymmetric)
        assert _same(host, dev) == [], f"step {step}"
        top = 4096 + 60 * (step + 1)
        m = 800
        src, dst = rng.integers(0, top, m), rng.integers(0, top, m)
        g.add_links(names[src], names[dst], weights=rng.random(m) + 0.5)
        # Repeat links of base pairs too: their entries' weights are rewritten.
        again = first[:, 50 * step : 50 * (step + 1)]
        g.add_links(names[again[0]], names[again[1]], weights=np.full(again.shape[1], 2.0))
        snap, info = g.refresh()
        assert info is not None and info.base_entries is not None and len(info.base_entries)
        links.sync(snap, info)
    assert snap.overlay_nnz > 0


def test_the_base_merge_is_placed_once_a_layout():
    """The merge of the base's out- and in-links is placed once and kept while
    patches only rewrite its values; a compaction (a new base layout) places
    it again. The matrix is the host's either way, with and without an
    overlay to merge in."""
    import cupy

    from focusflow.focus.backends.cuda_exact import _module
    from focusflow.focus.backends.cuda_symmetric import DeviceLinks, build

    g, names, rng, first = _graph(7)
    snap, _ = g.refresh()
    links = DeviceLinks()
    links.sync(snap)
    module = _module(cupy, "symmetric.cu")
    assert (
        _same(
            ScaledSymmetric(snap, "normalized", np.float64),
            build(links, snap.n, "normalized", module),
        )
        == []
    )
    placed = links.base
    assert placed is not None
    for step in range(3):
        m = 400
        g.add_links(names[rng.integers(0, 4200, m)], names[rng.integers(0, 4200, m)])
        again = first[:, 40 * step : 40 * (step + 1)]
        g.add_links(names[again[0]], names[again[1]], weights=np.full(again.shape[1], 3.0))
        snap, info = g.refresh()
        links.sync(snap, info)
        dev = build(links, snap.n, "normalized", module)
        assert links.base is placed, f"step {step}: the kept merge was placed again"
        assert _same(ScaledSymmetric(snap, "normalized", np.float64), dev) == [], f"step {step}"
    assert snap.overlay_nnz > 0
    g.compact_ratio = 0.0
    g.add_links(names[:3], names[3:6])
    snap, info = g.refresh()
    assert snap.overlay_nnz == 0
    links.sync(snap, info)
    dev = build(links, snap.n, "normalized", module)
    assert links.base is not None and links.base is not placed
    assert _same(ScaledSymmetric(snap, "normalized", np.float64), dev) == []


def test_a_missed_patch_or_no_record_uploads_everything():
    """Links that did not see a patch (its record went elsewhere) or get none
    upload the snapshot again instead of applying a record to the wrong base."""
    import cupy

    from focusflow.focus.backends.cuda_exact import _module
    from focusflow.focus.backends.cuda_symmetric import DeviceLinks, build

    g, names, rng, _ = _graph(5)
    snap, _ = g.refresh()
    links = DeviceLinks()
    links.sync(snap)
    for _ in range(2):
        m = 500
        g.add_links(names[rng.integers(0, 4096, m)], names[rng.integers(0, 4096, m)])
        snap, info = g.refresh()
    links.sync(snap, info)  # the first of the two patches was never applied
    module = _module(cupy, "symmetric.cu")
    host = ScaledSymmetric(snap, "normalized", np.float64)
    assert _same(host, build(links, snap.n, "normalized", module)) == []


def test_a_device_matrix_pickles_as_the_host_matrix():
    """A checkpoint holds the plain host matrix: it loads without a GPU and
    passes the structure check a peer's state gets."""
    import cupy

    from focusflow.focus.backends.cuda_exact import _module
    from focusflow.focus.backends.cuda_symmetric import DeviceLinks, build

    g, _, _, _ = _graph(6)
    snap, _ = g.refresh()
    links = DeviceLinks()
    links.sync(snap)
    dev = build(links, snap.n, "normalized", _module(cupy, "symmetric.cu"))
    back = pickle.loads(pickle.dumps(dev))
    assert type(back) is ScaledSymmetric
    ScaledSymmetric.check_structure(back, Check(), snap.n, np.float64)
    assert _same(ScaledSymmetric(snap, "normalized", np.float64), back) == []


@pytest.mark.parametrize("kind", ["normalized", "combinatorial"])
def test_the_laplacian_scaling_on_the_device_is_the_hosts(kind):
    """``laplacian_scaling`` runs on the device's degrees in a GPU build: its
    square roots and quotients are IEEE's correctly rounded ones there as on
    the host, so every bit agrees, at the edges too (zero and subnormal
    degrees, degrees at the floor beside the largest, huge ones)."""
    import cupy

    from focusflow.focus.backends.base import DEGREE_FLOOR, laplacian_scaling

    rng = np.random.default_rng(11)
    degree = rng.random(100_000) * 10.0 ** rng.integers(-13, 1, 100_000)
    degree[:6] = [0.0, 5e-324, 1e-310, 1e-300, 1.0, 3.0]
    at_floor = DEGREE_FLOOR * degree.max()
    degree[6:10] = [at_floor * 0.5, at_floor, np.nextafter(at_floor, 1.0), at_floor * 2.0]
    host = laplacian_scaling(degree, kind)
    dev = laplacian_scaling(cupy.asarray(degree), kind, cupy)
    for h, d in zip(host[:2], dev[:2], strict=True):
        assert h.dtype == d.dtype and h.tobytes() == cupy.asnumpy(d).tobytes()
    assert host[2] == float(dev[2])
