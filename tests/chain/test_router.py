"""The in-process router: contracts pay, stake, link and call each other in one message.

``sender(packets)`` builds a contract (WAT) whose ``execute`` sends the given
``(port, data)`` packets in order, whatever its message; packets are built
into its data segments, so each test makes the contract it needs.
"""

from __future__ import annotations

import json

import wasmtime

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.encoding import decode
from focusflow.core.keys import encode_address
from focusflow.modules.names import resolve
from focusflow.state_schema.accounts import get_account, get_neudeg
from focusflow.testing.chains import ALICE, BOB, CAROL, genesis, new_chain, tx
from focusflow.vm import wasm
from tests.chain.test_wasm import COUNTER

T0 = 1_700_000_000_000
FEE = 10**7


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


_REPLY = {
    None: "",
    "keep": """
  (data (i32.const 512) "last")
  (func (export "reply") (param i32 i32) (result i64)
    (call $db_write (i32.const 512) (i32.const 4) (local.get 0) (local.get 1)) (i64.const 0))
""",
    "trap": """
  (func (export "reply") (param i32 i32) (result i64) unreachable)
""",
}


def sender(packets: list[tuple[str, bytes]], reply: str | None = None) -> bytes:
    """A contract that sends ``packets`` from ``execute``; with ``reply="keep"``
    it exports ``reply``, which keeps its whole input under the key ``last``,
    with ``reply="trap"`` one that traps."""
    segments, calls, at = [], [], 1024
    for port, data in packets:
        p = port.encode()
        segments.append(f'(data (i32.const {at}) "{_wat_bytes(p)}")')
        segments.append(f'(data (i32.const {at + 256}) "{_wat_bytes(data)}")')
        calls.append(
            f"(call $send (i32.const {at}) (i32.const {len(p)}) "
            f"(i32.const {at + 256}) (i32.const {len(data)}))"
        )
        at += 4096
    wat = f"""
(module
  (import "env" "send" (func $send (param i32 i32 i32 i32)))
  (import "env" "db_write" (func $db_write (param i32 i32 i32 i32)))
  (memory (export "memory") 2)
  {_REPLY[reply]}
  {" ".join(segments)}
  (func (export "allocate") (param i32) (result i32) (i32.const 65536))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "execute") (param i32 i32) (result i64) {" ".join(calls)} (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))
"""
    return wasmtime.wat2wasm(wat)


def _deploy(chain, key, nonce: int, code: bytes, height_ms: int) -> bytes:
    r = chain.produce_block(
        [
            tx(key, nonce, Msg("wasm.store", {"code": code}), fee=FEE),
        ],
        time_ms=height_ms,
    )
    code_hash = r.receipts[0].events[0]["code"]
    body = {"code": code_hash, "msg": b"{}", "label": "", "gas": 10**6}
    r = chain.produce_block(
        [tx(key, nonce + 1, Msg("wasm.instantiate", body), fee=FEE)], time_ms=height_ms + 1
    )
    assert r.receipts[0].code == "ok", r.receipts[0].log
    return r.receipts[0].events[0]["contract"]


def _execute(chain, key, nonce: int, contract: bytes, at_ms: int, gas: int = 10**7):
    body = {"contract": contract, "msg": b"{}", "gas": gas}
    return chain.produce_block([tx(key, nonce, Msg("wasm.execute", body), fee=FEE)], time_ms=at_ms)


def _replays(chain, follower) -> bool:
    """Whether ``follower``, applying ``chain``'s blocks, reaches its head."""
    for height in range(1, chain.height + 1):
        with chain.reader() as r:
            follower.apply_block(r.block(height))
    return follower.head == chain.head


def _packet(doc) -> bytes:
    return json.dumps(doc).encode()


