"""Child process of the checkpoint crash test: commits blocks, each of which
starts a background checkpoint write, until it is killed.

Prints ``durable <height>`` once a checkpoint of that height is on disk, and
``writing <height>`` when the commit of that height has returned with its
checkpoint's write in flight; it then commits nothing more (it waits on its
stdin, to which the parent never writes, until the parent kills it).
"""

from __future__ import annotations

import sys

from focusflow.chain import lifecycle
from focusflow.testing.chains import new_chain
from tests.chain.link_blocks import GENESIS, grow, small_block


def main() -> None:
    chain = new_chain(sys.argv[1], GENESIS)
    if chain.height < 2:
        grow(chain, 2 - chain.height)
        assert chain.checkpoint()
    print(f"durable {chain.checkpoints.durable_height}", flush=True)
    lifecycle.CHECKPOINT_WORK_S = 0.0
    lifecycle.CHECKPOINT_COST_RATIO = 0.0
    while True:
        small_block(chain)
        if chain.checkpoints.busy:
            print(f"writing {chain.height}", flush=True)
            # The parent kills this process after that line: no block may
            # be committed past it meanwhile, however slowly the parent
            # reads (it never writes to stdin, so this waits for the kill).
            sys.stdin.readline()
        if chain.wait_checkpoint(timeout=120):
            print(f"durable {chain.checkpoints.durable_height}", flush=True)


if __name__ == "__main__":
    main()
