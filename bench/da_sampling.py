"""Data-availability sampling over QUIC between two node processes on loopback.

Goal (bench/RESULTS.md): sampling 16 shares of a block at k = 64 in under 50 ms
per block. A server process runs a node (``ValidatorRuntime`` with the
``DANet`` extension, as ``focusflow node start`` wires it) holding ``--blocks``
squares of k = 64 (about 1 MB of transactions each, kept as squares of
proposals, keyed by data root); this process runs a second node that, for each
block in turn, draws 16 random coordinates of the 128 x 128 extended square,
fetches them with their proofs and verifies every proof against the data root:

* ``batched``: one ``da_shares`` request of 16 coordinates (what a validator's
  proposal check does);
* ``per share``: 16 concurrent one-share requests (how celestia-node's light
  node asks, one share per request).

Wall time per block from the draw to the verdict, medians and p95 over
``--rounds`` passes over the blocks; the CPU seconds of both processes per
block. Run from the repository root::

    python bench/da_sampling.py              # 8 blocks x 25 rounds
    python bench/da_sampling.py --rounds 3   # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from focusflow.chain.genesis import Genesis  # noqa: E402
from focusflow.core.keys import KeyPair  # noqa: E402

K = 64
TX_BYTES = 1000


def _genesis(key: KeyPair) -> dict:
    return {
        "chain_id": "focusflow-bench-da",
        "genesis_time_ms": 1_700_000_000_000,
        "params": {"focus": {"mode": "diffusion"}},
        "accounts": [],
        "validators": [{"name": "v", "public_key": key.public_key.hex(), "power": 1}],
    }


def _runtime(home: Path, genesis: Genesis, key: KeyPair, name: str):
    from focusflow.node import open_chain
    from focusflow.node.da_net import DANet
    from focusflow.node.validator import ValidatorRuntime

    chain = open_chain(home / name, genesis, None)
    rt = ValidatorRuntime(
        chain,
        key,
        wal_path=home / f"{name}.wal",
        listen=("127.0.0.1", 0),
        follow_only=True,
    )
    rt.extensions.append(DANet())
    return rt


async def serve(home: Path, blocks: int) -> None:
    """The server node: squares of k = 64 built here, then serve until stdin closes."""
    from focusflow.chain.da_commit import block_square

    genesis = Genesis.from_json(json.loads((home / "genesis.json").read_text()))
    rt = _runtime(home, genesis, KeyPair.generate(), "server")
    rng = random.Random(1)
    roots = []
    for _ in range(blocks):
        # k = 64: the smallest power of two whose square holds ~1 MB of compact shares.
        square = block_square([rng.randbytes(TX_BYTES) for _ in range(1000)])
        assert square.k == K, square.k
        roots.append(square.data_root().hex())
    await rt.start_async()
    host, port = rt.net.address
    print(json.dumps({"peer": f"{rt.net.id.hex()}@{host}:{port}", "roots": roots}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await rt.stop_async()


async def measure(home: Path, peer: str, roots: list[str], rounds: int, child: int) -> dict:
    from focusflow.da import Sampler, share_proof_from_cbor
    from focusflow.node.da_net import SHARES, sample_peer

    genesis = Genesis.from_json(json.loads((home / "genesis.json").read_text()))
    rt = _runtime(home, genesis, KeyPair.generate(), "client")
    await rt.start_async()
    net = rt.net
    server = await net.connect(peer)
    width = 2 * K
    rng = random.Random(2)

    async def per_share(height: int, root: bytes) -> bool:
        from focusflow.core.encoding import decode, encode

        sampler = Sampler(root, width, height, 16, rng=rng)
        requests = sampler.requests()

        async def one(req):
            raw = await net.request(
                server, SHARES, encode([height, root, [[req.row, req.col]]]), timeout=5
            )
            (answer,) = decode(raw)
            return share_proof_from_cbor(answer)

        proofs = await asyncio.gather(*(one(r) for r in requests))
        for req, proof in zip(requests, proofs, strict=True):
            sampler.receive(req, proof)
        return sampler.result().available

    async def batched(height: int, root: bytes) -> bool:
        result = await sample_peer(net, server, height, root, width, 16, 5.0, rng)
        return result.available

    procs = [psutil.Process(), psutil.Process(child)]
    out = {}
    for name, fn in (("batched", batched), ("per share", per_share)):
        for i, root in enumerate(roots):  # warm-up: every square's proofs once
            assert await fn(i + 1, bytes.fromhex(root))
        times = []
        cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
        for _ in range(rounds):
            for i, root in enumerate(roots):
                t0 = time.perf_counter()
                ok = await fn(i + 1, bytes.fromhex(root))
                times.append(time.perf_counter() - t0)
                assert ok
        cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0
        times.sort()
        out[name] = {
            "blocks": len(times),
            "median_ms": round(statistics.median(times) * 1000, 2),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000, 2),
            "max_ms": round(times[-1] * 1000, 2),
            "cpu_ms_per_block": round(cpu / len(times) * 1000, 2),
        }
    await rt.stop_async()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=8, help="squares of k = 64 served")
    parser.add_argument("--rounds", type=int, default=25, help="passes over the blocks")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.blocks))
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "genesis.json").write_text(json.dumps(_genesis(KeyPair.generate())))
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), NUMBA_NUM_THREADS="1")
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(home), "--blocks", str(args.blocks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            hello = json.loads(child.stdout.readline())
            load = os.getloadavg()
            result = asyncio.run(
                measure(home, hello["peer"], hello["roots"], args.rounds, child.pid)
            )
        finally:
            child.stdin.close()
            child.wait(30)
    print(f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"{'mode':<10} {'blocks':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'CPU ms':>8}")
    for name, r in result.items():
        print(
            f"{name:<10} {r['blocks']:>6} {r['median_ms']:>10} {r['p95_ms']:>8} "
            f"{r['max_ms']:>8} {r['cpu_ms_per_block']:>8}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
