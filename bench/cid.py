"""CID validation: focusflow's ``validate_cid`` against ``multiformats``.

Importing a bostrom dump validates every distinct particle CID. ``multiformats``
(the reference decoder, which ``validate_cid`` falls back to for rare
spellings) is slow through its runtime type checks: minutes for the millions
of particles of a real dump (bench/RESULTS.md). ``validate_cid`` checks CIDv0 and
base32 sha2-256 CIDv1 itself. This runs both on the same ``--n`` CIDs (half
CIDv0, half CIDv1 raw) in one process and prints the rate of each and the
ratio; ``tests/core/test_cid.py`` holds that both accept exactly the same
strings.

    python bench/cid.py [--n 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from multiformats import CID, multihash  # noqa: E402

from focusflow.core.cid import cid_of_text, cid_to_bytes, validate_cid  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    rng = random.Random(1)
    sha = multihash.get("sha2-256")
    cids = []
    for i in range(args.n):
        digest = sha.wrap(rng.randbytes(32))
        if i % 2:
            cids.append(str(CID("base58btc", 0, "dag-pb", digest)))
        else:
            cids.append(str(CID("base32", 1, "raw", digest)))
    t = time.perf_counter()
    for c in cids:
        validate_cid(c)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for c in cids:
        CID.decode(c)
    theirs = time.perf_counter() - t
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{args.n} CIDs (half CIDv0, half base32 CIDv1 raw sha2-256)")
    for name, secs in (("focusflow validate_cid", ours), ("multiformats CID.decode", theirs)):
        print(f"{name:24s} {secs / args.n * 1e6:8.2f} us/CID  {args.n / secs:12,.0f} CIDs/s")
    print(f"ratio (multiformats time / ours): {theirs / ours:.1f}x")

    # Text to particle: what `focusflow tx link "some words" ...` and the
    # API's /v1/cid do for each word, then the binary form the chain keys by.
    words = [f"word {i}" for i in range(args.n // 10)]
    t = time.perf_counter()
    for w in words:
        cid_to_bytes(cid_of_text(w))
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for w in words:
        bytes(CID.decode(str(CID("base32", 1, "raw", sha.digest(w.encode())))))
    theirs = time.perf_counter() - t
    n = len(words)
    print(f"\ntext -> CIDv1 string -> binary CID, {n} words")
    for name, secs in (("focusflow", ours), ("multiformats", theirs)):
        print(f"{name:24s} {secs / n * 1e6:8.2f} us/word  {n / secs:12,.0f} words/s")
    print(f"ratio (multiformats time / ours): {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
