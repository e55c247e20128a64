"""A real node under hostile WASM: free queries cannot grow it without bound,
and compiled modules are kept in its home.

``POST /v1/wasm/{address}/query`` costs the asker nothing. Before the limits,
a query of a module of many 16 MiB memories grew a node to 4.24 GB in 18 s
(two at once, 6.6 GB); now such a module is refused at store, a query holds
at most one 16 MiB memory, and at most ``QUERY_SLOTS`` run at once."""

from __future__ import annotations

import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil

from focusflow.chain import Msg
from focusflow.core.hashing import sha256
from focusflow.core.keys import encode_address
from focusflow.testing.devnet import signed, start_devnet, wait_tx
from tests.vm import wasm_modules

FEE = 10**8
ABI = """
  (global $heap (mut i32) (i32.const 4096))
  (func (export "allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "execute") (param i32 i32) (result i64) (i64.const 0))
"""
#: A query that touches every 4 KiB of ``memories`` memories of 16 MiB (the
#: first grown to 256 pages), then spins ``spin`` rounds so queries overlap.
HOG = """(module
  (memory $m0 (export "memory") 1) {extra} {abi}
  (func (export "query") (param i32 i32) (result i64) (local $a i32) (local $i i32)
    (drop (memory.grow (i32.const 255)))
    {touch}
    (block $done (loop $spin
      (br_if $done (i32.ge_u (local.get $i) (i32.const {spin})))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $spin)))
    (i64.const 0)))"""
TOUCH = """(local.set $a (i32.const 0))
    (block $d{m} (loop $l{m}
      (br_if $d{m} (i32.ge_u (local.get $a) (i32.const 16777216)))
      (i32.store8 $m{m} (local.get $a) (i32.const 1))
      (local.set $a (i32.add (local.get $a) (i32.const 4096)))
      (br $l{m})))"""


def hog(memories: int, spin: int) -> bytes:
    extra = " ".join(f"(memory $m{m} 256)" for m in range(1, memories))
    touch = "\n".join(TOUCH.format(m=m) for m in range(memories))
    return wasm_modules.build(HOG.format(extra=extra, abi=ABI, touch=touch, spin=spin))


def _commit(net, msgs: list[Msg]) -> dict:
    tx = signed(net, net.dev_key(), msgs, fee=FEE)
    with net.client() as c:
        assert c.post("/v1/txs", json={"tx": tx.encoded.hex()}).status_code == 202
    return wait_tx(net, tx.hash.hex())


def _deploy(net, code: bytes) -> str:
    stored = _commit(net, [Msg("wasm.store", {"code": code})])
    assert stored["code"] == "ok", stored["log"]
    body = {"code": sha256(code), "msg": b"{}", "label": "hog", "gas": 10**7}
    made = _commit(net, [Msg("wasm.instantiate", body)])
    assert made["code"] == "ok", made["log"]
    return encode_address(bytes.fromhex(made["events"][0]["contract"]))


def _peak_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.01)


def test_concurrent_queries_of_memory_hogs_keep_the_node_small(devnet):
    many = _commit(devnet, [Msg("wasm.store", {"code": hog(20, 1)})])
    assert many["code"] == "invalid_wasm", many["log"]
    contract = _deploy(devnet, hog(1, 20_000_000))
    url = f"{devnet.api}/v1/wasm/{contract}/query"
    with devnet.client(timeout=120) as c:
        warm = c.post(url, json={"msg": {}})
        assert warm.status_code == 200, warm.text
        assert warm.json()["gas_used"] > 255 * 32_768
    pid = devnet.proc.pid
    base = psutil.Process(pid).memory_info().rss
    stop, peak = threading.Event(), [base]
    watcher = threading.Thread(target=_peak_rss, args=(pid, stop, peak), daemon=True)
    watcher.start()

    def ask(_: int) -> httpx.Response:
        return httpx.post(url, json={"msg": {}}, timeout=120)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(48)))
    stop.set()
    watcher.join()
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 503}, [a.text for a in answers if a.status_code not in (200, 503)]
    busy = [a for a in answers if a.status_code == 503]
    assert busy and codes.count(200) >= 4, codes
    assert all(a.json()["error"]["code"] == "wasm_query_busy" for a in busy)
    assert all(a.headers["Retry-After"] == "1" for a in busy)
    grown = (peak[0] - base) / 2**20
    assert grown < 160, f"the node grew by {grown:.0f} MiB under 16 concurrent queries"


def test_a_restarted_node_reads_its_compiled_modules(devnet):
    """The compiled module lies in ``<home>/wasm`` by code hash; after a restart
    a query runs it without compiling it again (the file is not rewritten)."""
    code = hog(1, 1)
    contract = _deploy(devnet, code)
    kept = devnet.home / "wasm"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    (artifact,) = [p for p in kept.glob("*.cwasm") if p.name.startswith(sha256(code).hex())]
    written = artifact.stat().st_mtime_ns
    devnet.stop()
    again = start_devnet(devnet.home)
    try:
        with again.client() as c:
            r = c.post(f"/v1/wasm/{contract}/query", json={"msg": {}})
        assert r.status_code == 200, r.text
    finally:
        again.stop()
    assert artifact.stat().st_mtime_ns == written
