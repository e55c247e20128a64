"""A network of rollups: the hub's global focus against one process's, a link's
way to the global snapshot, and committed links/s of R rollups against one chain.

Three parts, each its own subcommand:

* ``correctness``: ``RankNet`` (a hub and B rollups in this process, relayers in
  process, a shared clock of a second a block) on one random graph, for B = 2, 4,
  8 and the modes ``diffusion`` and ``tri``. After the links are committed on
  their rollups, rounds (``RankNet.step``: every relayer steps, every chain makes
  a block) run until the L1 distance between the hub's committed snapshot and
  the engine's focus of the union graph (``union_focus``, solved to 1e-11 once)
  is under ``--tol`` (1e-4), or the round cap. Prints the L1 per round and a
  table: rounds to the tolerance, final L1, seconds.
* ``latency``: ``RollupNet`` (``focusflow testnet --rollups 2``, one validator a
  chain, real processes on loopback). ``--links`` links (a new target particle
  each, sources alternating between the two buckets) are sent one at a time;
  for each, the time from its submission and from its commit on its rollup (the
  first poll of ``/v1/txs/{hash}`` that says committed) to the first 200 of the
  hub's ``/v1/global/particles/{target}``. Polls every ``--poll`` seconds.
* ``scale``: in one run, a one-validator ``focusflow testnet`` (one chain), then
  for each R of ``--rollups`` a ``focusflow testnet --rollups R --validators 1
  --hub-validators 1``. Every chain is loaded by a loader process of its own
  that signs ``link`` transactions of the dev key (``--per-tx`` links each,
  cycling over ``--sources`` source particles that ``link_bucket`` puts in the
  chain's bucket times ``--targets`` target particles: links repeat, the graph
  stays small, because a rollup's rank packet must fit an IBC packet, 256 KiB;
  ``--targets 0`` makes every target a new particle, and a rollup then halts
  once its packet outgrows that: see bench/RESULTS.md) and posts them through
  ``/v1/txs/batch``,
  keeping at most ``--in-flight`` transactions ahead of the committed nonce (the
  mempool's window is 64). After a warm-up (at least ``--warmup`` seconds, and
  until every chain has committed links in two polls apart: a cold numba cache
  compiles the focus kernels in the first blocks), the dev key's ``neudeg``
  (its committed links, read from each chain's ``/v1/accounts``) is read on
  every chain, and again ``--seconds`` later: committed links/s per chain,
  their sum, and the sum's ratio to the one chain's.

    python bench/rollups.py correctness
    python bench/rollups.py latency --links 10
    python bench/rollups.py scale --rollups 1,2,4,8 --seconds 20
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from focusflow.chain import Msg, make_tx
from focusflow.core.cid import cid_from_bytes, raw_cid_bytes
from focusflow.core.encoding import encode as cbor_encode
from focusflow.core.keystore import Keystore
from focusflow.focus.buckets import link_bucket

#: Fee offered by every load transaction (the dev key holds 10^15).
FEE = 10**8


# --------------------------------------------------------------------- correctness


def correctness(args: argparse.Namespace) -> None:
    from focusflow.chain.rollup_engine import UNIT, rank_params
    from focusflow.focus.rollup_rank import union_focus
    from focusflow.testing.chains import ALICE, STAKE
    from focusflow.testing.rank_net import RankNet, random_links

    pairs = random_links(args.seed, args.particles, args.links)
    print(
        f"graph: {args.particles} particles, {len(pairs)} distinct links (seed {args.seed}), "
        f"one neuron; tolerance L1 < {args.tol:g}",
        flush=True,
    )
    rows = []
    for mode in args.modes:
        cap = args.cap_tri if mode == "tri" else args.cap_diffusion
        ref: dict[bytes, float] | None = None
        for b in args.buckets:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                net = RankNet(Path(tmp), mode, buckets=b)
                net.channels()
                net.link(pairs)
                if ref is None:  # the same union graph for every B
                    params = rank_params(net.chains[0].params.focus)
                    ref = union_focus(net.links, {ALICE.address_raw: STAKE}, params)
                reached, errors = None, []
                for r in range(1, cap + 1):
                    net.step()
                    _, snap = net.snapshot()
                    keys = set(ref) | set(snap)
                    err = sum(abs(snap.get(k, 0) / UNIT - ref.get(k, 0.0)) for k in keys)
                    errors.append(err)
                    if r <= 10 or r % 5 == 0:
                        print(f"  {mode} B={b} round {r}: L1 {err:.3e}", flush=True)
                    if err < args.tol:
                        reached = r
                        if r > 10 and r % 5:
                            print(f"  {mode} B={b} round {r}: L1 {err:.3e}", flush=True)
                        break
                seconds = time.perf_counter() - t0
                rows.append((b, mode, reached, errors[-1], seconds, net.snapshot()[0]))
                for chain in net.chains:
                    chain.close()
    print(f"\n| B | mode | rounds to L1 < {args.tol:g} | final L1 | hub snapshot round | seconds |")
    print("|---:|---|---:|---:|---:|---:|")
    for b, mode, reached, err, seconds, rnd in rows:
        got = str(reached) if reached else f"not in {len(range(1, 1 + cap))}"
        print(f"| {b} | {mode} | {got} | {err:.2e} | {rnd} | {seconds:.1f} |")
    met = all(r[2] is not None for r in rows)
    print(f"\ngoal: within L1 {args.tol:g} for every B and mode: {'met' if met else 'NOT met'}")


# ------------------------------------------------------------------------- latency


def poll_until(check: Callable[[], bool], timeout: float, poll: float, what: str) -> float:
    """``time.perf_counter()`` of the first poll at which ``check`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.perf_counter()
        time.sleep(poll)
    raise SystemExit(f"{what} not within {timeout} s")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def latency(args: argparse.Namespace) -> None:
    from focusflow.testing.rollups import RollupNet

    with tempfile.TemporaryDirectory() as tmp:
        net = RollupNet(Path(tmp) / "net", rollups=2)
        try:
            hub = net.hub[0]
            client = httpx.Client(timeout=10)

            def committed(api: str, h: str) -> bool:
                r = client.get(f"{api}/v1/txs/{h}")
                return r.status_code == 200 and r.json()["status"] == "committed"

            def in_snapshot(cid: str) -> bool:
                return client.get(f"{hub}/v1/global/particles/{cid}").status_code == 200

            # A first snapshot, so that the first link does not time the start.
            poll_until(
                lambda: client.get(f"{hub}/v1/global/status").json().get("snapshot") is not None,
                120,
                0.2,
                "a first global snapshot",
            )
            print(
                "| link | bucket | submit -> commit s | commit -> global s | submit -> global s |"
            )
            print("|---:|---:|---:|---:|---:|")
            from_commit, from_submit = [], []
            tag = os.urandom(4).hex()
            for i in range(args.links):
                bucket = i % 2
                src = next(
                    c
                    for c in (raw_cid_bytes(f"{tag}-s{i}-{j}".encode()) for j in range(1000))
                    if link_bucket([c], 2) == bucket
                )
                dst = raw_cid_bytes(f"{tag}-t{i}".encode())
                api, chain_id = net.rollups[bucket][0], net.chain_ids[bucket]
                nonce = net.nonce(api, net.dev)
                t_submit = time.perf_counter()
                r = net.submit(api, chain_id, [[src, dst]], nonce)
                if r.status_code != 202:
                    raise SystemExit(f"refused: {r.status_code} {r.text}")
                h = r.json()["hash"]
                t_commit = poll_until(
                    lambda api=api, h=h: committed(api, h), 60, args.poll, f"tx {h}"
                )
                code = client.get(f"{api}/v1/txs/{h}").json()["code"]
                if code != "ok":
                    raise SystemExit(f"tx {h}: {code}")
                cid = cid_from_bytes(dst)
                t_global = poll_until(
                    lambda cid=cid: in_snapshot(cid), 120, args.poll, f"{cid} global"
                )
                from_commit.append(t_global - t_commit)
                from_submit.append(t_global - t_submit)
                print(
                    f"| {i + 1} | {bucket} | {t_commit - t_submit:.2f} | "
                    f"{from_commit[-1]:.2f} | {from_submit[-1]:.2f} |",
                    flush=True,
                )
            print("\n| from | p50 s | p90 s | max s |\n|---|---:|---:|---:|")
            for name, v in (("commit on its rollup", from_commit), ("submission", from_submit)):
                print(f"| {name} | {pct(v, 0.5):.2f} | {pct(v, 0.9):.2f} | {max(v):.2f} |")
            met = max(from_commit) <= 3.0
            print(
                f"\ngoal: a link's effect reaches the global snapshot within 3 s (from its "
                f"commit): {'met' if met else 'NOT met'} (max {max(from_commit):.2f} s, "
                f"{sum(v <= 3.0 for v in from_commit)}/{len(from_commit)} within 3 s)"
            )
            client.close()
        finally:
            net.stop()


# --------------------------------------------------------------------------- scale


def load_chain(
    api: str,
    chain_id: str,
    keys_dir: str,
    bucket: int,
    buckets: int,
    load: tuple[int, int, int, int, int],
    stop_at: float,
    stop: Any,
    tag: str,
    out: Any,
) -> None:
    """One chain's loader (a process of its own): link transactions of the dev
    key until ``stop`` is set or ``stop_at`` (``time.time()``) passes, at most
    ``in_flight`` ahead of the committed nonce; ``load`` is ``(links a tx, txs
    a POST, txs in flight, sources, targets)``.
    Puts ``(api, txs posted, refusals, first refusal)`` on ``out``."""
    per_tx, batch_txs, in_flight, n_sources, n_targets = load
    key = Keystore(Path(keys_dir)).load("dev")
    sources = []
    for i in range(1 << 30):
        c = raw_cid_bytes(f"{tag}-s{i}".encode())
        if link_bucket([c], buckets) == bucket:
            sources.append(c)
            if len(sources) == n_sources:
                break
    targets = [raw_cid_bytes(f"{tag}-t{j}".encode()) for j in range(n_targets)]

    def pair(i: int) -> list[bytes]:
        """Link ``i``: every source in turn, against each target in turn (or a
        new target particle per link when ``n_targets`` is 0)."""
        src = sources[i % n_sources]
        if not n_targets:
            return [src, raw_cid_bytes(f"{tag}-t{i}".encode())]
        return [src, targets[(i // n_sources) % n_targets]]

    client = httpx.Client(base_url=api, timeout=30)
    address = key.address

    def committed_nonce() -> int:
        return int(client.get(f"/v1/accounts/{address}").json()["nonce"])

    committed = committed_nonce()
    nxt, k, posted, refused, first = committed, 0, 0, 0, ""
    while time.time() < stop_at and not stop.is_set():
        room = committed + in_flight - nxt
        if room <= 0:
            time.sleep(0.02)
            committed = committed_nonce()
            continue
        txs = []
        for _ in range(min(batch_txs, room)):
            pairs = [pair(k + j) for j in range(per_tx)]
            k += per_tx
            txs.append(make_tx(key, chain_id, nxt, FEE, [Msg("link", {"links": pairs})]))
            nxt += 1
        answer = client.post(
            "/v1/txs/batch",
            content=cbor_encode([tx.encoded for tx in txs]),
            headers={"content-type": "application/cbor"},
        )
        results = answer.json().get("results", []) if answer.status_code < 500 else []
        bad = [x for x in results if "error" in x] if results else [answer.text[:200]]
        posted += len(txs) - len(bad)
        if bad:
            refused += len(bad)
            first = first or str(bad[0])[:300]
            time.sleep(0.2)  # resynchronise on the chain's nonces
            doc = client.get(f"/v1/accounts/{address}").json()
            committed, nxt = int(doc["nonce"]), int(doc["pending_nonce"])
        else:
            committed = committed_nonce()
    client.close()
    out.put((api, posted, refused, first))


def committed_links(api: str, address: str) -> tuple[int, int]:
    """The dev key's committed links (``neudeg``) and the chain's height."""
    doc = httpx.get(f"{api}/v1/accounts/{address}", timeout=10).json()
    height = httpx.get(f"{api}/v1/status", timeout=10).json()["height"]
    return int(doc["neudeg"]), int(height)


def hub_round(hub: str) -> tuple[int, int | None] | None:
    """The hub's height and its global snapshot's round (None: none yet)."""
    if not hub:
        return None
    status = httpx.get(f"{hub}/v1/global/status", timeout=10).json()
    height = httpx.get(f"{hub}/v1/status", timeout=10).json()["height"]
    return int(height), (status.get("snapshot") or {}).get("round")


def measure(
    label: str,
    chains: list[tuple[str, str, int]],
    buckets: int,
    keys_dir: Path,
    args: argparse.Namespace,
    hub: str = "",
) -> list[tuple[str, float, int]]:
    """Load every ``(api, chain_id, bucket)`` at once; links/s and blocks of each
    over the window."""
    address = Keystore(keys_dir).load("dev").address
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.time()
    stop = ctx.Event()
    stop_at = start + args.warmup_max + args.seconds + 10.0
    tag = f"{label}-{os.urandom(3).hex()}"
    procs = [
        ctx.Process(
            target=load_chain,
            args=(
                api,
                chain_id,
                str(keys_dir),
                bucket,
                buckets,
                (args.per_tx, args.batch_txs, args.in_flight, args.sources, args.targets),
                stop_at,
                stop,
                f"{tag}-{bucket}",
                out,
            ),
        )
        for api, chain_id, bucket in chains
    ]
    for p in procs:
        p.start()
    # Warm-up: at least --warmup seconds, and until every chain has committed
    # links in two blocks seen apart (its first blocks of links compile the
    # focus kernels where numba's cache is cold), at most --warmup-max.
    grown = [0] * len(chains)
    last = [committed_links(api, address)[0] for api, _, _ in chains]
    while time.time() < start + args.warmup_max and (
        time.time() < start + args.warmup or min(grown) < 2
    ):
        time.sleep(0.5)
        now = [committed_links(api, address)[0] for api, _, _ in chains]
        grown = [g + (n > lst) for g, n, lst in zip(grown, now, last, strict=True)]
        last = now
    print(
        f"  {label}: warm-up {time.time() - start:.1f} s (blocks of links seen per chain: {grown})",
        flush=True,
    )
    hub_before = hub_round(hub)
    t0 = time.perf_counter()
    before = [committed_links(api, address) for api, _, _ in chains]
    time.sleep(max(0.0, args.seconds - (time.perf_counter() - t0)))
    after = [committed_links(api, address) for api, _, _ in chains]
    window = time.perf_counter() - t0
    stop.set()
    if hub:
        print(
            f"  {label}: hub (height, snapshot round) {hub_before} at the window's start, "
            f"{hub_round(hub)} at its end",
            flush=True,
        )
    reports = {}
    for _ in procs:
        try:
            api, posted, refused, first = out.get(timeout=60)
            reports[api] = (posted, refused, first)
        except Exception:  # a loader that died says nothing
            break
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join(10)
    rows = []
    for (api, _, bucket), (l0, h0), (l1, h1) in zip(chains, before, after, strict=True):
        posted, refused, first = reports.get(api, (-1, -1, "loader reported nothing"))
        if refused:
            print(f"  {label} bucket {bucket}: {refused} refused, first: {first}", flush=True)
        rows.append((f"{label} b{bucket}", (l1 - l0) / window, h1 - h0))
    return rows


def scale(args: argparse.Namespace) -> None:
    from focusflow.testing.rollups import RollupNet
    from focusflow.testing.testnet import LocalTestnet

    print(
        f"load: {args.sources} sources x "
        f"{args.targets or 'a new target per link'} targets per chain, "
        f"{args.per_tx} links a tx, batches of {args.batch_txs} txs, at most "
        f"{args.in_flight} txs in flight per chain; warm-up >= {args.warmup:g} s, "
        f"window {args.seconds:g} s; {os.cpu_count()} CPUs",
        flush=True,
    )
    results: list[tuple[str, list[tuple[str, float, int]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "one"
        t0 = time.perf_counter()
        one = LocalTestnet(home, 1)
        try:
            print(f"one chain up in {time.perf_counter() - t0:.1f} s", flush=True)
            api = one.apis[0]
            chain_id = one.status(0)["chain_id"]
            rows = measure("one", [(api, chain_id, 0)], 1, home / "v0" / "keys", args)
        finally:
            one.stop()
        results.append(("one chain", rows))
        print(f"one chain: {rows[0][1]:,.0f} links/s ({rows[0][2]} blocks)", flush=True)
        for r in args.rollups:
            home = Path(tmp) / f"r{r}"
            t0 = time.perf_counter()
            net = RollupNet(home, rollups=r)
            try:
                print(f"{r} rollups up in {time.perf_counter() - t0:.1f} s", flush=True)
                chains = [(apis[0], net.chain_ids[b], b) for b, apis in enumerate(net.rollups)]
                rows = measure(f"R{r}", chains, r, home / "hub" / "v0" / "keys", args, net.hub[0])
                snap = httpx.get(f"{net.hub[0]}/v1/global/status", timeout=10).json()
            finally:
                net.stop()
            results.append((f"{r} rollups", rows))
            total = sum(x[1] for x in rows)
            rnd = (snap.get("snapshot") or {}).get("round")
            print(
                f"{r} rollups: {total:,.0f} links/s in all; per chain "
                + ", ".join(f"{x[1]:,.0f}" for x in rows)
                + f"; hub snapshot round {rnd}",
                flush=True,
            )
    base = results[0][1][0][1]
    print("\n| network | chains loaded | links/s per chain | blocks in window | "
          "aggregate links/s | x one chain |")  # fmt: skip
    print("|---|---:|---|---|---:|---:|")
    for name, rows in results:
        total = sum(x[1] for x in rows)
        per = ", ".join(f"{x[1]:,.0f}" for x in rows)
        blocks = ", ".join(str(x[2]) for x in rows)
        print(
            f"| {name} | {len(rows)} | {per} | {blocks} | {total:,.0f} | "
            f"{total / base if base else float('nan'):.2f} |"
        )
    for name, rows in results:
        if name == "8 rollups":
            ratio = sum(x[1] for x in rows) / base if base else 0.0
            print(
                f"\ngoal: 8 rollups commit >= 6x one chain: {ratio:.2f}x, "
                f"{'met' if ratio >= 6 else 'NOT met'} ({os.cpu_count()} CPUs)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="part", required=True)
    c = sub.add_parser("correctness", help="RankNet in process: hub snapshot vs union focus")
    c.add_argument("--buckets", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4, 8])
    c.add_argument("--modes", type=lambda s: s.split(","), default=["diffusion", "tri"])
    c.add_argument("--particles", type=int, default=1500)
    c.add_argument("--links", type=int, default=5000)
    c.add_argument("--seed", type=int, default=7)
    c.add_argument("--tol", type=float, default=1e-4)
    c.add_argument("--cap-diffusion", type=int, default=150)
    c.add_argument("--cap-tri", type=int, default=20)
    lat = sub.add_parser("latency", help="RollupNet: a link's commit to the global snapshot")
    lat.add_argument("--links", type=int, default=10)
    lat.add_argument("--poll", type=float, default=0.02)
    s = sub.add_parser("scale", help="committed links/s: one chain vs R rollups")
    s.add_argument("--rollups", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8])
    s.add_argument("--seconds", type=float, default=20.0, help="measured window")
    s.add_argument("--warmup", type=float, default=8.0, help="least warm-up seconds")
    s.add_argument("--warmup-max", type=float, default=90.0, help="most warm-up seconds")
    s.add_argument("--per-tx", type=int, default=1000, help="links a transaction")
    s.add_argument("--batch-txs", type=int, default=16, help="transactions a POST")
    s.add_argument("--sources", type=int, default=40, help="source particles per chain")
    s.add_argument(
        "--targets", type=int, default=40, help="target particles per chain (0: new per link)"
    )
    s.add_argument("--in-flight", type=int, default=60, help="txs ahead of the committed nonce")
    args = ap.parse_args()
    {"correctness": correctness, "latency": latency, "scale": scale}[args.part](args)


if __name__ == "__main__":
    main()
