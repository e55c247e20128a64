"""A validator proposing blocks stamped 2^64 - 1, on real processes.

Four validators on loopback; validator 3 is replaced by a byzantine process
(tests/adversarial/byzantine_node.py) that, whenever it is the proposer, proposes
an otherwise well-formed block whose time is the largest uint64. Were that block
committed, no later header could carry a larger time and the chain would halt.
The honest three must refuse it (prevote nil), commit the next round's blocks,
agree on every root, and keep every block time sane.
"""

from __future__ import annotations


def test_far_future_proposer_does_not_halt_or_fork_the_chain(net):
    # It proposes in one round of four: two attacks, each followed by commits.
    net.survive(3, "future_time", times=2, pause=2)
