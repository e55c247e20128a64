"""Transactions: who sends what, for which chain, at which nonce, paying which fee.

A transaction is the canonical CBOR array

    [chain_id, sender, nonce, fee, msgs, signature]

``sender`` is the 32-byte Ed25519 public key (the account address is derived
from it), ``msgs`` a list of ``[type, body]`` pairs (``body`` a map, checked by
the module that owns ``type``), and ``signature`` signs the canonical encoding
of ``["focusflow/tx/v1", chain_id, sender, nonce, fee, msgs]``: everything but
itself, under a domain tag so the bytes can never be mistaken for another
signed object. The transaction hash is SHA-256 of the whole encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from focusflow.chain.errors import BadSignatureError, OverLimitError, WrongChainIdError
from focusflow.chain.params import ChainParams
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256
from focusflow.core.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, KeyPair, address_bytes, verify

DOMAIN = "focusflow/tx/v1"

#: Protocol cap on an encoded transaction, before genesis parameters apply:
#: nothing larger is even decoded.
HARD_MAX_TX_BYTES = 4 << 20


@dataclass(frozen=True)
class Msg:
    """One message of a transaction: a type owned by a module, and its body."""

    type: str
    body: dict[str, Any]

    def to_cbor(self) -> list[Any]:
        return [self.type, self.body]


@dataclass(frozen=True)
class Tx:
    #: Whether the transaction's one message charges its own fee (an Ethereum
    #: transaction, ``chain.eth_tx``) instead of the chain's ante step.
    self_charging: ClassVar[bool] = False

    chain_id: str
    sender: bytes
    nonce: int
    fee: int
    msgs: tuple[Msg, ...]
    signature: bytes

    def sign_bytes(self) -> bytes:
        cached: bytes | None = self.__dict__.get("_sign_bytes")
        if cached is not None:
            return cached
        return sign_bytes(self.chain_id, self.sender, self.nonce, self.fee, self.msgs)

    @cached_property
    def encoded(self) -> bytes:
        return encode(
            [
                self.chain_id,
                self.sender,
                self.nonce,
                self.fee,
                [m.to_cbor() for m in self.msgs],
                self.signature,
            ]
        )

    @cached_property
    def hash(self) -> bytes:
        return sha256(self.encoded)

    @property
    def upfront(self) -> int:
        """What the sender's balance must hold for the pool to admit it: the fee
        (an Ethereum transaction adds the value it sends)."""
        return self.fee

    @cached_property
    def sender_address(self) -> bytes:
        return address_bytes(self.sender)

    def verify_signature(self) -> None:
        if not verify(self.sender, self.signature, self.sign_bytes()):
            raise BadSignatureError(f"transaction {self.hash.hex()}: signature does not verify")

    def check_chain(self, chain_id: str) -> None:
        if self.chain_id != chain_id:
            raise WrongChainIdError(
                f"transaction {self.hash.hex()} is for chain {self.chain_id!r}, not {chain_id!r}"
            )


def sign_bytes(chain_id: str, sender: bytes, nonce: int, fee: int, msgs: Sequence[Msg]) -> bytes:
    return encode([DOMAIN, chain_id, sender, nonce, fee, [m.to_cbor() for m in msgs]])


def make_tx(key: KeyPair, chain_id: str, nonce: int, fee: int, msgs: Sequence[Msg]) -> Tx:
    """A signed transaction from ``key``."""
    msgs = tuple(msgs)
    sig = key.sign(sign_bytes(chain_id, key.public_key, nonce, fee, msgs))
    return Tx(chain_id, key.public_key, nonce, fee, msgs, sig)


def make_tx_at_min_fee(
    key: KeyPair,
    chain_id: str,
    nonce: int,
    msgs: Sequence[Msg],
    params: ChainParams,
    extra: int = 0,
    fee_per_byte: int | None = None,
) -> Tx:
    """A signed transaction paying exactly the minimum fee for its own encoded size,
    plus ``extra`` (what its messages ask beyond it: WASM gas), at ``fee_per_byte``
    (the chain's base fee under the economy; None: the parameter).

    The fee is part of what is encoded, so its size depends on the fee: raising
    the fee to the minimum of the current size converges in two or three rounds
    (CBOR integers grow by whole bytes).
    """
    fee = params.fee_base + extra
    while True:
        tx = make_tx(key, chain_id, nonce, fee, msgs)
        need = params.min_fee(len(tx.encoded), fee_per_byte) + extra
        if fee >= need:
            return tx
        fee = need


def decode_tx(data: bytes, max_bytes: int = HARD_MAX_TX_BYTES) -> Tx:
    """Parse a transaction; structure only (signature, nonce and fee are checked later).

    A native transaction is canonical CBOR; bytes that begin as an Ethereum
    transaction does are one (``chain.eth_tx``).

    Raises OverLimitError for oversize input and DecodeError (``malformed``) for
    anything that is not exactly a canonical transaction.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("malformed transaction: expected bytes")
    if len(data) > max_bytes:
        raise OverLimitError(f"transaction of {len(data)} bytes exceeds the limit of {max_bytes}")
    if len(data) and data[0] != 0x86:
        from focusflow.chain.eth_tx import decode_eth_tx, is_eth_tx

        if is_eth_tx(bytes(data[:1])):
            return decode_eth_tx(bytes(data))
    value = decode(bytes(data), "transaction")
    if not isinstance(value, list) or len(value) != 6:
        raise DecodeError("malformed transaction: expected a 6-element array")
    chain_id, sender, nonce, fee, msgs, signature = value
    _expect(isinstance(chain_id, str) and 0 < len(chain_id) <= 64, "chain id")
    _expect(isinstance(sender, bytes) and len(sender) == PUBLIC_KEY_SIZE, "sender")
    _expect(is_uint64(nonce), "nonce")
    _expect(is_uint64(fee), "fee")
    _expect(isinstance(signature, bytes) and len(signature) == SIGNATURE_SIZE, "signature")
    _expect(isinstance(msgs, list) and len(msgs) > 0, "messages")
    parsed = []
    for m in msgs:
        _expect(isinstance(m, list) and len(m) == 2, "message")
        mtype, body = m
        _expect(isinstance(mtype, str) and isinstance(body, dict), "message")
        _expect(all(isinstance(k, str) for k in body), "message body keys")
        parsed.append(Msg(mtype, body))
    tx = Tx(chain_id, sender, nonce, fee, tuple(parsed), signature)
    data = bytes(data)
    tx.__dict__["encoded"] = data
    # The input is canonical (decode checked it), so the signed fields are its
    # bytes between the array header and the 66-byte signature: no re-encoding.
    tx.__dict__["_sign_bytes"] = _SIGN_HEADER + data[1:-66]
    return tx


#: Canonical CBOR of the start of ``sign_bytes``: a 6-element array and the domain.
_SIGN_HEADER = b"\x86" + encode(DOMAIN)


def is_uint64(x: object) -> bool:
    """An integer (not a bool) in ``[0, 2**64)``: the range of every count on the wire."""
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**64


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise DecodeError(f"malformed transaction: bad {what}")
