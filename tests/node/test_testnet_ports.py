"""The port ranges the process tests give their nodes."""

from __future__ import annotations

from focusflow.testing.testnet import ephemeral_start, free_base_port


def test_node_ports_lie_below_the_ephemeral_range() -> None:
    # a range inside it can be taken by any socket opened between the check
    # and the nodes' bind (seen: a validator's QUIC port lost to a peer's dial)
    for n in (1, 4, 6):
        for _ in range(20):
            base = free_base_port(n)
            assert base >= 10_000 and base + 2 * n <= ephemeral_start()
