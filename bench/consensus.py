"""Commit latency and throughput of a 4-validator testnet on loopback.

Starts ``focusflow testnet --validators N`` in a temporary directory, then
submits signed ``link`` transactions (``--links-per-tx`` cyberlinks each) at a
bounded rate (``--rate`` transactions per second, all from the dev key and so all to
validator 0, which gossips them to the others) for ``--seconds``. A poller
subscribes to validator 0's block events (WebSocket ``/v1/ws``, pushed as
each block commits there): a transaction's latency is the time from its
submission to the event of the block that holds it (local finality at the
validator the client talks to: one block committed is final under BFT). A
second, HTTP poller (50 ms) reads the last validator's blocks, so the time
until another validator has the block is printed too. Throughput is committed
links divided by the time from the first submission to the last commit event.

``--consensus tendermint,snowman`` runs the same load on a fresh testnet for
each engine in turn (the genesis's ``params.consensus``) and prints them side by
side with the ratio to the first. ``--mempool proposer,dag`` does the same for
how transactions reach blocks: carried in the proposer's block, or sealed into
certified batches that proposals name (docs/consensus.md §11). With
``--spread`` each sender submits to validator ``i % N`` instead of validator 0,
as clients of a real network would (with the DAG each validator seals its own
clients' transactions; ``--senders`` should then be at least N).

Goals: p50 finality <= 0.5 s; >= 5,000 links/s across the network.
Anchor: CometBFT's QA reports ~400 tx/s saturated with 175 validators (v0.38
QA, 200-node testnet); HotStuff and Narwhal publish higher figures on
datacenter hardware. Run on a quiet machine: 4 validator processes share its
cores with the load generator.

    python bench/consensus.py [--validators 4] [--rate 50] [--links-per-tx 100] [--seconds 20]
        [--consensus tendermint,snowman,fallback] [--mempool proposer,dag] [--spread]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from focusflow.chain import Msg, make_tx  # noqa: E402
from focusflow.core.cid import raw_cid_bytes  # noqa: E402
from focusflow.core.hashing import sha256  # noqa: E402
from focusflow.core.keys import KeyPair  # noqa: E402
from focusflow.core.keystore import Keystore  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--rate", type=float, default=50.0, help="transactions per second")
    ap.add_argument("--links-per-tx", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--base-port", type=int, default=28100)
    ap.add_argument(
        "--consensus", default="tendermint", help="engines to run in turn, comma-separated"
    )
    ap.add_argument(
        "--senders",
        type=int,
        default=1,
        help="keys the load comes from, round robin (the dev key funds and stakes the others "
        "first): the mempool holds at most 64 nonces ahead of a sender's committed one",
    )
    ap.add_argument("--mempool", default="proposer", help="mempools to run in turn: proposer, dag")
    ap.add_argument("--spread", action="store_true", help="sender i submits to validator i %% N")
    args = ap.parse_args()
    results = []
    for engine in args.consensus.split(","):
        for mempool in args.mempool.split(","):
            name = engine if mempool == "proposer" else f"{engine}+{mempool}"
            print(f"== {name}", flush=True)
            results.append((name, one_engine(args, engine, mempool)))
    if len(results) > 1:
        base = results[0][1]
        print("\nrun                p50 s   p99 s   links/s   vs " + results[0][0])
        for name, r in results:
            ratio = r["links_per_s"] / base["links_per_s"] if base["links_per_s"] else float("nan")
            print(
                f"{name:17s} {r['p50']:6.3f}  {r['p99']:6.3f}  {r['links_per_s']:8,.0f}"
                f"   {ratio:.2f}x"
            )


def one_engine(args, engine: str, mempool: str = "proposer") -> dict[str, float]:
    """Start a testnet running ``engine``, load it, stop it; its figures."""
    tmp = Path(tempfile.mkdtemp(prefix="ff-bench-consensus-"))
    home = tmp / "tn"
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    log = open(tmp / "testnet.log", "wb")  # noqa: SIM115 (the child writes it)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "focusflow",
            "testnet",
            "--validators",
            str(args.validators),
            "--home",
            str(home),
            "--base-port",
            str(args.base_port),
            "--consensus",
            engine,
            "--mempool",
            mempool,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        return run(args, home)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


FEE = 10**6


def commit_all(client: httpx.Client, txs: list, timeout: float = 60.0) -> None:
    """Submit ``txs`` and wait until every one is committed."""
    for tx in txs:
        r = client.post("/v1/txs", json={"tx": tx.encoded.hex()})
        assert r.status_code in (200, 202), r.text
    deadline = time.monotonic() + timeout
    for tx in txs:
        while client.get(f"/v1/txs/{tx.hash.hex()}").json().get("status") != "committed":
            assert time.monotonic() < deadline, f"setup transaction {tx.hash.hex()} not committed"
            time.sleep(0.1)


def fund_senders(
    client: httpx.Client, chain_id: str, senders: list, n_tx: int, links_per_tx: int
) -> dict[bytes, int]:
    """Fund and stake every sender but the first (the dev key) for its share of
    the load; the next nonce of each."""
    nonces = {s.public_key: 0 for s in senders}
    if len(senders) == 1:
        return nonces
    dev, others = senders[0], senders[1:]
    share = n_tx // len(senders) + 1
    stake = share * links_per_tx + 1  # each link needs a unit of bonded stake
    amount = share * (FEE + links_per_tx) + stake + FEE
    funding = []
    for start in range(0, len(others), 60):
        msgs = [
            Msg("send", {"to": s.address_raw, "amount": amount}) for s in others[start : start + 60]
        ]
        funding.append(make_tx(dev, chain_id, nonces[dev.public_key], FEE, msgs))
        nonces[dev.public_key] += 1
    commit_all(client, funding)
    staking = [make_tx(s, chain_id, 0, FEE, [Msg("stake", {"amount": stake})]) for s in others]
    commit_all(client, staking)
    for s in others:
        nonces[s.public_key] = 1
    return nonces


def run(args, home: Path) -> dict[str, float]:
    deadline = time.monotonic() + 180
    while not (home / "testnet.json").exists():
        assert time.monotonic() < deadline, "testnet did not start"
        time.sleep(0.2)
    apis = [v["api"] for v in json.loads((home / "testnet.json").read_text())["validators"]]
    for api in apis:
        while True:
            try:
                if httpx.get(f"{api}/v1/status", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{api} did not start"
            time.sleep(0.2)
    key = Keystore(home / "v0" / "keys").load("dev")
    client = httpx.Client(base_url=apis[0], timeout=10)
    clients = [httpx.Client(base_url=api, timeout=10) for api in apis] if args.spread else []
    chain_id = client.get("/v1/status").json()["chain_id"]

    # Pre-sign so signing does not limit the rate.
    n_tx = int(args.rate * args.seconds)
    senders = [key] + [
        KeyPair.from_seed(sha256(b"bench-consensus-sender-%d" % i)) for i in range(1, args.senders)
    ]
    nonces = fund_senders(client, chain_id, senders, n_tx, args.links_per_tx)
    targets = [raw_cid_bytes(f"t{j}".encode()) for j in range(97)]
    txs = []
    for i in range(n_tx):
        pairs = [
            [raw_cid_bytes(f"b{i}-{j}".encode()), targets[j % len(targets)]]
            for j in range(args.links_per_tx)
        ]
        sender = senders[i % len(senders)]
        nonce = nonces[sender.public_key]
        nonces[sender.public_key] += 1
        tx = make_tx(sender, chain_id, nonce, 10**6, [Msg("link", {"links": pairs})])
        # One sender, one validator: its nonces reach blocks in order.
        txs.append((tx, clients[(i % len(senders)) % len(clients)] if clients else client))

    # Only blocks made from here on are watched (the poller must not start behind).
    start_height = client.get("/v1/status").json()["height"]
    submitted: dict[str, float] = {}
    committed: dict[str, float] = {}
    stop = threading.Event()
    lags: list[float] = []

    def poll() -> None:
        height = start_height
        with httpx.Client(base_url=apis[-1], timeout=10) as c:
            while not stop.is_set():
                top = c.get("/v1/status").json()["height"]
                now = time.perf_counter()
                for h in range(height + 1, top + 1):
                    block = c.get(f"/v1/blocks/{h}").json()
                    lags.append(time.time() - block["time_ms"] / 1000)
                    for tx_hash in block["txs"]:
                        committed.setdefault(tx_hash, now)
                height = top
                time.sleep(0.05)

    pushed: dict[str, float] = {}
    listening = threading.Event()

    def listen() -> None:
        url = apis[0].replace("http://", "ws://", 1) + "/v1/ws"
        with connect(url, max_size=None) as ws:
            ws.send(json.dumps({"subscribe": "blocks"}))
            while not stop.is_set():
                try:
                    msg = json.loads(ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                now = time.perf_counter()
                if msg.get("type") == "subscribed":
                    listening.set()
                elif msg.get("type") == "block":
                    for tx_hash in msg["block"]["txs"]:
                        pushed.setdefault(tx_hash, now)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert listening.wait(10), "no WebSocket subscription"
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.perf_counter()
    refused = 0
    reasons: dict[str, int] = {}
    for i, (tx, to) in enumerate(txs):
        wait = t0 + i / args.rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        submitted[tx.hash.hex()] = time.perf_counter()
        r = to.post("/v1/txs", json={"tx": tx.encoded.hex()})
        if r.status_code not in (200, 202):
            refused += 1
            code = r.json().get("error", {}).get("code", str(r.status_code))
            reasons[code] = reasons.get(code, 0) + 1
    end = time.perf_counter() + 30
    while (
        min(len(seen.keys() & submitted.keys()) for seen in (committed, pushed))
        < len(submitted) - refused
    ):
        if time.perf_counter() > end:
            break
        time.sleep(0.1)
    stop.set()
    poller.join(5)
    listener.join(5)
    done = [h for h in submitted if h in pushed]
    lat = [pushed[h] - submitted[h] for h in done]
    polled = [committed[h] - submitted[h] for h in submitted if h in committed]
    span = max(pushed[h] for h in done) - t0 if done else float("nan")
    links = len(done) * args.links_per_tx
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"load average {os.getloadavg()}"
    )
    print(
        f"validators={args.validators} senders={args.senders} spread={args.spread} "
        f"rate={args.rate} tx/s "
        f"links/tx={args.links_per_tx} "
        f"seconds={args.seconds}: submitted {len(submitted)}, refused {refused}, "
        f"committed {len(done)}" + (f" (refusals by code: {reasons})" if reasons else "")
    )
    print(
        f"commit latency (submit -> block event from validator 0): p50 {pct(lat, 0.5):.3f} s, "
        f"p99 {pct(lat, 0.99):.3f} s  (goal p50 <= 0.5 s)"
    )
    print(
        f"seen at validator {len(apis) - 1} by 50 ms HTTP polling: p50 {pct(polled, 0.5):.3f} s, "
        f"p99 {pct(polled, 0.99):.3f} s"
    )
    print(f"poller lag behind block time: p50 {pct(lags, 0.5):.3f} s, max {max(lags):.3f} s")
    print(f"committed links/s: {links / span:,.0f}  (goal >= 5,000)")
    print("anchor: CometBFT QA ~400 tx/s saturated with 175 validators")
    return {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "links_per_s": links / span}


if __name__ == "__main__":
    main()
