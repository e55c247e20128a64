import numpy as np
import pytest

from focusflow.focus import compute, entropy, entropy_bits, karma, syntropy
from focusflow.graph import Cybergraph


def test_entropy_and_syntropy_of_known_distributions():
    assert entropy(np.full(8, 1 / 8)) == pytest.approx(np.log(8))
    assert entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0)
    assert syntropy(np.full(8, 1 / 8)) == pytest.approx(0.0, abs=1e-15)
    point = np.array([1.0, 0.0, 0.0, 0.0])
    assert entropy(point) == 0.0
    assert syntropy(point) == pytest.approx(np.log(4))
    p = np.array([0.5, 0.25, 0.25])
    assert syntropy(p) == pytest.approx(np.sum(p * np.log(p / (1 / 3))))


def test_karma_by_hand():
    g = Cybergraph(require_cids=False)
    g.add_neurons(["a", "b"], [4.0, 1.0])
    # a: two links (s_hat 2), b: one link (s_hat 1); W_x = 2 + 1 = 3, W_y = 2
    g.add_links(["x", "x", "y"], ["y", "z", "z"], ["a", "b", "a"])
    phi = np.array([0.5, 0.3, 0.2])  # x, y, z in particle order
    k = karma(g, phi)
    assert k[0] == pytest.approx((2 / 3) * 0.5 + (2 / 2) * 0.3)
    assert k[1] == pytest.approx((1 / 3) * 0.5)


def test_karma_of_computed_focus_sums_to_linked_mass(sample_path):
    from focusflow.graph import read_bostrom

    g = read_bostrom(sample_path)
    res = compute(g)
    k = karma(g, res.focus)
    snap = g.snapshot()
    linked = snap.to_particle_order(snap.out_weight) > 0
    assert k.sum() == pytest.approx(res.focus[linked].sum())
