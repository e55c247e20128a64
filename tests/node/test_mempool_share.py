"""A transaction admitted while a node has no peer still reaches the network.

Gossip is fire-and-forget: a full node that admits a transaction from its API
before its first connection (still starting, or its peers restarting) used to
keep it for itself. A peer that connects is now handed the pending
transactions. Two real runtimes over real QUIC on loopback, in one process.
"""

from __future__ import annotations

import asyncio

from focusflow.core.keys import KeyPair
from focusflow.node.validator import ValidatorRuntime
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx


def _runtime(tmp_path, name, chain, peers=()):
    return ValidatorRuntime(
        chain,
        KeyPair.generate(),
        wal_path=tmp_path / f"{name}.wal",
        listen=("127.0.0.1", 0),
        peers=list(peers),
        follow_only=True,
    )


def test_pending_transactions_are_handed_to_a_peer_that_connects_later(tmp_path):
    gen = genesis(focus={"mode": "diffusion"})

    async def main():
        lonely = _runtime(tmp_path, "a", new_chain(tmp_path / "a", gen, producer=False))
        await lonely.start_async()
        raws = [tx(ALICE, n, link((f"x{n}", f"y{n}"))) for n in range(3)]
        for raw in raws:
            await lonely.admit(raw)
        assert len(lonely.mempool) == 3
        host, port = lonely.net.address
        late = _runtime(
            tmp_path,
            "b",
            new_chain(tmp_path / "b", gen, producer=False),
            peers=[f"{lonely.net.id.hex()}@{host}:{port}"],
        )
        await late.start_async()
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while len(late.mempool) < 3:
                assert asyncio.get_running_loop().time() < deadline, len(late.mempool)
                await asyncio.sleep(0.05)
            assert {t.hash for t in late.mempool.oldest(10)} == {
                t.hash for t in lonely.mempool.oldest(10)
            }
        finally:
            await late.stop_async()
            await lonely.stop_async()

    asyncio.run(main())
