"""The seeded fault schedules, run for every engine: Tendermint, Snowman, fallback.

Safety (no two honest validators decide different values at one height, synced
decisions included; no honest validator signs two messages for one slot; no
honest node penalised) is checked by the simulator throughout, for every engine
and schedule. Liveness is asserted where the engine promises it:

- Tendermint and the fallback: with faulty power below 1/3, after partitions heal.
- Snowman: a poll succeeds only with ``alpha_confidence`` of ``k`` answers agreeing
  (15 of 20; with no more validators than ``k``, the quorum ``n - f``: 3 of 4 and
  5 of 7 here), so with up to ``f`` of ``n`` crashed or lying it is live, as
  Tendermint is, and liveness is asserted in every schedule.

CI runs two seeds per schedule for Snowman and the fallback (Tendermint's own
schedules are test_simulation.py's); ``-m slow`` runs seventy more for
Tendermint, the fallback and Snowman with beta = 5, and twenty more for Snowman
with its default beta = 20.
"""

from __future__ import annotations

import pytest

from focusflow.consensus.actions import Accept, Decide
from focusflow.consensus.sim import FAR_FUTURE_MS, Simulation, value_time
from focusflow.consensus.snowball import SnowmanParams
from focusflow.core.encoding import decode

#: Engines under test. "snowman_beta5" is Snowman with beta = 5 instead of 20:
#: its heights take a quarter of the polls, so the same CPU tests four times the
#: decisions, and a smaller beta is the less safe setting, so for safety it is
#: the harder test (at 4 and 7 validators the safety argument does not use beta).
#: "snowman_notarised" and "fallback_notarised" run the engines as the node does,
#: each accept certified by attestations (notarise.py): every decision is then a
#: certificate, which block sync checks like Tendermint's.
ENGINES = (
    "tendermint",
    "snowman",
    "snowman_beta5",
    "fallback",
    "snowman_notarised",
    "fallback_notarised",
)
BETA5 = SnowmanParams(beta=5)


def make(engine: str, n: int, **kw) -> Simulation:
    if engine == "snowman_beta5":
        return Simulation(n, engine="snowman", snowman=BETA5, **kw)
    if engine == "snowman_notarised":
        return Simulation(n, engine="snowman", snowman=BETA5, notarise=True, **kw)
    if engine == "fallback_notarised":
        return Simulation(n, engine="fallback", notarise=True, **kw)
    return Simulation(n, engine=engine, **kw)


def safe(sim: Simulation) -> None:
    assert sim.violations == []
    for h, first in sim.committed.items():
        for node in sim.honest():
            if h in node.decisions:
                assert node.decisions[h].value_id == first.value_id
    for first in sim.committed.values():
        assert value_time(first.value) <= 1000 * (sim.now + sim.max_drift)


def stretch(engine: str, seconds: float) -> float:
    """Simulated time a schedule gets: Snowman needs more per height."""
    return seconds * {"snowman": 4.0, "snowman_beta5": 1.5, "snowman_notarised": 1.5}.get(
        engine, 1.0
    )


def happy(engine: str, seed: int) -> Simulation:
    sim = make(engine, 4, seed=seed)
    sim.run(stretch(engine, 1.5))
    safe(sim)
    assert sim.min_honest_height() >= 6
    return sim


def crash_and_restart(engine: str, seed: int, n: int = 4) -> Simulation:
    f = (n - 1) // 3
    sim = make(engine, n, seed=seed)
    crashed = [i % n for i in range(seed % n, seed % n + f)]
    sim.run(stretch(engine, 0.3))
    for i in crashed:
        sim.crash(i)
    start = sim.min_honest_height()
    sim.run(stretch(engine, 2.0))
    assert sim.min_honest_height() >= start + 2  # live with f of n down
    for i in crashed:
        sim.restart(i)
    top = max(node.height for node in sim.nodes)
    sim.run(sim.now + stretch(engine, 2.5))
    safe(sim)
    assert all(sim.nodes[i].height >= top for i in crashed)
    assert sim.min_honest_height() >= top + 1
    return sim


def split_then_heal(engine: str, seed: int, n: int = 4, minority: int = 2) -> Simulation:
    sim = make(engine, n, seed=seed)
    sim.run(stretch(engine, 0.3))
    sim.partition(set(range(minority)), set(range(minority, n)))
    sim.run(sim.now + stretch(engine, 1.0))
    sim.heal()
    healed = sim.min_honest_height()
    sim.run(sim.now + stretch(engine, 3.0))
    safe(sim)
    assert sim.min_honest_height() >= healed + 2
    return sim


def byzantine(engine: str, seed: int, n: int, kinds: dict[int, str]):
    sim = make(engine, n, seed=seed, byzantine=kinds, max_delay=0.08)
    sim.run(stretch(engine, 2.0))
    safe(sim)
    assert sim.min_honest_height() >= 3
    return sim


def future_timestamp(engine: str, seed: int) -> Simulation:
    liar = seed % 4
    sim = byzantine(engine, seed, 4, {liar: "future_timestamp"})
    assert all(value_time(d.value) < FAR_FUTURE_MS for d in sim.committed.values())
    assert all(decode(d.value)[2] != liar for d in sim.committed.values())
    return sim


def junk_gossip(engine: str, seed: int, n: int = 4) -> Simulation:
    junk = seed % n
    sim = byzantine(engine, seed, n, {junk: "junk_gossip"})
    assert sim.invalid_messages > 0
    assert set(sim.penalties) == {junk}
    return sim


