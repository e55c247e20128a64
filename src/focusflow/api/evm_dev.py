"""The anvil dev methods of ``/evm``: what a hardhat or foundry test suite calls.

``eth_sendTransaction`` (signed here with an unlocked test account's key),
``evm_mine`` / ``anvil_mine`` / ``hardhat_mine`` (blocks on demand),
``evm_increaseTime`` and ``evm_setNextBlockTimestamp`` (the devnet's clock),
``anvil_setBalance`` / ``hardhat_setBalance`` (an ``evm.set_balance``
transaction of the dev key), ``evm_snapshot`` / ``evm_revert`` (the EVM state
saved, then written back by an ``evm.restore`` transaction: a block forward,
not a rewind, as a committed block is final; the undone blocks' transactions
and logs are hidden from the RPC: docs/evm.md says what that means), and
``anvil_impersonateAccount``. They exist only on a devnet started with
``--anvil`` whose genesis grants the dev powers and whose set is one
validator (``routes_evm.dev_mode``); anywhere else each answers ``-32601`` with
``data.code`` ``dev_only`` and changes nothing. Every change of state they ask
for comes in a block: the methods that wait for theirs answer once it is
served, or ``rpc_limit`` when ``DEV_WAIT_S`` passes first (the blocks still
come).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from focusflow.api.evm_budget import WORKERS, RpcLimitError
from focusflow.api.routes_evm import (
    SUGGESTED_TIP,
    EvmRpc,
    RpcError,
    _param,
    data,
    dev_mode,
    dev_only,
    parse_address,
    parse_data,
    parse_qty,
    qty,
    quote,
    send_raw,
)
from focusflow.chain.devmode import MAX_MINE_BLOCKS, MAX_SNAPSHOT_KEYS, MAX_TIME_SHIFT_S, DevMode
from focusflow.chain.eth_tx import sign_eth_tx
from focusflow.chain.tx import Msg
from focusflow.modules import CALL_AS, RESTORABLE, RESTORE, SET_BALANCE
from focusflow.vm.evm_keys import ACCOUNT_PREFIX

#: Longest a dev method waits for the blocks it asked for (seconds).
DEV_WAIT_S = 120.0
#: Longest a sent transaction's answer waits for its block (seconds): anvil
#: answers once it has mined the transaction, and ethers' ``tx.wait()`` counts
#: on it (it watches only the blocks made after it asked, and on demand no
#: block may come after); a transaction that is not ready (a nonce gap)
#: answers after this.
AUTOMINE_WAIT_S = 2.0
#: How often it looks whether they are served.
DEV_POLL_S = 0.01
#: Most bytes of state one ``evm_revert`` writes back (one transaction holds them).
MAX_RESTORE_BYTES = 900_000
#: The fields ``eth_sendTransaction`` takes.
_SEND_FIELDS = {
    "from", "to", "data", "input", "value", "gas", "gasPrice", "maxFeePerGas",
    "maxPriorityFeePerGas", "nonce", "type", "chainId", "accessList",
}  # fmt: skip


def _dev(rpc: EvmRpc, method: str) -> DevMode:
    dev = dev_mode(rpc.node)
    if dev is None:
        raise dev_only(method)
    return dev


def _seconds(value: Any, what: str) -> int:
    """A number of seconds as tools send it: a JSON integer or a hex quantity."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        seconds = parse_qty(value, what)
    if not 0 <= seconds <= MAX_TIME_SHIFT_S * 2:
        raise RpcError(-32602, f"{what} must be between 0 and {MAX_TIME_SHIFT_S * 2}")
    return seconds


async def _wait_for_height(rpc: EvmRpc, height: int) -> None:
    """Until the served head reaches ``height`` (RpcLimitError after DEV_WAIT_S or
    when the client has gone)."""
    deadline = time.monotonic() + DEV_WAIT_S
    while rpc.head() < height:
        if rpc.budget.gone:
            raise RpcLimitError("the client is gone")
        if time.monotonic() > deadline:
            raise RpcLimitError(
                f"block {height} was not served within {DEV_WAIT_S:g} s (head {rpc.head()}); "
                "the blocks asked for still come"
            )
        await asyncio.sleep(DEV_POLL_S)


