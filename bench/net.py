"""Loopback benchmark of the QUIC stacks considered for the transport: aioquic and iroh.

What it measures, in one run, between two real processes on 127.0.0.1:

* **latency**: ``--small`` sequential request/response round trips with a
  64-byte payload echoed back; p50 and p99 in microseconds;
* **throughput**: ``--big`` sequential 1 MB messages, each answered by a 2-byte
  acknowledgement; MB/s = messages / total seconds (1 MB = 10**6 bytes);
* the CPU time both processes spent (all threads) per round trip and per MB,
  which other jobs on a shared machine disturb less than wall time.

Each contender runs ``--rounds`` times, interleaved with the others so that a
burst of load from other jobs hits all of them; the table gives medians.

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

    python bench/net.py                    # about two minutes on 2 cores
    python bench/net.py --rounds 1 --small 200 --big 3   # quick check
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

import psutil

ROOT = Path(__file__).resolve().parents[1]
IROH = "iroh, bare streams"
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (iroh's run in Rust)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def measure(call_small, call_big, small: int, big: int, server_pid: int) -> dict:  # type: ignore[no-untyped-def]
    """Round-trip latencies and 1 MB throughput, with the CPU both processes spent.

    CPU time per operation is less disturbed by other jobs on a shared machine
    than wall time, so it is reported beside the wall-clock numbers.
    """
    for _ in range(20):
        assert await call_small() == SMALL
    await call_big()

    def cpu() -> float:
        return cpu_seconds(os.getpid()) + cpu_seconds(server_pid)

    rtts = []
    cpu0 = cpu()
    for _ in range(small):
        t0 = time.perf_counter()
        await call_small()
        rtts.append(time.perf_counter() - t0)
    cpu_small = cpu() - cpu0
    cpu0, t0 = cpu(), time.perf_counter()
    for _ in range(big):
        assert await call_big() == b"ok"
    elapsed = time.perf_counter() - t0
    cpu_big = cpu() - cpu0
    cuts = statistics.quantiles(rtts, n=100)
    return {
        "p50_us": cuts[49] * 1e6,
        "p99_us": cuts[98] * 1e6,
        "cpu_us_per_rtt": cpu_small / small * 1e6,
        "mb_per_s": big * len(BIG) / 1e6 / elapsed,
        "cpu_ms_per_mb": cpu_big / (big * len(BIG) / 1e6) * 1e3,
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
            proc.pid,
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

        return await measure(lambda: call(SMALL), lambda: call(BIG), small, big, proc.pid)
    finally:
        await endpoint.close()
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=500, help="small round trips per round")
    parser.add_argument("--big", type=int, default=10, help="1 MB messages per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--serve", choices=["aioquic", "iroh"], help=argparse.SUPPRESS)
    parser.add_argument("--datagram", type=int, default=1452, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "aioquic":
        asyncio.run(serve_aioquic(args.datagram))
        return
    if args.serve == "iroh":
        asyncio.run(serve_iroh())
        return

    contenders = {
        "aioquic, 1452 B datagrams": lambda: bench_aioquic(1452, args.small, args.big),
        "aioquic, 8192 B datagrams": lambda: bench_aioquic(8192, args.small, args.big),
    }
    try:
        import iroh  # noqa: F401

        contenders[IROH] = lambda: bench_iroh(args.small, args.big)
    except ImportError:
        print("iroh is not installed (pip install -e '.[bench]'); measuring aioquic alone")
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            runs[name].append(asyncio.run(run()))
    print(f"load average after:  {os.getloadavg()}")
    rows = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in runs.items()
    }
    print(
        f"medians of {args.rounds} interleaved rounds; {args.small} round trips, "
        f"{args.big} x 1 MB per round"
    )
    print(
        f"{'transport':26} {'p50 us':>8} {'p99 us':>8} {'CPU us/rtt':>10} "
        f"{'MB/s':>7} {'CPU ms/MB':>9}"
    )
    for name, row in rows.items():
        print(
            f"{name:26} {row['p50_us']:8.0f} {row['p99_us']:8.0f} {row['cpu_us_per_rtt']:10.0f} "
            f"{row['mb_per_s']:7.2f} {row['cpu_ms_per_mb']:9.0f}"
        )
    if IROH in rows:
        base, other = rows["aioquic, 1452 B datagrams"], rows[IROH]
        print(
            "ratio iroh / aioquic (1452 B): "
            f"p50 {other['p50_us'] / base['p50_us']:.2f}, "
            f"p99 {other['p99_us'] / base['p99_us']:.2f}, "
            f"CPU per round trip {other['cpu_us_per_rtt'] / base['cpu_us_per_rtt']:.2f}, "
            f"throughput {other['mb_per_s'] / base['mb_per_s']:.2f}, "
            f"CPU per MB {other['cpu_ms_per_mb'] / base['cpu_ms_per_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
