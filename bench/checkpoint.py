"""What a due focus checkpoint holds the commit: written in it, or by a forked child.

For each ``--links`` size this opens a chain (a new genesis's focus:
``NEW_CHAIN_FOCUS``), puts an R-MAT graph of that many links, signed by
``--neurons`` staked neurons, into its focus state (building it block by block
through transactions would take hours at 10^7 links; the chain's own blocks
then run on it), lets one block solve it, and then commits ``--repeats``
blocks of one link each with a checkpoint due at every one, alternately:

- ``sync``: written in the commit (``CheckpointWriter.background = False``,
  what every checkpoint cost before);
- ``fork``: written by a forked child (the default now), waited for before
  the next block.

It also times ``copy.deepcopy`` of the chain's focus state, which every
block proposed or validated under consensus pays before it applies its
deltas (``BlockPipeline.build`` with ``in_place=False``: the head's state must
survive a block that is not committed), and whole one-link blocks both ways
(no checkpoint due): produced in place as a lone node does, and proposed then
committed with a certificate as under consensus, where the copy shares the
large arrays and the block's first writes copy the weights they touch.

It reports what the commit spent on the checkpoint (``timings["checkpoint"]``,
median and max), the child's write time, the checkpoint's bytes and bytes per
link, the graph log's bytes per link that a checkpoint no longer holds (its
consumed entries are trimmed first), and the process's memory at the fork
(resident, anonymous huge pages, mappings: what fork copies the page tables
of). Like the ``focusflow`` command it sets ``NUMPY_MADVISE_HUGEPAGE=0``
unless the environment names it.

    python bench/checkpoint.py                         # 10^6 and 10^7 links
    python bench/checkpoint.py --links 1000000 --repeats 3

``--restore`` measures the focus state's formats instead: after the cold-solve
block it writes the checkpoint (in the commit) and a state-sync snapshot of the
head, closes the chain and opens it again from the checkpoint (what a restart
costs), then verifies the snapshot as a joining node does. It reports bytes per
link of the checkpoint and of the snapshot's focus section, the write, restart
and verify times, and the process's peak memory. Each size runs in a process of
its own; ``--before DIR`` also runs every size with ``PYTHONPATH=DIR/src`` (a
worktree of an earlier commit), alternating, so that both sets of numbers come
from one run on one machine. The measurement uses only what both formats offer
(``Chain.checkpoint``, ``open_chain``, ``capture_focus``, ``write_snapshot``,
``verify_snapshot``)::

    python bench/checkpoint.py --restore --links 1e6 1e7 --before /tmp/wt-before

``--containers`` times the containers the byte form could have used, on arrays
shaped like a state of each ``--links`` size (three int32 link columns, a
float64 per entry, three float64 per particle at 10 links a particle): written
and loaded back into arrays of their own, as npz (``np.load``, no pickle), as
Arrow IPC (pyarrow) and as raw arrays at offsets a header names (what
chain/focus_state_format.py writes)::

    python bench/checkpoint.py --containers --links 1e7
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import argparse
import copy
import datetime as dt
import gc
import inspect
import json
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from focusflow.chain import Genesis, Msg, lifecycle, make_tx
from focusflow.chain.block import sign_certificate
from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS
from focusflow.core.keys import KeyPair
from focusflow.graph import rmat_edges
from focusflow.node import open_chain

KEY = KeyPair.from_seed(b"\x01" * 32)
VALIDATOR = KeyPair.from_seed(b"\xff" * 32)
T0 = 1_700_000_000_000


def _genesis() -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": "bench",
            "genesis_time_ms": T0,
            "params": {"focus": dict(NEW_CHAIN_FOCUS)},
            "accounts": [{"address": KEY.address, "balance": 10**15, "stake": 10**9}],
            "validators": [{"public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def _cid(i: int) -> bytes:
    return b"\x01\x55\x12\x20" + int(i).to_bytes(32, "big")


def _graft(chain, links: int, neurons: int, seed: int) -> None:
    """An R-MAT graph of ``links`` links into the chain's focus state."""
    scale = max(4, int(np.ceil(np.log2(links / 16))))
    src, dst, _ = rmat_edges(scale, seed=seed)
    src, dst = src[:links], dst[:links]
    g = chain.focus.graph
    g.add_particles(np.array([_cid(i) for i in range(1 << scale)], dtype=object))
    rng = np.random.default_rng(seed)
    ids = g.add_neurons([int(i).to_bytes(20, "big") for i in range(neurons)])
    g.set_stakes(ids, rng.uniform(1.0, 100.0, neurons))
    g.add_link_ids(src, dst, rng.integers(0, neurons, len(src)))


