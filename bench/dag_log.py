"""What the DAG mempool's vote log costs: a vote per fsync against a round's votes in one.

A validator votes for every author's batch of a DAG round, and with a
``BatchSigner`` each vote reaches the log (fsynced) before it is returned. This
times, on a real file in the given directory, one round of ``n`` authors' batches
voted one call at a time (``on_batch``: an fsync per vote) and the same round
voted in one call (``on_batches``: one write and one fsync), alternating, and
prints the medians and their ratio; and the same without a log (signing alone).

Run from the repository root::

    python bench/dag_log.py                       # 4, 16 and 64 authors, in ~/.cache
    python bench/dag_log.py --authors 64 --rounds 50 --dir /var/tmp
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from focusflow.consensus.batch_signer import BatchSigner
from focusflow.consensus.batches import Batch
from focusflow.consensus.dag_mempool import DagMempool, DagParams
from focusflow.consensus.validators import ValidatorSet
from focusflow.consensus.wal import WriteAheadLog
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair

CHAIN = "bench-dag-log"


def round_of(keys: list[KeyPair], r: int) -> list[Batch]:
    """Every author's batch of round ``r`` (sequence ``r``, ten 150-byte transactions)."""
    return [
        Batch.seal(
            k, CHAIN, 0, r, [sha256(bytes([i, t]) + r.to_bytes(4, "big")) * 5 for t in range(10)]
        )
        for i, k in enumerate(keys)
    ]


def run(n: int, rounds: int, folder: Path) -> dict[str, float]:
    keys = [KeyPair.from_seed(sha256(b"bench" + i.to_bytes(2, "big"))) for i in range(n)]
    vs = ValidatorSet.create({k.public_key: 1 for k in keys})
    params = DagParams(window=rounds + 1)
    times: dict[str, list[float]] = {"one": [], "grouped": [], "unlogged": []}
    with tempfile.TemporaryDirectory(dir=folder) as d:
        logs = {way: WriteAheadLog(Path(d) / f"{way}.wal") for way in ("one", "grouped")}
        nodes = {
            way: DagMempool(
                keys[0],
                CHAIN,
                vs,
                0,
                lambda tx: 1.0,
                params,
                signer=BatchSigner(keys[0], CHAIN, logs[way]) if way in logs else None,
            )
            for way in times
        }
        for r in range(rounds):
            batches = round_of(keys, r)
            for way, node in nodes.items():
                t = time.perf_counter()
                if way == "grouped":
                    votes = node.on_batches(batches)
                else:
                    votes = [node.on_batch(b) for b in batches]
                times[way].append(time.perf_counter() - t)
                assert all(v is not None and not isinstance(v, Exception) for v in votes)
        for log in logs.values():
            log.close()
    return {way: statistics.median(t) for way, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--authors", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache"), help="where the logs go")
    args = ap.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"logs in {folder} ({args.rounds} rounds, medians)")
    print(
        "| authors | a vote per fsync ms/round | one fsync a round ms/round "
        "| ratio | no log ms/round |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in args.authors:
        m = run(n, args.rounds, folder)
        print(
            f"| {n} | {1e3 * m['one']:.2f} | {1e3 * m['grouped']:.2f} "
            f"| {m['one'] / m['grouped']:.2f}x | {1e3 * m['unlogged']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
