"""EVM: Ethereum transactions executed as chain transactions.

Messages
    ``evm.tx``           the one message of an Ethereum transaction
                         (``chain.eth_tx``); its body is empty, the
                         transaction is the signed bytes.
    ``evm.set_balance``  ``{"address": 20 bytes, "balance": 32 bytes}``: set an
                         account's balance (``anvil_setBalance``), on a chain
                         whose genesis grants the dev powers
                         (``evm_dev_powers`` 1) and that one validator decides;
                         anywhere else ``dev_only``.
    ``evm.call_as``      ``{"from", "to", "value", "data", "gas"}``: run a call as
                         a transaction of ``from``, which nobody signed
                         (``anvil_impersonateAccount``); the same dev powers
                         only. Its ``evm`` event also holds the ``nonce`` used.
    ``evm.restore``      ``{"writes": [[key, value or null], ...]}``: put back
                         the EVM's state (keys under ``RESTORABLE``) as an
                         ``evm_snapshot`` saw it (``evm_revert``); the same
                         dev powers only.

Before the EVM runs it, the transaction must be one a block can hold: its
nonce the account's (``bad_nonce``), its max fee per gas at least the base
fee ``evm_base_fee`` (``insufficient_fee``), the balance enough for
``gas * max fee + value`` (``insufficient_funds``), its gas within what the
block has left of ``evm_block_gas_limit`` (``over_limit``; when it would fit an
emptier block it waits in the pool for the next), at least its intrinsic gas
(with 2 per word of a create's initcode), initcode of at most 49,152 bytes
(EIP-3860), a max priority fee no higher than its max fee, and a sender that
holds no code (EIP-3607) (``evm_invalid``). Such a refusal keeps it out of the
block; those the transaction alone decides the mempool refuses too.

Then py-evm runs it (``vm.evm``): the gas is bought, the code runs, unused
gas is refunded, the tip goes to the block's proposer and the base fee is
burned. An execution that reverts or runs out of gas keeps its receipt, with
code ``evm_reverted``: the gas is paid and the nonce used, nothing else of it
stays. Every receipt carries one ``evm`` event: status, gas used, the
block's gas used so far, the index in the block of its first log, the
effective gas price, a created contract's address and the logs (what
``eth_getTransactionReceipt`` returns, without reading the block's other
receipts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from focusflow.chain.errors import (
    BadNonceError,
    BlockFullError,
    EvmInvalidError,
    EvmRevertedError,
    GenesisError,
    InsufficientFundsError,
    MalformedMessageError,
    TxError,
)
from focusflow.chain.eth_tx import EVM_TX, EthTx, check_static, evm_chain_id
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.module_params import ModuleParams, param_section
from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState, Readable
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.core.hashing import sha256
from focusflow.modules import router
from focusflow.modules.accounts import credit, debit, field, set_account
from focusflow.modules.dex import twap_reader
from focusflow.modules.wasm import WasmParams, reserve_block_gas
from focusflow.state_schema.accounts import get_account
from focusflow.vm.evm import (
    EvmBlock,
    EvmValidationError,
    Outcome,
    apply_transaction,
    impersonated,
    packets_of,
)
from focusflow.vm.evm_keys import ACCOUNT_PREFIX, CODE_PREFIX, STORE_PREFIX, code_key


class DevOnlyError(TxError):
    """A dev power (``anvil_setBalance``, ``evm_mine``, unlocked accounts ...) asked
    of a chain that does not grant them: a real chain's RPC never forges state."""

    code = "dev_only"


#: The message that sets an account's balance on a devnet (module docstring).
SET_BALANCE = "evm.set_balance"


@param_section
@dataclass(frozen=True)
class EvmDevParams(ModuleParams):
    """The anvil-like dev powers (docs/evm.md, *Anvil mode*): ``evm_dev_powers`` 1
    lets ``evm.set_balance`` run, which only a devnet's genesis asks for; a
    chain of more than one validator refuses it whatever its genesis says."""

    SECTION = "evm_dev"
    OMITTED_AT_DEFAULT = frozenset({"evm_dev_powers"})

    evm_dev_powers: int = 0

    def check(self) -> None:
        if self.evm_dev_powers not in (0, 1):
            raise GenesisError("params.evm_dev_powers must be 0 or 1")


#: Largest code evm.restore writes back (EIP-170's limit on deployed code).
MAX_RESTORED_CODE = 24_576


