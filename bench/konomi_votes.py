"""Benchmark of a cube as a validator: decisions per second and ledger verification.

1. ``decide``: ``Ledger.decide`` rounds on one cube, each one the eight vertices
   signing the proposal, CENTRAL checking all eight signatures, tallying (6 of 8)
   and appending the entry; then one cube per core, each decided in its own
   thread (cubes are independent validators). Goal: 10^3 decisions per second.
   Beside it, signing as ``core.keys`` does it (libsodium) and as OpenSSL does
   it (pyca/cryptography), the same keys and messages, and their ratio; and the
   same decisions with the vertices signing through OpenSSL.
2. ``verify``: ``verify_ledger`` over a ledger of ``--entries`` entries (8
   signatures each), from their bytes alone, with one thread, with one thread
   per core, and spread over one worker process per core. Beside it, in the
   same run, the floor it cannot beat: the same signatures checked by libsodium
   in a bare loop (no decoding, hashing or linking), and the per-entry decoding
   alone. Goal: 10^4 entries in under 1 s.

The number of threads and processes is ``os.cpu_count()``: run it as is on the
machine to measure. Run from the repository root::

    .venv/bin/python bench/konomi_votes.py [--entries 10000] [--decisions 2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from focusflow.core.keys import KeyPair, verify
from focusflow.konomi.ledger import Ledger, decode_entry, verify_ledger
from focusflow.konomi.votes import vertex_keys, vote_message


class _OpenSSLKey(KeyPair):
    """A key that signs through OpenSSL (pyca/cryptography): the same signatures."""

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--decisions", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    out: dict[str, object] = {"cores": cores, "load": os.getloadavg()}
    print(f"{cores} cores, load {out['load']}")

    seeds = [bytes([i]) * 32 for i in range(8)]
    messages = [b"vote %d" % i * 8 for i in range(500)]
    ours = [KeyPair.from_seed(s) for s in seeds]
    openssl = [Ed25519PrivateKey.from_private_bytes(s) for s in seeds]
    assert all(
        k.sign(m) == o.sign(m) for k, o in zip(ours, openssl, strict=True) for m in messages[:8]
    )

    def sign_ours() -> None:
        for k in ours:
            for m in messages:
                k.sign(m)

    def sign_openssl() -> None:
        for k in openssl:
            for m in messages:
                k.sign(m)

    n_sign = len(ours) * len(messages)
    s_ours = _best(sign_ours, args.repeat) / n_sign
    s_openssl = _best(sign_openssl, args.repeat) / n_sign
    out.update(sign_libsodium_us=s_ours * 1e6, sign_openssl_us=s_openssl * 1e6)
    print(
        f"sign: core.keys (libsodium) {s_ours * 1e6:.1f} us, OpenSSL {s_openssl * 1e6:.1f} us, "
        f"ratio OpenSSL / ours {s_openssl / s_ours:.2f}"
    )

    ledger = Ledger("bench", vertex_keys(b"k" * 32, "bench"))
    t = time.perf_counter()
    for i in range(args.decisions):
        ledger.decide(b"proposal %d" % i)
    secs = time.perf_counter() - t
    out["decisions_per_s"] = args.decisions / secs
    print(f"decide: {args.decisions / secs:.0f} decisions/s (goal 1000), {secs:.2f} s")
    # The same rounds with the vertices signing through OpenSSL, as core.keys did before.
    keys = {
        v: _OpenSSLKey(k.private, k.public_key, k.secret_key)
        for v, k in vertex_keys(b"k" * 32, "bench-openssl").items()
    }
    peer = Ledger("bench-openssl", keys)
    t = time.perf_counter()
    for i in range(args.decisions):
        peer.decide(b"proposal %d" % i)
    peer_secs = time.perf_counter() - t
    out["decisions_per_s_openssl_signing"] = args.decisions / peer_secs
    print(
        f"decide, signing through OpenSSL: {args.decisions / peer_secs:.0f} decisions/s, "
        f"ratio core.keys / OpenSSL {peer_secs / secs:.2f}"
    )

    # Cubes are independent validators: one thread per core, each deciding on its own cube.
    ledgers = [Ledger(f"bench{i}", vertex_keys(b"k" * 32, f"bench{i}")) for i in range(cores)]
    per = args.decisions // cores

    def run(one: Ledger) -> None:
        for i in range(per):
            one.decide(b"proposal %d" % i)

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=cores) as pool:
        list(pool.map(run, ledgers))
    secs = time.perf_counter() - t
    out["decisions_per_s_all_cores"] = per * cores / secs
    print(f"decide, {cores} cubes on {cores} threads: {per * cores / secs:.0f} decisions/s")

    while ledger.next_height < args.entries:
        ledger.decide(b"proposal %d" % ledger.next_height)
    raw = [e.data for e in ledger.entries[: args.entries]]
    keys = ledger.public_keys
    triples = [
        (keys[v], s, vote_message("bench", i, v, e.digest))
        for i, e in enumerate(ledger.entries[: args.entries])
        for v, s in e.votes
    ]

    def floor() -> None:
        for k, s, m in triples:
            verify(k, s, m)

    def decoding() -> None:
        for i, d in enumerate(raw):
            decode_entry(d, i)

    one = _best(lambda: verify_ledger(raw, threads=1), args.repeat)
    many = _best(lambda: verify_ledger(raw, threads=cores), args.repeat)
    spread = _best(lambda: verify_ledger(raw, threads=1, processes=cores), args.repeat)
    bare = _best(floor, args.repeat)
    dec = _best(decoding, args.repeat)
    out.update(
        entries=len(raw),
        signatures=len(triples),
        verify_1_thread_s=one,
        verify_all_cores_s=many,
        verify_processes_s=spread,
        bare_signatures_1_thread_s=bare,
        decode_only_s=dec,
        load_after=os.getloadavg(),
    )
    print(f"verify {len(raw)} entries, {len(triples)} signatures:")
    print(f"  verify_ledger, 1 thread:      {one:.3f} s")
    print(f"  verify_ledger, {cores} threads:     {many:.3f} s")
    print(f"  verify_ledger, {cores} processes:   {spread:.3f} s (goal < 1 s)")
    print(f"  bare libsodium loop, 1 thread: {bare:.3f} s ({bare / len(triples) * 1e6:.1f} us/sig)")
    print(f"  decoding alone:               {dec:.3f} s")
    print(f"  ratio verify_ledger (1 thread) / bare signatures: {one / bare:.2f}")
    print(f"  speed-up over 1 thread: {one / many:.2f} threads, {one / spread:.2f} processes")
    print(f"load {out['load']} -> {out['load_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
