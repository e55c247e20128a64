"""State sync and block sync: how fast a new node joins a network.

1. State sync of a large state. A chain is grown through blocks of
   ``--block-links`` links (R-MAT pairs, ``--txs`` signed transactions each)
   until it holds ``--total-links`` (10^6 by default), in a temporary LMDB
   store. A snapshot of its head is written as a node writes one (the focus
   state pickled in the commit thread: the stall consensus sees; the rest in
   the background). A child process serves it over QUIC (focusflow.net, the
   testnet's loopback datagram size) with the StateSync extension's handlers,
   and this process runs ``state_sync`` into a fresh home: every chunk
   checked, the state tree rebuilt and its root compared, the focus root
   recomputed, the certificate checked against the genesis set, the store
   installed; then the chain opens at that height. Compared with replaying
   every block into a fresh chain (``Chain.apply_block``: signatures,
   execution, focus, state root, data root, certificates), the way a node
   joins without a snapshot. Roots are compared at the end.
2. Block sync of a full node. A validator (a set of one, real consensus over
   its QUIC transport, ``commit_wait`` as a testnet's 0.2 s) makes
   ``--sync-blocks`` blocks, each with ``--sync-links`` links from a feeder:
   the network's block rate. Then a full node (``ValidatorRuntime(...,
   follow_only=True)``, fresh store) is started against it and block-syncs
   every block (fetch, certificate, re-execution, every root): its rate.
   Both run in this process (one GIL: the validator keeps making blocks
   meanwhile), so the ratio is conservative.
3. Block sync against real validator processes: a testnet of four
   (``focusflow node start`` for each home of ``init_testnet``) makes
   ``--testnet-blocks`` blocks, each fed ``--sync-links`` links through the
   API: the network's block rate; then an in-process full node block-syncs
   them all from the four.

Run from the repository root::

    python bench/sync.py                              # 10^6 links: minutes
    python bench/sync.py --total-links 100000 --sync-blocks 60   # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS
from focusflow.chain.snapshot import capture_focus, write_snapshot
from focusflow.core.keys import KeyPair
from focusflow.graph.generators import rmat_edges
from focusflow.net import NetConfig, Node
from focusflow.node import open_chain
from focusflow.node.home import LOOPBACK_DATAGRAM_SIZE
from focusflow.node.state_sync import StateSync, Trust, state_sync
from focusflow.node.validator import ValidatorRuntime

T0 = 1_700_000_000_000
#: What CometBFT and the Cosmos SDK publish (no measured state-sync time or
#: block-sync rate was found; bench/RESULTS.md gives the sources).
COMETBFT = (
    "CometBFT, published: no measured state-sync time found; block sync 'hundreds of "
    "times faster' than following consensus; state sync 'weeks to minutes' (Cosmos SDK); "
    "10 most recent snapshots offered, metadata <= 4 MB; trust_period 168 h"
)
NET = NetConfig(max_datagram_size=LOOPBACK_DATAGRAM_SIZE)


def _genesis(keys: list[KeyPair], validator: KeyPair, txs: int) -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": "bench-sync",
            "genesis_time_ms": T0,
            "params": {"focus": dict(NEW_CHAIN_FOCUS), "max_block_txs": txs + 1},
            "accounts": [{"address": k.address, "balance": 10**15, "stake": 10**9} for k in keys],
            "validators": [{"public_key": validator.public_key.hex(), "power": 1}],
        }
    )


def _blocks(keys: list[KeyPair], total: int, block_links: int, txs: int) -> list[list[bytes]]:
    per_tx = block_links // txs
    scale = max(10, int(np.log2(total)) - 2)
    src, dst, _ = rmat_edges(scale, max(1, total // (1 << scale)) + 1, seed=7)
    keep = src != dst
    src, dst = src[keep][:total], dst[keep][:total]
    cids = [b"\x01\x55\x12\x20" + int(i).to_bytes(32, "big") for i in range(1 << scale)]
    nonces = [0] * len(keys)
    out = []
    for b in range(total // block_links):
        block = []
        for j in range(txs):
            lo = (b * txs + j) * per_tx
            who = (b * txs + j) % len(keys)
            links = [
                [cids[s], cids[d]]
                for s, d in zip(src[lo : lo + per_tx], dst[lo : lo + per_tx], strict=True)
            ]
            tx = make_tx(
                keys[who], "bench-sync", nonces[who], 10**7, [Msg("link", {"links": links})]
            )
            nonces[who] += 1
            block.append(tx.encoded)
        out.append(block)
    return out


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _Fields(logging.Handler):
    """Keeps the structured fields of the state-sync log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, dict] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.seen[record.getMessage()] = getattr(record, "fields", {})


