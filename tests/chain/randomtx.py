"""A seeded stream of random transactions, valid and failing, over a few neurons."""

from __future__ import annotations

import random

from focusflow.chain import Msg
from focusflow.testing.chains import ALICE, BOB, CAROL, VALIDATOR, particle, tx

KEYS = [ALICE, BOB, CAROL]


def random_blocks(seed: int, blocks: int, txs_per_block: int, particles: int = 200):
    """Lists of encoded transactions; nonces are right unless a tx is meant to fail."""
    rng = random.Random(seed)
    nonces = {k.public_key: 0 for k in KEYS}
    out = []
    for _ in range(blocks):
        batch = []
        for _ in range(txs_per_block):
            key = rng.choice(KEYS)
            kind = rng.random()
            if kind < 0.6:
                links = []
                for _ in range(rng.randint(1, 20)):
                    a, b = rng.sample(range(particles), 2)
                    links.append([particle(f"p{a}"), particle(f"p{b}")])
                msg = Msg("link", {"links": links})
            elif kind < 0.7:
                msg = Msg("stake", {"amount": rng.randint(1, 10**5)})
            elif kind < 0.8:
                msg = Msg("unstake", {"amount": rng.randint(1, 10**6)})
            elif kind < 0.9:
                to = rng.choice([*KEYS, VALIDATOR]).address_raw
                msg = Msg("send", {"to": to, "amount": rng.randint(1, 10**13)})
            elif kind < 0.95:
                name = "n" + "".join(rng.choice("abc") for _ in range(4))
                msg = Msg("name.register", {"name": name, "cid": particle(name)})
            else:
                msg = Msg("blob.put", {"data": rng.randbytes(rng.randint(0, 2000))})
            batch.append(tx(key, nonces[key.public_key], msg))
            nonces[key.public_key] += 1
        out.append(batch)
    return out
