"""The fault plan: what tests hand a node to make it misbehave, and nothing else."""

from __future__ import annotations

import inspect

import pytest

from focusflow.chain.da_commit import block_square
from focusflow.core.errors import InvalidParameterError
from focusflow.node import devnet, network
from focusflow.node.da_store import DAStore
from focusflow.node.faults import FaultPlan, bad_encoding, fault_plan_option
from focusflow.node.runtime import NodeRuntime
from focusflow.node.validator import ValidatorRuntime


def test_a_plan_round_trips_through_its_json_and_refuses_what_it_does_not_know():
    plan = FaultPlan(da_withhold=0.5, da_withhold_seed=3, blob_serve_corrupt=True)
    assert FaultPlan.from_json(plan.to_json()) == plan
    assert FaultPlan.from_json("{}") == FaultPlan()
    assert FaultPlan.from_json('{"da_withhold": 1}').da_withhold == 1.0
    assert fault_plan_option(None) is None and fault_plan_option("") is None
    assert fault_plan_option('{"da_bad_encoding": true}') == FaultPlan(da_bad_encoding=True)
    for bad in (
        "not json",
        "[]",
        '{"da_withold": 0.5}',
        '{"da_withhold": 2}',
        '{"da_withhold_seed": 1.5}',
        '{"da_bad_encoding": 1}',
        '{"blob_serve_corrupt": "yes"}',
    ):
        with pytest.raises(InvalidParameterError):
            FaultPlan.from_json(bad)


def test_production_code_builds_no_plan_by_default():
    """Every place that takes a plan defaults to None: an honest node."""
    for fn in (
        NodeRuntime.__init__,
        ValidatorRuntime.__init__,
        DAStore.__init__,
        devnet.run_devnet,
        network.run_validator,
        network.start_validator,
    ):
        assert inspect.signature(fn).parameters["faults"].default is None, fn


def test_bad_encoding_holds_only_inside_its_block():
    txs = [bytes(range(200))]
    honest = block_square(txs, keep=False).data_root()
    with bad_encoding():
        assert block_square(txs, keep=False).data_root() != honest
    assert block_square(txs, keep=False).data_root() == honest
