"""Four validator processes on loopback whose mempool is the DAG.

Real processes (``focusflow testnet --mempool dag``), real QUIC, every wait
bounded. A transaction submitted to a validator is sealed into that
validator's own batch (its signed log holds it), certified by the others'
votes, and committed by a proposal that names the certificate; all four agree.
With one validator killed the other three keep certifying and committing;
restarted, it catches up by block sync, takes up its log, and its own clients'
transactions commit again. A full node follows by block sync and passes its
clients' transactions on by gossip. Epochs of 8 blocks: every validator moves its DAG to
each new epoch (a certificate names its epoch's set) and transactions still
commit past several boundaries.
"""

from __future__ import annotations

import json
import time

import pytest

from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.testing.testnet import LocalTestnet


def sealed_by(net: LocalTestnet, k: int, tag: str, wait: float = 0.0) -> bool:
    """Whether validator k's DAG log holds a batch with the tag's link target
    (polled for ``wait`` seconds: a batch is sealed within a DAG round, and the
    log forgets it when its epoch ends)."""
    log = net.home / f"v{k}" / "consensus.dag.wal"
    target = cid_to_bytes(cid_of_text(tag))
    deadline = time.monotonic() + wait
    while True:
        if target in log.read_bytes():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


@pytest.mark.timeout(600)
def test_four_validators_commit_through_certified_batches_and_survive_a_crash(tmp_path):
    net = LocalTestnet(
        tmp_path / "tn", 4, extra=("--mempool", "dag", "--epoch-blocks", "8"), full_nodes=1
    )
    try:
        all4 = range(4)
        genesis = json.loads((net.home / "genesis.json").read_text())
        assert genesis["params"]["consensus"] == {"mempool": "dag"}

        # Each is sealed by the validator its client spoke to, and by no other.
        alpha = net.submit_links(0, "alpha", 0)
        assert sealed_by(net, 0, "alpha", wait=5)
        h1 = net.wait_tx(0, alpha, 60)
        beta = net.submit_links(2, "beta", 1)
        assert sealed_by(net, 2, "beta", wait=5)
        h2 = net.wait_tx(2, beta, 60)
        assert not sealed_by(net, 1, "alpha") and not sealed_by(net, 3, "beta")
        assert h2 > h1
        net.wait_height(all4, h2 + 1, 30)
        net.assert_agree(all4, h2 + 1)
        dag = net.status(0)["dag"]
        assert dag["sealed"] >= 1 and dag["certified"] >= 1 and dag["epoch"] >= 0, dag
        assert net.status(4)["dag"] is None  # the full node runs none
        # The full node (node 4) runs no DAG: it follows by block sync, and a
        # transaction submitted to it goes by gossip to the validators.
        h_full = net.wait_tx(0, net.submit_links(4, "via-full", 2), 60)
        net.wait_height([4], h_full, 60)
        net.assert_agree([*all4, 4], h_full)

        net.kill(3)
        h3 = net.wait_tx(1, net.submit_links(1, "gamma", 3), 60)
        net.wait_height(range(3), h3 + 1, 30)
        net.assert_agree(range(3), h3 + 1)

        net.restart(3)
        top = max(net.height(k) for k in range(3))
        net.wait_height(all4, max(top + 1, 3 * 8 + 1), 90)
        net.assert_agree(all4, top + 1)
        delta = net.submit_links(3, "delta", 4)
        assert sealed_by(net, 3, "delta", wait=5)
        h4 = net.wait_tx(3, delta, 60)
        assert h4 > 3 * 8  # past three epoch boundaries
        net.wait_height(all4, h4 + 1, 30)
        net.assert_agree(all4, h4 + 1)
    finally:
        net.stop()
