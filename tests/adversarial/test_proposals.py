"""A validator that signs two valid proposals for each round it leads, on real
processes.

Four validators on loopback; validator 3 is replaced by a byzantine process
(tests/adversarial/byzantine_node.py) that gossips, with each of its proposals, a
second valid block for the same height and round. The honest three must keep
committing, one block per height, with the same roots everywhere.
"""

from __future__ import annotations


def test_second_proposal_per_round_does_not_stall_or_fork(net):
    # One is enough: the second proposal is evidence, and a jailed validator leads no round.
    net.survive(3, "double_proposal", times=1, pause=2)
