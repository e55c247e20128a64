"""Blocks of many random links: a chain whose focus state is large enough that
writing its checkpoint takes far longer than forking the process."""

from __future__ import annotations

import numpy as np

from focusflow.chain import Msg
from focusflow.core.cid import raw_cid_bytes
from focusflow.testing.chains import ALICE, BOB, CAROL, account, genesis, tx

#: Diffusion is the cheapest focus to recompute per block; the checkpoint
#: holds the graph either way.
GENESIS = genesis(focus={"mode": "diffusion"})
PARTICLES = 20_000
PER_TX = 10_000
T0 = 1_700_000_000_000
CIDS = [raw_cid_bytes(f"q{i}".encode()) for i in range(PARTICLES)]


def grow(chain, blocks: int, txs_per_key: int = 3) -> None:
    """Commit ``blocks`` blocks of ``3 * txs_per_key * PER_TX`` random links."""
    for _ in range(blocks):
        h = chain.height + 1
        rng = np.random.default_rng(h)
        txs = []
        for key in (ALICE, BOB, CAROL):
            nonce = account(chain, key).nonce
            for k in range(txs_per_key):
                src, dst = rng.integers(0, PARTICLES, (2, PER_TX))
                links = [[CIDS[a], CIDS[b]] for a, b in zip(src, dst, strict=True)]
                txs.append(tx(key, nonce + k, Msg("link", {"links": links})))
        chain.produce_block(txs, time_ms=T0 + 1000 * h)


def small_block(chain):
    """Commit one block of one link (its focus work is short); its result."""
    h = chain.height + 1
    links = [[CIDS[h % PARTICLES], CIDS[(7 * h + 1) % PARTICLES]]]
    txs = [tx(ALICE, account(chain, ALICE).nonce, Msg("link", {"links": links}))]
    return chain.produce_block(txs, time_ms=T0 + 1000 * h)