def bench_state_sync(total: int, block_links: int, txs: int, neurons: int) -> None:
    print(f"\n## state sync: {total} links ({total // block_links} blocks x {block_links})")
    keys = [KeyPair.from_seed(i.to_bytes(32, "big")) for i in range(1, neurons + 1)]
    validator = KeyPair.from_seed(b"\xfe" * 32)
    gen = _genesis(keys, validator, txs)
    batches = _blocks(keys, total, block_links, txs)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = open_chain(tmp / "src", gen, validator)
        t = time.perf_counter()
        for h, block in enumerate(batches, start=1):
            result = src.produce_block(block, time_ms=T0 + 1000 * h)
            assert not result.rejected and all(r.ok for r in result.receipts)
        t_build = time.perf_counter() - t
        head = src.head
        graph = src.focus.graph
        print(
            f"graph: {graph.n_links} links, {graph.n_particles} particles; "
            f"built by one node in {t_build:.1f} s"
        )
        t = time.perf_counter()
        payload = capture_focus(src.focus, src.head, src.chain_id)
        t_capture = time.perf_counter() - t
        t = time.perf_counter()
        with src.reader() as r:
            manifest = write_snapshot(r, payload, tmp / "snaps", chain_id=gen.chain_id)
        t_write = time.perf_counter() - t
        n_block, n_state, n_focus = manifest.sections
        print(
            f"snapshot at {manifest.height}: {manifest.size / 1e6:.1f} MB in "
            f"{len(manifest.chunks)} chunks (block {n_block / 1e6:.2f} MB, state "
            f"{n_state / 1e6:.1f} MB, focus state {n_focus / 1e6:.1f} MB); commit-thread "
            f"stall (focus pickled) {t_capture:.2f} s, background write {t_write:.2f} s"
        )
        (tmp / "genesis.json").write_text(json.dumps(gen.to_json()))
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(tmp / "snaps"), str(tmp / "genesis.json")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            address = server.stdout.readline().strip()
            fields = _Fields()
            logging.getLogger("focusflow.node.state_sync").addHandler(fields)
            logging.getLogger("focusflow.node.state_sync").setLevel(logging.INFO)
            t = time.perf_counter()
            height = asyncio.run(
                state_sync(tmp / "new", gen, [address], Trust(period_s=None), net_config=NET)
            )
            t_sync = time.perf_counter() - t
        finally:
            server.stdin.close()
            server.wait(30)
        assert height == manifest.height, fields.seen
        t = time.perf_counter()
        dst = open_chain(tmp / "new", gen)
        t_open = time.perf_counter() - t
        assert dst.head == head and dst.focus.root == src.focus.root
        dst.store.close()
        done = fields.seen["state synced from a snapshot"]
        joined = t_sync + t_open
        print(
            f"state sync: {t_sync:.2f} s (download {done['download_s']:.2f} s = "
            f"{manifest.size / 1e6 / done['download_s']:.1f} MB/s; verify + install "
            f"{done['total_s'] - done['download_s']:.2f} s), then the chain opens in "
            f"{t_open:.2f} s: joined in {joined:.2f} s"
        )
        t = time.perf_counter()
        replayed = open_chain(tmp / "replay", gen)
        for record in src.records(1):
            replayed.apply_block(record)
        t_replay = time.perf_counter() - t
        assert replayed.head == head
        replayed.store.close()
        print(
            f"replaying all {head.height} blocks: {t_replay:.2f} s; "
            f"replay / state sync = {t_replay / joined:.1f}x"
        )
        print(f"(serving node's data directory {_dir_bytes(tmp / 'src') / 1e6:.0f} MB)")
        print(COMETBFT)
        src.store.close()


