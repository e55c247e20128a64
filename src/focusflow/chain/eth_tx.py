"""Ethereum transactions as chain transactions.

Wallets and tools (web3.py, ethers, MetaMask) sign Ethereum transactions:
legacy ones with EIP-155 replay protection, EIP-2930 access-list ones
(type 1) and EIP-1559 ones (type 2), secp256k1 signatures, RLP encoding. The
chain takes those bytes as they are, beside its own CBOR transactions: a
native transaction is a CBOR array of six (first byte ``0x86``), which no
Ethereum transaction begins with, so the first byte tells them apart.

An :class:`EthTx` behaves as a :class:`~focusflow.chain.tx.Tx` for the
mempool and blocks: its sender is the address recovered from the signature,
its nonce the account's chain nonce, its hash Keccak-256 of its bytes (what
Ethereum tools look it up by), and its ``fee``, for the pool's priority and
the minimum fee, is the most it may pay for gas (``gas * max fee per gas``).
It carries one message, ``evm.tx``, which the EVM module executes: that
module checks the nonce and the balance, buys the gas and pays the tip to the
block's proposer itself (the base fee is burned), so the chain's own ante
step and fee payout leave it alone.

The EVM's chain id (EIP-155) is derived from the chain's id string
(:func:`evm_chain_id`); a transaction signed for another one, or without one,
is refused.

What can be known of a transaction without the state is checked by
:func:`check_static`, the same rules for the mempool and for a block: its gas
within the block gas limit, its max fee at least the base fee, its tip under
its max fee, initcode of at most ``MAX_INITCODE_SIZE`` bytes and gas for its
intrinsic cost, which counts the initcode's words (EIP-3860: py-evm charges
those only once execution starts, and raises, from outside any execution, on
initcode over the limit).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from focusflow.chain.errors import (
    BadSignatureError,
    EvmInvalidError,
    InsufficientFeeError,
    MalformedMessageError,
    OverLimitError,
    WrongChainIdError,
)
from focusflow.chain.params import ChainParams
from focusflow.chain.tx import Msg, Tx
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256

#: The message type of an Ethereum transaction.
EVM_TX = "evm.tx"
#: First byte of a native (CBOR) transaction.
NATIVE_FIRST_BYTE = 0x86
#: Transaction types taken: legacy (an RLP list), EIP-2930 and EIP-1559.
TYPED = (0x01, 0x02)
#: The most bytes of code a contract may deploy (EIP-170; py-evm enforces it:
#: a creation that returns more fails, its gas paid).
MAX_CODE_SIZE = 24_576
#: The most bytes of initcode a create transaction may carry (EIP-3860).
MAX_INITCODE_SIZE = 2 * MAX_CODE_SIZE
#: Intrinsic gas per 32-byte word of a create transaction's initcode (EIP-3860).
INITCODE_WORD_GAS = 2


#: First bytes of a legacy transaction: an RLP list of nine items is longer than
#: 55 bytes (its signature alone is 64), so its header is 0xf8 to 0xfb.
LEGACY_FIRST = range(0xF8, 0xFC)


def is_eth_tx(data: bytes) -> bool:
    """Whether ``data`` would be an Ethereum transaction (by its first byte); every
    other byte but a native transaction's goes to the CBOR decoder, whose errors
    say what is wrong with it."""
    return bool(data) and (data[0] in TYPED or data[0] in LEGACY_FIRST)


def evm_chain_id(chain_id: str) -> int:
    """The EIP-155 chain id of the chain named ``chain_id``: the first four bytes
    of SHA-256 of a domain tag and the name, as a positive 31-bit integer (so
    every JavaScript number holds it), never 0 or 1 (Ethereum's main net)."""
    digest = sha256(b"focusflow/evm-chain-id/" + chain_id.encode())
    value = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    return value if value > 1 else value + 2


def _builder() -> Any:
    from eth.vm.forks.cancun.transactions import CancunTransactionBuilder

    return CancunTransactionBuilder


@functools.cache
def _decode_errors() -> tuple[type[Exception], ...]:
    """What decoding hostile bytes raises: rlp's errors, py-evm's and eth-utils'
    validation, and the plain errors of a field of the wrong shape (imported
    when first needed: a node without Ethereum traffic never loads them)."""
    from eth_utils import ValidationError
    from rlp.exceptions import RLPException  # type: ignore[import-untyped]

    return (RLPException, ValidationError, ValueError, TypeError, IndexError, KeyError,
            AttributeError)  # fmt: skip


@functools.cache
def _signature_errors() -> tuple[type[Exception], ...]:
    """What recovering the sender of a bad signature raises (eth-keys, eth-utils)."""
    from eth_keys.exceptions import BadSignature
    from eth_keys.exceptions import ValidationError as KeysValidationError
    from eth_utils import ValidationError

    return (BadSignature, KeysValidationError, ValidationError, ValueError)


@dataclass(frozen=True)
class EthTx(Tx):
    """A signed Ethereum transaction (see the module docstring)."""

    self_charging: ClassVar[bool] = True
    #: py-evm's decoded transaction.
    eth: Any = None

    @cached_property
    def encoded(self) -> bytes:
        raw: bytes = self.__dict__["raw"]
        return raw

    @cached_property
    def hash(self) -> bytes:
        from eth_hash.auto import keccak

        return bytes(keccak(self.encoded))

    @cached_property
    def sender_address(self) -> bytes:
        try:
            return bytes(self.eth.sender)
        except _signature_errors() as exc:
            raise BadSignatureError(
                f"transaction {self.hash.hex()}: signature does not recover: {exc}"
            ) from None

    @property
    def upfront(self) -> int:
        return self.fee + int(self.eth.value)

    def verify_signature(self) -> None:
        try:
            self.eth.check_signature_validity()
        except _signature_errors() as exc:
            raise BadSignatureError(
                f"transaction {self.hash.hex()}: signature is not valid: {exc}"
            ) from None
        _ = self.sender_address

    def check_chain(self, chain_id: str) -> None:
        want = evm_chain_id(chain_id)
        got = self.eth.chain_id
        if got is None:
            raise WrongChainIdError(
                f"transaction {self.hash.hex()} has no chain id (EIP-155); "
                f"sign it for chain id {want}"
            )
        if got != want:
            raise WrongChainIdError(
                f"transaction {self.hash.hex()} is for EVM chain id {got}, not {want}"
            )

    def sign_bytes(self) -> bytes:
        raise MalformedMessageError("an Ethereum transaction has no native signing bytes")

    def check_static(self, params: ChainParams) -> None:
        """:func:`check_static` under ``params``: what the pool checks at admission."""
        check_static(self.eth, params.evm_base_fee, params.evm_block_gas_limit)


def initcode_gas(to: bytes | None, data: bytes) -> int:
    """The EIP-3860 gas of a create's initcode (0 for a call): 2 per 32-byte word."""
    return 0 if to else INITCODE_WORD_GAS * ((len(data) + 31) // 32)


def intrinsic_gas(eth: Any) -> int:
    """All a transaction costs before its first opcode: py-evm's intrinsic gas
    (base, calldata, creation, access list) plus its initcode words."""
    return int(eth.intrinsic_gas) + initcode_gas(eth.to, eth.data)


def check_initcode(to: bytes | None, data: bytes) -> None:
    """EvmInvalidError for a create whose initcode is over ``MAX_INITCODE_SIZE``."""
    if not to and len(data) > MAX_INITCODE_SIZE:
        raise EvmInvalidError(
            f"initcode of {len(data)} bytes is over the limit of {MAX_INITCODE_SIZE} (EIP-3860)"
        )


def check_static(eth: Any, base_fee: int, gas_limit: int) -> None:
    """Raise the refusal a transaction earns whatever the state: gas over the
    block gas limit (``over_limit``), a max fee per gas under the base fee
    (``insufficient_fee``), a tip over the max fee, initcode over the limit,
    gas under the intrinsic gas (``evm_invalid``)."""
    if eth.gas > gas_limit:
        raise OverLimitError(f"gas {eth.gas} exceeds the block gas limit {gas_limit}")
    max_fee = _max_fee(eth)
    if max_fee < base_fee:
        raise InsufficientFeeError(f"max fee per gas {max_fee} is below the base fee {base_fee}")
    tip = int(getattr(eth, "max_priority_fee_per_gas", 0))
    if tip > max_fee:
        raise EvmInvalidError(f"max priority fee per gas {tip} exceeds the max fee {max_fee}")
    check_initcode(eth.to, eth.data)
    need = intrinsic_gas(eth)
    if eth.gas < need:
        words = f" (with {INITCODE_WORD_GAS} per initcode word, EIP-3860)" if not eth.to else ""
        raise EvmInvalidError(f"gas {eth.gas} is below the intrinsic gas {need}{words}")


def decode_eth_tx(data: bytes) -> EthTx:
    """Parse an Ethereum transaction; structure only (signature, chain id, nonce
    and balance are checked later, as for native ones)."""
    builder = _builder()
    try:
        eth = builder.decode(bytes(data))
    except _decode_errors() as exc:
        raise DecodeError(f"malformed Ethereum transaction: {exc}") from None
    if getattr(eth, "type_id", None) not in (None, *TYPED):
        raise DecodeError(f"Ethereum transaction type {eth.type_id} is not accepted")
    if eth.nonce >= 2**64 - 1:
        raise DecodeError("malformed Ethereum transaction: nonce out of range")
    fee = eth.gas * _max_fee(eth)
    tx = EthTx(
        chain_id="",
        sender=b"",
        nonce=int(eth.nonce),
        fee=int(fee),
        msgs=(Msg(EVM_TX, {}),),
        signature=b"",
        eth=eth,
    )
    tx.__dict__["raw"] = bytes(data)
    return tx


def _max_fee(eth: Any) -> int:
    """The most one unit of gas can cost: ``max_fee_per_gas`` or the legacy price."""
    value = getattr(eth, "max_fee_per_gas", None)
    return int(eth.gas_price if value is None else value)


def sign_eth_tx(
    key: bytes,
    *,
    chain_id: int,
    nonce: int,
    to: bytes | None,
    value: int,
    data: bytes,
    gas: int,
    max_fee: int,
    tip: int,
) -> bytes:
    """The signed bytes of an EIP-1559 transaction: what a devnet's unlocked
    accounts send for ``eth_sendTransaction`` (the node holds their keys)."""
    from eth_keys import keys

    unsigned = _builder().new_unsigned_dynamic_fee_transaction(
        chain_id=chain_id,
        nonce=nonce,
        max_priority_fee_per_gas=tip,
        max_fee_per_gas=max_fee,
        gas=gas,
        to=to or b"",
        value=value,
        data=data,
        access_list=(),
    )
    signed = unsigned.as_signed_transaction(keys.PrivateKey(key))
    return bytes(signed.encode())