def lying_sync_peer(engine: str, seed: int) -> Simulation:
    liar, crashed = seed % 4, (seed + 1) % 4
    sim = make(engine, 4, seed=seed, byzantine={liar: "lying_sync_peer"}, max_delay=0.08)
    sim.at(stretch(engine, 0.3), lambda: sim.crash(crashed))
    sim.run(stretch(engine, 1.3))
    sim.restart(crashed)
    top = max(node.height for node in sim.honest())
    sim.run(sim.now + stretch(engine, 2.0))
    safe(sim)
    assert sim.forged_syncs > 0
    assert set(sim.penalties) == {liar}
    assert sim.nodes[crashed].height >= top
    return sim


def mixed(engine: str, seed: int) -> Simulation:
    """7 validators: a liar (double votes, lying chits), a crash, a healed partition."""
    sim = make(engine, 7, seed=seed, byzantine={6: "double_voter"}, max_delay=0.08)
    sim.at(stretch(engine, 0.2), lambda: sim.crash(seed % 6))
    sim.at(stretch(engine, 0.4), lambda: sim.partition({0, 1, 2}, {3, 4, 5, 6}))
    sim.run(stretch(engine, 1.2))
    sim.heal()
    sim.restart(seed % 6)
    healed = sim.min_honest_height()
    sim.run(sim.now + stretch(engine, 3.0))
    safe(sim)
    assert sim.min_honest_height() >= healed + 2
    return sim


SCENARIOS = {
    "happy": happy,
    "crash_f_of_4": crash_and_restart,
    "crash_f_of_7": lambda e, s: crash_and_restart(e, s, 7),
    "split_2_2": split_then_heal,
    "split_1_3": lambda e, s: split_then_heal(e, s, 4, 1),
    "equivocating_proposer": lambda e, s: byzantine(e, s, 4, {s % 4: "equivocating_proposer"}),
    "double_voter": lambda e, s: byzantine(e, s, 4, {s % 4: "double_voter"}),
    "silent": lambda e, s: byzantine(e, s, 4, {s % 4: "silent"}),
    "two_byzantine_of_7": lambda e, s: byzantine(
        e, s, 7, {0: "equivocating_proposer", 3: "double_voter"}
    ),
    "double_proposer": lambda e, s: byzantine(e, s, 4, {s % 4: "double_proposer"}),
    "future_timestamp": future_timestamp,
    "junk_gossip": junk_gossip,
    "junk_gossip_of_7": lambda e, s: junk_gossip(e, s, 7),
    "lying_sync_peer": lying_sync_peer,
    "mixed": mixed,
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize(
    "engine", ["snowman", "fallback", "snowman_notarised", "fallback_notarised"]
)
def test_scenario(engine, scenario, seed):
    SCENARIOS[scenario](engine, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 72))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize(
    "engine",
    ["tendermint", "snowman_beta5", "fallback", "snowman_notarised", "fallback_notarised"],
)
def test_scenario_many_seeds(engine, scenario, seed):
    """1,050 schedules per engine."""
    SCENARIOS[scenario](engine, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 22))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_snowman_default_beta_many_seeds(scenario, seed):
    """300 more with beta = 20 (each costs about four times a beta-5 schedule)."""
    SCENARIOS[scenario]("snowman", seed)


def test_fallback_is_tendermint_while_heights_decide():
    """Without stalls the fallback runs Tendermint exactly: same decisions, same traffic."""
    a = Simulation(4, seed=9, engine="tendermint")
    b = Simulation(4, seed=9, engine="fallback")
    a.run(1.0)
    b.run(1.0)
    assert [n.decisions for n in a.nodes] == [n.decisions for n in b.nodes]
    assert a.delivered == b.delivered


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fallback_switches_stalled_heights_and_stays_safe(seed):
    """Switching after one failed round, under a partition, a crash and a liar:
    safe, and live once the partition heals."""
    sim = Simulation(
        7,
        seed=seed,
        engine="fallback",
        switch_after_rounds=1,
        byzantine={6: "double_voter"},
        max_delay=0.08,
    )
    sim.at(0.2, lambda: sim.crash(seed % 6))
    sim.at(0.4, lambda: sim.partition({0, 1, 2}, {3, 4, 5, 6}))
    sim.run(1.4)
    sim.heal()
    sim.restart(seed % 6)
    sim.run(5.0)
    safe(sim)
    assert sim.min_honest_height() >= 4


def test_fallback_decides_by_both_paths_on_a_slow_network():
    """Delays beyond the round timeouts make Tendermint rounds fail; switched
    heights are then decided by polling (with a poll timeout above the delays),
    others by Tendermint, among a liar, and never two ways."""
    kinds: set[type] = set()
    for seed in range(4):
        sim = Simulation(
            4,
            seed=seed,
            engine="fallback",
            switch_after_rounds=1,
            byzantine={3: "double_voter"},
            min_delay=0.02,
            max_delay=0.3,
            snowman=SnowmanParams(poll_timeout=0.8),
        )
        sim.run(12.0)
        safe(sim)
        assert sim.min_honest_height() >= 3
        kinds |= {type(d) for n in sim.honest() for d in n.decisions.values()}
    assert kinds == {Accept, Decide}


def test_same_seed_same_run_for_each_engine():
    for engine in ENGINES:
        a = make(engine, 4, seed=5)
        b = make(engine, 4, seed=5)
        a.run(2.0)
        b.run(2.0)
        assert [n.decisions for n in a.nodes] == [n.decisions for n in b.nodes]
        assert a.delivered == b.delivered
