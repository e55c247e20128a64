"""A lying block-sync peer, on real processes.

Four validators on loopback; validator 3 is replaced by a byzantine process
that claims a huge committed height (with no certificate to back it) and never
answers a block request. The honest three must not believe it: they keep
committing at their usual pace, and penalise the liar until they ban it. Before
sync checked claims and ran in its own task, every poll sent a node's consensus
task waiting 10 s for a block that never came, and the chain crawled.
"""

from __future__ import annotations

import time

from focusflow.testing.byzantine import Byzantine, banned_by, node_id, offences_by


def test_a_peer_claiming_a_huge_height_neither_stalls_consensus_nor_goes_unpunished(testnet):
    net = testnet
    honest = range(3)
    net.wait_height(range(4), 2, 60)
    liar_id = node_id(net, 3)
    liar = Byzantine(net, 3, "liar")
    try:
        # The liar is connected to the honest ones (it is a validator).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(liar.last.get("peers", {}).get("peers", [])) < 3:
            time.sleep(0.2)
        assert len(liar.last["peers"]["peers"]) == 3, liar.last
        # Ten heights in 30 s: three validators on 2 shared cores make several a
        # second; a consensus task stuck behind 10 s block requests makes almost none.
        start = max(net.height(k) for k in honest)
        net.wait_height(honest, start + 10, 30)
        net.assert_agree(honest, start + 10)
        # Every honest validator penalised the liar, and bans it.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(banned_by(net, k, liar_id) for k in honest):
            time.sleep(0.2)
        for k in honest:
            assert offences_by(net, k, liar_id) >= 4, net.logs()
            assert banned_by(net, k, liar_id), net.logs()
        assert all(net.height(k) < 10**6 for k in honest)
    finally:
        liar.stop()
