"""The randomized SVD against numpy's dense one."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.compile.svd import randomized_svd, spmm


def _factors(n: int, s: np.ndarray, seed: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """A matrix U diag(s) V^T with orthonormal U and V, and those U and V: its
    singular triplets by construction."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, len(s))))
    v, _ = np.linalg.qr(rng.standard_normal((n, len(s))))
    return sp.csr_matrix((u * s) @ v.T), u, v


def _with_spectrum(n: int, s: np.ndarray, seed: int) -> sp.csr_matrix:
    return _factors(n, s, seed)[0]


def test_spmm_matches_scipy():
    rng = np.random.default_rng(0)
    a = sp.random(50, 40, density=0.1, format="csr", random_state=1)
    x = rng.standard_normal((40, 7))
    np.testing.assert_allclose(spmm(a, x), a @ x, rtol=1e-12, atol=1e-12)


def test_top_subspace_matches_dense_svd():
    s = np.array([100.0, 50, 25, 12, 6, 3, 1.5, 0.7] + [0.01] * 20)
    a = _with_spectrum(300, s, seed=2)
    got = randomized_svd(a, 8, seed=0)
    u_ref, s_ref, vt_ref = np.linalg.svd(a.toarray())
    np.testing.assert_allclose(got.s, s_ref[:8], rtol=1e-6)
    # |U^T U_ref| = I: same vectors up to sign.
    np.testing.assert_allclose(np.abs(got.u.T @ u_ref[:, :8]), np.eye(8), atol=1e-6)
    np.testing.assert_allclose(np.abs(got.v.T @ vt_ref[:8].T), np.eye(8), atol=1e-6)


def test_seeded_and_rank_deficient():
    a = sp.csr_matrix(np.outer(np.arange(1.0, 21), np.ones(20)))  # rank 1
    one = randomized_svd(a, 5, seed=3)
    two = randomized_svd(a, 5, seed=3)
    np.testing.assert_array_equal(one.s, two.s)
    assert one.s[0] == pytest.approx(np.linalg.norm(a.toarray(), 2))
    assert np.all(one.s[1:] < 1e-8 * one.s[0])
    np.testing.assert_allclose(one.u.T @ one.u, np.eye(5), atol=1e-8)


def test_float32_blocks_orthonormalised_in_place_match_the_constructed_triplets():
    """Large graphs run the range finder in float32 blocks orthonormalised in
    place (no second n x w block); the top triplets still match the matrix's
    own, known from its construction (a dense SVD of it checks the same at
    n = 300 above, and costs half a minute here)."""
    s = np.array([100.0, 50, 25, 12, 6, 3, 1.5, 0.7] + [0.01] * 20)
    a, u_ref, v_ref = _factors(3000, s, seed=5)
    got = randomized_svd(a, 8, seed=0, dtype=np.float32)
    assert got.u.dtype == np.float32 and got.v.dtype == np.float32
    np.testing.assert_allclose(got.s, s[:8], rtol=1e-4)
    np.testing.assert_allclose(np.abs(got.u.T @ u_ref[:, :8]), np.eye(8), atol=1e-4)
    np.testing.assert_allclose(np.abs(got.v.T @ v_ref[:, :8]), np.eye(8), atol=1e-4)


def test_in_place_orthonormalisation_keeps_the_factor():
    from focusflow.compile.svd import ORTH_BAND, _orth_r

    rng = np.random.default_rng(1)
    y = rng.standard_normal((2 * ORTH_BAND + 17, 6))
    q, r = _orth_r(y.copy(), overwrite=True)
    np.testing.assert_allclose(q.T @ q, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(q @ r, y, atol=1e-10)
    q2, r2 = _orth_r(y)
    np.testing.assert_allclose(q2 @ r2, y, atol=1e-10)
    np.testing.assert_allclose(np.abs(q2.T @ q), np.eye(6), atol=1e-12)
