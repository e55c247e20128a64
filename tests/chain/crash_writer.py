"""Child process of the crash test: commits random blocks until killed.

Prints ``committed <height> <state root hex>`` after each commit returns, so
the parent knows what must survive a SIGKILL.
"""

from __future__ import annotations

import sys

from focusflow.testing.chains import new_chain
from tests.chain.randomtx import random_blocks


def main() -> None:
    home, seed = sys.argv[1], int(sys.argv[2])
    chain = new_chain(home)
    blocks = random_blocks(seed=seed, blocks=400, txs_per_block=8)
    for h in range(chain.height + 1, len(blocks) + 1):
        chain.produce_block(blocks[h - 1], time_ms=1_700_000_000_000 + 1000 * h)
        print(f"committed {h} {chain.head.state_root.hex()}", flush=True)


if __name__ == "__main__":
    main()
