"""Proofs of state: what making and checking each kind costs (services.storage.proofs).

* space: plotting (chiapos) at k = 18 and 20, proving a challenge (qualities and
  the full proof), verifying it; per k, the median over the challenges that had
  a proof among ``--challenges``;
* time: a Wesolowski VDF (chiavdf) of 10**4, 10**5 and 10**6 squarings: prove
  and verify;
* work: 20 bits (about a million SHA-256s) and its one-hash check, beside
  ``hashlib`` alone hashing as many times (the peer for the prover's loop);
* retrievability: a proof for a random byte of a 100 MB blob in a fresh LMDB
  chunk store, and its check.

Each verification is what every validator runs for a claim (``modules.proofs``).

    python bench/proofs.py
    python bench/proofs.py --challenges 200 --mb 100
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from focusflow.services.storage import proofs  # noqa: E402
from focusflow.services.storage.chunk_store import ChunkStore  # noqa: E402


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def _challenge(i: int) -> bytes:
    return hashlib.sha256(b"bench" + i.to_bytes(4, "big")).digest()


def space(ks: list[int], challenges: int) -> None:
    for k in ks:
        with tempfile.TemporaryDirectory() as tmp:
            plot, plotted = _timed(proofs.make_plot, Path(tmp), b"k" * 32, k)
            size = plot.path.stat().st_size
            prove_s, verify_s, found = [], [], 0
            for i in range(challenges):
                found_now, took = _timed(proofs.prove_space, plot, _challenge(i))
                if not found_now:
                    continue
                found += len(found_now)
                prove_s.append(took)
                _, v = _timed(proofs.verify_space, plot.plot_id, k, _challenge(i), found_now[0])
                verify_s.append(v)
        print(f"space k={k}: plot {plotted:.1f} s, {size / 1e6:.1f} MB; {found} proofs in "
              f"{challenges} challenges; prove {statistics.median(prove_s) * 1e3:.2f} ms, "
              f"verify {statistics.median(verify_s) * 1e3:.3f} ms (medians)")  # fmt: skip


def vdf(iterations: list[int]) -> None:
    for n in iterations:
        out, proved = _timed(proofs.prove_time, _challenge(n), n)
        verify = [_timed(proofs.verify_time, _challenge(n), n, out)[1] for _ in range(5)]
        print(f"time {n:>9,} squarings: prove {proved:.2f} s ({n / proved:,.0f} /s), "
              f"verify {statistics.median(verify) * 1e3:.2f} ms")  # fmt: skip


def work(bits: int) -> None:
    nonce, proved = _timed(proofs.prove_work, _challenge(0), bits)
    tries = int.from_bytes(nonce, "big") + 1
    challenge = _challenge(0)

    def plain() -> None:
        for n in range(tries):
            hashlib.sha256(challenge + n.to_bytes(8, "big")).digest()

    _, alone = _timed(plain)
    _, verify = _timed(proofs.verify_work, challenge, nonce, bits)
    print(f"work {bits} bits: {tries:,} hashes in {proved:.2f} s ({tries / proved / 1e6:.2f} M/s); "
          f"hashlib alone {alone:.2f} s; ours / hashlib {proved / alone:.2f}; "
          f"verify {verify * 1e6:.1f} us")  # fmt: skip


def retrievability(mb: int, rounds: int) -> None:
    data = np.random.default_rng(1).integers(0, 256, mb * 10**6, dtype=np.uint8).tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        store = ChunkStore(Path(tmp) / "s")
        root = store.put(io.BytesIO(data)).cid
        prove_s, verify_s, sizes = [], [], []
        for i in range(rounds):
            offset = proofs.challenge_offset(_challenge(i), len(data))
            path, p = _timed(proofs.prove_retrievability, store, root, offset)
            _, v = _timed(proofs.verify_retrievability, root, len(data), offset, path)
            prove_s.append(p)
            verify_s.append(v)
            sizes.append(sum(len(b) for b in path))
        store.close()
    print(f"retrievability, {mb} MB blob: prove {statistics.median(prove_s) * 1e3:.2f} ms, "
          f"verify {statistics.median(verify_s) * 1e3:.2f} ms, proof "
          f"{statistics.median(sizes) / 1e3:.0f} KB (medians of {rounds})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--challenges", type=int, default=100)
    ap.add_argument("--ks", default="18,20")
    ap.add_argument("--iterations", default="10000,100000,1000000")
    ap.add_argument("--bits", type=int, default=20)
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    space([int(k) for k in args.ks.split(",")], args.challenges)
    vdf([int(n) for n in args.iterations.split(",")])
    work(args.bits)
    retrievability(args.mb, 50)


if __name__ == "__main__":
    main()
