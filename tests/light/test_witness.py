"""A witness a block or two behind the primary is waited for, not taken for a
liar; one that never catches up is named, with its own error code."""

from __future__ import annotations

from typing import Any

import pytest

from focusflow.light.client import LightClient, WitnessLaggingError
from focusflow.light.errors import NodeRequestError
from focusflow.light.store import LightStore
from focusflow.light.synthetic import SyntheticChain
from tests.light.synth_node import ChainNode

T0 = 1_700_000_000_000


class LaggingNode(ChainNode):
    """Answers ``unknown_block`` for headers above ``behind`` until asked ``lag`` times."""

    def __init__(self, chain: SyntheticChain, behind: int, lag: int) -> None:
        super().__init__(chain, "synthetic://witness")
        self.behind, self.lag, self.refused = behind, lag, 0

    def get(self, path: str, params: dict | None = None) -> Any:
        tail = path.rsplit("/", 1)[-1]
        header = path.startswith("/v1/light/header/") and tail.isdigit()
        if header and int(tail) > self.behind and self.refused < self.lag:
            self.refused += 1
            raise NodeRequestError(f"{path}: no block at height {tail}", node_code="unknown_block")
        return super().get(path, params)


def _client(tmp_path, chain, wait_s):
    client = LightClient(
        LightStore(tmp_path, chain.chain_id),
        ChainNode(chain),
        clock=lambda: T0 + 60_000,
        witness_wait_s=wait_s,
    )
    client.trust_genesis(chain.set_at(1))
    return client


def test_a_witness_one_block_behind_is_waited_for(tmp_path):
    chain = SyntheticChain("focusflow-synthetic", 12, {1: {1: 5}}, T0)
    client = _client(tmp_path, chain, wait_s=5.0)
    head = client.sync()
    witness = LaggingNode(chain, behind=head.height - 1, lag=2)
    client.check_witness(witness, head)  # no error: it answered on the third ask
    assert witness.refused == 2


def test_a_witness_that_never_catches_up_is_named(tmp_path):
    chain = SyntheticChain("focusflow-synthetic", 12, {1: {1: 5}}, T0)
    client = _client(tmp_path, chain, wait_s=0.3)
    head = client.sync()
    witness = LaggingNode(chain, behind=head.height - 1, lag=10**6)
    with pytest.raises(WitnessLaggingError, match="behind the primary") as exc:
        client.check_witness(witness, head)
    assert exc.value.code == "witness_lagging"