async def _wait_for_tx(rpc: EvmRpc, tx_hash: bytes) -> None:
    deadline = time.monotonic() + DEV_WAIT_S
    while rpc.receipt_of(tx_hash) is None:
        if rpc.budget.gone or time.monotonic() > deadline:
            raise RpcLimitError(f"transaction {data(tx_hash)} was not served in time")
        await asyncio.sleep(DEV_POLL_S)


async def automine_wait(rpc: EvmRpc, tx_hash: str) -> None:
    """Until the transaction ``tx_hash`` (hex) is served in a block, at most
    ``AUTOMINE_WAIT_S``: an anvil devnet answers a sent transaction once mined."""
    raw = bytes.fromhex(tx_hash[2:])
    deadline = time.monotonic() + AUTOMINE_WAIT_S
    while rpc.receipt_of(raw) is None and time.monotonic() < deadline and not rpc.budget.gone:
        await asyncio.sleep(DEV_POLL_S)


async def mine(rpc: EvmRpc, params: list[Any]) -> str:
    """``evm_mine [timestamp]``: one block (stamped ``timestamp`` when given)."""
    dev = _dev(rpc, "evm_mine")
    stamp = _param(params, 0, None)
    if isinstance(stamp, dict):  # hardhat's {timestamp, blocks} form
        raise RpcError(-32602, "evm_mine takes a timestamp; anvil_mine takes a block count")
    if stamp is not None:
        dev.set_next_time(_seconds(stamp, "timestamp"))
    target = rpc.head() + 1
    dev.ask_blocks(1)
    await _wait_for_height(rpc, target)
    return "0x0"


async def mine_blocks(rpc: EvmRpc, params: list[Any]) -> None:
    """``anvil_mine [count, interval]`` (``hardhat_mine``): ``count`` blocks (1 when
    absent), stamped by the devnet's clock: an ``interval`` over 1 s is refused
    (move the clock with ``evm_increaseTime``)."""
    dev = _dev(rpc, "anvil_mine")
    raw = _param(params, 0, None)
    count = 1 if raw is None else _seconds(raw, "block count")
    if not 1 <= count <= MAX_MINE_BLOCKS:
        raise RpcError(-32602, f"block count must be 1 to {MAX_MINE_BLOCKS}, got {count}")
    interval = _param(params, 1, None)
    if interval is not None and _seconds(interval, "interval") > 1:
        raise RpcError(
            -32602,
            "anvil_mine's interval: blocks are stamped with the devnet's clock; "
            "move it with evm_increaseTime",
        )
    target = rpc.head() + count
    dev.ask_blocks(count)
    await _wait_for_height(rpc, target)


async def increase_time(rpc: EvmRpc, params: list[Any]) -> int:
    """``evm_increaseTime [seconds]``: the next blocks' time moves ahead; answers
    the whole shift in seconds."""
    dev = _dev(rpc, "evm_increaseTime")
    return dev.increase_time(_seconds(_param(params, 0), "seconds"))


async def set_next_timestamp(rpc: EvmRpc, params: list[Any]) -> None:
    """``evm_setNextBlockTimestamp [timestamp]``: the next block's time, after the head's."""
    dev = _dev(rpc, "evm_setNextBlockTimestamp")
    stamp = _seconds(_param(params, 0), "timestamp")
    head = rpc.node.chain.head.time_ms // 1000
    if stamp <= head:
        raise RpcError(
            -32602,
            f"timestamp {stamp} is not after the head block's ({head}): block times increase",
        )
    dev.set_next_time(stamp)


async def set_balance(rpc: EvmRpc, params: list[Any]) -> None:
    """``anvil_setBalance [address, balance]``: an ``evm.set_balance`` transaction of
    the dev key; answers once a block has carried it."""
    dev = _dev(rpc, "anvil_setBalance")
    address = parse_address(_param(params, 0))
    balance = parse_qty(_param(params, 1), "balance")
    msg = Msg(SET_BALANCE, {"address": address, "balance": balance.to_bytes(32, "big")})
    tx = await run_in_threadpool(dev.submit, [msg])
    await _wait_for_tx(rpc, tx.hash)


