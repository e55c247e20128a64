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
deltas (``Chain._build`` with ``in_place=False``: the head's state must
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
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import argparse
import copy
import datetime as dt
import pickle
import platform
import statistics
import tempfile
import time

import numpy as np

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain import chain as chain_module
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
        chain_module.CHECKPOINT_WORK_S = 1e18
        t = time.perf_counter()
        _block(chain, 0)  # the cold solve of the whole graph
        solve = time.perf_counter() - t
        log_bytes = len(pickle.dumps(chain.focus.graph.log, protocol=5))
        chain_module.CHECKPOINT_WORK_S = 0.0
        chain_module.CHECKPOINT_COST_RATIO = 0.0
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
        chain_module.CHECKPOINT_WORK_S = 1e18
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


def _ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:.1f} / {max(xs) * 1e3:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--links", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--neurons", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"# bench/checkpoint.py on {platform.node()}, {os.cpu_count()} CPUs, {when}, "
        f"NUMPY_MADVISE_HUGEPAGE={os.environ['NUMPY_MADVISE_HUGEPAGE']}"
    )
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
