"""Benchmark of Ed25519 signature checks per transaction: alone, through OpenSSL, in batches.

Side by side in one run, on the same keys and messages (``--msg-bytes`` long,
the size of a transaction's sign bytes):

* ``libsodium``: ``core.keys.verify`` in a loop, the chain's rule and today's path;
* ``openssl``: pyca/cryptography (OpenSSL), the raw key parsed per check as a
  verifier of a transaction must; it accepts signatures libsodium refuses
  (tests/core/test_sig_batch.py), so it is a speed reference only;
* ``batch T``: ``core.sig_batch.verify_batch`` on ``T`` threads, for each batch
  size of ``--sizes`` and each ``T`` of ``--threads`` (default 1, 2 and one per
  core): ``keys.verify`` itself on a pool made per call, libsodium running with
  the GIL released.

Every row is microseconds per signature, the best of ``--repeat`` rounds; a
round checks at least ``--min-items`` signatures (batch after batch of the
row's size) with the methods interleaved, so load drifting on a shared machine
hits them alike. The ratio columns are libsodium alone over each (above 1:
faster than today). Each batch's answers are compared with the single check's
before timing. Last, the share of a check that holds the GIL (so the most
any number of threads can gain), from a check libsodium refuses at once
against a full one, timed interleaved. No GPU column: no maintained package
verifies Ed25519 on a GPU from Python (CuPy has no Ed25519).

Run from the repository root::

    .venv/bin/python bench/sig_batch.py [--sizes 1,16,64,256,1024] [--threads 1,2,16]
        [--msg-bytes 200] [--min-items 4096] [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from focusflow.core.keys import KeyPair, verify
from focusflow.core.sig_batch import verify_batch

Item = tuple[bytes, bytes, bytes]


def _items(n: int, msg_bytes: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    keys = [KeyPair.from_seed(rng.randbytes(32)) for _ in range(64)]
    out = []
    for i in range(n):
        key = keys[i % len(keys)]
        msg = rng.randbytes(msg_bytes)
        out.append((key.public_key, key.sign(msg), msg))
    return out


def _libsodium(batch: Sequence[Item]) -> list[bool]:
    return [verify(k, s, m) for k, s, m in batch]


def _openssl(batch: Sequence[Item]) -> list[bool]:
    out = []
    for k, s, m in batch:
        try:
            Ed25519PublicKey.from_public_bytes(k).verify(s, m)
        except (InvalidSignature, ValueError):
            out.append(False)
        else:
            out.append(True)
    return out


def _batched(threads: int) -> Callable[[Sequence[Item]], list[bool]]:
    def run(batch: Sequence[Item]) -> list[bool]:
        return verify_batch(batch, threads)

    return run


def _round(fn: Callable[[Sequence[Item]], list[bool]], batches: list[list[Item]]) -> float:
    t = time.perf_counter()
    for batch in batches:
        fn(batch)
    return time.perf_counter() - t


#: A small-order public key (case 0 of "Taming the many EdDSAs"): libsodium refuses
#: it before any curve arithmetic, so checking it costs the wrapper's Python alone.
SMALL_ORDER_KEY = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa")


def _serial_share(pool: Sequence[Item], repeat: int) -> tuple[float, float, float]:
    """(full check us, refused-at-once us, their ratio): the share of a check that
    holds the GIL is at most the ratio (the refused one also raises and catches
    an exception), so ``T`` threads gain at most ``1 / (f + (1 - f) / T)``. Both
    are timed interleaved, so load on the machine scales them alike."""
    bad = [(SMALL_ORDER_KEY, s, m) for _, s, m in pool]
    full = fast = float("inf")
    for _ in range(repeat):
        full = min(full, _round(_libsodium, [list(pool)]))
        fast = min(fast, _round(_libsodium, [bad]))
    full_us, fast_us = full / len(pool) * 1e6, fast / len(pool) * 1e6
    return full_us, fast_us, fast_us / full_us


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = os.cpu_count() or 1
    ap.add_argument("--sizes", type=_ints, default=[1, 16, 64, 256, 1024])
    ap.add_argument("--threads", type=_ints, default=sorted({1, 2, cores}))
    ap.add_argument("--msg-bytes", type=int, default=200)
    ap.add_argument("--min-items", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    pool = _items(max(max(args.sizes), 1024), args.msg_bytes, seed=1)
    methods: dict[str, Callable[[Sequence[Item]], list[bool]]] = {
        "libsodium": _libsodium,
        "openssl": _openssl,
    }
    for t in args.threads:
        methods[f"batch {t}"] = _batched(t)
    truth = _libsodium(pool)
    assert all(truth)
    for name, fn in methods.items():
        assert fn(pool) == truth, name
    mixed = [
        (k, s[:5] + bytes([s[5] ^ 1]) + s[6:], m) if i % 3 == 0 else (k, s, m)
        for i, (k, s, m) in enumerate(pool)
    ]
    for t in args.threads:
        assert verify_batch(mixed, t) == _libsodium(mixed)

    load = os.getloadavg()
    print(
        f"cpus={cores} load(1,5,15)={load[0]:.2f},{load[1]:.2f},{load[2]:.2f} "
        f"msg_bytes={args.msg_bytes} repeat={args.repeat} min_items={args.min_items}"
    )
    header = f"{'size':>5} " + " ".join(f"{name:>12}" for name in methods)
    header += "   " + " ".join(f"{'x ' + name:>12}" for name in methods if name != "libsodium")
    print("us per signature (best of rounds); x = libsodium alone / method")
    print(header)
    rows = []
    for size in args.sizes:
        span = len(pool) - size + 1
        starts = [(j * size) % span for j in range(max(1, -(-args.min_items // size)))]
        batches = [pool[start : start + size] for start in starts]
        n = sum(len(b) for b in batches)
        best = dict.fromkeys(methods, float("inf"))
        for _ in range(args.repeat):
            for name, fn in methods.items():
                best[name] = min(best[name], _round(fn, batches))
        us = {name: best[name] / n * 1e6 for name in methods}
        ratio = {name: us["libsodium"] / us[name] for name in methods if name != "libsodium"}
        line = f"{size:>5} " + " ".join(f"{us[name]:>12.1f}" for name in methods)
        line += "   " + " ".join(f"{ratio[name]:>12.2f}" for name in ratio)
        print(line)
        rows.append({"size": size, "signatures": n, "us_per_sig": us, "ratio_vs_libsodium": ratio})
    full_us, fast_us, share = _serial_share(pool, args.repeat)
    bounds = ", ".join(
        f"{t} threads <= {1 / (share + (1 - share) / t):.1f}x" for t in sorted({2, 4, 8, 16, cores})
    )
    print(
        f"GIL-held share of a check <= {share:.3f} ({fast_us:.1f} us refused at once "
        f"/ {full_us:.1f} us checked): {bounds}"
    )
    load = os.getloadavg()
    print(f"load after (1,5,15)={load[0]:.2f},{load[1]:.2f},{load[2]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"cpus": cores, "msg_bytes": args.msg_bytes, "rows": rows, "gil_share": share},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