def bench_block_sync(blocks: int, links: int) -> None:
    print(f"\n## block sync: {blocks} blocks of {links} links, commit_wait 0.2 s")
    keys = [KeyPair.from_seed(i.to_bytes(32, "big")) for i in range(1, 5)]
    validator = KeyPair.from_seed(b"\xfe" * 32)
    gen = _genesis(keys, validator, 4)
    per_key = links // len(keys) or 1

    def feed(rt: ValidatorRuntime, h: int) -> None:
        if links == 0:
            return
        for k, key in enumerate(keys):
            pairs = [
                [
                    b"\x01\x55\x12\x20" + (h * 7919 + k * 131 + i).to_bytes(32, "big"),
                    b"\x01\x55\x12\x20" + (h * 31 + i).to_bytes(32, "big"),
                ]
                for i in range(per_key)
            ]
            rt.submit(make_tx(key, gen.chain_id, h, 10**7, [Msg("link", {"links": pairs})]).encoded)

    async def run(tmp: Path) -> tuple[float, float, int]:
        chain = open_chain(tmp / "v", gen, validator)
        rt = ValidatorRuntime(
            chain,
            validator,
            wal_path=tmp / "wal",
            listen=("127.0.0.1", 0),
            commit_wait=0.2,
            net_config=NET,
        )
        await rt.start_async()
        try:
            t = time.perf_counter()
            fed = 0
            while chain.height < blocks:
                if fed <= chain.height and fed < blocks:
                    feed(rt, fed)
                    fed += 1
                await asyncio.sleep(0.01)
            t_net = time.perf_counter() - t
            target = chain.height
            follower_chain = open_chain(tmp / "f", gen)
            full = ValidatorRuntime(
                follower_chain,
                KeyPair.generate(),
                wal_path=tmp / "fwal",
                listen=("127.0.0.1", 0),
                peers=[str(rt.net.peer_address)],
                follow_only=True,
                net_config=NET,
            )
            t = time.perf_counter()
            await full.start_async()
            try:
                while follower_chain.height < target:
                    await asyncio.sleep(0.01)
                t_sync = time.perf_counter() - t
                record = chain.block_record(target)
                assert follower_chain.block_record(target).block.header == record.block.header
            finally:
                await full.stop_async()
                follower_chain.store.close()
            return t_net, t_sync, target
        finally:
            await rt.stop_async()
            chain.store.close()

    with tempfile.TemporaryDirectory() as tmp:
        t_net, t_sync, target = asyncio.run(run(Path(tmp)))
        # The same blocks applied from the store, without the network: what
        # block sync costs beyond fetching them.
        source = open_chain(Path(tmp) / "v", gen)
        again = open_chain(Path(tmp) / "again", gen)
        t = time.perf_counter()
        phases = []
        for record in source.records(1):
            if record.block.height > target:
                break
            phases.append(again.apply_block(record).timings)
        t_apply = time.perf_counter() - t
        source.store.close()
        again.store.close()
    net_rate = target / t_net
    sync_rate = target / t_sync
    print(
        f"network: {target} blocks in {t_net:.1f} s = {net_rate:.2f} blocks/s; "
        f"full node block sync (from its start, connection and poll included): "
        f"{t_sync:.2f} s = {sync_rate:.1f} blocks/s; ratio {sync_rate / net_rate:.1f}x; "
        f"the same blocks applied from a store, no network: {target / t_apply:.1f} blocks/s"
    )
    medians = {k: statistics.median(p[k] for p in phases) * 1000 for k in phases[0]}
    print("apply_block phases, median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    print(
        f"apply_block total {sum(p['total'] for p in phases):.2f} s of {t_apply:.2f} s; "
        f"slowest block {max(p['total'] for p in phases) * 1000:.0f} ms"
    )