async def send_transaction(rpc: EvmRpc, params: list[Any]) -> str:
    """``eth_sendTransaction [call]``: the call as an EIP-1559 transaction signed with
    its ``from`` account's key, which must be an unlocked test account."""
    dev = _dev(rpc, "eth_sendTransaction")
    call = _param(params, 0)
    if not isinstance(call, dict):
        raise RpcError(-32602, "the transaction must be an object")
    extra = set(call) - _SEND_FIELDS
    if extra:
        raise RpcError(
            -32602, f"unknown transaction fields: {', '.join(map(quote, sorted(extra)))}"
        )
    sender = parse_address(call.get("from"), "from")
    key = dev.unlocked.get(sender)
    if key is None and sender in dev.impersonated:
        return await _send_as(rpc, dev, sender, call)
    if key is None:
        raise RpcError(
            -32000,
            f"{data(sender)} is not an unlocked account: sign it yourself",
            {"code": "dev_only"},
        )
    to = None if call.get("to") is None else parse_address(call["to"], "to")
    payload = call.get("data", call.get("input"))
    code = b"" if payload is None else parse_data(payload, "data")
    value = 0 if call.get("value") is None else parse_qty(call["value"], "value")
    base = rpc.node.chain.params.evm_base_fee
    tip = _field(call, "maxPriorityFeePerGas", SUGGESTED_TIP)
    price = call.get("gasPrice")
    if price is not None:
        max_fee = tip = parse_qty(price, "gasPrice")
    else:
        max_fee = _field(call, "maxFeePerGas", 2 * base + tip)
    if call.get("gas") is not None:
        gas = parse_qty(call["gas"], "gas")
    else:
        estimate = {k: call[k] for k in ("from", "to", "data", "input", "value") if k in call}
        gas = int(await WORKERS.run(rpc.budget, EvmRpc.eth_estimate_gas, rpc, [estimate]), 16)
    if call.get("nonce") is not None:
        nonce = parse_qty(call["nonce"], "nonce")
    else:
        nonce = await run_in_threadpool(rpc.node.next_nonce, sender)
    raw = sign_eth_tx(
        key, chain_id=rpc.chain_id, nonce=nonce, to=to, value=value, data=code, gas=gas,
        max_fee=max_fee, tip=min(tip, max_fee),
    )  # fmt: skip
    tx_hash = await send_raw(rpc, [data(raw)])
    await automine_wait(rpc, tx_hash)
    return tx_hash


async def _send_as(rpc: EvmRpc, dev: DevMode, sender: bytes, call: dict[str, Any]) -> str:
    """The call as an ``evm.call_as`` transaction of the dev key: it runs as a
    transaction of the impersonated ``sender``; answers that transaction's hash,
    which the receipt and transaction methods know."""
    to = None if call.get("to") is None else parse_address(call["to"], "to")
    payload = call.get("data", call.get("input"))
    code = b"" if payload is None else parse_data(payload, "data")
    value = 0 if call.get("value") is None else parse_qty(call["value"], "value")
    if call.get("gas") is not None:
        gas = parse_qty(call["gas"], "gas")
    else:
        estimate = {k: call[k] for k in ("from", "to", "data", "input", "value") if k in call}
        gas = int(await WORKERS.run(rpc.budget, EvmRpc.eth_estimate_gas, rpc, [estimate]), 16)
    if gas >= 2**64:
        raise RpcError(-32602, f"gas {gas} is over 2**64")
    body = {"from": sender, "to": to or b"", "value": value.to_bytes(32, "big"), "data": code,
            "gas": gas}  # fmt: skip
    tx = await run_in_threadpool(dev.submit, [Msg(CALL_AS, body)])
    await automine_wait(rpc, data(tx.hash))
    return data(tx.hash)


async def impersonate(rpc: EvmRpc, params: list[Any]) -> None:
    """``anvil_impersonateAccount [address]``: ``eth_sendTransaction`` from it runs
    without its key."""
    _dev(rpc, "anvil_impersonateAccount").impersonated.add(parse_address(_param(params, 0)))


