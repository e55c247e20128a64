"""A seeded stream of hostile transactions of every message type, for the guard
that block production never raises and every node computes the same block.

Each block's transactions mix plausible bodies (what a user would send, so the
deeper code runs), mutated ones (a field dropped, added, or of another type and
size) and the attacks that once halted a chain: EVM initcode over EIP-3860's
limit, a creation whose code passes EIP-170's, random and mutated bytecode,
calls of the precompiles with random input, WASM modules with random exports,
imports and growth instructions, and mutated module bytes. The stream learns
from each block's receipts (created contracts, stored code) so later blocks
call them, and takes every sender's nonce from the chain before each block, so
refused transactions do not stall the senders.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from eth_account import Account

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.eth_tx import evm_chain_id
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.keys import KeyPair, encode_address
from focusflow.modules.evm import RESTORABLE
from tests.vm import wasm_modules

CHAIN_ID = "focusflow-hostile"
T0 = 1_700_000_000_000
#: The standard test mnemonic's first key, funded for Ethereum transactions.
ETH_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
ETH_SENDER = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
KEYS = [KeyPair.from_seed(f"hostile-{i}".encode().ljust(32, b"\0")) for i in range(4)]
VALIDATOR = KeyPair.from_seed(b"hostile-validator".ljust(32, b"\0"))
PLENTY = 10**15
DENOMS = ["cyb", "h", "zz", "lp/cyb/h", ""]
#: Precompiles: Ethereum's and the chain's focus, router, karma and TWAP.
PRECOMPILES = [bytes(19) + bytes([i]) for i in range(1, 11)] + [
    bytes.fromhex("000000000000000000000000000000000000f0c" + d) for d in "5678"
]
#: Small contracts to start mutating from: a store-and-log, a focus reader,
#: a loop until gas runs out, a self-destruct, a call of the router.
EVM_CORPUS = [
    bytes.fromhex("60003580600055600052600160206000a100"),
    bytes.fromhex("6024358060446000376020600082600061f0c55afa505060005160005560206000f3"),
    bytes.fromhex("5b600056"),
    bytes.fromhex("33ff"),
    bytes.fromhex("6000600060006000600061f0c65af100"),
]


def genesis() -> Genesis:
    """The economy on, every sender funded in cyb and h, one primary dealer."""
    accounts: list[dict[str, Any]] = [
        {"address": k.address, "balance": PLENTY, "stake": 10**9, "tokens": {"h": PLENTY}}
        for k in KEYS
    ]
    accounts.append(
        {
            "address": encode_address(ETH_SENDER),
            "balance": PLENTY,
            "stake": 0,
            "tokens": {"h": PLENTY},
        }
    )
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {
                "focus": {"mode": "diffusion"},
                "economics": 1,
                "dex_dealers": [{"address": KEYS[0].address, "quota": 10**12}],
                "unbonding_blocks": 10**6 + 2,
                "evidence_max_age": 1,
                "epoch_blocks": 10**6,
                "evm_dev_powers": 1,
            },
            "accounts": accounts,
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def initcode_for(code: bytes) -> bytes:
    """Initcode that returns ``code`` as the new contract's code."""
    n = len(code)
    return bytes([0x61, n >> 8, n & 0xFF, 0x80, 0x60, 0x0C, 0x60, 0, 0x39, 0x60, 0, 0xF3]) + code