def _restore_write(item: object) -> tuple[bytes, tuple[int, int] | bytes | None]:
    """One write of ``evm.restore``, checked to be what the EVM itself could have
    written: an account's ``[balance, nonce, bonded]`` record (its balance and
    nonce taken), code up to EIP-170's size, a storage word as minimal big-endian
    bytes. Anything else would be read back by every later block as a record it
    cannot decode, failing blocks instead of this message."""
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)):
        raise MalformedMessageError("each write of evm.restore is [key, value or null]")
    key, value = item
    if not isinstance(value, bytes | None):
        raise MalformedMessageError("a value of evm.restore is bytes or null")
    if key.startswith(ACCOUNT_PREFIX) and len(key) == len(ACCOUNT_PREFIX) + 20:
        if value is None:
            return key, None
        try:
            record = decode(value, "account")
        except DecodeError:
            record = None
        if not (
            isinstance(record, list)
            and len(record) == 3
            and all(type(v) is int and 0 <= v < 2**256 for v in record)
            and record[1] < 2**64
        ):
            raise MalformedMessageError("an account of evm.restore is [balance, nonce, bonded]")
        return key, (record[0], record[1])
    if key.startswith(CODE_PREFIX) and len(key) == len(CODE_PREFIX) + 20:
        if value is not None and len(value) > MAX_RESTORED_CODE:
            raise MalformedMessageError(f"code of evm.restore is at most {MAX_RESTORED_CODE} bytes")
        return key, value
    if key.startswith(STORE_PREFIX) and len(key) == len(STORE_PREFIX) + 52:
        if value is not None and not (0 < len(value) <= 32 and value[0] != 0):
            raise MalformedMessageError("a storage word of evm.restore is 1 to 32 minimal bytes")
        return key, value
    raise MalformedMessageError(
        f"evm.restore writes accounts, code and storage only, not {key[:40]!r}"
    )


def dev_powers(params: ChainParams) -> bool:
    """Whether the chain's genesis grants the dev powers."""
    return EvmDevParams.of(params).evm_dev_powers == 1


#: The message that runs a call as an impersonated account's transaction.
CALL_AS = "evm.call_as"
#: The message that puts back the EVM state of a snapshot (module docstring).
RESTORE = "evm.restore"
#: The state ``evm.restore`` may write: accounts, contract code and storage.
RESTORABLE = (ACCOUNT_PREFIX, CODE_PREFIX, STORE_PREFIX)


#: The block counter of the gas its Ethereum transactions used.
GAS_COUNTER = "evm_gas"
#: The block counter of the logs its Ethereum transactions emitted.
LOG_COUNTER = "evm_logs"


def evm_block(ctx: BlockContext) -> EvmBlock:
    """The EVM's view of the block being executed."""
    return EvmBlock(
        chain_id=evm_chain_id(ctx.chain_id),
        number=ctx.height,
        timestamp=ctx.time_ms // 1000,
        coinbase=ctx.proposer if len(ctx.proposer) == 20 else b"\0" * 20,
        gas_limit=ctx.params.evm_block_gas_limit,
        base_fee=ctx.params.evm_base_fee,
        prev_randao=sha256(b"focusflow/prevrandao/" + ctx.height.to_bytes(8, "big")),
        focus_of=ctx.focus_of,
        karma_of=ctx.karma_of,
        twap_of=twap_reader(ctx.state, ctx.time_ms, ctx.params),
    )


def effective_gas_price(eth: Any, base_fee: int) -> int:
    """What one unit of gas costs the sender: the legacy price, or base fee plus
    the tip ``min(max priority fee, max fee - base fee)``."""
    max_fee = getattr(eth, "max_fee_per_gas", None)
    tip = getattr(eth, "max_priority_fee_per_gas", None)
    if max_fee is None or tip is None or getattr(eth, "type_id", None) is None:
        return int(eth.gas_price)
    return int(base_fee + min(tip, max_fee - base_fee))


