"""Loopback benchmark of the two QUIC stacks issue 6 allows: aioquic and iroh.

What it measures, in one run, between two real processes on 127.0.0.1:

* **latency**: ``--small`` sequential request/response round trips with a
  64-byte payload echoed back; p50 and p99 in microseconds;
* **throughput**: ``--big`` sequential 1 MB messages, each answered by a 2-byte
  acknowledgement; MB/s = messages / total seconds (1 MB = 10**6 bytes).

Contenders, each a server process started by this script and a client in this
process:

* ``focusflow.net`` on aioquic: the real library (node-key authentication,
  framing, CBOR envelopes), one QUIC stream per request, at the default
  1452-byte datagrams and at 8192-byte datagrams (loopback/jumbo links only);
* ``iroh`` (Python bindings, relays disabled, direct loopback address): a bare
  stream per request (write, finish, read to end) with no framing or envelope.

It prints a table and the iroh/aioquic ratios. iroh is optional (the ``bench``
extra); without it only aioquic is measured. Other processes on the machine
inflate every number: the load average is printed before and after.

Run from the repository root::

    python bench/net.py                    # about a minute on 2 cores
    python bench/net.py --small 200 --big 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALPN = b"focusflow-bench/1"
SMALL = b"s" * 64
BIG = b"b" * 1_000_000
#: Connection receive window given to iroh, as aioquic gets room for a whole frame.
WINDOW = 8 * 1024 * 1024


# --- servers (run in a child process) --------------------------------------------


async def serve_aioquic(datagram: int) -> None:
    from focusflow.core.keys import KeyPair
    from focusflow.net import NetConfig, Node

    node = Node(KeyPair.generate(), config=NetConfig(max_datagram_size=datagram))

    async def echo(peer: bytes, payload: bytes) -> bytes:
        return payload

    async def sink(peer: bytes, payload: bytes) -> bytes:
        return b"ok"

    node.register("echo", echo)
    node.register("sink", sink)
    await node.start()
    print(json.dumps({"id": node.id.hex(), "port": node.address[1]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await node.stop()


def iroh_options(iroh):  # type: ignore[no-untyped-def]
    return iroh.EndpointOptions(
        preset=iroh.preset_minimal(),
        bind_addr="127.0.0.1:0",
        secret_key=os.urandom(32),
        alpns=[ALPN],
        relay_mode=iroh.RelayMode.disabled(),
    )


async def serve_iroh() -> None:
    import iroh

    endpoint = await iroh.Endpoint.bind(iroh_options(iroh))

    async def answer(bi) -> None:  # type: ignore[no-untyped-def]
        data = await bi.recv().read_to_end(len(BIG) + 1)
        send = bi.send()
        await send.write_all(data if len(data) <= len(SMALL) else b"ok")
        await send.finish()

    async def connection(incoming) -> None:  # type: ignore[no-untyped-def]
        conn = await (await incoming.accept()).connect()
        conn.set_receive_window(WINDOW)
        tasks = set()
        try:
            while True:
                bi = await conn.accept_bi()
                task = asyncio.ensure_future(answer(bi))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except iroh.IrohError:
            return

    addrs = endpoint.addr().direct_addresses()
    print(json.dumps({"id": endpoint.id().to_bytes().hex(), "addrs": addrs}), flush=True)
    accepting = asyncio.ensure_future(_accept_loop(endpoint, connection))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    accepting.cancel()
    await endpoint.close()


async def _accept_loop(endpoint, handle) -> None:  # type: ignore[no-untyped-def]
    tasks = set()
    while (incoming := await endpoint.accept_next()) is not None:
        task = asyncio.ensure_future(handle(incoming))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


# --- clients ----------------------------------------------------------------------


def start_server(*args: str) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def stop_server(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def measure(call_small, call_big, small: int, big: int) -> dict:  # type: ignore[no-untyped-def]
    for _ in range(20):
        assert await call_small() == SMALL
    await call_big()
    rtts = []
    for _ in range(small):
        t0 = time.perf_counter()
        await call_small()
        rtts.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(big):
        assert await call_big() == b"ok"
    elapsed = time.perf_counter() - t0
    cuts = statistics.quantiles(rtts, n=100)
    return {
        "p50_us": cuts[49] * 1e6,
        "p99_us": cuts[98] * 1e6,
        "mb_per_s": big * len(BIG) / 1e6 / elapsed,
    }


async def bench_aioquic(datagram: int, small: int, big: int) -> dict:
    from focusflow.core.keys import KeyPair
    from focusflow.net import NetConfig, Node, PeerAddress

    proc, info = start_server("--serve", "aioquic", "--datagram", str(datagram))
    node = Node(KeyPair.generate(), config=NetConfig(max_datagram_size=datagram))
    await node.start()
    try:
        peer = await node.connect(PeerAddress(bytes.fromhex(info["id"]), "127.0.0.1", info["port"]))
        return await measure(
            lambda: node.request(peer, "echo", SMALL),
            lambda: node.request(peer, "sink", BIG),
            small,
            big,
        )
    finally:
        await node.stop()
        stop_server(proc)


async def bench_iroh(small: int, big: int) -> dict:
    import iroh

    proc, info = start_server("--serve", "iroh")
    endpoint = await iroh.Endpoint.bind(iroh_options(iroh))
    try:
        addr = iroh.EndpointAddr(
            iroh.EndpointId.from_bytes(bytes.fromhex(info["id"])), None, info["addrs"]
        )
        conn = await endpoint.connect(addr, ALPN)
        conn.set_receive_window(WINDOW)

        async def call(payload: bytes) -> bytes:
            bi = await conn.open_bi()
            send = bi.send()
            await send.write_all(payload)
            await send.finish()
            return await bi.recv().read_to_end(len(BIG) + 1)

        return await measure(lambda: call(SMALL), lambda: call(BIG), small, big)
    finally:
        await endpoint.close()
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="small round trips")
    parser.add_argument("--big", type=int, default=20, help="1 MB messages")
    parser.add_argument("--serve", choices=["aioquic", "iroh"], help=argparse.SUPPRESS)
    parser.add_argument("--datagram", type=int, default=1452, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "aioquic":
        asyncio.run(serve_aioquic(args.datagram))
        return
    if args.serve == "iroh":
        asyncio.run(serve_iroh())
        return

    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    rows: dict[str, dict] = {}
    rows["aioquic 1452 B datagrams"] = asyncio.run(bench_aioquic(1452, args.small, args.big))
    rows["aioquic 8192 B datagrams"] = asyncio.run(bench_aioquic(8192, args.small, args.big))
    try:
        import iroh  # noqa: F401

        rows["iroh (bare streams)"] = asyncio.run(bench_iroh(args.small, args.big))
    except ImportError:
        print("iroh is not installed (pip install -e '.[bench]'); measuring aioquic alone")
    print(f"load average after:  {os.getloadavg()}")
    print(f"{'transport':28} {'p50 us':>9} {'p99 us':>9} {'1 MB msgs MB/s':>15}")
    for name, row in rows.items():
        print(f"{name:28} {row['p50_us']:9.0f} {row['p99_us']:9.0f} {row['mb_per_s']:15.2f}")
    if "iroh (bare streams)" in rows:
        base, other = rows["aioquic 1452 B datagrams"], rows["iroh (bare streams)"]
        print(
            "iroh / aioquic(1452): "
            f"p50 {other['p50_us'] / base['p50_us']:.2f}x, "
            f"p99 {other['p99_us'] / base['p99_us']:.2f}x, "
            f"throughput {other['mb_per_s'] / base['mb_per_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