class HostileStream:
    """Blocks of hostile transactions (module docstring)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.evm_contracts: list[bytes] = []
        self.wasm_codes: list[bytes] = []
        self.wasm_contracts: list[bytes] = []
        self.particles = [raw_cid_bytes(f"hostile-{i}".encode()) for i in range(40)]
        self.serials: list[int] = []
        self.requests: list[bytes] = []

    # --- the stream -----------------------------------------------------------
    def block(self, nonce_of: Callable[[bytes], int], size: int) -> list[bytes]:
        """``size`` encoded transactions; ``nonce_of(address)`` is each
        sender's committed nonce."""
        nonces = {k.address_raw: nonce_of(k.address_raw) for k in KEYS}
        eth_nonce = nonce_of(ETH_SENDER)
        out = []
        for _ in range(size):
            if self.rng.random() < 0.25:
                stale = self.rng.random() < 0.1
                nonce = self.rng.choice([0, eth_nonce + 3]) if stale else eth_nonce
                raw, valid = self.eth_tx(nonce)
                eth_nonce += valid and not stale
            else:
                key = self.rng.choice(KEYS)
                nonce = nonces[key.address_raw]
                msgs = [self.message() for _ in range(self.rng.choice([1, 1, 1, 2, 3]))]
                fee = 10**6 + sum(_gas_of(m) for m in msgs) // 1000 + self.rng.randint(0, 10**4)
                refused = self.rng.random() < 0.03
                if refused:
                    fee = self.rng.choice([0, 1, 2**70])
                try:
                    raw = make_tx(key, CHAIN_ID, nonce, fee, msgs).encoded
                except Exception:  # noqa: BLE001 - a body the encoder refuses is no transaction
                    continue
                nonces[key.address_raw] = nonce + (not refused)
            out.append(raw)
        return out

    def learn(self, receipts: Sequence[Any]) -> None:
        """Remember what the block's transactions made, to call it later."""
        for receipt in receipts:
            for event in receipt.events:
                kind = event.get("type")
                if kind == "evm" and event.get("contract"):
                    self.evm_contracts.append(event["contract"])
                elif kind == "wasm.store":
                    self.wasm_codes.append(event["code"])
                elif kind == "wasm.instantiate":
                    self.wasm_contracts.append(event["contract"])
                elif kind == "pin.request" and isinstance(event.get("request"), bytes):
                    self.requests.append(event["request"])

    # --- Ethereum -------------------------------------------------------------
    def eth_tx(self, nonce: int) -> tuple[bytes, bool]:
        """A signed Ethereum transaction, and whether a block may take it as
        far as the stream knows (it is not meant to be refused)."""
        rng = self.rng
        to: bytes | None
        kind = rng.random()
        if kind < 0.4:
            to, data = None, self.initcode()
        elif kind < 0.7 and self.evm_contracts:
            to, data = rng.choice(self.evm_contracts), rng.randbytes(rng.choice([0, 4, 36, 100]))
        else:
            to, data = (
                rng.choice(PRECOMPILES),
                rng.randbytes(rng.choice([0, 1, 20, 32, 64, 200, 2000])),
            )
        gas = rng.choice(
            [100_000, 300_000, 1_000_000, 2_000_000] * 5 + [21_000, 29_000_000, 31_000_000]
        )
        max_fee = rng.choice([1, 2, 10, 1000])
        tip = rng.choice([0, 1, 2, max_fee, max_fee + 1])
        foreign = rng.random() < 0.03
        value = rng.choice([0, 0, 0, 1, 10**9, PLENTY * 10])
        valid = (
            not foreign
            and tip <= max_fee
            and 100_000 <= gas <= 29_000_000
            and len(data) <= 49_152
            and value < PLENTY
        )
        fields = {
            "chainId": 1 if foreign else evm_chain_id(CHAIN_ID),
            "nonce": nonce,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
            "gas": gas,
            "to": to,
            "value": value,
            "data": data,
            "type": 2,
        }
        return bytes(Account.sign_transaction(fields, ETH_KEY).raw_transaction), valid

    def initcode(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.05:
            return bytes(49_153)  # EIP-3860's limit plus one
        if pick < 0.1:
            return initcode_for(b"\x00" * 24_577)  # EIP-170's limit plus one
        if pick < 0.2:
            return rng.randbytes(rng.randint(0, 300))
        code = rng.choice(EVM_CORPUS)
        if pick < 0.6:
            code = _mutate(code, rng)
        return initcode_for(code)

    # --- native messages -------------------------------------------------------
    def message(self) -> Msg:
        mtype = self.rng.choice(sorted(PLAUSIBLE))
        body = PLAUSIBLE[mtype](self)
        if self.rng.random() < 0.3:
            body = self.mutate_body(body)
        return Msg(mtype, body)

    def mutate_body(self, body: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        body = dict(body)
        what = rng.random()
        if what < 0.25 and body:
            del body[rng.choice(sorted(body))]
        elif what < 0.4:
            body[rng.choice(["x", "gas", "amount", "code", ""])] = self.value()
        elif body:
            body[rng.choice(sorted(body))] = self.value()
        return body

    def value(self, depth: int = 0) -> Any:
        """A random CBOR value: integers at the edges, bytes, text, containers."""
        rng = self.rng
        makers: list[Callable[[], Any]] = [
            lambda: rng.choice([0, 1, -1, 2**63, 2**64 - 1, -(2**64), 2**255, -(2**255)]),
            lambda: rng.randint(-(10**6), 10**18),
            lambda: rng.randbytes(rng.choice([0, 1, 19, 20, 21, 32, 33, 200])),
            lambda: rng.choice(["", "a", "cyb", "h", "\u0000", "\u200b" * 3, "x" * 300, "lp/a/b"]),
            lambda: None,
            lambda: rng.choice([True, False]),
            lambda: rng.choice(self.particles),
            lambda: rng.choice(KEYS).address_raw,
            lambda: rng.randbytes(rng.randint(0, 5000)),
        ]
        if depth < 4:
            makers += [
                lambda: [self.value(depth + 1) for _ in range(rng.randint(0, 4))],
                lambda: {rng.choice(["a", "b", "kind", "k"]): self.value(depth + 1)},
            ]
        return rng.choice(makers)()

    def json_msg(self) -> bytes:
        rng = self.rng
        choices = [
            {},
            {"increment": {}},
            {"get": {}},
            {"write": {}},
            {"x": "y" * rng.randint(0, 100)},
            [1, 2, 3],
            "text",
            rng.randint(-(2**70), 2**70),
        ]
        text = json.dumps(rng.choice(choices)).encode()
        if rng.random() < 0.1:
            text = rng.randbytes(rng.randint(0, 40))
        return text

    def wasm_code(self) -> bytes:
        """A module: the ABI, its names with random types, random imports,
        growth, or the bytes of one of those damaged."""
        rng = self.rng
        make = rng.choice(
            [
                wasm_modules.valid_module,
                wasm_modules.valid_module,
                wasm_modules.random_exports,
                wasm_modules.random_imports,
                wasm_modules.growing_module,
            ]
        )
        code = wasm_modules.build(make(rng))
        if rng.random() < 0.15:
            code = wasm_modules.mutate(code, rng)
        return code

    def wasm_gas(self) -> int:
        return self.rng.choice([1, 1_000, 10**6, 10**7, 10**8])


def _gas_of(msg: Msg) -> int:
    gas = msg.body.get("gas") if isinstance(msg.body, dict) else None
    return gas if isinstance(gas, int) and 0 < gas < 2**63 else 0


def _mutate(code: bytes, rng: random.Random) -> bytes:
    out = bytearray(code)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.4 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif op < 0.7:
            out.insert(rng.randrange(len(out) + 1), rng.randrange(256))
        elif out:
            del out[rng.randrange(len(out))]
    return bytes(out)


def _denom_pair(s: HostileStream) -> list[str]:
    return s.rng.sample(DENOMS[:3], 2)


def _pool(s: HostileStream, **more: Any) -> dict[str, Any]:
    a, b = _denom_pair(s)
    return {"a": a, "b": b, **more}


def _amount(s: HostileStream) -> int:
    return s.rng.choice([0, 1, 1000, 10**6, 10**9, PLENTY, PLENTY * 100])


#: A plausible body for every message type the chain has, by type.
PLAUSIBLE: dict[str, Callable[[HostileStream], dict[str, Any]]] = {
    "send": lambda s: {
        "to": s.rng.choice(KEYS).address_raw,
        "amount": _amount(s),
        "denom": s.rng.choice(DENOMS),
    },
    "stake": lambda s: {"amount": _amount(s)},
    "unstake": lambda s: {"amount": _amount(s)},
    "link": lambda s: {"links": [s.rng.sample(s.particles, 2) for _ in range(s.rng.randint(1, 5))]},
    "name.register": lambda s: {
        "name": s.rng.choice(["alpha", "beta", "ab", "x" * 70]),
        "cid": s.rng.choice(s.particles),
    },
    "name.update": lambda s: {
        "name": s.rng.choice(["alpha", "beta"]),
        "cid": s.rng.choice(s.particles),
    },
    "name.transfer": lambda s: {
        "name": s.rng.choice(["alpha", "beta"]),
        "to": s.rng.choice(KEYS).address_raw,
    },
    "name.address": lambda s: {
        "name": "alpha",
        "address": s.rng.choice(["127.0.0.1:1", "", "[::1]:80", "bad"]),
    },
    "ca.request": lambda s: {
        "name": "alpha",
        "key": s.rng.randbytes(32),
        "hours": s.rng.choice([1, 24, 10**6]),
    },
    "ca.commit": lambda s: {
        "serial": s.rng.randint(0, 5),
        "hiding": s.rng.randbytes(32),
        "binding": s.rng.randbytes(32),
    },
    "ca.share": lambda s: {"serial": s.rng.randint(0, 5), "share": s.rng.randbytes(32)},
    "ca.revoke": lambda s: {"serial": s.rng.randint(0, 5)},
    "ca.federate": lambda s: {"root": s.rng.randbytes(100), "days": 30, "permitted": ["focus"]},
    "ca.withdraw": lambda s: {"root_hash": s.rng.randbytes(32)},
    "blob.put": lambda s: {"data": s.rng.randbytes(s.rng.randint(0, 3000))},
    "validator.register": lambda s: {"name": "val"},
    "validator.unregister": lambda s: {},
    "focus.upgrade": lambda s: {
        "height": s.rng.randint(0, 100),
        "focus": s.rng.choice([{}, {"mode": "tri"}, {"mode": "nope"}]),
    },
    "proof.challenge": lambda s: {"kind": s.rng.choice(["space", "time", "work", "stake", "nope"])},
    "proof.claim": lambda s: {"kind": "work", "nonce": s.rng.randint(0, 2**32)},
    "pin.request": lambda s: {
        "cid": s.rng.choice(s.particles),
        "size": 1000,
        "reward": 10,
        "bounty": 100,
        "blocks": 5,
    },
    "pin.challenge": lambda s: {"request": s.rng.choice(s.requests or [bytes(32)])},
    "pin.prove": lambda s: {
        "request": s.rng.choice(s.requests or [bytes(32)]),
        "path": [s.rng.randbytes(64)],
    },
    "pin.close": lambda s: {"request": s.rng.choice(s.requests or [bytes(32)])},
    "dex.create": lambda s: _pool(s, amount_a=_amount(s), amount_b=_amount(s)),
    "dex.add": lambda s: _pool(s, max_a=_amount(s), max_b=_amount(s), min_shares=0),
    "dex.remove": lambda s: _pool(s, shares=_amount(s), min_a=0, min_b=0),
    "dex.swap": lambda s: {"path": _denom_pair(s), "amount_in": _amount(s), "min_out": 0},
    "dex.swap_out": lambda s: {
        "path": _denom_pair(s),
        "amount_out": _amount(s),
        "max_in": PLENTY,
    },
    "dex.mint": lambda s: {"amount": _amount(s)},
    "dex.redeem": lambda s: {"amount": _amount(s)},
    "rewards.claim": lambda s: {},
    "economy.vote": lambda s: {"params": {"h_mint_per_block": s.rng.randint(0, 10**6)}},
    "wasm.store": lambda s: {"code": s.wasm_code()},
    "wasm.instantiate": lambda s: {
        "code": s.rng.choice(s.wasm_codes or [bytes(32)]),
        "msg": s.json_msg(),
        "label": "h",
        "gas": s.wasm_gas(),
    },
    "wasm.execute": lambda s: {
        "contract": s.rng.choice(s.wasm_contracts or [bytes(20)]),
        "msg": s.json_msg(),
        "gas": s.wasm_gas(),
    },
    # The genesis grants the anvil dev powers to its one validator: the dev
    # messages run, from any sender, with bodies of every shape.
    "evm.set_balance": lambda s: {
        "address": s.rng.choice([ETH_SENDER, *(k.address_raw for k in KEYS)]),
        "balance": s.rng.randbytes(32),
    },
    "evm.restore": lambda s: {
        "writes": [
            [
                s.rng.choice(RESTORABLE)
                + s.rng.choice([ETH_SENDER, *(k.address_raw for k in KEYS), s.rng.randbytes(20)])
                + s.rng.randbytes(s.rng.choice([0, 0, 32])),
                s.rng.choice([None, s.rng.randbytes(s.rng.randint(0, 64))]),
            ]
            for _ in range(s.rng.randint(0, 4))
        ]
    },
    "evm.call_as": lambda s: {
        "from": s.rng.choice([ETH_SENDER, *(k.address_raw for k in KEYS)]),
        "to": s.rng.choice([b"", *s.evm_contracts[-4:]]),
        "value": s.rng.randint(0, 10**6).to_bytes(32, "big"),
        "gas": s.rng.choice([21_000, 100_000, 3_000_000]),
        "data": s.initcode() if s.rng.random() < 0.3 else s.rng.randbytes(36),
    },
    # The chain is in no network of rollups: every interchain message is
    # refused by its checks (no client, connection or channel), never the block.
    "ibc.update_client": lambda s: {"client": _ident(s), "header": s.rng.randbytes(64)},
    "ibc.conn_open_init": lambda s: {"client": _ident(s), "counterparty_client": _ident(s)},
    "ibc.conn_open_try": lambda s: {
        "client": _ident(s),
        "counterparty_client": _ident(s),
        "counterparty_connection": "connection-0",
        **_proof(s),
    },
    "ibc.conn_open_ack": lambda s: {
        "connection": "connection-0",
        "counterparty_connection": "connection-0",
        **_proof(s),
    },
    "ibc.conn_open_confirm": lambda s: {"connection": "connection-0", **_proof(s)},
    "ibc.chan_open_init": lambda s: {
        "port": "rank",
        "connection": "connection-0",
        "counterparty_port": "rank",
        "version": "rank-1",
    },
    "ibc.chan_open_try": lambda s: {
        "port": "rank",
        "connection": "connection-0",
        "counterparty_port": "rank",
        "counterparty_channel": "channel-0",
        "version": "rank-1",
        **_proof(s),
    },
    "ibc.chan_open_ack": lambda s: {
        "port": "rank",
        "channel": "channel-0",
        "counterparty_channel": "channel-0",
        **_proof(s),
    },
    "ibc.chan_open_confirm": lambda s: {"port": "rank", "channel": "channel-0", **_proof(s)},
    "ibc.recv_packet": lambda s: {"packet": _packet(s), **_proof(s)},
    "ibc.acknowledge": lambda s: {"packet": _packet(s), "ack": s.rng.randbytes(8), **_proof(s)},
    "ibc.timeout": lambda s: {"packet": _packet(s), "next_recv": 1, **_proof(s)},
}


def _ident(s: HostileStream) -> str:
    return s.rng.choice(["hub", "rollup-0", "connection-0", "", "x" * 80])


def _proof(s: HostileStream) -> dict[str, Any]:
    return {"proof": s.rng.randbytes(s.rng.randrange(0, 300)), "proof_height": s.rng.randrange(4)}


def _packet(s: HostileStream) -> bytes:
    from focusflow.state_schema.ibc import Packet

    return Packet(
        s.rng.randrange(1, 4), "rank", "channel-0", "rank", "channel-0",
        s.rng.randbytes(s.rng.randrange(64)), s.rng.randrange(10**6), 0,
    ).encode()  # fmt: skip
