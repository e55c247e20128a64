"""Writes the previous release's focus checkpoint and state-sync snapshot.

Run with the code that wrote them (tests/chain/data/README.md names the
commit), never with the current code: the files are what a node of that
release leaves on disk and serves, and the tests check that this release
restores and refuses them as it should::

    PYTHONPATH=<that checkout>/src:. python tests/chain/data/make_focus_v3.py tests/chain/data

For each focus configuration (``devnet``: the genesis focusflow devnet
writes; ``tri``: a genesis naming only the tri mode, which runs the fast
arithmetic; ``diffusion``: the fast diffusion mode, whose engine keeps a
forward-push system) it makes the chain of :func:`chain_blocks` and keeps:

* ``<name>/focus.ckpt.xz`` and ``<name>/focus.ckpt.key``: the focus
  checkpoint of height ``CHECKPOINT_AT`` (xz-compressed here, to keep the
  repository small) and the home's checkpoint key (the chain's store is not
  kept: the tests make the same blocks again, and a restart loads the
  checkpoint and replays the blocks after it);
* ``<name>/snapshot/`` (``devnet`` and ``tri``): the state-sync snapshot of
  the last block as a node of that release serves it (``manifest.cbor``,
  ``data.bin.xz``).
"""

from __future__ import annotations

import lzma
import shutil
import sys
import tempfile
from pathlib import Path

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.keys import KeyPair
from focusflow.node import open_chain

CHAIN_ID = "focusflow-v3-data"
T0 = 1_700_000_000_000
BLOCKS = 20
CHECKPOINT_AT = 12
VALIDATOR = KeyPair.from_seed(b"validator".ljust(32, b"\0"))
NEURONS = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
#: The genesis focus configurations kept (snapshots of the first two).
FOCUS = {
    "devnet": {
        "mode": "tri",
        "anderson": 6,
        "start": "diffusion",
        "heat_reuse": "bounded",
        "finish": "bounded",
        "arithmetic": "exact-v2",
        "springs_method": "cg",
    },
    "tri": {"mode": "tri"},
    "diffusion": {"mode": "diffusion"},
}


def genesis(name: str) -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {"focus": FOCUS[name]},
            "accounts": [
                {"address": k.address, "balance": 10**12, "stake": 10**6 * (i + 1)}
                for i, k in enumerate(NEURONS)
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def particle(i: int) -> bytes:
    return raw_cid_bytes(f"p{i}".encode())


def chain_blocks() -> list[list[bytes]]:
    """The transactions of every block: a first block of 200 links over 60
    particles (the CSR is built from it); then each block adds links to
    pairs the CSR holds (late links of base entries), one new pair (the
    overlay) and, every fifth block, a new particle; block 8 brings 25 new
    pairs, so the CSR is rebuilt there (compaction); every third block a
    neuron stakes or unstakes (its links are weighed again)."""
    nonces = [0] * len(NEURONS)

    def tx(who: int, *msgs: Msg) -> bytes:
        out = make_tx(NEURONS[who], CHAIN_ID, nonces[who], 10**6, msgs).encoded
        nonces[who] += 1
        return out

    def links(pairs: list[tuple[int, int]]) -> Msg:
        return Msg("link", {"links": [[particle(a), particle(b)] for a, b in pairs]})

    base = [(i % 60, (7 * i + i // 60 + 1) % 60) for i in range(200)]
    blocks = [[tx(0, links(base))]]
    for b in range(1, BLOCKS):
        known = [(b % 60, (7 * b + 1) % 60), ((b + 5) % 60, (7 * b + 37) % 60)]
        fresh = [(b % 60, (7 * b + 10) % 60)]
        if b == 8:
            fresh += [(j, (7 * j + 20) % 60) for j in range(25)]
        if b % 5 == 0:
            fresh.append((b, 100 + b))
        block = [tx(b % 4, links(known)), tx((b + 1) % 4, links(fresh))]
        if b % 3 == 0:
            kind = "stake" if b % 2 else "unstake"
            block.append(tx((b + 2) % 4, Msg(kind, {"amount": 10**5 * b})))
        blocks.append(block)
    return blocks


SNAPSHOTS = ("devnet", "tri")


def _xz(source: Path, target: Path) -> None:
    target.write_bytes(lzma.compress(source.read_bytes(), preset=9))


def make(name: str, out: Path) -> None:
    from focusflow.chain.snapshot import capture_focus, write_snapshot

    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp) / "store"
        chain = open_chain(store_dir, genesis(name), VALIDATOR)
        kept = Path(tmp) / "focus.ckpt"
        for h, txs in enumerate(chain_blocks(), start=1):
            chain.produce_block(txs, T0 + 1000 * h)
            if h == CHECKPOINT_AT:
                assert chain.checkpoint()
                shutil.copy(chain.checkpoint_path, kept)
        payload = capture_focus(chain.focus)
        with chain.reader() as reader:
            write_snapshot(reader, payload, Path(tmp) / "snapshots", chain_id=CHAIN_ID)
        chain.close()
        target = out / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        _xz(kept, target / "focus.ckpt.xz")
        shutil.copy(store_dir / "focus.ckpt.key", target / "focus.ckpt.key")
        if name in SNAPSHOTS:
            (snap,) = (Path(tmp) / "snapshots").iterdir()
            (target / "snapshot").mkdir()
            shutil.copy(snap / "manifest.cbor", target / "snapshot" / "manifest.cbor")
            _xz(snap / "data.bin", target / "snapshot" / "data.bin.xz")


if __name__ == "__main__":
    for config in FOCUS:
        make(config, Path(sys.argv[1]))
