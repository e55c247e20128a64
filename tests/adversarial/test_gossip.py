"""Junk consensus gossip from one byzantine validator, on real processes.

Four validators on loopback; validator 3 is replaced by a byzantine process
that sends junk votes to validator 0 alone: bad signatures, keys outside the
set, far-future heights, megabyte payloads. Validator 0 checks before it
forwards, so validators 1 and 2 never see the junk and never blame 0: the three
honest ones stay connected, keep committing with equal roots, and only the
byzantine one is penalised (banned by 0). A node that forwarded before checking
passed one burst of junk on and got itself banned by 1 and 2 (four junk votes
are enough), and with 0 cut off the other two hold half the power: the chain
can halt.
"""

from __future__ import annotations

import time

from focusflow.testing.byzantine import Byzantine, banned_by, node_id, offences_by


def test_junk_votes_get_their_sender_banned_and_never_an_honest_relayer(testnet):
    net = testnet
    honest = range(3)
    net.wait_height(range(4), 2, 60)
    ids = [node_id(net, k) for k in range(4)]
    byz = Byzantine(net, 3, "junk", "--target", ids[0].hex())
    try:
        # Junk reaches validator 0, which blames its sender and bans it.
        deadline = time.monotonic() + 30
        while not banned_by(net, 0, ids[3]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert banned_by(net, 0, ids[3]), net.logs()
        assert offences_by(net, 0, ids[3]) >= 4, net.logs()
        # The honest three keep committing, with equal roots, over the next heights.
        start = max(net.height(k) for k in honest)
        net.wait_height(honest, start + 6, 60)
        net.assert_agree(honest, start + 6)
        # Nobody honest was blamed or banned by anyone honest.
        for k in honest:
            for j in honest:
                assert not banned_by(net, k, ids[j]), (k, j, net.logs())
                assert offences_by(net, k, ids[j]) == 0, (k, j, net.logs())
        # The junk stayed at validator 0: no honest node forwarded it to the others.
        assert offences_by(net, 1, ids[0]) == offences_by(net, 2, ids[0]) == 0
    finally:
        byz.stop()
