"""Benchmark of focusflow.da: extend a k x k square, hash every NMT root and the data root.

What it measures, in one process run, for each k (default 32, 64, 128) on
512-byte shares of random data:

1. ``extend(shares)``: the 2D Leopard Reed–Solomon extension (coding), and
   then ``data_root()``: 4k NMT roots over (2k)² leaves plus the data root
   (hashing). MB/s is of original data (k² · 512 bytes).
2. zfec's ``Encoder(k, 2k).encode`` on the same data, arranged as the same 3k
   row/column codewords of the 2D extension (zfec is a systematic
   Vandermonde Reed–Solomon code in C; its parity bytes differ from Leopard's,
   its work is the same), and the ratio zfec time / our coding time.
3. Repair of one row of the extended square with k of its 2k shares missing.

Each measurement is the best of ``--repeat`` runs after one untimed warm-up
(numba JIT, caches); the process CPU time of the best total is printed too.
The script checks that every square it timed repairs
back to itself and that zfec's codewords decode, so a fast wrong answer
cannot pass. The load average is printed: on a 2-core machine shared with
other work, every timing is inflated.

Run from the repository root::

    python bench/da.py                  # k = 32, 64, 128
    python bench/da.py --k 128 --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

import numpy as np

from focusflow.da import extend, repair
from focusflow.da.leopard import decode
from focusflow.da.shares import SHARE_SIZE


def best_of(repeat: int, fn, cpu: list[float] | None = None):
    """Best wall time of ``repeat`` calls after one warm-up, and the last result.

    With ``cpu`` given, the smallest process CPU time (all threads) is appended
    to it: on a machine shared with other jobs it shows the work done, which
    wall time hides behind the waits for a core.
    """
    result = fn()
    times, cpus = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    if cpu is not None:
        cpu.append(min(cpus))
    return min(times), result


def zfec_extend(square: np.ndarray) -> float:
    """Best-effort same-work zfec run: 3k codewords of k 512-byte blocks; returns seconds."""
    import zfec

    k = square.shape[0]
    enc = zfec.Encoder(k, 2 * k)
    rows = [tuple(square[r, c].tobytes() for c in range(k)) for r in range(k)]
    cols = [tuple(square[r, c].tobytes() for r in range(k)) for c in range(k)]
    start = time.perf_counter()
    q1 = [enc.encode(row)[k:] for row in rows]
    q2 = [enc.encode(col)[k:] for col in cols]
    q2_rows = [tuple(q2[c][r] for c in range(k)) for r in range(k)]
    q3 = [enc.encode(row)[k:] for row in q2_rows]
    elapsed = time.perf_counter() - start
    dec = zfec.Decoder(k, 2 * k)
    got = dec.decode(q1[0], list(range(k, 2 * k)))
    assert b"".join(got) == b"".join(rows[0]), "zfec parity does not decode"
    assert len(q3) == k
    return elapsed


def bench_k(k: int, repeat: int, rng: np.random.Generator) -> dict:
    data = rng.integers(0, 256, (k, k, SHARE_SIZE), dtype=np.uint8)
    shares = [s.tobytes() for s in data.reshape(-1, SHARE_SIZE)]
    megabytes = k * k * SHARE_SIZE / 1e6

    t_code, eds = best_of(repeat, lambda: extend(shares))

    def roots() -> bytes:
        eds.__dict__.pop("_leaf_nodes", None)
        eds.__dict__.pop("_roots", None)
        return eds.data_root()

    t_hash, root = best_of(repeat, roots)

    def total() -> bytes:
        return extend(shares).data_root()

    cpu: list[float] = []
    t_total, root_again = best_of(repeat, total, cpu)
    assert root_again == root

    width = 2 * k
    row = eds.data[k // 2].copy()
    present = np.zeros(width, dtype=bool)
    present[rng.choice(width, k, replace=False)] = True
    t_repair, rebuilt = best_of(max(repeat, 20), lambda: decode(row, present))
    assert np.array_equal(rebuilt, row)

    partial = [
        [eds.share(r, c) if r < k and c < k else None for c in range(width)] for r in range(width)
    ]
    assert repair(partial, data_root=root).data_root() == root

    t_zfec = min(zfec_extend(data) for _ in range(repeat)) if k <= 128 else float("nan")
    return {
        "k": k,
        "MB": megabytes,
        "code_s": t_code,
        "hash_s": t_hash,
        "total_s": t_total,
        "total_cpu_s": cpu[0],
        "MB/s": megabytes / t_total,
        "zfec_s": t_zfec,
        "zfec/ours": t_zfec / t_code,
        "repair_row_ms": t_repair * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import numba
    import zfec

    cpu = platform.processor() or platform.machine()
    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {cpu}")
    print(
        f"# {os.cpu_count()} CPUs, numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS}"
        f" threads), numpy {np.__version__}, zfec {zfec.__version__}"
    )
    print(f"# load average before: {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(args.seed)
    header = (
        "| k | MB | extend (coding) s | roots (hashing) s | total s | total CPU s | MB/s total"
        " | zfec same codewords s | zfec / ours coding | repair row ms |"
    )
    print(header)
    print("|---:" * 10 + "|")
    for k in args.k:
        r = bench_k(k, args.repeat, rng)
        print(
            f"| {r['k']} | {r['MB']:.2f} | {r['code_s']:.3f} | {r['hash_s']:.3f}"
            f" | {r['total_s']:.3f} | {r['total_cpu_s']:.3f} | {r['MB/s']:.1f} | {r['zfec_s']:.3f}"
            f" | {r['zfec/ours']:.2f} | {r['repair_row_ms']:.2f} |"
        )
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
