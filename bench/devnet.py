"""The devnet's pace: start-up time, blocks per window, and links committed per second.

Each part starts a real ``focusflow devnet`` process on a fresh home and talks
to it over HTTP only, as a user would:

* start-up: seconds from ``exec`` to the first 200 of ``/v1/status``, on a new
  home and again on the same home (resume);
* empty blocks: heights gained over a window (default 10 s) at each block time,
  and the mean and largest interval between the blocks of that window (from
  their ``time_ms``);
* links: the dev key submits ``--rounds`` bursts of ``--txs`` transactions of
  ``--links`` new links each through ``/v1/txs/batch``; the time from the first
  submission to the last commit gives committed links per second.

    python bench/devnet.py                          # 1 s and 0.2 s, 10 s windows
    python bench/devnet.py --block-times 0.2 --window 20 --rounds 5
    python bench/devnet.py --startups 5 --vs-root /tmp/old   # start-up only, two trees

With ``--startups N`` only the start-up is measured, N times (a new home, then
the same home resumed); with ``--vs-root`` another source tree (a worktree of an
older revision) is started in turn with this one, round by round, and the
medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from focusflow.chain import Msg, make_tx
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.encoding import encode as cbor_encode
from focusflow.core.keystore import Keystore

ROOT = Path(__file__).resolve().parents[1]


def start(home: Path, block_time: str, root: Path = ROOT) -> tuple[subprocess.Popen, str, float]:
    """A devnet of the source tree ``root`` on a free port; (process, API URL,
    seconds until its status answered)."""
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    env.pop("FOCUSFLOW_HOME", None)
    log = open(home.parent / "devnet.log", "ab")  # noqa: SIM115 - lives as long as the node
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "focusflow",
            "devnet",
            "--home",
            str(home),
            "--port",
            "0",
            "--block-time",
            block_time,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"devnet exited: {(home.parent / 'devnet.log').read_text()[-2000:]}")
        info = home / "node.json"
        if info.exists():
            try:
                doc = json.loads(info.read_text())
            except ValueError:
                doc = {}
            if doc.get("pid") == proc.pid:
                try:
                    if httpx.get(f"{doc['api']}/v1/status", timeout=2).status_code == 200:
                        return proc, doc["api"], time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
        time.sleep(0.02)
    proc.kill()
    raise SystemExit("devnet did not start in 120 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def height(client: httpx.Client) -> int:
    return client.get("/v1/status").json()["height"]


def wait_height(client: httpx.Client, target: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while height(client) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"height {target} not reached in {timeout} s")
        time.sleep(0.02)


def empty_blocks(block_time: float, window: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        proc, api, fresh_s = start(home, str(block_time))
        stop(proc)
        proc, api, resume_s = start(home, str(block_time))
        try:
            with httpx.Client(base_url=api, timeout=10) as c:
                wait_height(c, height(c) + 2)
                h0 = height(c)
                time.sleep(window)
                h1 = height(c)
                blocks = c.get(
                    "/v1/blocks", params={"limit": min(100, h1 - h0 + 1), "before": h1 + 1}
                ).json()["blocks"]
        finally:
            stop(proc)
    times = sorted(b["time_ms"] for b in blocks)
    gaps = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
    return {
        "block_time": block_time,
        "start_fresh_s": fresh_s,
        "start_resume_s": resume_s,
        "blocks": h1 - h0,
        "mean_interval_s": sum(gaps) / len(gaps) if gaps else float("nan"),
        "max_interval_s": max(gaps, default=float("nan")),
    }


def links(block_time: float, rounds: int, txs: int, per_tx: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        proc, api, _ = start(home, str(block_time))
        try:
            dev = Keystore(home / "keys").load("dev")
            with httpx.Client(base_url=api, timeout=60) as c:
                chain_id = c.get("/v1/status").json()["chain_id"]
                batches, nonce = [], 0
                for r in range(rounds):
                    batch = []
                    for t in range(txs):
                        pairs = [
                            [
                                raw_cid_bytes(f"r{r} t{t} l{i}".encode()),
                                raw_cid_bytes(f"r{r} hub{i % 10}".encode()),
                            ]
                            for i in range(per_tx)
                        ]
                        batch.append(
                            make_tx(dev, chain_id, nonce, 10**6, [Msg("link", {"links": pairs})])
                        )
                        nonce += 1
                    batches.append(batch)
                h_start, elapsed = height(c), 0.0
                for batch in batches:
                    t0 = time.perf_counter()
                    answer = c.post(
                        "/v1/txs/batch",
                        content=cbor_encode([tx.encoded for tx in batch]),
                        headers={"content-type": "application/cbor"},
                    ).json()
                    refused = [x for x in answer["results"] if "error" in x]
                    if refused:
                        raise SystemExit(f"refused: {refused[:3]}")
                    last = batch[-1].hash.hex()
                    while c.get(f"/v1/txs/{last}").json()["status"] != "committed":
                        time.sleep(0.01)
                    elapsed += time.perf_counter() - t0
                blocks = height(c) - h_start
        finally:
            stop(proc)
    total = rounds * txs * per_tx
    return {
        "block_time": block_time,
        "links": total,
        "seconds": elapsed,
        "links_per_s": total / elapsed,
        "blocks": blocks,
    }


def startups(roots: list[Path], runs: int) -> None:
    """Start-up only: a new home, then the same home resumed, ``runs`` times for
    each tree in ``roots``, the trees in turn within each round."""
    times: dict[Path, dict[str, list[float]]] = {r: {"new": [], "resumed": []} for r in roots}
    for i in range(runs):
        for root in roots:
            with tempfile.TemporaryDirectory() as tmp:
                home = Path(tmp) / "home"
                for kind in ("new", "resumed"):
                    proc, _, seconds = start(home, "0.2", root)
                    stop(proc)
                    times[root][kind].append(seconds)
            print(
                f"round {i + 1} {root}: new {times[root]['new'][-1]:.2f} s, "
                f"resumed {times[root]['resumed'][-1]:.2f} s",
                flush=True,
            )
    print("\n| tree | start new, median s (min-max) | start resumed, median s (min-max) |")
    print("|---|---:|---:|")
    for root in roots:
        cells = [
            f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for v in times[root].values()
        ]
        print(f"| {root} | {cells[0]} | {cells[1]} |")
    if len(roots) == 2:
        for kind in ("new", "resumed"):
            ratio = statistics.median(times[roots[1]][kind]) / statistics.median(
                times[roots[0]][kind]
            )
            print(f"{kind} home: {roots[1]} takes {ratio:.2f}x the time of {roots[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block-times", type=float, nargs="+", default=[1.0, 0.2])
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--txs", type=int, default=60, help="per round (at most 64: nonce gap)")
    ap.add_argument("--links", type=int, default=250, help="per transaction")
    ap.add_argument("--startups", type=int, default=0, help="only time N start-ups")
    ap.add_argument("--vs-root", type=Path, help="another source tree to start in turn")
    args = ap.parse_args()
    if args.startups:
        startups([ROOT, *([args.vs_root.resolve()] if args.vs_root else [])], args.startups)
        return
    print(
        "| block time | start new (s) | start resume (s) | blocks in "
        f"{args.window:g} s | mean interval (s) | max interval (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for bt in args.block_times:
        r = empty_blocks(bt, args.window)
        print(
            f"| {bt:g} s | {r['start_fresh_s']:.2f} | {r['start_resume_s']:.2f} | {r['blocks']} "
            f"| {r['mean_interval_s']:.3f} | {r['max_interval_s']:.3f} |",
            flush=True,
        )
    if args.rounds:
        r = links(min(args.block_times), args.rounds, args.txs, args.links)
        print(
            f"\nlinks at block time {r['block_time']:g} s: {r['links']:,} in "
            f"{r['seconds']:.2f} s = {r['links_per_s']:,.0f} links/s over {r['blocks']} blocks"
        )


if __name__ == "__main__":
    main()
