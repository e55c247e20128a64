"""cyberank mode against a plain re-implementation of go-cyber's rank loop.

The reference below is written from go-cyber's x/rank/keeper/calculate_cpu.go
as published (maps of in/out links per cid, integer per-link stake, sorted
in-links, L-infinity stop, uint64(rank * 1e15)); it shares nothing with
focusflow's vectorised implementation but the parsed links.
"""

import numpy as np
import pytest

from focusflow.focus import compute
from focusflow.graph import read_bostrom


def go_cyber_rank(links, stakes, n, damping, tolerance):
    """links: list of (from_cid, to_cid, user) with cids as ints; stakes: user -> int."""
    neudeg: dict[int, int] = {}
    out_links: dict[int, dict[int, set]] = {}
    in_links: dict[int, dict[int, set]] = {}
    for f, t, u in links:
        neudeg[u] = neudeg.get(u, 0) + 1
        out_links.setdefault(f, {}).setdefault(t, set()).add(u)
        in_links.setdefault(t, {}).setdefault(f, set()).add(u)

    def normalized(u):
        return stakes[u] // neudeg[u]

    def link_stake(f, t):
        return sum(normalized(u) for u in out_links[f][t])

    def out_stake(f):
        return sum(link_stake(f, t) for t in out_links.get(f, {}))

    default = (1.0 - damping) / n
    rank = [default] * n
    dangling = sum(1 for i in range(n) if not in_links.get(i))
    inner = default * (float(dangling) / float(n))
    correction = float(damping * inner) + default
    change = tolerance + 1
    prev = list(rank)
    while change > tolerance:
        rank = list(prev)
        for cid in in_links:
            ksum = 0.0
            for j in sorted(in_links[cid]):
                ls, os_ = link_stake(j, cid), out_stake(j)
                if ls == 0 or os_ == 0:
                    continue
                ksum = prev[j] * (float(ls) / float(os_)) + ksum
            rank[cid] = ksum * damping + correction
        change = max(abs(a - b) for a, b in zip(prev, rank, strict=True))
        prev = rank
    return [int(r * 1e15) for r in rank]


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_cyberank_matches_go_cyber_on_bostrom_sample(sample_path, tmp_path, tol):
    g0 = read_bostrom(sample_path)
    rng = np.random.default_rng(0)
    stakes_file = tmp_path / "stakes.csv"
    names = g0.neurons.keys()
    values = rng.integers(10**9, 10**13, len(names))
    values[3] = 0  # a neuron without stake
    stakes_file.write_text(
        "neuron,stake\n" + "".join(f"{k},{v}\n" for k, v in zip(names, values, strict=True))
    )
    g = read_bostrom(sample_path, stakes_file)
    links = g.links()
    triples = list(zip(links.src.tolist(), links.dst.tolist(), links.neuron.tolist(), strict=True))
    stake_of = {i: int(s) for i, s in enumerate(g.stakes)}
    expected = go_cyber_rank(triples, stake_of, g.n_particles, 0.85, tol)
    res = compute(g, mode="cyberank", tol=tol)
    assert res.converged
    assert res.cyberank.tolist() == expected


def test_cyberank_refuses_fractional_stakes(sample_path, tmp_path):
    stakes_file = tmp_path / "stakes.csv"
    first = read_bostrom(sample_path).neurons.key_of(0)
    stakes_file.write_text(f"neuron,stake\n{first},1.5\n")
    with pytest.raises(ValueError, match="integer stakes"):
        compute(read_bostrom(sample_path, stakes_file), mode="cyberank")