def bench_block_sync_testnet(blocks: int, links: int) -> None:
    """Block sync against real validator processes: ``focusflow node start`` for
    four validator homes of one testnet (their own block rate), and an
    in-process full node started once they made ``blocks`` blocks."""
    import httpx

    from focusflow.core.keystore import Keystore
    from focusflow.node.home import DEV_KEY_NAME, init_testnet
    from focusflow.node.network import start_validator

    print(f"\n## block sync against 4 validator processes: {blocks} blocks of {links} links")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = 20_000 + os.getpid() % 20_000
        homes = init_testnet(tmp / "tn", 4, base)
        gen = homes[0].load_genesis()
        procs = [start_validator(h) for h in homes]
        api = f"http://{json.loads(homes[0].config.read_text())['api']}"
        peers = [
            f"{h.load_validator_key().public_key.hex()}@{json.loads(h.config.read_text())['p2p']}"
            for h in homes
        ]

        def height() -> int:
            try:
                return httpx.get(f"{api}/v1/status", timeout=5).json()["height"]
            except httpx.HTTPError:
                return -1

        try:
            deadline = time.monotonic() + 180
            while height() < 1:
                assert time.monotonic() < deadline, "the testnet did not start"
                time.sleep(0.2)
            key = Keystore(homes[0].path / "keys").load(DEV_KEY_NAME)
            start_h, t = height(), time.perf_counter()
            nonce, last = 0, start_h
            while (h := height()) < start_h + blocks:
                if links and h > last:
                    pairs = [
                        [
                            b"\x01\x55\x12\x20" + (h * 7919 + i).to_bytes(32, "big"),
                            b"\x01\x55\x12\x20" + (h * 31 + i % 7).to_bytes(32, "big"),
                        ]
                        for i in range(links)
                    ]
                    tx = make_tx(key, gen.chain_id, nonce, 10**6, [Msg("link", {"links": pairs})])
                    httpx.post(f"{api}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=5)
                    nonce, last = nonce + 1, h
                time.sleep(0.02)
            t_net = time.perf_counter() - t
            net_rate = blocks / t_net
            target = height()

            async def follow() -> float:
                chain = open_chain(tmp / "full", gen)
                full = ValidatorRuntime(
                    chain,
                    KeyPair.generate(),
                    wal_path=tmp / "fwal",
                    listen=("127.0.0.1", 0),
                    peers=peers,
                    follow_only=True,
                    net_config=NET,
                )
                t = time.perf_counter()
                await full.start_async()
                try:
                    while chain.height < target:
                        await asyncio.sleep(0.01)
                    return time.perf_counter() - t
                finally:
                    await full.stop_async()
                    chain.store.close()

            t_sync = asyncio.run(follow())
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
    sync_rate = target / t_sync
    print(
        f"network of 4 processes: {blocks} blocks in {t_net:.1f} s = {net_rate:.2f} blocks/s; "
        f"a full node block-syncs {target} blocks in {t_sync:.2f} s = {sync_rate:.1f} "
        f"blocks/s (from its start: connection and first poll included); "
        f"ratio {sync_rate / net_rate:.1f}x"
    )


async def _serve(root: str, genesis_file: str) -> None:
    """The child process: serve the snapshots under ``root`` until stdin closes."""
    gen = Genesis.from_json(json.loads(Path(genesis_file).read_text()))
    node = Node(
        KeyPair.generate(),
        listen=("127.0.0.1", 0),
        config=NetConfig(network_id=gen.hash, max_datagram_size=LOOPBACK_DATAGRAM_SIZE),
    )
    StateSync(interval=0, root=Path(root)).attach(
        SimpleNamespace(chain=None, listeners=[], net=node)
    )
    await node.start()
    print(node.peer_address, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await node.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total-links", type=int, default=1_000_000)
    p.add_argument("--block-links", type=int, default=10_000)
    p.add_argument("--txs", type=int, default=20)
    p.add_argument("--neurons", type=int, default=64)
    p.add_argument("--sync-blocks", type=int, default=200)
    p.add_argument("--sync-links", type=int, default=40)
    p.add_argument("--skip-state", action="store_true")
    p.add_argument("--skip-blocks", action="store_true")
    p.add_argument("--testnet-blocks", type=int, default=150)
    p.add_argument("--skip-testnet", action="store_true")
    p.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(_serve(*args.serve))
        return
    print(
        f"# bench/sync.py on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if not args.skip_state:
        bench_state_sync(args.total_links, args.block_links, args.txs, args.neurons)
    if not args.skip_blocks:
        bench_block_sync(args.sync_blocks, args.sync_links)
    if not args.skip_testnet:
        bench_block_sync_testnet(args.testnet_blocks, args.sync_links)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