async def stop_impersonating(rpc: EvmRpc, params: list[Any]) -> None:
    """``anvil_stopImpersonatingAccount [address]``."""
    dev = _dev(rpc, "anvil_stopImpersonatingAccount")
    dev.impersonated.discard(parse_address(_param(params, 0)))


def _field(call: dict[str, Any], name: str, default: int) -> int:
    return default if call.get(name) is None else parse_qty(call[name], name)


def _evm_state(rpc: EvmRpc) -> tuple[int, dict[bytes, bytes]]:
    """The state ``evm.restore`` writes (accounts, code, storage) and the height it
    was read at; RpcLimitError past ``MAX_SNAPSHOT_KEYS`` keys."""
    out: dict[bytes, bytes] = {}
    with rpc.node.chain.reader() as r:
        height = r.height
        for prefix in RESTORABLE:
            for key, value in r.items(prefix):
                out[bytes(key)] = bytes(value)
                if len(out) > MAX_SNAPSHOT_KEYS:
                    raise RpcLimitError(
                        f"the EVM state holds more than {MAX_SNAPSHOT_KEYS} keys: "
                        "too many to snapshot"
                    )
    return height, out


async def snapshot(rpc: EvmRpc, params: list[Any]) -> str:
    """``evm_snapshot``: save the head's EVM state; answers its id."""
    dev = _dev(rpc, "evm_snapshot")
    height, state = await run_in_threadpool(_evm_state, rpc)
    return qty(dev.save(height, state))


def _restore_writes(
    saved: dict[bytes, bytes], now: dict[bytes, bytes], own: frozenset[bytes]
) -> list[tuple[bytes, bytes | None]]:
    """What turns ``now`` back into ``saved``, leaving the node's own accounts alone."""
    skip = {ACCOUNT_PREFIX + a for a in own}
    writes: list[tuple[bytes, bytes | None]] = []
    for key in sorted(saved.keys() | now.keys()):
        if key in skip or saved.get(key) == now.get(key):
            continue
        writes.append((key, saved.get(key)))
    return writes


async def revert(rpc: EvmRpc, params: list[Any]) -> bool:
    """``evm_revert [id]``: the EVM state of snapshot ``id`` back, by an
    ``evm.restore`` transaction of the dev key; false for an unknown id. The
    snapshot and those after it are used up, as anvil's."""
    dev = _dev(rpc, "evm_revert")
    sid = parse_qty(_param(params, 0), "snapshot id")
    taken = dev.take(sid)
    if taken is None:
        return False
    height, saved = taken
    head, now = await run_in_threadpool(_evm_state, rpc)
    writes = _restore_writes(saved, now, dev.own)
    if not writes:
        dev.undo(height + 1, head)
        return True
    size = sum(len(k) + len(v or b"") + 4 for k, v in writes)
    if size > MAX_RESTORE_BYTES:
        raise RpcLimitError(
            f"the EVM state changed by {size} bytes since snapshot {sid}: more than one "
            f"transaction carries ({MAX_RESTORE_BYTES})"
        )
    msg = Msg(RESTORE, {"writes": [[key, value] for key, value in writes]})
    tx = await run_in_threadpool(dev.submit, [msg])
    await _wait_for_tx(rpc, tx.hash)
    found = rpc.receipt_of(tx.hash)
    dev.undo(height + 1, (found[0] if found else head + 1) - 1)
    return True


DevMethod = Callable[[EvmRpc, list[Any]], Awaitable[Any]]

#: The dev methods, each under the names anvil and hardhat give it.
DEV_METHODS: dict[str, DevMethod] = {
    "eth_sendTransaction": send_transaction,
    "evm_mine": mine,
    "anvil_mine": mine_blocks,
    "hardhat_mine": mine_blocks,
    "evm_increaseTime": increase_time,
    "evm_setNextBlockTimestamp": set_next_timestamp,
    "anvil_setBalance": set_balance,
    "hardhat_setBalance": set_balance,
    "anvil_impersonateAccount": impersonate,
    "hardhat_impersonateAccount": impersonate,
    "anvil_stopImpersonatingAccount": stop_impersonating,
    "hardhat_stopImpersonatingAccount": stop_impersonating,
    "evm_snapshot": snapshot,
    "evm_revert": revert,
}
