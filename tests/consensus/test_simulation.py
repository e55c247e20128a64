"""Safety and liveness of N machines on the seeded simulator (focusflow.consensus.sim).

Safety (no two honest validators decide different values at one height, and no
honest validator signs twice for one step) is checked by the simulator on every
decision and broadcast, in every scenario. Liveness is checked where the
scenario allows it: with at most f of 3f+1 faulty, and after partitions heal.
CI runs a few seeds per scenario; ``-m slow`` runs many more.
"""

from __future__ import annotations

import pytest

from focusflow.consensus import verify_evidence
from focusflow.consensus.sim import FAR_FUTURE_MS, Simulation, value_time
from focusflow.core.encoding import decode


def safe(sim: Simulation) -> None:
    assert sim.violations == []
    for h, first in sim.committed.items():
        for node in sim.honest():
            if h in node.decisions:
                assert node.decisions[h].value_id == first.value_id
    for first in sim.committed.values():  # nothing from the far future is committed
        assert value_time(first.value) <= 1000 * (sim.now + sim.max_drift)


def happy(seed: int) -> Simulation:
    sim = Simulation(4, seed=seed)
    sim.run(1.5)
    safe(sim)
    assert sim.min_honest_height() >= 8
    return sim


def crash_and_restart(seed: int, n: int = 4) -> Simulation:
    f = (n - 1) // 3
    sim = Simulation(n, seed=seed)
    crashed = list(range(seed % n, seed % n + f))
    crashed = [i % n for i in crashed]
    sim.run(0.3)
    for i in crashed:
        sim.crash(i)
    start = sim.min_honest_height()
    sim.run(2.0)
    assert sim.min_honest_height() >= start + 3  # the other 2f+1 keep committing
    for i in crashed:
        sim.restart(i)
    top = max(node.height for node in sim.nodes)
    sim.run(3.5)
    safe(sim)
    assert all(sim.nodes[i].height >= top for i in crashed)  # restarted nodes caught up
    assert sim.min_honest_height() >= top + 2  # ...and everyone goes on together
    return sim


def split_then_heal(seed: int, n: int = 4, minority: int = 2) -> Simulation:
    sim = Simulation(n, seed=seed)
    sim.run(0.3)
    sim.partition(set(range(minority)), set(range(minority, n)))
    before = max(node.height for node in sim.nodes)
    sim.run(1.3)
    if 3 * minority >= n and 3 * (n - minority) <= 2 * n:  # no side has a quorum
        assert max(node.height for node in sim.nodes) <= before + 1
    sim.heal()
    healed = sim.min_honest_height()
    sim.run(3.5)
    safe(sim)
    assert sim.min_honest_height() >= healed + 3
    return sim


#: Behaviours that sign two messages for one step (evidence may accuse them).
EQUIVOCATORS = ("double_voter", "equivocating_proposer", "double_proposer")


def byzantine(seed: int, n: int, kinds: dict[int, str], powers=None) -> Simulation:
    sim = Simulation(n, seed=seed, byzantine=kinds, powers=powers, max_delay=0.08)
    sim.run(2.0)
    safe(sim)
    assert sim.min_honest_height() >= 3
    for ev in sim.evidence:  # evidence only ever accuses an equivocator
        assert verify_evidence(ev, sim.validator_set(ev.height), sim.chain_id)
        assert sim.node_of(ev.validator).byzantine in EQUIVOCATORS
    if "double_voter" in kinds.values():
        assert any(sim.node_of(ev.validator).byzantine == "double_voter" for ev in sim.evidence)
    return sim


def future_timestamp(seed: int) -> Simulation:
    """A proposer whose values carry time 2^64 - 1: honest validators prevote nil on
    them, its rounds time out, and the others' values are committed."""
    liar = seed % 4
    sim = byzantine(seed, 4, {liar: "future_timestamp"})
    assert sim.nodes[liar].proposals_made > 0  # it did propose
    assert all(value_time(d.value) < FAR_FUTURE_MS for d in sim.committed.values())
    assert all(decode_proposer(d.value) != liar for d in sim.committed.values())
    return sim


def decode_proposer(value: bytes) -> int:
    """The index of the validator that made a simulated value."""
    return decode(value)[2]


def junk_gossip(seed: int, n: int = 4) -> Simulation:
    """Junk (broken signatures, outsiders, usurped and mislabelled proposals) sent to
    honest nodes is dropped, not relayed: only its sender is ever penalised."""
    junk = seed % n
    sim = byzantine(seed, n, {junk: "junk_gossip"})
    assert sim.invalid_messages > 0
    assert set(sim.penalties) == {junk}  # safe() checked: no honest node was penalised
    return sim


