"""A validator that signs two valid proposals for each round it leads, on real
processes.

Four validators on loopback; validator 3 is replaced by a byzantine process
(tests/adversarial/byzantine_node.py) that gossips, with each of its proposals, a
second valid block for the same height and round. The honest three must keep
committing, one block per height, with the same roots everywhere.
"""

from __future__ import annotations


def test_second_proposal_per_round_does_not_stall_or_fork(net):
    net.wait_height(range(4), 2, 60)
    net.become_byzantine(3, "double_proposal", pause=2)
    honest = net.honest()
    # One is enough: the second proposal is evidence, and a jailed validator leads no round.
    net.wait_for("a double proposal", lambda: len(net.attacks(3)) >= 1, 90)
    last_attack = max(h for _, h in net.attacks(3))
    net.wait_height(honest, last_attack + 3, 60)
    top = min(net.heights(honest).values())
    net.assert_agree_all(honest, top)