def test_a_contract_stakes_links_and_pays_through_the_router(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    follower = new_chain(tmp_path / "f", genesis(focus={"mode": "diffusion"}), producer=False)
    cats, mammals = cid_of_text("cats"), cid_of_text("mammals")
    code = sender(
        [
            ("bank", _packet({"stake": {"amount": 1000}})),
            ("graph", _packet({"link": [[cats, mammals]]})),
            ("bank", _packet({"send": {"to": BOB.address, "amount": 77}})),
        ]
    )
    contract = _deploy(chain, ALICE, 0, code, T0 + 1000)
    fund = Msg("send", {"to": contract, "amount": 5000})
    chain.produce_block([tx(CAROL, 0, fund)], time_ms=T0 + 3000)
    with chain.reader() as r:
        bob_before = get_account(r, BOB.address_raw).balance
    result = _execute(chain, ALICE, 2, contract, T0 + 4000)
    receipt = result.receipts[0]
    assert receipt.code == "ok", receipt.log
    packets = [e for e in receipt.events if e["type"] == "packet"]
    assert [p["port"] for p in packets] == ["bank", "graph", "bank"]
    with chain.reader() as r:
        account = get_account(r, contract)
        assert account.bonded == 1000
        assert account.balance == 5000 - 1000 - 77 - chain.params.link_burn
        assert get_account(r, BOB.address_raw).balance == bob_before + 77
        assert get_neudeg(r, contract) == 1
    # The link is in the graph with the contract as its neuron, and focus moved.
    assert chain.focus.focus_of(cid_to_bytes(mammals)) is not None
    assert _replays(chain, follower)


def test_a_contract_calls_another_and_a_failure_anywhere_undoes_the_message(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    counter = _deploy(chain, ALICE, 0, wasmtime.wat2wasm(COUNTER), T0 + 1000)
    increment = _packet({"increment": {}})
    caller = _deploy(chain, ALICE, 2, sender([(f"wasm/{counter.hex()}", increment)] * 2), T0 + 3000)
    r = _execute(chain, BOB, 0, caller, T0 + 5000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    with chain.reader() as rd:
        count = int.from_bytes(rd.get(wasm.storage_key(counter, b"count")), "little")
    assert count == 2
    # A packet that fails (the callee traps) fails the whole message: the first
    # call's increment is undone too.
    trap = _packet({"trap": {}})
    mixed = sender([(f"wasm/{counter.hex()}", increment), (f"wasm/{counter.hex()}", trap)])
    bad = _deploy(chain, ALICE, 4, mixed, T0 + 6000)
    r = _execute(chain, BOB, 1, bad, T0 + 8000)
    assert r.receipts[0].code == "wasm_trap"
    with chain.reader() as rd:
        assert int.from_bytes(rd.get(wasm.storage_key(counter, b"count")), "little") == 2


def test_ports_refuse_what_they_must(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    cases = [
        ([("validators", b"{}")], "port_refused"),
        ([("nowhere", b"{}")], "unknown_port"),
        ([("wasm/zz", b"{}")], "unknown_port"),
        ([("bank", b"[" * 40 + b"]" * 40)], "malformed_message"),
        ([("bank", _packet({"send": {"to": BOB.address, "amount": 10}}))], "insufficient_funds"),
        (
            [("graph", _packet({"link": [[cid_of_text("a"), cid_of_text("b")]]}))],
            "over_link_budget",
        ),
    ]
    nonce = 0
    for i, (packets, code) in enumerate(cases):
        contract = _deploy(chain, ALICE, nonce, sender(packets), T0 + 1000 * (i + 1) * 3)
        nonce += 2
        r = _execute(chain, BOB, i, contract, T0 + 1000 * (i + 1) * 3 + 2)
        assert r.receipts[0].code == code, (packets, r.receipts[0].log)


def test_a_self_calling_contract_stops_at_the_depth_limit(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    # Instance addresses are known before instantiation: ALICE's second message
    # pair makes the instance at nonce 1 (instantiate), message 0.
    target = wasm.contract_address(ALICE.address_raw, 1, 0)
    loop = _deploy(chain, ALICE, 0, sender([(f"wasm/{target.hex()}", b"{}")]), T0 + 1000)
    assert loop == target
    r = _execute(chain, BOB, 0, loop, T0 + 3000)
    assert r.receipts[0].code == "over_limit"
    with chain.reader() as rd:
        assert decode(rd.get(wasm.contract_key(loop)))[1] == ALICE.address_raw
    assert encode_address(loop).startswith("focus1")


def test_a_contract_owns_the_names_it_registers_and_no_other_contract_may_move_them(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    cats = cid_of_text("cats")
    register = _packet({"register": {"name": "robot", "cid": cats}})
    owner = _deploy(chain, ALICE, 0, sender([("names", register)]), T0 + 1000)
    fund = Msg("send", {"to": owner, "amount": 50_000})
    chain.produce_block([tx(CAROL, 0, fund)], time_ms=T0 + 3000)
    r = _execute(chain, BOB, 0, owner, T0 + 4000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    packet = next(e for e in r.receipts[0].events if e["type"] == "packet")
    assert packet["ack"] == {"register": "robot"}
    with chain.reader() as rd:
        assert resolve(rd, "robot") == (cid_to_bytes(cats), owner)
        assert get_account(rd, owner).balance == 50_000 - chain.params.name_fee
    # Another contract cannot point or hand on the name: it is not its owner.
    dogs = cid_of_text("dogs")
    thief = sender([("names", _packet({"update": {"name": "robot", "cid": dogs}}))])
    other = _deploy(chain, ALICE, 2, thief, T0 + 5000)
    r = _execute(chain, BOB, 1, other, T0 + 7000)
    assert r.receipts[0].code == "not_owner", r.receipts[0].log
    bad = sender([("names", _packet({"register": {"name": "robot2", "cid": "not a cid"}}))])
    broken = _deploy(chain, ALICE, 4, bad, T0 + 8000)
    r = _execute(chain, BOB, 2, broken, T0 + 10_000)
    assert r.receipts[0].code == "malformed_message", r.receipts[0].log
    with chain.reader() as rd:
        assert resolve(rd, "robot") == (cid_to_bytes(cats), owner)
        assert resolve(rd, "robot2") is None


def test_a_sender_that_exports_reply_gets_each_acknowledgement(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    follower = new_chain(tmp_path / "f", genesis(focus={"mode": "diffusion"}), producer=False)
    counter = _deploy(chain, ALICE, 0, wasmtime.wat2wasm(COUNTER), T0 + 1000)
    increment = _packet({"increment": {}})
    asker = _deploy(
        chain, ALICE, 2, sender([(f"wasm/{counter.hex()}", increment)], reply="keep"), T0 + 3000
    )
    r = _execute(chain, BOB, 0, asker, T0 + 5000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    packet = next(e for e in r.receipts[0].events if e["type"] == "packet")
    with chain.reader() as rd:
        doc = json.loads(rd.get(wasm.storage_key(asker, b"last")))
    assert doc["sender"] is None and doc["env"]["contract"] == asker.hex()
    assert doc["msg"]["port"] == f"wasm/{counter.hex()}"
    assert doc["msg"]["packet"] == 0
    assert doc["msg"]["ack"]["gas_used"] == packet["ack"]["gas_used"] > 0
    # A contract without ``reply`` (the counter's callers before) gets none:
    # the plain sender keeps nothing under ``last``.
    plain = _deploy(chain, ALICE, 4, sender([(f"wasm/{counter.hex()}", increment)]), T0 + 6000)
    r = _execute(chain, BOB, 1, plain, T0 + 8000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    with chain.reader() as rd:
        assert rd.get(wasm.storage_key(plain, b"last")) is None
        assert int.from_bytes(rd.get(wasm.storage_key(counter, b"count")), "little") == 2
    assert _replays(chain, follower)


def test_a_reply_that_traps_undoes_the_message(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    counter = _deploy(chain, ALICE, 0, wasmtime.wat2wasm(COUNTER), T0 + 1000)
    increment = _packet({"increment": {}})
    code = sender([(f"wasm/{counter.hex()}", increment)], reply="trap")
    asker = _deploy(chain, ALICE, 2, code, T0 + 3000)
    r = _execute(chain, BOB, 0, asker, T0 + 5000)
    assert r.receipts[0].code == "wasm_trap", r.receipts[0].log
    with chain.reader() as rd:  # the increment before the reply is undone
        assert int.from_bytes(rd.get(wasm.storage_key(counter, b"count")), "little") == 0