class Evm:
    name = "evm"

    def handlers(self) -> Mapping[str, Handler]:
        return {
            EVM_TX: self.run,
            SET_BALANCE: self.set_balance,
            RESTORE: self.restore,
            CALL_AS: self.call_as,
        }

    @staticmethod
    def _check_dev(ctx: TxContext, msg: str) -> None:
        validators = ctx.block.validators
        if not dev_powers(ctx.params) or validators is None or len(validators.validators) != 1:
            raise DevOnlyError(
                f"{msg} runs only on a devnet of one validator whose genesis sets evm_dev_powers"
            )

    def restore(self, ctx: TxContext, body: MessageBody) -> None:
        """``evm_revert`` as a transaction: the snapshot's accounts, code and storage
        written back, in a block (dev powers only)."""
        self._check_dev(ctx, RESTORE)
        writes = field(body, "writes", list)
        checked = [_restore_write(item) for item in writes]  # all checked, then written
        for key, value in checked:
            if key.startswith(ACCOUNT_PREFIX):
                # balance and nonce as they were; the bonded stake is the staking
                # module's, whose own records the snapshot does not hold
                address = key[len(ACCOUNT_PREFIX) :]
                account = get_account(ctx.state, address)
                account.balance, account.nonce = value if value is not None else (0, 0)
                if account.balance or account.nonce or account.bonded:
                    set_account(ctx.state, address, account)
                else:
                    ctx.state.delete(key)
            elif value is None:
                ctx.state.delete(key)
            else:
                assert isinstance(value, bytes)
                ctx.state.put(key, value)

    def set_balance(self, ctx: TxContext, body: MessageBody) -> None:
        """``anvil_setBalance`` as a transaction: only where the genesis grants the
        dev powers and one validator decides the block (a real chain's RPC must
        never forge balances)."""
        self._check_dev(ctx, SET_BALANCE)
        address = field(body, "address", bytes, size=20)
        balance = int.from_bytes(field(body, "balance", bytes, size=32), "big")
        account = get_account(ctx.state, address)
        account.balance = balance
        set_account(ctx.state, address, account)

    def init_genesis(self, state: PendingState, genesis: Any, deltas: Deltas) -> None:
        """Nothing: the EVM's accounts are the chain's."""

    def end_block(self, ctx: BlockContext) -> None:
        """Nothing at the end of a block."""

    def run(self, ctx: TxContext, body: MessageBody) -> None:
        tx = ctx.tx
        if not isinstance(tx, EthTx) or body:
            raise EvmInvalidError("evm.tx is the message of an Ethereum transaction only")
        self._execute(ctx, tx.eth, tx.sender_address)

    def call_as(self, ctx: TxContext, body: MessageBody) -> None:
        """``anvil_impersonateAccount``'s transaction: the call run as a transaction
        of ``from``, which nobody signed, paying the base fee for its gas (dev
        powers only; the message's sender, the dev key, pays the native fee)."""
        self._check_dev(ctx, CALL_AS)
        sender = field(body, "from", bytes, size=20)
        to = field(body, "to", bytes)
        if len(to) not in (0, 20):
            raise MalformedMessageError("field 'to' must be 20 bytes, or empty for a creation")
        value = int.from_bytes(field(body, "value", bytes, size=32), "big")
        gas = field(body, "gas", int)
        nonce = get_account(ctx.state, sender).nonce
        eth = impersonated(
            evm_chain_id(ctx.block.chain_id), nonce, sender, to or None, value,
            field(body, "data", bytes), gas, ctx.params.evm_base_fee,
        )  # fmt: skip
        self._execute(ctx, eth, sender, nonce=nonce)

    def _execute(self, ctx: TxContext, eth: Any, sender: bytes, **extra: Any) -> None:
        """Run ``eth`` as ``sender``'s Ethereum transaction (module docstring);
        ``extra``: more fields of its ``evm`` event."""
        params = ctx.params
        used = ctx.block.counters.get(GAS_COUNTER, 0)
        check_transaction(
            ctx.state, eth, sender, params.evm_base_fee, params.evm_block_gas_limit, used
        )
        block = evm_block(ctx.block)
        attempt = ctx.state.child()
        assert ctx.tx is not None  # a handler runs a transaction's message
        try:
            out = apply_transaction(attempt, block, eth, trace_key=ctx.tx.hash)
        except EvmValidationError as exc:
            raise EvmInvalidError(f"the EVM refuses the transaction: {exc}") from None
        sent = TxContext(ctx.block, ctx.sender, ctx.tx_index, ctx.msg_index, attempt, tx=ctx.tx)
        failed = _deliver(sent, packets_of(out.logs), params) if out.status else None
        if failed is None:
            ctx.state.merge(attempt)
            ctx.deltas.merge(sent.deltas)
        else:
            _charge_failed(ctx.state, sender, eth, out.gas_used, block)
            out = Outcome(0, out.gas_used, b"", error=failed[1])
        total = used + out.gas_used
        ctx.block.counters[GAS_COUNTER] = total
        first_log = ctx.block.counters.get(LOG_COUNTER, 0)
        ctx.block.counters[LOG_COUNTER] = first_log + len(out.logs)
        ctx.emit(
            "evm",
            status=out.status,
            gas_used=out.gas_used,
            cumulative_gas_used=total,
            first_log_index=first_log,
            effective_gas_price=effective_gas_price(eth, params.evm_base_fee),
            contract=out.contract,
            logs=[[a, [t.to_bytes(32, "big") for t in topics], d] for a, topics, d in out.logs],
            sender=sender,
            to=bytes(eth.to) if eth.to else None,
            **extra,
        )
        if failed is not None:
            ctx.failure = failed
            return
        ctx.events.extend(sent.events)
        if not out.status:
            ctx.failure = (EvmRevertedError.code, out.error)


