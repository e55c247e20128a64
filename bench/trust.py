"""The trust services' costs: transparency proofs at 10^6 entries, certificate chain checks.

- **Transparency log** (``services.trust.ctlog``): a log of ``--entries``
  certificates' worth of leaves (random 32-byte leaf hashes; appending is
  timed too), then inclusion proofs of random leaves and consistency proofs
  between random sizes: the median time to make one and to verify it (RFC
  9162's algorithms). Goal: under 1 ms each at 10^6 entries.
- **Certificate chain validation**: a leaf of the standalone CA checked
  against its root through the intermediate by ``cryptography``'s X.509
  path validator (RFC 5280, the Rust one), median over ``--chains`` runs, and
  the same chain by ``openssl verify`` as a whole process (the independent
  peer; its time is mostly process start). Goal: under 1 ms. Then the log's
  signed tree head: signing one (the log's entries read from disk) and
  verifying it.
- **Threshold signatures**: a FROST(Ed25519) 3-of-5 signature and a 5-party
  key generation, beside one plain Ed25519 signature.
- **Name resolution over UDP**: a devnet started with ``--dns`` on loopback, a
  name registered by a transaction, then ``--queries`` TXT queries of it and of
  an unknown name, one at a time, by dnspython's client (each a datagram out
  and back): median and p99 latency. Goal: p99 under 2 ms (the seed's target is
  10 ms).
- **Bootstrap to phase 3** (``node.bootstrap``): ``focusflow testnet
  --validators 4`` on loopback, ``--bootstraps`` times: seconds from the
  command's start until every validator answers phase 3 at ``/v1/bootstrap``
  (every link between them on the network CA's certificates), and when each
  phase was first reached on the slowest validator. Goal: under 60 s (the
  seed's target is 10 minutes).

    python bench/trust.py [--entries 1000000] [--proofs 2000] [--chains 500] [--queries 5000]
    python bench/trust.py --sections bootstrap --bootstraps 3
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from focusflow.services.trust.ca import StandaloneCa
from focusflow.services.trust.ctlog import MerkleLog, verify_consistency, verify_inclusion
from focusflow.services.trust.sth import verify_tree_head


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def log_costs(entries: int, proofs: int) -> None:
    leaves = [os.urandom(32) for _ in range(entries)]
    t = time.perf_counter()
    log = MerkleLog(leaves)
    build = time.perf_counter() - t
    root = log.root()
    rng = random.Random(0)
    make, check = [], []
    for _ in range(proofs):
        i = rng.randrange(entries)
        t = time.perf_counter()
        path = log.inclusion_proof(i)
        make.append(time.perf_counter() - t)
        t = time.perf_counter()
        ok = verify_inclusion(leaves[i], i, entries, path, root)
        check.append(time.perf_counter() - t)
        assert ok
    cmake, ccheck = [], []
    for _ in range(proofs // 4):
        first = rng.randrange(1, entries)
        t = time.perf_counter()
        proof = log.consistency_proof(first)
        first_root = log.root(first)
        cmake.append(time.perf_counter() - t)
        t = time.perf_counter()
        ok = verify_consistency(first, entries, proof, first_root, root)
        ccheck.append(time.perf_counter() - t)
        assert ok
    print(f"transparency log, {entries:,} entries: appended in {build:.2f} s")
    print(
        f"  inclusion proof: make {median_ms(make):.3f} ms, verify {median_ms(check):.3f} ms "
        f"(median of {proofs}); goal < 1 ms each"
    )
    print(
        f"  consistency proof (with the older root): make {median_ms(cmake):.3f} ms, "
        f"verify {median_ms(ccheck):.3f} ms (median of {proofs // 4})"
    )


def chain_costs(chains: int) -> None:
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store

    with tempfile.TemporaryDirectory() as d:
        ca = StandaloneCa.init(Path(d))
        issued = ca.issue("node.example")
        leaf = x509.load_pem_x509_certificate(issued.cert_pem)
        store = Store([ca.root])
        verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName("node.example"))
        times = []
        for _ in range(chains):
            t = time.perf_counter()
            verifier.verify(leaf, [ca.intermediate])
            times.append(time.perf_counter() - t)
        print(
            f"chain validation (leaf -> intermediate -> root, cryptography's RFC 5280 "
            f"validator): {median_ms(times):.3f} ms median of {chains}; goal < 1 ms"
        )
        public = ca.log_key().public_key()
        signs, checks = [], []
        for _ in range(chains):
            t = time.perf_counter()
            sth = ca.signed_tree_head()
            signs.append(time.perf_counter() - t)
            t = time.perf_counter()
            verify_tree_head(sth, public)
            checks.append(time.perf_counter() - t)
        print(
            f"signed tree head (RFC 6962 3.5, ECDSA P-256; the log read from disk): sign "
            f"{median_ms(signs):.3f} ms, verify {median_ms(checks):.3f} ms (median of {chains})"
        )
        openssl = shutil.which("openssl")
        if openssl is None:
            print("openssl verify: not installed")
            return
        cert = Path(d) / "cert.pem"
        cert.write_bytes(issued.cert_pem)
        args = [openssl, "verify", "-CAfile", str(ca.ca_dir / "root.pem")]
        args += ["-untrusted", str(ca.ca_dir / "intermediate.pem"), str(cert)]
        runs = []
        for _ in range(20):
            t = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            runs.append(time.perf_counter() - t)
        print(
            f"openssl verify, the same chain, whole process: {median_ms(runs):.1f} ms median of 20"
        )


def threshold_costs(rounds: int) -> None:
    """FROST(Ed25519): a 3-of-5 signature (both rounds and the aggregation, the
    three signers in this one process, so no network time) and a 5-party key
    generation, against one plain Ed25519 signature by ``cryptography``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from focusflow.services.trust import frost

    group, shares = frost.deal(frost.h3(b"bench"), 3, 5)
    msg = b"x" * 300  # about a certificate's tbsCertificate
    signs, dkgs, plain = [], [], []
    key = Ed25519PrivateKey.generate()
    for _ in range(rounds):
        t = time.perf_counter()
        signers = shares[:3]
        rounds1 = [frost.commit(s) for s in signers]
        commitments = [c for _, c in rounds1]
        pairs = zip(signers, rounds1, strict=True)
        parts = [frost.sign(s, n, msg, commitments) for s, (n, _) in pairs]
        frost.aggregate(commitments, msg, group, parts)
        signs.append(time.perf_counter() - t)
        t = time.perf_counter()
        polys, broadcasts = {}, []
        for i in range(1, 6):
            polys[i], b = frost.dkg_round1(i, 3)
            broadcasts.append(b)
        for j in range(1, 6):
            got = {i: frost.dkg_share_for(polys[i], j) for i in polys}
            frost.dkg_finish(j, broadcasts, got, 3)
        dkgs.append(time.perf_counter() - t)
        t = time.perf_counter()
        key.sign(msg)
        plain.append(time.perf_counter() - t)
    print(
        f"FROST 3-of-5 signature, all rounds in one process: {median_ms(signs):.2f} ms; "
        f"5-party key generation, every check: {median_ms(dkgs):.1f} ms; one plain Ed25519 "
        f"signature: {median_ms(plain):.3f} ms (medians of {rounds})"
    )


