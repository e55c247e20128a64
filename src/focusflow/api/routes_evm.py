"""Ethereum JSON-RPC at ``POST /evm``: what web3.py, ethers and wallets call.

JSON-RPC 2.0 (one request or a batch of up to ``MAX_BATCH``), the methods of
the ``eth_`` namespace a tool needs to deploy and use contracts: chain id,
blocks, balances, nonces, code, storage, calls, gas estimates, fees, raw
transactions, transactions, receipts and logs, polled filters
(``api.evm_filters``), ``eth_getProof`` (the chain's sparse-Merkle proofs) and
``debug_traceTransaction`` (the traces an anvil devnet records); the dev
methods of ``focusflow devnet --anvil`` are ``api.evm_dev``'s. Numbers are hex
quantities and bytes hex data, as the Ethereum JSON-RPC specification writes
them.

State is served at the node's head: a block tag ``latest``, ``pending``,
``safe`` or ``finalized`` (every committed block is final), or the head's
number; an older number is refused (``-32000``, this node keeps no
historical EVM state), as a pruned Ethereum node does. A block counts once
its focus is published, as for ``GET /v1/txs/{hash}``. Errors follow the
specification's codes: ``-32700`` unparsable JSON, ``-32600`` not a request,
``-32601`` unknown method (or a dev method without the dev powers, ``data.code``
``dev_only``), ``-32602`` bad parameters, ``-32000`` refused by
the node (with the chain's error code in ``data``), ``-32005`` over a limit
(``data.code`` ``rpc_busy`` or ``rpc_limit``), ``-32603`` a failure of the
node's own (logged), ``3`` a reverted call (with its return data). No answer
is an HTTP error.

What one request or batch may cost is bounded (``api.evm_budget``): wall
time, EVM gas over all its runs, answer bytes; EVM runs go through a small
bounded pool of their own, and a batch whose client has gone stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from focusflow.api.evm_budget import (
    ESTIMATE_MAX_RUNS,
    MAX_RESPONSE_BYTES,
    RPC_GAS_BUDGET,
    RPC_GAS_CAP,
    WORKERS,
    Budget,
    RpcBusyError,
    RpcLimitError,
)
from focusflow.api.evm_filters import (
    FILTERS,
    MAX_FILTER_CHANGES,
    Filter,
    FilterNotFoundError,
    Match,
)
from focusflow.api.jsonbody import parse_json
from focusflow.api.service import NodeService
from focusflow.api.state import app_state
from focusflow.chain.block import BlockRecord
from focusflow.chain.devmode import DevMode
from focusflow.chain.errors import EvmInvalidError, EvmRevertedError, TxError
from focusflow.chain.eth_tx import EthTx, evm_chain_id
from focusflow.chain.module import BlockContext
from focusflow.chain.state import PendingState
from focusflow.chain.tx import Tx, decode_tx
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.modules import (
    CALL_AS,
    DevOnlyError,
    dev_powers,
    effective_gas_price,
    evm_block,
    twap_reader,
)
from focusflow.state_schema.accounts import account_key, get_account
from focusflow.vm import evm, evm_trace
from focusflow.vm.evm_keys import code_key, storage_key

router = APIRouter()
log = logging.getLogger("focusflow.api")

#: Most requests one batch may carry.
MAX_BATCH = 100
#: Most logs one ``eth_getLogs`` answers (a query over more is refused, as other
#: nodes refuse it: "query returned more than 10000 results"); the blocks it
#: scans are bounded by the request's time budget, not counted.
MAX_LOG_RESULTS = 10_000
#: Most blocks ``eth_feeHistory`` reports.
MAX_FEE_HISTORY = 1_024
#: Most storage slots one ``eth_getProof`` proves.
MAX_PROOF_SLOTS = 256
#: Most reward percentiles one ``eth_feeHistory`` takes (geth's cap).
MAX_REWARD_PERCENTILES = 100
#: The tip ``eth_maxPriorityFeePerGas`` suggests (base units per gas).
SUGGESTED_TIP = 1
#: How often a request's handler asks whether its client is still there (s).
DISCONNECT_POLL_S = 0.1
#: Longest quote of a client's value in an error message.
QUOTE_CHARS = 80
#: A hex quantity (at most 256 bits) and hex bytes, as the specification
#: writes them; ``int(..., 16)`` alone would take ``0x_1`` or `` 0x1 ``.
_QTY = re.compile(r"0x[0-9a-fA-F]{1,64}")
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_ZERO32 = "0x" + "00" * 32
_EMPTY_BLOOM = "0x" + "00" * 256
#: Keccak-256 of the RLP of an empty list (an empty uncles list).
_EMPTY_UNCLES = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"


class RpcError(Exception):
    """A JSON-RPC error object: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


# --- hex in, hex out -----------------------------------------------------------


def qty(value: int) -> str:
    return hex(value)


def data(value: bytes) -> str:
    return "0x" + value.hex()


_T = TypeVar("_T")
_D = TypeVar("_D")
#: A log as execution stores it in its ``evm`` event: (address, topics, data).
_RawLog = tuple[bytes, list[bytes], bytes]


def _param(params: list[Any], i: int, default: Any = ...) -> Any:
    if i < len(params):
        return params[i]
    if default is ...:
        raise RpcError(-32602, f"missing parameter {i}")
    return default


def quote(value: Any) -> str:
    """A client's value for an error message, cut to ``QUOTE_CHARS``."""
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."


def parse_qty(value: Any, what: str) -> int:
    """A hex quantity: ``0x`` and 1 to 64 hex digits, nothing else."""
    if not isinstance(value, str) or not _QTY.fullmatch(value):
        raise RpcError(-32602, f"{what} must be a hex quantity, got {quote(value)}")
    return int(value[2:], 16)


def parse_data(value: Any, what: str, size: int | None = None) -> bytes:
    """Hex bytes: ``0x`` and pairs of hex digits, nothing else."""
    if not isinstance(value, str) or not _DATA.fullmatch(value):
        raise RpcError(-32602, f"{what} must be 0x-prefixed hex bytes, got {quote(value)}")
    out = bytes.fromhex(value[2:])
    if size is not None and len(out) != size:
        raise RpcError(-32602, f"{what} must be {size} bytes, got {len(out)}")
    return out


