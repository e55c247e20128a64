"""What two competing proposals at one height cost a validator.

A byzantine proposer can sign two valid blocks for one height; every validator
executes both before it prevotes. This grows a chain to ``--links`` links
(blocks of ``--block-links`` from staked neurons, R-MAT particle pairs), then
at the next height times, on the validator's chain:

* ``first``: validating proposal A (the ordinary cost of a block),
* ``second``: validating a competing proposal B at the same height,
* ``back``: validating A again (the decision went to A after all),
* ``commit``: committing A,
* a copy of the head's focus state against a rebuild of it from the focus
  checkpoint (and the blocks after it), which is what each switch between
  proposals cost before proposals kept their own state,

once with a focus checkpoint of the head on disk (a node that has run for a
while) and once without (a node whose last checkpoint is old replays more).

    python bench/competing_proposals.py                # 10^5 links
    python bench/competing_proposals.py --links 1000000
    python bench/competing_proposals.py --checkpoint head   # one case only
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import numpy as np

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.block import sign_certificate
from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS
from focusflow.core.keys import KeyPair
from focusflow.graph.generators import rmat_edges
from focusflow.node import open_chain


def _link_txs(keys, nonces, src, dst, cids, lo, hi, per_tx) -> list[bytes]:
    txs = []
    for start in range(lo, hi, per_tx):
        who = (start // per_tx) % len(keys)
        links = [
            [cids[s], cids[d]]
            for s, d in zip(src[start : start + per_tx], dst[start : start + per_tx], strict=True)
        ]
        tx = make_tx(keys[who], "bench", nonces[who], 10**7, [Msg("link", {"links": links})])
        nonces[who] += 1
        txs.append(tx.encoded)
    return txs


def run(total: int, block_links: int, with_checkpoint: bool) -> dict[str, float]:
    per_tx = 1_000
    keys = [KeyPair.from_seed(i.to_bytes(32, "big")) for i in range(1, 9)]
    validator = KeyPair.from_seed(b"\xff" * 32)
    gen = Genesis.from_json(
        {
            "chain_id": "bench",
            "genesis_time_ms": 1_700_000_000_000,
            "params": {"focus": dict(NEW_CHAIN_FOCUS), "max_block_txs": 1_000},
            "accounts": [{"address": k.address, "balance": 10**15, "stake": 10**9} for k in keys],
            "validators": [{"public_key": validator.public_key.hex(), "power": 1}],
        }
    )
    extra = 2 * block_links
    scale = max(10, int(np.log2(total)) - 2)
    src, dst, _ = rmat_edges(scale, (total + extra) // (1 << scale) + 2, seed=7)
    keep = src != dst
    src, dst = src[keep][: total + extra], dst[keep][: total + extra]
    cids = [b"\x01\x55\x12\x20" + int(i).to_bytes(32, "big") for i in range(1 << scale)]
    nonces = [0] * len(keys)
    with tempfile.TemporaryDirectory() as home:
        chain = open_chain(home, gen, validator)
        t_ms = gen.genesis_time_ms
        for lo in range(0, total, block_links):
            t_ms += 1000
            chain.produce_block(
                _link_txs(keys, nonces, src, dst, cids, lo, lo + block_links, per_tx), t_ms
            )
        if with_checkpoint:
            chain.checkpoint()
        else:
            chain.checkpoint_path.unlink(missing_ok=True)
        # Two blocks on the same parent, from different transactions.
        saved = list(nonces)
        txs_a = _link_txs(keys, nonces, src, dst, cids, total, total + block_links, per_tx)
        nonces[:] = saved
        txs_b = _link_txs(keys, nonces, src, dst, cids, total + block_links, total + extra, per_tx)
        a = chain.propose(txs_a, t_ms + 1000).proposal_value()
        b = chain.propose(txs_b, t_ms + 1000).proposal_value()
        chain.abandon(chain.propose([], t_ms + 1000))
        out = {}
        t = time.perf_counter()
        pending_a = chain.validate(a)
        out["first"] = time.perf_counter() - t
        t = time.perf_counter()
        chain.validate(b)
        out["second"] = time.perf_counter() - t
        t = time.perf_counter()
        if not chain.is_current(pending_a):
            pending_a = chain.validate(a)
        out["back"] = time.perf_counter() - t
        cert = sign_certificate(validator, "bench", pending_a.height, pending_a.hash)
        t = time.perf_counter()
        chain.commit(pending_a, cert)
        out["commit"] = time.perf_counter() - t
        # The two ways to get the head's focus state back for another block at
        # the next height: a copy (now), or a rebuild from the checkpoint and the
        # blocks after it (what every switch cost before), same load, same state.
        t = time.perf_counter()
        copy.deepcopy(chain.focus)
        out["copy of the head's state"] = time.perf_counter() - t
        t = time.perf_counter()
        chain.lifecycle.rebuild_focus()
        out["rebuild from the checkpoint"] = time.perf_counter() - t
        chain.store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--block-links", type=int, default=5_000)
    parser.add_argument("--checkpoint", choices=["head", "none", "both"], default="both")
    args = parser.parse_args()
    print(f"## competing proposals: chain of {args.links} links, blocks of {args.block_links}")
    cases = {"head": (True,), "none": (False,), "both": (True, False)}[args.checkpoint]
    for with_checkpoint in cases:
        out = run(args.links, args.block_links, with_checkpoint)
        label = "checkpoint at head" if with_checkpoint else "no checkpoint"
        print(f"{label:>20}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in out.items()))


if __name__ == "__main__":
    main()
