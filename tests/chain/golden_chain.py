"""Fixed chains of link-heavy blocks with stake changes, for the golden focus roots.

Each chain is built through ``Chain.produce_block`` from a seeded stream: R-MAT
particle pairs (a power-law graph, hubs included) folded onto ``particles``
CIDs, cut into blocks of ``links_per_block`` links sent by staked neurons, and
from the third block on a few neurons stake or unstake every other block (so
link weights already held by the engine change). Run as a script it prints one
focus root per block, in hex, so that another process (another CPU target,
another thread count, another machine) can be compared with the recorded ones::

    python -m tests.chain.golden_chain small:v2 small:new small:first
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.core.keys import KeyPair
from focusflow.graph.generators import rmat_edges
from focusflow.node import open_chain

CHAIN_ID = "focusflow-golden"
T0 = 1_700_000_000_000
LINKS_PER_TX = 500


@dataclass(frozen=True)
class GoldenChain:
    blocks: int
    links_per_block: int
    particles: int
    neurons: int
    seed: int


#: The default test's chain and the slow one (the size first measured to split).
CHAINS = {
    "small": GoldenChain(blocks=6, links_per_block=2_000, particles=12_000, neurons=12, seed=5),
    "large": GoldenChain(blocks=12, links_per_block=4_000, particles=30_000, neurons=24, seed=6),
}


def _pairs(spec: GoldenChain) -> tuple[np.ndarray, np.ndarray]:
    total = spec.blocks * spec.links_per_block
    scale = int(np.ceil(np.log2(spec.particles)))
    src, dst, _ = rmat_edges(scale, 2 * total // (1 << scale) + 2, seed=spec.seed)
    src, dst = src % spec.particles, dst % spec.particles
    keep = src != dst
    src, dst = src[keep][:total], dst[keep][:total]
    assert len(src) == total
    return src, dst


def _blocks(spec: GoldenChain, keys: list[KeyPair]) -> list[list[bytes]]:
    src, dst = _pairs(spec)
    cids = [b"\x01\x55\x12\x20" + i.to_bytes(32, "big") for i in range(spec.particles)]
    nonces = [0] * len(keys)
    out = []
    for b in range(spec.blocks):
        block = []
        lo = b * spec.links_per_block
        for j, start in enumerate(range(lo, lo + spec.links_per_block, LINKS_PER_TX)):
            who = (b * 7 + j) % len(keys)
            links = [
                [cids[s], cids[d]]
                for s, d in zip(
                    src[start : start + LINKS_PER_TX],
                    dst[start : start + LINKS_PER_TX],
                    strict=True,
                )
            ]
            block.append(_tx(keys, nonces, who, Msg("link", {"links": links})))
        if b >= 2 and b % 2 == 0:
            for k in range(3):
                who = (b + 5 * k) % len(keys)
                msg = (
                    Msg("stake", {"amount": 10**6 * (b + k + 1)})
                    if k != 1
                    else Msg("unstake", {"amount": 10**5 * (b + 3)})
                )
                block.append(_tx(keys, nonces, who, msg))
        out.append(block)
    return out


def _tx(keys: list[KeyPair], nonces: list[int], who: int, msg: Msg) -> bytes:
    tx = make_tx(keys[who], CHAIN_ID, nonces[who], 10**6, [msg])
    nonces[who] += 1
    return tx.encoded


def _focus(focus: dict | None) -> dict:
    from focusflow.chain import focus_commit

    return dict(focus if focus is not None else focus_commit.NEW_CHAIN_FOCUS)


def golden_roots(name: str, focus: dict | None = None) -> list[str]:
    """The focus root after each block of chain ``name``, in hex."""
    spec = CHAINS[name]
    keys = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(spec.neurons)]
    validator = KeyPair.from_seed(b"\xfe" * 32)
    gen = Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {"focus": _focus(focus)},
            "accounts": [
                {"address": k.address, "balance": 10**15, "stake": 10**7 * (i % 5 + 1)}
                for i, k in enumerate(keys)
            ],
            "validators": [{"public_key": validator.public_key.hex(), "power": 1}],
        }
    )
    roots = []
    with tempfile.TemporaryDirectory() as home:
        chain = open_chain(home, gen, validator)
        try:
            for h, block in enumerate(_blocks(spec, keys), start=1):
                result = chain.produce_block(block, time_ms=T0 + 1000 * h)
                bad = [r.code for r in result.receipts if not r.ok] + [
                    r.error.code for r in result.rejected
                ]
                if bad:
                    raise RuntimeError(f"block {h}: transactions failed: {bad}")
                roots.append(result.block.header.focus_root.hex())
        finally:
            chain.close()
    return roots


#: The new-genesis algorithm (NEW_CHAIN_FOCUS's choices) under an arithmetic.
_NEW = {
    "mode": "tri",
    "anderson": 6,
    "start": "diffusion",
    "heat_reuse": "bounded",
    "finish": "bounded",
    "springs_method": "cg",
}
#: The focus parameters the golden chains run with: a genesis written now
#: (``now``: NEW_CHAIN_FOCUS as it is), the new-genesis algorithm in
#: exact-v3, exact-v2 and exact-v1 (what a genesis named before exact-v3 and
#: before exact-v2), the chain's first algorithm in exact arithmetic
#: (CHAIN_FOCUS_DEFAULTS' choices), the free-energy model at T = 0.5 (``fe``),
#: the local rule at T = 1, 4 steps of 0.01 a block (``local``), the
#: Hebbian rule every second block over exact-v3's blend (``hebb``),
#: and (to show what exact arithmetic fixes; no golden roots) a genesis naming
#: no arithmetic: fast.
FOCUS = {
    "now": None,
    "v3": {**_NEW, "arithmetic": "exact-v3"},
    "v2": {**_NEW, "arithmetic": "exact-v2"},
    "new": {**_NEW, "arithmetic": "exact-v1"},
    "first": {"mode": "tri", "arithmetic": "exact-v1"},
    "fast": {"mode": "tri"},
    "fe": {**_NEW, "arithmetic": "exact-v3", "model": "free-energy", "temperature": 0.5},
    "local": {
        **_NEW,
        "arithmetic": "exact-v3",
        "model": "local-rule",
        "temperature": 1.0,
        "local_steps": 4,
        "local_eta": 0.01,
    },
    "hebb": {
        **_NEW,
        "arithmetic": "exact-v3",
        "hebbian_every": 2,
        "hebbian_eta": 0.05,
        "hebbian_delta": 0.1,
        "hebbian_cap": 2.0,
        "hebbian_mass_cap": 0.02,
    },
}


def warm_fast_kernels() -> None:
    """Run the fast arithmetic first, as a process serving library calls might
    before it checks a block: its kernels must not change the exact ones."""
    from focusflow.focus import compute
    from focusflow.graph.generators import rmat_edges
    from focusflow.graph.snapshot import Snapshot

    src, dst, _ = rmat_edges(8, 4, seed=1)
    compute(Snapshot(256, src, dst, np.ones(len(src))), mode="tri", backend="numba")


def main(argv: list[str]) -> None:
    """``[--fast-first] chain:focus ...``: prints ``{"chain:focus": [roots]}`` as JSON."""
    import json

    if argv and argv[0] == "--fast-first":
        warm_fast_kernels()
        argv = argv[1:]
    out = {}
    for item in argv:
        name, focus = item.split(":")
        out[item] = golden_roots(name, FOCUS[focus])
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