def _deliver(
    ctx: TxContext, packets: list[tuple[bytes, str, bytes, int]], params: ChainParams
) -> tuple[str, str] | None:
    """Hand a transaction's packets to the router, in the order they were sent;
    ``(code, log)`` of the first that fails, None when all were delivered.

    The EVM gas a packet carries for a contract call becomes WASM gas at the
    price of native calls (``wasm_gas_per_unit`` per base unit, and an EVM gas
    costs at least one), up to ``wasm_max_gas``, and counts against the
    block's ``wasm_block_gas_limit`` as a WASM message's gas does: a packet
    whose gas the block has no room for fails."""
    gas_params = WasmParams.of(params)
    for i, (source, port, packet, gas) in enumerate(packets):
        wasm_gas = min(gas * gas_params.wasm_gas_per_unit, gas_params.wasm_max_gas)
        try:
            if wasm_gas:
                reserve_block_gas(ctx.block, wasm_gas)
            router.deliver(ctx, source, [(port, packet)], wasm_gas)
        except FocusflowError as exc:
            return exc.code, f"packet {i} to {port!r}: {exc.message}"
    return None


def _charge_failed(
    state: PendingState, sender: bytes, eth: Any, gas_used: int, block: EvmBlock
) -> None:
    """What a transaction that reverted after using ``gas_used`` leaves: its gas
    paid at the effective price (the base fee burned, the tip to the
    proposer) and its nonce used. A transaction whose packets fail ends so: the
    execution's writes are dropped, what it cost is not."""
    price = effective_gas_price(eth, block.base_fee)
    account = debit(state, sender, gas_used * price, "gas")
    account.nonce += 1
    set_account(state, sender, account)
    tip = (price - block.base_fee) * gas_used
    if tip > 0:
        credit(state, block.coinbase, tip)


def check_transaction(
    state: Readable, eth: Any, sender: bytes, base_fee: int, gas_limit: int, used: int
) -> None:
    """Raise the refusal that keeps a transaction out of a block whose EVM has used
    ``used`` of ``gas_limit`` gas (module docstring), the checks Ethereum makes
    before execution: first what the transaction alone decides
    (``chain.eth_tx.check_static``, as the mempool checks it: the block's gas
    limit, the fee cap against the base fee, the tip under the cap, initcode
    size, intrinsic gas), then the nonce, the balance for ``gas * max fee +
    value``, the gas the block has left, and a sender that is not a contract
    (EIP-3607)."""
    check_static(eth, base_fee, gas_limit)
    account = get_account(state, sender)
    if eth.nonce != account.nonce:
        raise BadNonceError(f"nonce {eth.nonce}, expected {account.nonce}")
    typed = getattr(eth, "type_id", None) == 2
    max_fee = int(eth.max_fee_per_gas if typed else eth.gas_price)
    cost = eth.gas * max_fee + eth.value
    if account.balance < cost:
        raise InsufficientFundsError(
            f"balance {account.balance} does not cover gas * max fee + value = {cost}"
        )
    if used + eth.gas > gas_limit:
        raise BlockFullError(
            f"gas {eth.gas} exceeds what the block has left ({gas_limit - used} of {gas_limit})"
        )
    if state.get(code_key(sender)):
        raise EvmInvalidError("the sender is a contract: it cannot sign transactions (EIP-3607)")