def lying_sync_peer(seed: int) -> Simulation:
    """A peer claiming height 10^9 serves forged decisions: a restarted validator
    refuses them (no certificate proves them) and syncs from the honest peers."""
    liar, crashed = seed % 4, (seed + 1) % 4
    sim = Simulation(4, seed=seed, byzantine={liar: "lying_sync_peer"}, max_delay=0.08)
    sim.at(0.3, lambda: sim.crash(crashed))
    sim.run(1.3)
    top = max(node.height for node in sim.honest())
    sim.restart(crashed)
    sim.run(3.0)
    safe(sim)
    assert sim.forged_syncs > 0  # the lie was told and refused
    assert set(sim.penalties) == {liar}
    assert sim.nodes[crashed].height >= top  # caught up all the same
    assert sim.min_honest_height() >= top + 2
    return sim


def double_proposer(seed: int) -> Simulation:
    """A proposer sends every peer two valid proposals for each round it leads."""
    sim = byzantine(seed, 4, {seed % 4: "double_proposer"})
    assert sim.min_honest_height() >= 8
    return sim


def attacks_of_7(seed: int) -> Simulation:
    """Two of seven attack at once (a far-future proposer and a junk sender) while an
    honest validator crashes and restarts, and catches up through sync."""
    kinds = {seed % 7: "future_timestamp", (seed + 2) % 7: "junk_gossip"}
    crashed = (seed + 4) % 7
    sim = Simulation(7, seed=seed, byzantine=kinds, max_delay=0.08)
    sim.at(0.3, lambda: sim.crash(crashed))
    sim.run(1.2)
    sim.restart(crashed)
    healed = sim.min_honest_height()
    sim.run(3.0)
    safe(sim)
    assert set(sim.penalties) <= set(kinds)
    assert sim.min_honest_height() >= healed + 2
    return sim


def mixed(seed: int) -> Simulation:
    """7 validators: one double-voter, one crash, and a partition that heals."""
    sim = Simulation(7, seed=seed, byzantine={6: "double_voter"}, max_delay=0.08)
    sim.at(0.2, lambda: sim.crash(seed % 6))
    sim.at(0.4, lambda: sim.partition({0, 1, 2}, {3, 4, 5, 6}))
    sim.run(1.2)
    sim.heal()
    healed = sim.min_honest_height()
    sim.restart(seed % 6)
    sim.run(3.0)
    safe(sim)
    assert sim.min_honest_height() >= healed + 2
    return sim


SCENARIOS = {
    "happy": happy,
    "crash_f_of_4": crash_and_restart,
    "crash_f_of_7": lambda s: crash_and_restart(s, 7),
    "split_2_2": split_then_heal,
    "split_1_3": lambda s: split_then_heal(s, 4, 1),
    "equivocating_proposer": lambda s: byzantine(s, 4, {s % 4: "equivocating_proposer"}),
    "double_voter": lambda s: byzantine(s, 4, {s % 4: "double_voter"}),
    "silent": lambda s: byzantine(s, 4, {s % 4: "silent"}),
    "two_byzantine_of_7": lambda s: byzantine(
        s, 7, {0: "equivocating_proposer", 3: "double_voter"}
    ),
    "weighted_byzantine": lambda s: byzantine(
        s, 5, {0: "double_voter"}, powers=[3, 3, 2, 1, 1]
    ),  # 3 of 10 < 1/3
    "mixed": mixed,
    "future_timestamp": future_timestamp,
    "junk_gossip": junk_gossip,
    "junk_gossip_of_7": lambda s: junk_gossip(s, 7),
    "lying_sync_peer": lying_sync_peer,
    "double_proposer": double_proposer,
    "attacks_of_7": attacks_of_7,
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario(scenario, seed):
    SCENARIOS[scenario](seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 62))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_many_seeds(scenario, seed):
    SCENARIOS[scenario](seed)


def test_same_seed_same_run():
    a, b = Simulation(4, seed=5), Simulation(4, seed=5)
    a.run(1.0)
    b.run(1.0)
    assert [n.decisions for n in a.nodes] == [n.decisions for n in b.nodes]
    assert a.delivered == b.delivered


def test_no_progress_without_a_quorum_but_no_violation_either():
    sim = Simulation(4, seed=3)
    sim.run(0.3)
    sim.crash(0)
    sim.crash(1)
    stuck = max(n.height for n in sim.nodes)
    sim.run(2.0)
    safe(sim)
    assert max(n.height for n in sim.nodes) <= stuck + 1
    sim.restart(0)
    sim.run(4.0)
    assert sim.min_honest_height() > stuck + 1  # resumes when one returns
