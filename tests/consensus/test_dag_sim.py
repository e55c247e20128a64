"""The DAG cost-model simulation against what its model implies in closed form."""

from __future__ import annotations

import math

import pytest

from focusflow.consensus.dag_sim import SimConfig, SimCosts, simulate
from focusflow.core.errors import InvalidParameterError

FREE = SimCosts(
    verify_s=0.0, sign_s=0.0, exec_s=0.0, tx_bytes=100, bandwidth=1e15, delay_s=(0.01, 0.01)
)


def test_a_free_network_takes_three_delays_a_height():
    """Proposal, prevote, precommit: 30 ms a height with 10 ms links and no costs."""
    r = simulate(SimConfig(4, "proposer", 100, duration_s=3.0, warmup_s=0.5), FREE)
    assert r.heights == pytest.approx(3.0 / 0.03, abs=1)


def test_execution_adds_to_each_height():
    # 100 tx/s over 4 validators, 1 ms each to execute: a height of 30 ms + k ms
    # holds k = 100 * (0.03 + k/1000) transactions, so k = 3/0.9.
    costs = SimCosts(0.0, 0.0, 1e-3, 100, 1e15, (0.01, 0.01))
    r = simulate(SimConfig(4, "proposer", 100, duration_s=20.0, warmup_s=2.0), costs)
    k = 3 / 0.9
    assert 20.0 / r.heights == pytest.approx(0.03 + k / 1000, rel=0.1)


def test_the_dag_path_adds_the_seal_wait_and_a_round_trip():
    """Submission to certified in a free network: half a round waiting for the seal
    on average, then the batch out and the votes back (two delays)."""
    r = simulate(SimConfig(4, "dag", 400, duration_s=6.0, warmup_s=1.0, tick_s=0.05), FREE)
    assert r.phases["sealed_to_certified"] == pytest.approx(0.02, abs=1e-9)
    assert r.phases["submit_to_sealed"] == pytest.approx(0.025, abs=0.01)
    assert r.final_share == 1.0


def test_the_proposer_uplink_limits_throughput_and_the_dag_spreads_it():
    """At 10 Mbit/s, 8 validators and 250-byte transactions, the proposer's uplink
    carries 7 copies of every block: at most 10e6/8/(7*250) = 714 tx/s; each DAG
    author sends only its own eighth to 7 peers (and certificates)."""
    costs = SimCosts(0.0, 0.0, 0.0, 250, 10e6 / 8, (0.005, 0.02))
    proposer = simulate(SimConfig(8, "proposer", 1500, duration_s=6.0, warmup_s=2.0), costs)
    dag = simulate(SimConfig(8, "dag", 1500, duration_s=6.0, warmup_s=2.0, tick_s=0.05), costs)
    assert proposer.tx_per_s < 10e6 / 8 / (7 * 250) * 1.05
    assert proposer.final_share < 0.9
    assert dag.final_share > 0.95 and dag.tx_per_s > 2 * proposer.tx_per_s


def test_a_seed_replays_a_run():
    costs = SimCosts(60e-6, 25e-6, 200e-6, 150)
    a, b = (simulate(SimConfig(5, "dag", 300, duration_s=2.0, seed=3), costs) for _ in range(2))
    assert (a.committed, a.finality_p50_s, a.heights) == (b.committed, b.finality_p50_s, b.heights)
    assert not math.isnan(a.finality_p50_s)


def test_bad_configs_are_refused():
    with pytest.raises(InvalidParameterError):
        SimConfig(4, "gossip", 100)
    with pytest.raises(InvalidParameterError):
        SimConfig(4, "dag", 0)


def test_lazy_certificate_checks_cost_a_fraction_of_checking_all():
    """16 validators: checking every certificate is 16 certificates of 11
    signatures a round for each validator; lazily, only the next proposers check."""
    costs = SimCosts(100e-6, 0.0, 0.0, 100, 1e15, (0.005, 0.02))
    runs = {
        checks: simulate(SimConfig(16, "dag", 800, duration_s=3.0, cert_checks=checks), costs)
        for checks in ("all", "lazy")
    }
    # Checking all: 16 batches a round (each validator's 2.5 transactions a round
    # leave a round empty with probability e^-2.5), 20 rounds/s, 11 signatures:
    # 0.33 of a CPU. Lazily a validator checks in 3 heights of 16: it saves over half.
    all_checks = 16 * 20 * (1 - math.exp(-2.5)) * 11 * 100e-6
    assert runs["all"].cpu_busy > all_checks
    assert runs["lazy"].cpu_busy < runs["all"].cpu_busy - all_checks / 2
    assert runs["lazy"].final_share == runs["all"].final_share == 1.0
    with pytest.raises(InvalidParameterError):
        SimConfig(4, "dag", 100, cert_checks="some")
