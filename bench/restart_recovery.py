"""How long a restarted validator takes to give the network its quorum back.

A four-validator testnet on loopback (real ``focusflow testnet`` processes):
each cycle kills validators 2 and 3 (two of four: no quorum), submits a
transaction to validator 0, restarts validator 2 and times how long after its
API answers the transaction is committed; then validator 3 comes back and all
four reach the next height. Without a quorum nothing commits, so the time is
the restarted node's: reconnecting to its peers, syncing the blocks it
missed, and taking part in the next decision.

``--root`` runs the node processes from another checkout (a ``git worktree``
of an older revision; the harness stays this checkout's), so two revisions are
measured by the same script::

    python bench/restart_recovery.py --cycles 6
    git worktree add /tmp/old <rev> && python bench/restart_recovery.py --root /tmp/old
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=6)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--keep", type=Path, default=None, help="Keep the testnet's homes here.")
    args = ap.parse_args()
    from focusflow.testing.testnet import LocalTestnet

    # This checkout's harness; the node processes run from --root's src.
    source = args.root.resolve() / "src"

    waits: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = args.keep if args.keep is not None else Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        net = LocalTestnet(home / "tn", 4, source=source)
        try:
            net.wait_tx(0, net.submit_links(0, "start", 0), 60)
            for cycle in range(args.cycles):
                height, seconds = net.restore_quorum(f"cycle-{cycle}", cycle + 1, 120)
                waits.append(seconds)
                print(f"cycle {cycle}: height {height}, {seconds:.1f} s after the restart")
        finally:
            net.stop()
    print(
        f"{args.root}: {len(waits)} restarts, median {statistics.median(waits):.1f} s, "
        f"min {min(waits):.1f} s, max {max(waits):.1f} s"
    )


if __name__ == "__main__":
    main()