def parse_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise RpcError(-32602, f"{what} must be true or false, got {quote(value)}")
    return value


def parse_address(value: Any, what: str = "address") -> bytes:
    return parse_data(value, what, 20)


# --- the node's committed chain --------------------------------------------------


@dataclass(frozen=True)
class CallAsFields:
    """The fields of an ``evm.call_as`` transaction (an impersonated account's, on an
    anvil devnet) as an EIP-1559 transaction's: no signature, no tip."""

    nonce: int
    to: bytes | None
    value: int
    gas: int
    data: bytes
    chain_id: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int = 0
    type_id: int = 2
    v: int = 0
    r: int = 0
    s: int = 0
    y_parity: int = 0
    access_list: tuple[Any, ...] = ()


@dataclass(frozen=True)
class CallAsTx:
    """An ``evm.call_as`` transaction as the methods read an Ethereum one: its hash
    is the native transaction's, its sender the impersonated account."""

    hash: bytes
    sender_address: bytes
    eth: CallAsFields


class EvmRpc:
    """The methods, over one node (``NodeService``), for one request or batch and
    its :class:`~focusflow.api.evm_budget.Budget`."""

    def __init__(self, node: NodeService, budget: Budget | None = None) -> None:
        self.node = node
        self.budget = budget if budget is not None else Budget.start("local", math.inf)

    @property
    def chain_id(self) -> int:
        return evm_chain_id(self.node.chain.chain_id)

    def head(self) -> int:
        """The newest block served: committed and its focus published."""
        return min(self.node.chain.height, self.node.view.height)

    def block_number(self, tag: Any) -> int:
        head = self.head()
        if tag in (None, "latest", "pending", "safe", "finalized"):
            return head
        if tag == "earliest":
            return 0
        number = parse_qty(tag, "block number")
        if number > head:
            raise RpcError(-32000, f"block {number} is not committed yet (head {head})")
        return number

    def state_height(self, tag: Any) -> None:
        """Refuses a block tag older than the head: no historical state is kept."""
        number = self.block_number(tag)
        if number != self.head():
            raise RpcError(
                -32000, f"state at block {number} is not kept: this node serves the head only"
            )

    @contextmanager
    def state(self) -> Any:
        with self.node.chain.reader() as r:
            yield PendingState(r.get, r.items)

    def record(self, number: int) -> BlockRecord | None:
        with self.node.chain.reader() as r:
            raw = r.block(number)
        return None if raw is None else BlockRecord.decode(raw)

    def receipt_of(self, tx_hash: bytes) -> tuple[int, int, str, str, list[Any]] | None:
        with self.node.chain.reader() as r:
            raw = r.index(b"t" + tx_hash)
        if raw is None:
            return None
        height, index, code, log, events = decode(raw, "receipt")
        if height > self.head() or self.undone(height):
            return None
        return height, index, code, log, events

    def undone(self, height: int) -> bool:
        """Whether an anvil devnet's ``evm_revert`` undid block ``height``: its
        transactions and logs are hidden, as anvil's revert removes the block."""
        dev = getattr(self.node, "dev", None)
        return isinstance(dev, DevMode) and dev.undone(height)

    def with_exchange(self, block: evm.EvmBlock, state: Any) -> evm.EvmBlock:
        """``block`` whose TWAP precompile reads the pools of the call's state, at
        the head's time (what the next block's transactions would read)."""
        time_ms = self.node.chain.head.time_ms
        reader = twap_reader(state, time_ms, self.node.chain.params_now())
        return dataclasses.replace(block, twap_of=reader)

    def call_block(self) -> evm.EvmBlock:
        """The block a call runs in: the one after the head, reading the head's
        published focus (what that block's transactions would read)."""
        record = self.record(self.head())
        if record is None:
            raise RpcError(-32000, f"the head block {self.head()} is not kept by this node")
        view = self.node.view

        def focus_of(cid: bytes) -> int:
            i = view.particle_index(cid)
            return int(view.q[i]) if 0 <= i < len(view.q) else 0

        ctx = BlockContext(
            chain_id=self.node.chain.chain_id,
            height=record.block.height + 1,
            time_ms=record.block.header.time_ms,
            proposer=record.block.header.proposer,
            params=self.node.chain.params,
            state=PendingState(lambda _k: None),
            focus_of=focus_of,
            karma_of=view.karma_fixed_of,
        )
        return evm_block(ctx)

    # --- the methods -----------------------------------------------------------
    def eth_chain_id(self, params: list[Any]) -> str:
        return qty(self.chain_id)

    def net_version(self, params: list[Any]) -> str:
        return str(self.chain_id)

    def net_listening(self, params: list[Any]) -> bool:
        return True

    def web3_client_version(self, params: list[Any]) -> str:
        from focusflow import __version__

        return f"focusflow/{__version__}"

    def eth_block_number(self, params: list[Any]) -> str:
        return qty(self.head())

    def eth_gas_price(self, params: list[Any]) -> str:
        return qty(self.node.chain.params.evm_base_fee + SUGGESTED_TIP)

    def eth_max_priority_fee_per_gas(self, params: list[Any]) -> str:
        return qty(SUGGESTED_TIP)

    def eth_accounts(self, params: list[Any]) -> list[str]:
        """The unlocked test accounts of an anvil devnet; elsewhere none (the node
        holds no Ethereum keys: sign on the client)."""
        dev = dev_mode(self.node)
        if dev is None:
            return []
        from eth_utils import to_checksum_address

        return [to_checksum_address(a) for a in dev.unlocked]

    def eth_syncing(self, params: list[Any]) -> bool:
        return False

    def eth_get_balance(self, params: list[Any]) -> str:
        address = parse_address(_param(params, 0))
        self.state_height(_param(params, 1, "latest"))
        with self.node.chain.reader() as r:
            return qty(get_account(r, address).balance)

    def eth_get_transaction_count(self, params: list[Any]) -> str:
        address = parse_address(_param(params, 0))
        tag = _param(params, 1, "latest")
        if tag == "pending":
            return qty(self.node.next_nonce(address))
        self.state_height(tag)
        with self.node.chain.reader() as r:
            return qty(get_account(r, address).nonce)

    def eth_get_code(self, params: list[Any]) -> str:
        address = parse_address(_param(params, 0))
        self.state_height(_param(params, 1, "latest"))
        with self.node.chain.reader() as r:
            return data(r.get(code_key(address)) or b"")

    def eth_get_storage_at(self, params: list[Any]) -> str:
        address = parse_address(_param(params, 0))
        slot = parse_qty(_param(params, 1), "storage slot")
        if slot >= 2**256:
            raise RpcError(-32602, "storage slot must be below 2**256")
        self.state_height(_param(params, 2, "latest"))
        with self.node.chain.reader() as r:
            raw = r.get(storage_key(address, slot)) or b""
        return data(raw.rjust(32, b"\0"))

    def _call_args(self, params: list[Any]) -> tuple[dict[str, Any], int]:
        """The call's arguments for ``vm.evm`` and its gas (at most the cap); every
        field is checked, those the EVM does not read too."""
        call = _param(params, 0)
        if not isinstance(call, dict):
            raise RpcError(-32602, "the call must be an object")
        extra = set(call) - _CALL_FIELDS
        if extra:
            listed = ", ".join(quote(k) for k in sorted(extra)[:8])
            raise RpcError(-32602, f"unknown call fields: {listed}")
        for name in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce", "type"):
            if call.get(name) is not None:
                parse_qty(call[name], name)
        if call.get("chainId") is not None and parse_qty(call["chainId"], "chainId") != (
            self.chain_id
        ):
            raise RpcError(-32602, f"chainId must be this chain's, {qty(self.chain_id)}")
        if call.get("accessList") is not None and not isinstance(call["accessList"], list):
            raise RpcError(-32602, "accessList must be a list")
        payload = call.get("input")
        if payload is None:
            payload = call.get("data")
        if call.get("data") is not None and payload != call["data"]:
            raise RpcError(-32602, "input and data differ: send one of them")
        args = {
            "sender": _optional(call, "from", parse_address, b"\0" * 20),
            "to": _optional(call, "to", parse_address, None),
            "data": parse_data("0x" if payload is None else payload, "data"),
            "value": _optional(call, "value", parse_qty, 0),
        }
        gas = min(_optional(call, "gas", parse_qty, RPC_GAS_CAP), RPC_GAS_CAP)
        return args, gas

    def _allowance(self, runs: int) -> evm.Allowance:
        """What the next EVM work of this request may spend: the gas left of its
        budget, ``runs`` runs, and the budget's stop check."""
        return evm.Allowance(gas=self.budget.gas, runs=runs, stop=self.budget.stopped)

    def _run_evm(self, work: Callable[[Any, evm.EvmBlock, evm.Allowance], Any], runs: int) -> Any:
        """``work(state, block, allowance)`` at the head, its gas charged to the
        budget; the EVM's refusal as ``-32000`` (``evm_invalid``), a run cut short
        by the budget as ``rpc_limit``."""
        block = self.call_block()
        allowance = self._allowance(runs)
        with self.state() as state:
            block = self.with_exchange(block, state)
            try:
                return work(state, block, allowance)
            except evm.EvmValidationError as exc:
                raise RpcError(-32000, str(exc), {"code": EvmInvalidError.code}) from None
            except evm.EvmStoppedError as exc:
                self.budget.check()
                raise RpcLimitError(
                    f"{exc} (at most {RPC_GAS_BUDGET} gas over a request's EVM runs)"
                ) from None
            finally:
                self.budget.gas = max(0, allowance.gas)

    def eth_call(self, params: list[Any]) -> str:
        args, gas = self._call_args(params)
        self.state_height(_param(params, 1, "latest"))
        out = self._run_evm(
            lambda state, block, allowance: evm.call(
                state, block, gas=gas, allowance=allowance, **args
            ),
            runs=1,
        )
        if not out.status:
            raise RpcError(3, out.error, data(out.output))
        return data(out.output)

    def eth_estimate_gas(self, params: list[Any]) -> str:
        args, cap = self._call_args(params)
        self.state_height(_param(params, 1, "latest"))
        try:
            gas = self._run_evm(
                lambda state, block, allowance: evm.estimate_gas(
                    state, block, cap=cap, allowance=allowance, **args
                ),
                runs=ESTIMATE_MAX_RUNS,
            )
        except evm.EvmCallFailedError as exc:
            out = exc.outcome
            if out.error.startswith("execution reverted"):
                raise RpcError(3, out.error, data(out.output)) from None
            raise RpcError(
                -32000, f"gas required exceeds {cap}: {out.error}", {"code": EvmRevertedError.code}
            ) from None
        return qty(gas)

    def eth_get_block_by_number(self, params: list[Any]) -> dict[str, Any] | None:
        number = self.block_number(_param(params, 0))
        return self._block_json(number, parse_bool(_param(params, 1, False), "full"))

    def eth_get_block_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        block_hash = parse_data(_param(params, 0), "block hash", 32)
        with self.node.chain.reader() as r:
            raw = r.index(b"b" + block_hash)
        if raw is None:
            return None
        number = int.from_bytes(raw, "big")
        if number > self.head():
            return None
        return self._block_json(number, parse_bool(_param(params, 1, False), "full"))

    def _eth_txs(self, record: BlockRecord) -> list[tuple[int, EthTx | CallAsTx]]:
        """The block's Ethereum transactions with their index in the block; on a
        chain with the dev powers, its ``evm.call_as`` ones too."""
        out: list[tuple[int, EthTx | CallAsTx]] = []
        dev_chain = dev_powers(self.node.chain.params)
        for i, raw in enumerate(record.block.txs):
            if raw[:1] != b"\x86":
                tx = decode_tx(raw)
                if isinstance(tx, EthTx):
                    out.append((i, tx))
            elif dev_chain:
                call = self._call_as(decode_tx(raw), None)
                if call is not None:
                    out.append((i, call))
        return out

    def _call_as(self, tx: Tx, events: list[Any] | None) -> CallAsTx | None:
        """``tx`` as the Ethereum transaction it ran when it is an ``evm.call_as``
        that ran (its receipt has the ``evm`` event; ``events`` when known)."""
        if len(tx.msgs) != 1 or tx.msgs[0].type != CALL_AS:
            return None
        if events is None:
            found = self.receipt_of(tx.hash)
            events = [] if found is None else found[4]
        ev = _evm_event(events)
        if ev is None or "nonce" not in ev:
            return None
        body = tx.msgs[0].body
        eth = CallAsFields(
            nonce=ev["nonce"], to=body["to"] or None, value=int.from_bytes(body["value"], "big"),
            gas=body["gas"], data=body["data"], chain_id=self.chain_id,
            max_fee_per_gas=self.node.chain.params.evm_base_fee,
        )  # fmt: skip
        return CallAsTx(tx.hash, body["from"], eth)

    def _block_json(self, number: int, full: bool) -> dict[str, Any] | None:
        record = self.record(number)
        if record is None:
            return None
        block = record.block
        header = block.header
        txs = self._eth_txs(record)
        gas_used = 0
        receipts = []
        for _, tx in txs:
            found = self.receipt_of(tx.hash)
            if found is not None:
                ev = _evm_event(found[4])
                gas_used += ev.get("gas_used", 0) if ev else 0
                receipts.append(found)
        bloom = _bloom([log for r in receipts for log in _logs_of(r[4])])
        return {
            "number": qty(block.height),
            "hash": data(block.hash),
            "parentHash": data(header.parent if len(header.parent) == 32 else bytes(32)),
            "nonce": "0x0000000000000000",
            "sha3Uncles": _EMPTY_UNCLES,
            "logsBloom": bloom,
            "transactionsRoot": data(header.txs_root),
            "stateRoot": data(header.state_root),
            "receiptsRoot": _ZERO32,
            "miner": data(header.proposer if len(header.proposer) == 20 else bytes(20)),
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "extraData": "0x",
            "size": qty(sum(len(t) for t in block.txs) + 512),
            "gasLimit": qty(self.node.chain.params.evm_block_gas_limit),
            "gasUsed": qty(gas_used),
            "timestamp": qty(header.time_ms // 1000),
            "mixHash": _ZERO32,
            "baseFeePerGas": qty(self.node.chain.params.evm_base_fee),
            "withdrawals": [],
            "withdrawalsRoot": _ZERO32,
            "uncles": [],
            "transactions": [
                self._tx_json(tx, block.height, block.hash, i) if full else data(tx.hash)
                for i, tx in txs
            ],
        }

    def _tx_json(
        self,
        tx: EthTx | CallAsTx,
        height: int | None,
        block_hash: bytes | None,
        index: int | None,
    ) -> dict[str, Any]:
        eth = tx.eth
        type_id = getattr(eth, "type_id", None) or 0
        base = self.node.chain.params.evm_base_fee
        out: dict[str, Any] = {
            "hash": data(tx.hash),
            "nonce": qty(eth.nonce),
            "blockHash": None if block_hash is None else data(block_hash),
            "blockNumber": None if height is None else qty(height),
            "transactionIndex": None if index is None else qty(index),
            "from": data(tx.sender_address),
            "to": data(bytes(eth.to)) if eth.to else None,
            "value": qty(eth.value),
            "gas": qty(eth.gas),
            "gasPrice": qty(effective_gas_price(eth, base)),
            "input": data(bytes(eth.data)),
            "type": qty(type_id),
            "chainId": qty(eth.chain_id) if eth.chain_id is not None else None,
            "v": qty(getattr(eth, "v", getattr(eth, "y_parity", 0))),
            "r": qty(eth.r),
            "s": qty(eth.s),
        }
        if type_id:
            out["yParity"] = qty(eth.y_parity)
            out["accessList"] = [
                {
                    "address": data(bytes(a)),
                    "storageKeys": [data(k.to_bytes(32, "big")) for k in ks],
                }
                for a, ks in eth.access_list
            ]
        if type_id == 2:
            out["maxFeePerGas"] = qty(eth.max_fee_per_gas)
            out["maxPriorityFeePerGas"] = qty(eth.max_priority_fee_per_gas)
        return out

    def _located(
        self, tx_hash: bytes
    ) -> tuple[EthTx | CallAsTx, int, int, BlockRecord, Any] | None:
        found = self.receipt_of(tx_hash)
        if found is None:
            return None
        height, index, _code, _log, _events = found
        record = self.record(height)
        if record is None or index >= len(record.block.txs):
            return None
        tx = decode_tx(record.block.txs[index])
        if isinstance(tx, EthTx):
            return tx, height, index, record, found
        call = self._call_as(tx, found[4]) if dev_powers(self.node.chain.params) else None
        return None if call is None else (call, height, index, record, found)

    def eth_get_transaction_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        tx_hash = parse_data(_param(params, 0), "transaction hash", 32)
        located = self._located(tx_hash)
        if located is None:
            pending = self.node.mempool.get(tx_hash) if hasattr(self.node.mempool, "get") else None
            if isinstance(pending, EthTx):
                return self._tx_json(pending, None, None, None)
            return None
        tx, height, index, record, _ = located
        return self._tx_json(tx, height, record.block.hash, index)

    def eth_get_transaction_receipt(self, params: list[Any]) -> dict[str, Any] | None:
        tx_hash = parse_data(_param(params, 0), "transaction hash", 32)
        located = self._located(tx_hash)
        if located is None:
            return None
        tx, height, index, record, (_, _, _code, _log, events) = located
        ev = _evm_event(events) or {}
        logs = _logs_of(events)
        first = ev.get("first_log_index", 0)
        contract = ev.get("contract")
        return {
            "transactionHash": data(tx.hash),
            "transactionIndex": qty(index),
            "blockHash": data(record.block.hash),
            "blockNumber": qty(height),
            "from": data(tx.sender_address),
            "to": data(bytes(tx.eth.to)) if tx.eth.to else None,
            "cumulativeGasUsed": qty(ev.get("cumulative_gas_used", 0)),
            "gasUsed": qty(ev.get("gas_used", 0)),
            "effectiveGasPrice": qty(ev.get("effective_gas_price", 0)),
            "contractAddress": data(contract) if contract else None,
            "logs": [
                _log_json(log, height, record.block.hash, tx.hash, index, first + k)
                for k, log in enumerate(logs)
            ],
            "logsBloom": _bloom(logs),
            "status": qty(ev.get("status", 0)),
            "type": qty(getattr(tx.eth, "type_id", None) or 0),
        }

    def eth_get_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        flt = _param(params, 0)
        if not isinstance(flt, dict):
            raise RpcError(-32602, "the filter must be an object")
        extra = set(flt) - {"fromBlock", "toBlock", "address", "topics", "blockHash"}
        if extra:
            raise RpcError(-32602, f"unknown filter fields: {', '.join(sorted(extra))}")
        if "blockHash" in flt:
            block = self.eth_get_block_by_hash([flt["blockHash"], False])
            if block is None:
                raise RpcError(-32000, "unknown block hash")
            lo = hi = int(block["number"], 16)
        else:
            lo = self.block_number(flt.get("fromBlock", "latest"))
            hi = self.block_number(flt.get("toBlock", "latest"))
        addresses = address_filter(flt.get("address"))
        topics = topic_filter(flt.get("topics"))
        return self.logs_between(lo, hi, addresses, topics)

    def logs_between(
        self, lo: int, hi: int, addresses: set[bytes] | None, topics: list[set[bytes] | None]
    ) -> list[dict[str, Any]]:
        """The logs of blocks ``lo`` to ``hi`` that pass the filter: refused when they
        are more than ``MAX_LOG_RESULTS``, pass the answer cap, or the scan runs
        past the request's time budget (each error says how far it got)."""
        out: list[dict[str, Any]] = []
        size = 0
        for number in range(lo, hi + 1):
            if self.budget.stopped():
                raise RpcLimitError(
                    f"the log query from block {lo} reached block {number} of {hi} in its "
                    "time budget: ask for fewer blocks"
                )
            logs = self.block_logs(number, addresses, topics)
            if len(out) + len(logs) > MAX_LOG_RESULTS:
                raise RpcError(
                    -32005,
                    f"query returned more than {MAX_LOG_RESULTS} results; "
                    f"blocks {lo} to {number - 1} hold {len(out)}",
                    {"code": "rpc_limit", "limit": MAX_LOG_RESULTS, "toBlock": qty(number - 1)},
                )
            size += sum(_log_bytes(item) for item in logs)
            if size > self.budget.bytes:
                raise RpcLimitError(
                    f"the logs from block {lo} to {number} pass the answer cap of "
                    f"{MAX_RESPONSE_BYTES} bytes: ask for fewer blocks"
                )
            out.extend(logs)
        return out

    def block_logs(
        self, number: int, addresses: set[bytes] | None, topics: list[set[bytes] | None]
    ) -> list[dict[str, Any]]:
        """The logs of block ``number`` that pass the filter, in log order."""
        record = None if self.undone(number) else self.record(number)
        if record is None:
            return []
        out = []
        k = 0
        for i, tx in self._eth_txs(record):
            found = self.receipt_of(tx.hash)
            if found is None:
                continue
            for log in _logs_of(found[4]):
                if _matches(log, addresses, topics):
                    out.append(_log_json(log, number, record.block.hash, tx.hash, i, k))
                k += 1
        return out

    def eth_fee_history(self, params: list[Any]) -> dict[str, Any]:
        raw_count = _param(params, 0)
        if isinstance(raw_count, int) and not isinstance(raw_count, bool):
            count = raw_count
        else:
            count = parse_qty(raw_count, "block count")
        if count < 1:
            raise RpcError(-32602, f"block count must be at least 1, got {count}")
        count = min(count, MAX_FEE_HISTORY)
        newest = self.block_number(_param(params, 1, "latest"))
        percentiles = reward_percentiles(_param(params, 2, None))
        oldest = max(0, newest - count + 1)
        n = newest - oldest + 1
        base = self.node.chain.params.evm_base_fee
        limit = self.node.chain.params.evm_block_gas_limit
        ratios = []
        for number in range(oldest, newest + 1):
            self.budget.check()
            block = self._block_json(number, False)
            used = int(block["gasUsed"], 16) if block else 0
            ratios.append(used / limit if limit else 0.0)
        out: dict[str, Any] = {
            "oldestBlock": qty(oldest),
            "baseFeePerGas": [qty(base)] * (n + 1),
            "gasUsedRatio": ratios,
        }
        if percentiles:
            out["reward"] = [[qty(SUGGESTED_TIP)] * len(percentiles) for _ in range(n)]
        return out

    # --- polled filters (api.evm_filters) ----------------------------------------
    def _log_match(self, flt: dict[str, Any]) -> Match:
        extra = set(flt) - {"fromBlock", "toBlock", "address", "topics"}
        if extra:
            raise RpcError(-32602, f"unknown filter fields: {', '.join(sorted(extra))}")
        return address_filter(flt.get("address")), topic_filter(flt.get("topics"))

    def eth_new_filter(self, params: list[Any]) -> str:
        raw = _param(params, 0)
        if not isinstance(raw, dict):
            raise RpcError(-32602, "the filter must be an object")
        match = self._log_match(raw)
        head = self.head()
        start = self._filter_bound(raw.get("fromBlock"), None)
        end = self._filter_bound(raw.get("toBlock"), None)
        flt = Filter(
            self.budget.client, "logs", max(start or 0, head + 1), to_block=end, match=match,
            from_block=start,
        )  # fmt: skip
        return FILTERS.add(flt)

    def _filter_bound(self, tag: Any, latest: int | None) -> int | None:
        """A filter's block bound: a number (it may lie ahead of the head),
        ``earliest``, or ``latest`` and the tags of the head, given as ``latest``
        (None: the head when the filter is read, as geth's)."""
        if tag in (None, "latest", "pending", "safe", "finalized"):
            return latest
        if tag == "earliest":
            return 0
        return parse_qty(tag, "block number")

    def eth_new_block_filter(self, params: list[Any]) -> str:
        return FILTERS.add(Filter(self.budget.client, "blocks", self.head() + 1))

    def _filter(self, params: list[Any]) -> Filter:
        try:
            return FILTERS.get(_param(params, 0))
        except FilterNotFoundError:
            raise RpcError(-32000, "filter not found") from None

    def eth_get_filter_changes(self, params: list[Any]) -> list[Any]:
        flt = self._filter(params)
        with flt.lock:
            if flt.kind == "blocks":
                return self._new_blocks(flt)
            return self._new_logs(flt)

    def _new_blocks(self, flt: Filter) -> list[Any]:
        """The hashes of the blocks after ``flt``'s cursor, at most
        ``MAX_FILTER_CHANGES``, moving it past them."""
        head = self.head()
        hashes: list[str] = []
        while flt.block <= head and len(hashes) < MAX_FILTER_CHANGES:
            if self.budget.stopped():
                break
            record = self.record(flt.block)
            if record is not None:
                hashes.append(data(record.block.hash))
            flt.block += 1
        return hashes

    def _new_logs(self, flt: Filter) -> list[Any]:
        """The logs after ``flt``'s cursor that pass it, at most
        ``MAX_FILTER_CHANGES`` (a block's may be split), moving it past them."""
        head = self.head()
        end = head if flt.to_block is None else min(head, flt.to_block)
        out: list[dict[str, Any]] = []
        while flt.block <= end and not self.budget.stopped():
            logs = self.block_logs(flt.block, *flt.match)[flt.skip :]
            room = MAX_FILTER_CHANGES - len(out)
            if len(logs) > room:
                out.extend(logs[:room])
                flt.skip += room
                break
            out.extend(logs)
            flt.block += 1
            flt.skip = 0
        return out

    def eth_get_filter_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        flt = self._filter(params)
        if flt.kind != "logs":
            raise RpcError(-32000, "filter not found: eth_getFilterLogs reads log filters")
        head = self.head()
        start = head if flt.from_block is None else flt.from_block
        end = head if flt.to_block is None else min(head, flt.to_block)
        return self.logs_between(start, end, *flt.match)

    def eth_uninstall_filter(self, params: list[Any]) -> bool:
        return FILTERS.remove(_param(params, 0))

    # --- proofs and traces ----------------------------------------------------------
    def eth_get_proof(self, params: list[Any]) -> dict[str, Any]:
        """The account's and the slots' values with the chain's sparse-Merkle proofs
        against the head's state root (docs/evm.md, *Proofs*: not Merkle-Patricia)."""
        address = parse_address(_param(params, 0))
        slots_raw = _param(params, 1)
        if not isinstance(slots_raw, list) or len(slots_raw) > MAX_PROOF_SLOTS:
            raise RpcError(-32602, f"storage keys must be a list of at most {MAX_PROOF_SLOTS}")
        slots = [int.from_bytes(parse_data(k, "storage key", 32), "big") for k in slots_raw]
        self.state_height(_param(params, 2, "latest"))
        from eth_hash.auto import keccak

        with self.node.chain.reader() as r:
            height, root = r.height, r.root
            account = get_account(r, address)
            parts = [_proof_part(r, account_key(address)), _proof_part(r, code_key(address))]
            parts += [_proof_part(r, storage_key(address, slot)) for slot in slots]
            code = r.get(code_key(address)) or b""
        storage = []
        for raw_key, part in zip(slots_raw, parts[2:], strict=True):
            value = bytes.fromhex(part["value"]) if part["value"] else b""
            storage.append(
                {"key": raw_key, "value": qty(int.from_bytes(value, "big")),
                 "proof": ["0x" + part["proof"]]}
            )  # fmt: skip
        return {
            "address": data(address),
            "balance": qty(account.balance),
            "nonce": qty(account.nonce),
            "codeHash": data(keccak(code)),
            "storageHash": data(root),
            "accountProof": ["0x" + parts[0]["proof"], "0x" + parts[1]["proof"]],
            "storageProof": storage,
            "focusflow": {"height": qty(height), "stateRoot": data(root), "proofs": parts},
        }

    def debug_trace_transaction(self, params: list[Any]) -> dict[str, Any]:
        """geth's struct-log trace of a transaction an anvil devnet ran (``vm.evm_trace``)."""
        tx_hash = parse_data(_param(params, 0), "transaction hash", 32)
        options = _param(params, 1, None) or {}
        if not isinstance(options, dict):
            raise RpcError(-32602, "the trace options must be an object")
        if options.get("tracer") not in (None, "structLogger", ""):
            raise RpcError(
                -32602, f"tracer {quote(options['tracer'])}: only the struct logger is served"
            )
        store = evm_trace.installed()
        if store is None:
            raise dev_only("debug_traceTransaction")
        located = self._located(tx_hash)
        if located is None:
            raise RpcError(-32000, f"transaction {data(tx_hash)} not found")
        trace = store.get(tx_hash)
        if trace is None:
            raise RpcError(
                -32000,
                f"the trace of {data(tx_hash)} is not kept: the node keeps those of the "
                f"last {store.keep} transactions it ran",
            )
        ev = _evm_event(located[4][4]) or {}
        stack = not options.get("disableStack", False)
        logs = []
        for pc, op, gas, cost, depth, items in trace.steps:
            step: dict[str, Any] = {"pc": pc, "op": op, "gas": gas, "gasCost": cost, "depth": depth}
            if stack:
                step["stack"] = [qty(v) for v in items]
            logs.append(step)
        return {
            "gas": ev.get("gas_used", 0),
            "failed": not ev.get("status", 0),
            "returnValue": trace.output.hex(),
            "structLogs": logs,
            "truncated": trace.truncated,
        }


_CALL_FIELDS = {
    "from", "to", "data", "input", "value", "gas", "gasPrice",
    "maxFeePerGas", "maxPriorityFeePerGas", "nonce", "type", "chainId", "accessList",
}  # fmt: skip


def _optional(
    call: dict[str, Any], name: str, parse: Callable[[Any, str], _T], default: _D
) -> _T | _D:
    """``parse`` of a call field, or ``default`` when it is absent or null."""
    value = call.get(name)
    return default if value is None else parse(value, name)


def reward_percentiles(value: Any) -> list[float]:
    """``eth_feeHistory``'s reward percentiles: at most ``MAX_REWARD_PERCENTILES``
    numbers in [0, 100], each above the one before (geth's rules); none for null."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RpcError(-32602, "reward percentiles must be a list of numbers")
    if len(value) > MAX_REWARD_PERCENTILES:
        raise RpcError(
            -32602,
            f"{len(value)} reward percentiles: at most {MAX_REWARD_PERCENTILES} are taken",
        )
    out: list[float] = []
    for i, p in enumerate(value):
        if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
            raise RpcError(-32602, f"reward percentile {i} must be a number, got {quote(p)}")
        if not 0 <= p <= 100:
            raise RpcError(-32602, f"reward percentile {i} must be in [0, 100], got {p}")
        if out and p <= out[-1]:
            raise RpcError(-32602, f"reward percentile {i} ({p}) is not above the one before")
        out.append(float(p))
    return out


def _proof_part(reader: Any, key: bytes) -> dict[str, Any]:
    """``{key, value, proof}`` of one state key, hex, as ``GET /v1/proofs`` answers and
    ``light.answers.proven_value`` verifies (value None: the key is absent)."""
    value, proof = reader.prove(key)
    return {
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "proof": proof.encode().hex(),
    }


def dev_mode(node: Any) -> DevMode | None:
    """The node's anvil powers: only a devnet started with ``--anvil`` (which holds a
    ``DevMode``) whose genesis grants them and whose set is one validator has them."""
    dev = getattr(node, "dev", None)
    if not isinstance(dev, DevMode):
        return None
    chain = node.chain
    if not dev_powers(chain.params) or len(chain.validators.validators) != 1:
        return None
    return dev


def dev_only(method: str) -> RpcError:
    """The answer to a dev power asked of a node that has none: method not available."""
    return RpcError(
        -32601,
        f"the method {quote(method)} is not available: it is a dev power of a devnet "
        "started with `focusflow devnet --anvil` (docs/evm.md)",
        {"code": DevOnlyError.code},
    )


def _log_bytes(item: dict[str, Any]) -> int:
    """A little more than the bytes a log takes in an answer: its keys, its
    strings with their quotes and commas, its topics."""
    strings = sum(len(v) + 3 for v in item.values() if isinstance(v, str))
    return 160 + strings + sum(len(t) + 3 for t in item["topics"])


def _evm_event(events: list[Any]) -> dict[str, Any] | None:
    for ev in events:
        if isinstance(ev, dict) and ev.get("type") == "evm":
            return ev
    return None


def _logs_of(events: list[Any]) -> list[_RawLog]:
    ev = _evm_event(events)
    if ev is None:
        return []
    return [(bytes(a), [bytes(t) for t in topics], bytes(d)) for a, topics, d in ev["logs"]]


def _bloom(logs: list[_RawLog]) -> str:
    if not logs:
        return _EMPTY_BLOOM
    from eth_bloom.bloom import BloomFilter

    bloom = BloomFilter()
    for address, topics, _ in logs:
        bloom.add(address)
        for t in topics:
            bloom.add(t)
    return data(int(bloom).to_bytes(256, "big"))


def _log_json(
    log: _RawLog, height: int, block_hash: bytes, tx_hash: bytes, index: int, log_index: int
) -> dict[str, Any]:
    address, topics, payload = log
    return {
        "address": data(address),
        "topics": [data(t) for t in topics],
        "data": data(payload),
        "blockNumber": qty(height),
        "blockHash": data(block_hash),
        "transactionHash": data(tx_hash),
        "transactionIndex": qty(index),
        "logIndex": qty(log_index),
        "removed": False,
    }


def address_filter(value: Any) -> set[bytes] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return {parse_address(v) for v in value}
    return {parse_address(value)}


def topic_filter(value: Any) -> list[set[bytes] | None]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 4:
        raise RpcError(-32602, "topics must be a list of at most 4 entries")
    out: list[set[bytes] | None] = []
    for entry in value:
        if entry is None:
            out.append(None)
        elif isinstance(entry, list):
            out.append({parse_data(t, "topic", 32) for t in entry})
        else:
            out.append({parse_data(entry, "topic", 32)})
    return out


def _matches(log: _RawLog, addresses: set[bytes] | None, topics: list[set[bytes] | None]) -> bool:
    address, log_topics, _ = log
    if addresses is not None and address not in addresses:
        return False
    for i, want in enumerate(topics):
        if want is None:
            continue
        if i >= len(log_topics) or log_topics[i] not in want:
            return False
    return True


METHODS: dict[str, Callable[[EvmRpc, list[Any]], Any]] = {
    "eth_accounts": EvmRpc.eth_accounts,
    "eth_blockNumber": EvmRpc.eth_block_number,
    "eth_call": EvmRpc.eth_call,
    "eth_chainId": EvmRpc.eth_chain_id,
    "eth_estimateGas": EvmRpc.eth_estimate_gas,
    "eth_feeHistory": EvmRpc.eth_fee_history,
    "eth_gasPrice": EvmRpc.eth_gas_price,
    "eth_getBalance": EvmRpc.eth_get_balance,
    "eth_getBlockByHash": EvmRpc.eth_get_block_by_hash,
    "eth_getBlockByNumber": EvmRpc.eth_get_block_by_number,
    "eth_getCode": EvmRpc.eth_get_code,
    "eth_getLogs": EvmRpc.eth_get_logs,
    "eth_newFilter": EvmRpc.eth_new_filter,
    "eth_newBlockFilter": EvmRpc.eth_new_block_filter,
    "eth_getFilterChanges": EvmRpc.eth_get_filter_changes,
    "eth_getFilterLogs": EvmRpc.eth_get_filter_logs,
    "eth_uninstallFilter": EvmRpc.eth_uninstall_filter,
    "eth_getProof": EvmRpc.eth_get_proof,
    "debug_traceTransaction": EvmRpc.debug_trace_transaction,
    "eth_getStorageAt": EvmRpc.eth_get_storage_at,
    "eth_getTransactionByHash": EvmRpc.eth_get_transaction_by_hash,
    "eth_getTransactionCount": EvmRpc.eth_get_transaction_count,
    "eth_getTransactionReceipt": EvmRpc.eth_get_transaction_receipt,
    "eth_maxPriorityFeePerGas": EvmRpc.eth_max_priority_fee_per_gas,
    "eth_syncing": EvmRpc.eth_syncing,
    "net_listening": EvmRpc.net_listening,
    "net_version": EvmRpc.net_version,
    "web3_clientVersion": EvmRpc.web3_client_version,
}


async def send_raw(rpc: EvmRpc, params: list[Any]) -> str:
    raw = parse_data(_param(params, 0), "transaction")
    try:
        tx = await rpc.node.admit(raw)
    except TxError as exc:
        raise RpcError(-32000, f"{exc.message}", {"code": exc.code}) from None
    except FocusflowError as exc:
        raise RpcError(
            -32602 if exc.code == "malformed" else -32000, exc.message, {"code": exc.code}
        ) from None
    return data(tx.hash)


#: The methods that run the EVM: in ``evm_budget.WORKERS``, not the server's threads.
EVM_METHODS = {"eth_call", "eth_estimateGas"}


def valid_id(rid: Any) -> bool:
    """A request id as JSON-RPC 2.0 allows it: a string, a finite number or null."""
    if rid is None or isinstance(rid, str):
        return True
    if isinstance(rid, bool):
        return False
    return isinstance(rid, int) or (isinstance(rid, float) and math.isfinite(rid))


def _reply(rid: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": error.to_json()}


def limit_error(exc: RpcBusyError | RpcLimitError) -> RpcError:
    """``-32005`` (limit exceeded) with the budget's code, and for a busy node
    how long to wait."""
    detail: dict[str, Any] = {"code": exc.code}
    if isinstance(exc, RpcBusyError):
        detail["retry_after"] = exc.retry_after
    return RpcError(-32005, exc.message, detail)


async def _dispatch(rpc: EvmRpc, method: str, params: list[Any]) -> Any:
    if method == "eth_sendRawTransaction":
        tx_hash = await send_raw(rpc, params)
        if dev_mode(rpc.node) is not None:
            # An anvil devnet answers once the transaction is mined, as anvil does.
            from focusflow.api.evm_dev import automine_wait

            await automine_wait(rpc, tx_hash)
        return tx_hash
    if method in EVM_METHODS:
        return await WORKERS.run(rpc.budget, METHODS[method], rpc, params)
    if method in METHODS:
        return await run_in_threadpool(METHODS[method], rpc, params)
    # The dev methods' module builds on this one: imported here, where it is used.
    from focusflow.api.evm_dev import DEV_METHODS

    if method in DEV_METHODS:
        return await DEV_METHODS[method](rpc, params)
    raise RpcError(-32601, f"the method {quote(method)} does not exist/is not available")


async def answer(rpc: EvmRpc, request: Any) -> dict[str, Any]:
    """The reply to one request, never an exception: what a method refuses is a
    JSON-RPC error with its code; an unexpected failure is ``-32603``, logged."""
    if (
        not isinstance(request, dict)
        or request.get("jsonrpc") != "2.0"
        or not isinstance(request.get("method"), str)
        or not valid_id(request.get("id"))
    ):
        return _reply(None, RpcError(-32600, "invalid request"))
    rid = request.get("id")
    params = request.get("params", [])
    try:
        if not isinstance(params, list):
            raise RpcError(-32602, "params must be a list")
        rpc.budget.check()
        result = await _dispatch(rpc, request["method"], params)
    except RpcError as exc:
        return _reply(rid, exc)
    except (RpcBusyError, RpcLimitError) as exc:
        return _reply(rid, limit_error(exc))
    except FocusflowError as exc:
        return _reply(rid, RpcError(-32000, exc.message, {"code": exc.code}))
    except Exception:
        log.exception("evm rpc %s failed", quote(request["method"]))
        return _reply(rid, RpcError(-32603, "internal error"))
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def encode(budget: Budget, reply: Any) -> bytes:
    """``reply`` as JSON, charged to the budget's answer bytes; an answer over
    what is left (or holding a number JSON cannot write) is replaced by its
    error, with the same id."""
    rid = reply.get("id") if isinstance(reply, dict) else None
    rid = rid if valid_id(rid) else None
    try:
        body = json.dumps(reply, allow_nan=False, separators=(",", ":")).encode()
    except ValueError:
        body = _error_bytes(rid, RpcError(-32603, "the answer holds a number JSON cannot write"))
    if len(body) > budget.bytes:
        limit = RpcLimitError(
            f"the answer of {len(body)} bytes passes what is left of the "
            f"{MAX_RESPONSE_BYTES}-byte answer cap"
        )
        body = _error_bytes(rid, limit_error(limit))
    budget.bytes -= len(body)
    return body


def _error_bytes(rid: Any, error: RpcError) -> bytes:
    return json.dumps(_reply(rid, error), separators=(",", ":")).encode()


One = Callable[[EvmRpc, Any], Awaitable[Any]]


async def respond(rpc: EvmRpc, payload: Any, one: One = answer) -> bytes:
    """The JSON answer to a parsed request or batch, ``one`` answering each
    request; a batch's items share the request's budget, and once it is spent
    the rest answer ``rpc_limit`` without running."""
    if not isinstance(payload, list):
        return encode(rpc.budget, await one(rpc, payload))
    if not payload or len(payload) > MAX_BATCH:
        error = RpcError(-32600, f"a batch holds 1 to {MAX_BATCH} requests")
        return encode(rpc.budget, _reply(None, error))
    parts = [encode(rpc.budget, await one(rpc, request)) for request in payload]
    return b"[" + b",".join(parts) + b"]"


async def _watch(request: Request, budget: Budget) -> None:
    """Mark the budget gone when the client disconnects (the work stops there)."""
    while not await request.is_disconnected():
        await asyncio.sleep(DISCONNECT_POLL_S)
    budget.gone = True


@router.post("/evm", include_in_schema=False)
async def evm_rpc(request: Request) -> Response:
    """Ethereum JSON-RPC (module docstring)."""
    client = request.client.host if request.client else "unknown"
    rpc = EvmRpc(app_state(request).node, Budget.start(client))
    body = await request.body()
    try:
        payload = parse_json(body)
    except DecodeError:
        content = encode(rpc.budget, _reply(None, RpcError(-32700, "parse error")))
        return Response(content, media_type="application/json")
    watcher = asyncio.create_task(_watch(request, rpc.budget))
    try:
        content = await respond(rpc, payload)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return Response(content, media_type="application/json")