def _link_tx(chain, nonce: int) -> bytes:
    h = chain.height + 1
    msg = Msg("link", {"links": [[_cid(h), _cid(h + 1)]]})
    return make_tx(KEY, "bench", nonce, 10**7, [msg]).encoded


def _block(chain, nonce: int) -> dict[str, float]:
    """Commit a block of one link in place; its timings."""
    return chain.produce_block([_link_tx(chain, nonce)], T0 + 1000 * (chain.height + 1)).timings


def _consensus_block(chain, nonce: int) -> None:
    """Propose a block of one link on a copy of the focus state, then commit
    it with the certificate that decided it."""
    h = chain.height + 1
    pending = chain.propose([_link_tx(chain, nonce)], T0 + 1000 * h)
    chain.commit(pending, sign_certificate(VALIDATOR, chain.chain_id, h, pending.hash))


def _memory() -> dict[str, float]:
    """Resident and anonymous-huge-page GiB, and the number of mappings."""
    with open("/proc/self/maps") as f:
        out = {"maps": sum(1 for _ in f)}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            key, *rest = line.split()
            if key in ("Rss:", "AnonHugePages:"):
                out[key.rstrip(":")] = int(rest[0]) / 2**20
    return out


def run(links: int, neurons: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as home:
        chain = open_chain(home, _genesis(), VALIDATOR)
        t = time.perf_counter()
        _graft(chain, links, neurons, seed=1)
        build = time.perf_counter() - t
        lifecycle.CHECKPOINT_WORK_S = 1e18
        t = time.perf_counter()
        _block(chain, 0)  # the cold solve of the whole graph
        solve = time.perf_counter() - t
        log_bytes = len(pickle.dumps(chain.focus.graph.log, protocol=5))
        lifecycle.CHECKPOINT_WORK_S = 0.0
        lifecycle.CHECKPOINT_COST_RATIO = 0.0
        held: dict[bool, list[float]] = {False: [], True: []}
        child: list[float] = []
        memory = _memory()
        for k in range(2 * repeats):
            background = k % 2 == 1
            chain.checkpoints.background = background
            timings = _block(chain, k + 1)
            assert chain.wait_checkpoint(timeout=600), chain.checkpoints.last
            held[background].append(timings["checkpoint"])
            if background:
                child.append(chain.checkpoints.last.seconds)
        copies = []
        for _ in range(3):
            t = time.perf_counter()
            spare = copy.deepcopy(chain.focus)
            copies.append(time.perf_counter() - t)
            del spare
        lifecycle.CHECKPOINT_WORK_S = 1e18
        in_place: list[float] = []
        consensus: list[float] = []
        nonce = 2 * repeats + 1
        for _ in range(repeats):
            t = time.perf_counter()
            _block(chain, nonce)
            in_place.append(time.perf_counter() - t)
            t = time.perf_counter()
            _consensus_block(chain, nonce + 1)
            consensus.append(time.perf_counter() - t)
            nonce += 2
        size = chain.checkpoints.last.bytes
        n = chain.focus.graph.n_links
        chain.store.close()
    return {
        "links": n,
        "particles": chain.focus.graph.n_particles,
        "build_s": build,
        "solve_s": solve,
        "sync": held[False],
        "fork": held[True],
        "child_s": child,
        "deepcopy": copies,
        "in_place": in_place,
        "consensus": consensus,
        "bytes": size,
        "log_bytes": log_bytes,
        **memory,
    }


def restore_run(links: int, neurons: int) -> dict:
    """The checkpoint's and the snapshot's sizes, and the restart and verify
    times, of one grafted graph (see the module docstring, ``--restore``)."""
    from focusflow.chain.snapshot import capture_focus, verify_snapshot, write_snapshot

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        home = Path(tmp) / "node"
        genesis = _genesis()
        chain = open_chain(home, genesis, VALIDATOR)
        _graft(chain, links, neurons, seed=1)
        lifecycle.CHECKPOINT_WORK_S = 1e18
        # The first block commits every particle's CID (the grafted ones too),
        # as blocks that brought them would have: a joining node checks the
        # snapshot's particle order against them.
        focus = chain.focus
        focus._particle_writes = lambda _: type(focus)._particle_writes(focus, 0)
        _block(chain, 0)
        del focus._particle_writes
        n_links = chain.focus.graph.n_links
        head, root = chain.height, chain.head.focus_root
        t = time.perf_counter()
        assert chain.checkpoint()
        write_s = time.perf_counter() - t
        checkpoint_bytes = chain.checkpoint_path.stat().st_size
        # The focus state's byte form names its block; the pickle took the state alone.
        named = len(inspect.signature(capture_focus).parameters) > 1
        t = time.perf_counter()
        if named:
            payload = capture_focus(chain.focus, chain.head, chain.chain_id)
        else:
            payload = capture_focus(chain.focus)
        capture_s = time.perf_counter() - t
        with chain.reader() as reader:
            manifest = write_snapshot(reader, payload, Path(tmp) / "snaps", chain_id="bench")
        del payload
        chain.close()
        del chain
        gc.collect()
        t = time.perf_counter()
        again = open_chain(home, genesis, VALIDATOR)
        restart_s = time.perf_counter() - t
        assert again.restored_from == head and again.focus.root == root, "not restored"
        again.close()
        del again
        gc.collect()
        data = Path(tmp) / "snaps" / f"{head:012d}" / "data.bin"
        t = time.perf_counter()
        verified = verify_snapshot(manifest, data, genesis)
        verify_s = time.perf_counter() - t
        assert verified.focus.root == root
    return {
        "links": n_links,
        "checkpoint_bytes": checkpoint_bytes,
        "focus_bytes": manifest.sections[2],
        "write_s": write_s,
        "capture_s": capture_s,
        "restart_s": restart_s,
        "verify_s": verify_s,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def _restore_in_process(links: int, neurons: int, source: str | None) -> dict:
    """:func:`restore_run` in a fresh process, with ``source``'s sources first on
    the path (None: these)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(Path(source) / "src")
    cmd = [sys.executable, __file__, "--restore-one", str(links), "--neurons", str(neurons)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def restore_main(links: list[float], neurons: int, before: str | None) -> None:
    sources = [("before", before), ("after", None)] if before else [("now", None)]
    print(
        "| links | code | checkpoint MB | B/link | snapshot focus B/link | checkpoint "
        "written s | restart s | snapshot captured s | snapshot verified s | peak GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in links:
        for name, source in sources:
            r = _restore_in_process(int(size), neurons, source)
            print(
                f"| {r['links']:,} | {name} | {r['checkpoint_bytes'] / 1e6:.0f} "
                f"| {r['checkpoint_bytes'] / r['links']:.0f} "
                f"| {r['focus_bytes'] / r['links']:.0f} | {r['write_s']:.2f} "
                f"| {r['restart_s']:.2f} | {r['capture_s']:.2f} | {r['verify_s']:.2f} "
                f"| {r['peak_gib']:.2f} |",
                flush=True,
            )


def containers(links: int, repeats: int = 3) -> dict[str, tuple[float, float]]:
    """Seconds to write and (best of ``repeats``) to load the arrays of a state
    of ``links`` links in each container; see the module docstring."""
    import pyarrow as pa

    rng = np.random.default_rng(1)
    n = links // 10
    arrays = {
        **{f"links.{c}": rng.integers(0, n, links, dtype=np.int32) for c in ("s", "d", "n")},
        "entry_weights": rng.random(links),
        **{name: rng.random(n) for name in ("row_weights", "focus", "springs")},
    }
    out: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        npz, arrow, raw = (Path(tmp) / name for name in ("a.npz", "a.arrow", "a.raw"))

        def write_arrow() -> None:
            with pa.OSFile(str(arrow), "wb") as sink:
                for name, a in arrays.items():
                    batch = pa.record_batch([pa.array(a)], names=[name])
                    with pa.ipc.new_stream(sink, batch.schema) as w:
                        w.write_batch(batch)

        def load_arrow() -> None:
            with pa.memory_map(str(arrow)) as src:
                while src.tell() < src.size():
                    for batch in pa.ipc.open_stream(src):
                        batch.column(0).to_numpy(zero_copy_only=True).copy()

        def write_raw() -> None:
            with open(raw, "wb") as f:
                for a in arrays.values():
                    f.write(a.data.cast("B"))

        def load_raw() -> None:
            with open(raw, "rb") as f:
                for a in arrays.values():
                    f.readinto(np.empty_like(a).data.cast("B"))

        def load_npz() -> None:
            with np.load(npz, allow_pickle=False) as z:
                for name in z.files:
                    z[name]

        ways = {
            "npz": (lambda: np.savez(npz, **arrays), load_npz),
            "Arrow IPC": (write_arrow, load_arrow),
            "raw at offsets": (write_raw, load_raw),
        }
        for name, (save, load) in ways.items():
            t = time.perf_counter()
            save()
            written = time.perf_counter() - t
            loads = []
            for _ in range(repeats):
                t = time.perf_counter()
                load()
                loads.append(time.perf_counter() - t)
            out[name] = (written, min(loads))
    return out


def _ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:.1f} / {max(xs) * 1e3:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--links", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--neurons", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--restore", action="store_true", help="the formats' sizes and times")
    ap.add_argument("--before", help="with --restore: a worktree of the code to compare with")
    ap.add_argument("--restore-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--containers", action="store_true", help="npz, Arrow IPC, raw arrays")
    args = ap.parse_args()
    if args.restore_one:
        print(json.dumps(restore_run(args.restore_one, args.neurons)))
        return
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"# bench/checkpoint.py on {platform.node()}, {os.cpu_count()} CPUs, {when}, "
        f"NUMPY_MADVISE_HUGEPAGE={os.environ['NUMPY_MADVISE_HUGEPAGE']}"
    )
    if args.restore:
        restore_main(args.links, args.neurons, args.before)
        return
    if args.containers:
        print("| links | container | written s | loaded s (best of 3) |")
        print("|---|---|---|---|")
        for links in args.links:
            for name, (written, loaded) in containers(int(links)).items():
                print(f"| {int(links):,} | {name} | {written:.3f} | {loaded:.3f} |", flush=True)
        return
    print(
        "| links | RSS GiB | anon huge GiB | mappings | commit held, sync ms (median / max) "
        "| commit held, fork ms (median / max) | child write s (median) | checkpoint MB "
        "| B/link | log B/link trimmed | deepcopy of the focus state ms (median / max) "
        "| one-link block in place ms | the same block through consensus ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for links in args.links:
        r = run(int(links), args.neurons, args.repeats)
        print(
            f"| {r['links']:,} | {r['Rss']:.2f} | {r['AnonHugePages']:.2f} | {r['maps']} "
            f"| {_ms(r['sync'])} | {_ms(r['fork'])} | {statistics.median(r['child_s']):.2f} "
            f"| {r['bytes'] / 1e6:.0f} | {r['bytes'] / r['links']:.0f} "
            f"| {r['log_bytes'] / r['links']:.0f} | {_ms(r['deepcopy'])} "
            f"| {_ms(r['in_place'])} | {_ms(r['consensus'])} |",
            flush=True,
        )
        print(
            f"<!-- {r['links']:,} links: graph {r['build_s']:.1f} s, cold solve block "
            f"{r['solve_s']:.1f} s, sync ms {[round(x * 1e3, 1) for x in r['sync']]}, "
            f"fork ms {[round(x * 1e3, 1) for x in r['fork']]} -->",
            flush=True,
        )


if __name__ == "__main__":
    main()
