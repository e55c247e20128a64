"""A neuron's repeated link is kept once, its first: both ways of finding them
agree with a plain Python reference."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.graph.arrow_csv import first_of_each_link


def _reference(src: np.ndarray, dst: np.ndarray, neuron: np.ndarray) -> np.ndarray | None:
    seen: set[tuple[int, int, int]] = set()
    keep = []
    for i, link in enumerate(zip(neuron.tolist(), src.tolist(), dst.tolist(), strict=True)):
        if link not in seen:
            seen.add(link)
            keep.append(i)
    return None if len(keep) == len(src) else np.array(keep)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("wide", [False, True])  # one int64 key, or three through lexsort
def testfirst_of_each_link(seed: int, wide: bool) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(0, 400))
    n_particles, n_neurons = int(rng.integers(1, 30)), int(rng.integers(1, 5))
    src = rng.integers(0, n_particles, m)
    dst = rng.integers(0, n_particles, m)
    neuron = rng.integers(0, n_neurons, m)
    if seed == 0:  # no repeats at all
        src, dst, neuron = np.arange(m), np.arange(m) + 1, np.zeros(m, dtype=np.int64)
        n_particles = m + 1
    p = 1 << 31 if wide else n_particles  # past the single key's bound
    got = first_of_each_link(src, dst, neuron, p, n_neurons)
    want = _reference(src, dst, neuron)
    if want is None:
        assert got is None
    else:
        assert got is not None
        np.testing.assert_array_equal(got, want)