def dns_costs(queries: int) -> None:
    import socket

    import dns.message
    import dns.query
    import dns.rcode

    from focusflow.chain import Msg
    from focusflow.core.cid import cid_of_text, cid_to_bytes
    from focusflow.testing.devnet import signed, start_devnet, wait_tx

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        net = start_devnet(Path(tmp) / "home", "--dns", f"127.0.0.1:{port}")
        try:
            msg = Msg("name.register", {"name": "kitty", "cid": cid_to_bytes(cid_of_text("cats"))})
            tx = signed(net, net.dev_key(), [msg], fee=40_000)
            with net.client() as c:
                sent = c.post("/v1/txs", json={"tx": tx.encoded.hex()}).json()["hash"]
            wait_tx(net, sent)
            for name, rcode in (("kitty.focus.", dns.rcode.NOERROR), ("nobody.focus.", 3)):
                query = dns.message.make_query(name, "TXT")
                runs = []
                for _ in range(queries):
                    t = time.perf_counter()
                    answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
                    runs.append(time.perf_counter() - t)
                    assert answer.rcode() == rcode
                runs.sort()
                p99 = runs[int(0.99 * (len(runs) - 1))] * 1e3
                print(
                    f"DNS TXT {name} over UDP, {queries} queries: median {median_ms(runs):.3f} ms, "
                    f"p99 {p99:.3f} ms, max {runs[-1] * 1e3:.2f} ms (goal: p99 < 2 ms)"
                )
        finally:
            net.stop()


def bootstrap_costs(runs: int) -> None:
    import httpx

    from focusflow.testing.testnet import LocalTestnet

    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            t0, w0 = time.monotonic(), time.time()
            net = LocalTestnet(Path(tmp) / "tn", 4)
            try:
                up = time.monotonic() - t0
                deadline = t0 + 180
                while True:
                    states = [
                        httpx.get(f"{api}/v1/bootstrap", timeout=5).json() for api in net.apis
                    ]
                    if all(s["phase"] == 3 for s in states) or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                took = time.monotonic() - t0
                phases = [
                    max(s["reached"].get(str(p), float("nan")) for s in states) - w0
                    for p in range(4)
                ]
                done = all(s["phase"] == 3 for s in states)
                print(
                    f"bootstrap run {run + 1}: 4 validators answering in {up:.1f} s; phase 3 on "
                    f"all {'in' if done else 'NOT reached in'} {took:.1f} s (goal < 60 s); "
                    "slowest validator reached phases 0-3 at "
                    + ", ".join(f"{t:.1f}" for t in phases)
                    + " s"
                )
            finally:
                net.stop()


SECTIONS = ("log", "chain", "threshold", "dns", "bootstrap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--proofs", type=int, default=2000)
    ap.add_argument("--chains", type=int, default=500)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--bootstraps", type=int, default=1)
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    if unknown := sections - set(SECTIONS):
        ap.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if "log" in sections:
        log_costs(args.entries, args.proofs)
    if "chain" in sections:
        chain_costs(args.chains)
    if "threshold" in sections:
        threshold_costs(50)
    if "dns" in sections:
        dns_costs(args.queries)
    if "bootstrap" in sections:
        bootstrap_costs(args.bootstraps)


if __name__ == "__main__":
    main()
