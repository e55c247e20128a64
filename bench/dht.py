"""DHT lookups among ``--nodes`` real QUIC nodes on loopback (``focusflow.net.dht``).

All nodes run in this one process and event loop (each its own UDP socket and
QUIC connections, as separate processes would have). Each joins through node
0 and then refreshes its buckets once (``Dht.refresh``; ``--no-refresh``
skips it); then ``--lookups`` random targets are looked up from random nodes (the
``k`` closest, checked against brute force over all ids), and as many
provider lookups of keys announced by random nodes. Reported: median and
p90 latency, requests sent per lookup and their rounds of ``alpha``, hops (the
round that first named the closest node the lookup returned: the goal, at most
log2 of the network size), and whether every lookup found the true closest
nodes and the provider.

    python bench/dht.py [--nodes 100] [--lookups 50]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import time
from collections.abc import Callable

from focusflow.core.keys import KeyPair
from focusflow.net import Node
from focusflow.net.dht import ALPHA, Dht, K, content_key, distance


async def main_async(n: int, lookups: int, refresh: bool) -> None:
    t0 = time.perf_counter()
    nodes = [Node(KeyPair.generate()) for _ in range(n)]
    for node in nodes:
        await node.start()
    dhts = [Dht(node) for node in nodes]
    for d in dhts[1:]:
        await d.bootstrap([nodes[0].peer_address])
    joined = time.perf_counter() - t0
    t1 = time.perf_counter()
    if refresh:
        for d in dhts:
            await d.refresh()
    refreshed = time.perf_counter() - t1
    ids = [d.node.id for d in dhts]
    rng = random_source()
    times, requests, exact, hops = [], [], 0, []
    for _ in range(lookups):
        asker = dhts[rng(n)]
        target = os.urandom(32)
        before = asker.requests
        t = time.perf_counter()
        found = await asker.lookup(target)
        times.append(time.perf_counter() - t)
        requests.append(asker.requests - before)
        hops.append(asker.last_hops)
        others = [i for i in ids if i != asker.node.id]
        want = sorted(others, key=lambda i: distance(i, target))[:K]
        exact += [c.node_id for c in found] == want
    ptimes, found_all = [], 0
    for j in range(lookups):
        holder, asker = dhts[rng(n)], dhts[rng(n)]
        key = content_key(f"bench {j}".encode())
        await holder.provide(key)
        t = time.perf_counter()
        providers = await asker.find_providers(key)
        ptimes.append(time.perf_counter() - t)
        found_all += holder.node.id in {p.node_id for p in providers}
    for node in nodes:
        await node.stop()
    rounds = [math.ceil(r / ALPHA) for r in requests]
    log2n = math.log2(n)
    tables = statistics.median(len(d.table) for d in dhts)
    print(
        f"{n} nodes joined in {joined:.1f} s, refreshed in {refreshed:.1f} s "
        f"({'each node refreshed its buckets once' if refresh else 'no refresh'}; median table "
        f"{tables:.0f} contacts); k = {K}, alpha = {ALPHA}"
    )
    print(
        f"lookup of the k closest: median {1e3 * statistics.median(times):.1f} ms, "
        f"p90 {1e3 * quantile(times, 0.9):.1f} ms; requests median "
        f"{statistics.median(requests):.0f} (max {max(requests)}), rounds of alpha median "
        f"{statistics.median(rounds):.0f} (max {max(rounds)}; log2 n = {log2n:.1f}: "
        f"{'met' if statistics.median(rounds) <= log2n else 'NOT met'}); "
        f"exactly the true k closest in {exact} of {lookups}; hops (the round that first "
        f"named the closest node found) median {statistics.median(hops):.0f}, max {max(hops)} "
        f"(log2 n = {log2n:.1f}: {'met' if max(hops) <= log2n else 'NOT met'})"
    )
    print(
        f"provider lookup: median {1e3 * statistics.median(ptimes):.1f} ms, p90 "
        f"{1e3 * quantile(ptimes, 0.9):.1f} ms; the holder found in {found_all} of {lookups}"
    )


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def random_source() -> Callable[[int], int]:
    r = random.Random(7)
    return r.randrange


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--lookups", type=int, default=50)
    ap.add_argument("--no-refresh", action="store_true", help="measure right after joining")
    args = ap.parse_args()
    asyncio.run(main_async(args.nodes, args.lookups, not args.no_refresh))


if __name__ == "__main__":
    main()
