"""exact-v1 against exact-v2 (and fast) on the bostrom sample: how far each
tri solve ends from a tight fast solve, with the new-genesis algorithm and
with Anderson mixing off.

exact-v1's blend kept the diffusion step's gathered vector after rewriting
the vector it came from (docs/focus.md, *Arithmetic*): every plain step of a
tri solve then gathers the diffusion part alone. With the new-genesis window
of 6 few steps are plain; with window 0 every one is.

    python bench/exact_versions.py [--csv PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
from pathlib import Path

import numpy as np

from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.focus import compute
from focusflow.graph.importers import read_bostrom

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default=str(SAMPLE))
    args = ap.parse_args()
    g = read_bostrom(args.csv, skip_invalid=True)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# bench/exact_versions.py on {platform.node()}, {when}: {g.n_links:,} links")
    ref = compute(g, mode="tri", tol=1e-13, backend="numba").focus
    top = set(np.argsort(-ref)[:100])
    params = {k: v for k, v in NEW_CHAIN_FOCUS.items() if k != "arithmetic"}
    print(
        "| arithmetic | Anderson window | iterations | converged "
        "| L1 to a tight solve | top-100 kept |"
    )
    print("|---|---:|---:|---|---:|---:|")
    for arithmetic in ("exact-v1", "exact-v2", "fast"):
        for window in (6, 0):
            r = compute(
                g,
                **{**params, "anderson": window},
                arithmetic=arithmetic,
                tol=1e-10,
                backend="numba",
            )
            kept = len(set(np.argsort(-r.focus)[:100]) & top)
            l1 = float(np.abs(r.focus - ref).sum())
            print(
                f"| {arithmetic} | {window} | {r.iterations} | {r.converged} | {l1:.2e} | {kept} |"
            )


if __name__ == "__main__":
    main()
