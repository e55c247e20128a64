"""How long a four-validator ``focusflow testnet`` takes to come up.

Times, from the command, when ``testnet.json`` appears (the parent is about to
start its validators) and when each validator's ``/v1/status`` answers. Every
multi-process test starts its nodes this way, so this is most of their set-up.
Each start gets a fresh home and ports; the testnet is stopped (SIGTERM to its
process group) and the script waits ``--pause`` seconds before the next start,
so that a stopping testnet does not share the cores with the next one.

    python bench/testnet_start.py --starts 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def start_once(home: Path, port: int, timeout: float) -> tuple[float, list[float]]:
    """Seconds to testnet.json and to each validator's API answering."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "focusflow", "testnet", "--validators", "4",
         "--home", str(home), "--base-port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = t0 + timeout
        while not (home / "testnet.json").exists():
            if time.perf_counter() > deadline or proc.poll() is not None:
                raise SystemExit("the testnet did not write testnet.json")
            time.sleep(0.05)
        listed = time.perf_counter() - t0
        apis = [v["api"] for v in json.loads((home / "testnet.json").read_text())["validators"]]
        up = []
        for api in apis:
            while True:
                try:
                    httpx.get(f"{api}/v1/status", timeout=0.5)
                    break
                except httpx.HTTPError:
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"{api} did not answer in {timeout} s") from None
                    time.sleep(0.05)
            up.append(time.perf_counter() - t0)
        return listed, up
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--pause", type=float, default=20.0, help="seconds between starts")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a start may take")
    ap.add_argument("--base-port", type=int, default=31000)
    args = ap.parse_args()
    print("| start | testnet.json s | all four up s |\n|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.starts):
            home = Path(tmp) / f"tn{k}"
            listed, up = start_once(home, args.base_port + 100 * k, args.timeout)
            print(f"| {k + 1} | {listed:.2f} | {max(up):.2f} |", flush=True)
            shutil.rmtree(home, ignore_errors=True)
            if k + 1 < args.starts:
                time.sleep(args.pause)


if __name__ == "__main__":
    main()
