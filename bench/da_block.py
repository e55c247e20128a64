"""What data availability adds to each block: the pipeline's DA step alone.

The chain computes ``block_square(txs).data_root()`` (``chain/da_commit.py``)
once per block, producer and follower alike: lay the block's encoded
transactions out in shares, extend the square, hash every NMT root and the
data root. This script times exactly that step, outside the chain, for the
blocks the pipeline benchmark (``bench/chain.py``) and a devnet see:

* an empty block (the common case on an idle devnet: a constant, cached square);
* 100 small transactions (one ``send`` each, and one link each);
* 100 transactions of 100 links (the pipeline benchmark's 10,000-link block).

For each: the median and best wall time of ``--repeat`` runs after a warm-up,
the process CPU time of the median run, and the split between layout,
extension (coding) and roots (hashing); then the cost of serving one share
with its proof from a kept square (``DAStore.share_proof``).

Run from the repository root::

    python bench/da_block.py
    python bench/da_block.py --repeat 21
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

from focusflow.chain import Msg, make_tx
from focusflow.chain.da_commit import block_square
from focusflow.core.keys import KeyPair
from focusflow.da import extend, square_from_block


def cid(i: int) -> bytes:
    return b"\x01\x55\x12\x20" + i.to_bytes(32, "big")


def blocks() -> dict[str, list[bytes]]:
    keys = [KeyPair.from_seed(i.to_bytes(32, "big")) for i in range(1, 101)]

    def block(n_links: int) -> list[bytes]:
        out = []
        for j in range(100):
            if n_links:
                pairs = [[cid(j * n_links + i), cid(j * n_links + i + 7)] for i in range(n_links)]
                msg = Msg("link", {"links": pairs})
            else:
                msg = Msg("send", {"to": bytes(20), "amount": 1})
            out.append(make_tx(keys[j], "bench", 0, 10**7, [msg]).encoded)
        return out

    return {
        "empty": [],
        "100 send txs": block(0),
        "100 txs x 1 link": block(1),
        "100 txs x 100 links (10k links)": block(100),
    }


def measure(txs: list[bytes], repeat: int) -> dict:
    block_square(txs).data_root()  # warm-up: numba kernels, the cached empty square
    walls, cpus, parts = [], [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        block_square(txs).data_root()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        if txs:
            t0 = time.perf_counter()
            shares = square_from_block(txs)
            t1 = time.perf_counter()
            square = extend(shares)
            t2 = time.perf_counter()
            square.data_root()
            t3 = time.perf_counter()
            parts.append((t1 - t0, t2 - t1, t3 - t2))
    square = block_square(txs)
    t = time.perf_counter()
    n_proofs = 50
    for i in range(n_proofs):
        square.proof(i % square.width, (7 * i) % square.width)
    proof_ms = (time.perf_counter() - t) / n_proofs * 1e3
    split = [statistics.median(p[i] for p in parts) * 1e3 for i in range(3)] if parts else [0] * 3
    return {
        "bytes": sum(map(len, txs)),
        "k": square.k,
        "median_ms": statistics.median(walls) * 1e3,
        "best_ms": min(walls) * 1e3,
        "cpu_ms": statistics.median(cpus) * 1e3,
        "split": split,
        "proof_ms": proof_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    import numba
    import numpy as np

    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or 'cpu'}")
    print(
        f"# {os.cpu_count()} CPUs, numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS}"
        f" threads), numpy {np.__version__}; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        "| block | tx bytes | k | DA step median ms | best ms | CPU ms"
        " | layout / extend / roots ms | one share proof ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for name, txs in blocks().items():
        r = measure(txs, args.repeat)
        lay, ext, roots = r["split"]
        print(
            f"| {name} | {r['bytes']:,} | {r['k']} | {r['median_ms']:.3f} | {r['best_ms']:.3f}"
            f" | {r['cpu_ms']:.3f} | {lay:.2f} / {ext:.2f} / {roots:.2f} | {r['proof_ms']:.2f} |"
        )
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
