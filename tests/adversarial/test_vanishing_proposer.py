"""A proposer that goes down once its block has a polka, on real processes.

Four validators on loopback; validator 3 is replaced by a byzantine process
(tests/adversarial/byzantine_node.py, ``vanish_after_polka``) that serves its
proposal's shares to two of the honest validators only, and exits at the moment
it would precommit its own block. The two that sampled it prevoted it, saw the
polka with the proposer's prevote and are locked on it; the third refused it
(its shares were withheld). The three left hold 3 of 4 votes and must finish
the height: the locked ones re-propose the block in later rounds, and the third
samples it from them. When a re-proposal was sampled from the block's maker
(gone) and the refusal kept for the whole height, nothing got 2/3 again and the
chain stopped for good.
"""

from __future__ import annotations


def test_a_proposer_gone_after_its_polka_does_not_stop_the_chain(net):
    net.wait_height(range(net.n), 2, 60)
    net.become_byzantine(3, "vanish_after_polka", pause=2)
    net.wait_for("the proposer vanished", lambda: len(net.attacks(3)) >= 1, 90)
    (_, height), *_ = net.attacks(3)
    honest = net.honest()
    net.wait_height(honest, height + 2, 90)
    net.assert_agree_all(honest, min(net.heights(honest).values()))
