"""Building, checking, signing, submitting and awaiting transactions from the CLI.

Shared by ``focusflow tx`` and ``focusflow import``. Three rules guide it:

* The fee is the chain's minimum, ``fee_base + fee_per_byte * size``, where the
  size is that of the signed transaction carrying that very fee. The encoded
  fee's length depends on its value, so the fee is found by a fixed point:
  start at ``fee_base``, re-encode with the minimum for the last size, stop
  when the fee covers its own transaction (sizes only grow with the fee, so
  this ends in two or three rounds).
* A transaction whose messages fail still costs its fee and nonce (docs/chain.md),
  so :func:`preflight` refuses, before anything is sent, what the account
  visibly cannot afford or what the link budget forbids, with the chain's own
  error codes. A check passed here can still fail on chain (another pending
  transaction of the same key, a name registered meanwhile); the receipt says so.
* The node is not trusted with what goes into a signature or decides what the
  signer pays (:func:`pin_chain`). The chain id is pinned locally, by
  ``--chain-id`` or else by ``<home>/genesis.json``, and a node that serves
  another chain is refused (``chain_id_mismatch``) before anything is signed.
  The parameters (fee prices, limits) are the genesis file's when it is the
  pinned chain's (they are fixed at genesis); only without one are they the
  node's ``GET /v1/params`` (else the defaults of
  :class:`~focusflow.chain.params.ChainParams`), and then a lying node could ask
  for any fee: every fee is capped by ``--max-fee`` (``fee_over_cap``), whose
  default is the fee of the largest transaction under the local parameters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focusflow.chain.errors import (
    InsufficientFundsError,
    InsufficientStakeError,
    OverLimitError,
    OverLinkBudgetError,
)
from focusflow.chain.fees import with_headroom
from focusflow.chain.genesis import Genesis
from focusflow.chain.params import ChainParams, known_params
from focusflow.chain.tx import Msg, Tx, make_tx, make_tx_at_min_fee
from focusflow.client import NodeClient, RemoteError, ReportedAccount
from focusflow.core.errors import ChainIdMismatchError, FocusflowError
from focusflow.core.keys import KeyPair
from focusflow.modules.names import name_fee
from focusflow.modules.wasm import gas_fee
from focusflow.state_schema.dex import share_denom
from focusflow.state_schema.tokens import CYB, H

#: How long ``--wait`` polls before giving up, and how often.
WAIT_TIMEOUT_S = 30.0
POLL_S = 0.25


class TxFailedError(FocusflowError):
    """A transaction was included but its messages failed; ``code`` is the receipt's."""

    code = "tx_failed"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class TxTimeoutError(FocusflowError):
    """``--wait`` gave up: the transaction was not committed in time (it may still be)."""

    code = "tx_timeout"


class ChainIdUnknownError(FocusflowError):
    """Nothing local pins the chain id: no --chain-id and no <home>/genesis.json."""

    code = "chain_id_unknown"


class FeeOverCapError(FocusflowError):
    """The transaction's fee is above --max-fee (a node asking too much, or a typo)."""

    code = "fee_over_cap"


class TxDroppedError(FocusflowError):
    """The node no longer knows a transaction it accepted (left out of blocks, evicted)."""

    code = "tx_dropped"


@dataclass(frozen=True)
class Pinned:
    """What a transaction is signed for: checked against the node, not taken from it."""

    chain_id: str
    params: ChainParams
    #: The highest fee any transaction built under this pin may carry.
    max_fee: int
    #: Where the chain id came from, for messages.
    source: str
    #: The fee per byte to offer under the economy: the node's base fee with
    #: headroom for two full blocks (``chain.fees``); None: ``fee_per_byte``.
    fee_per_byte: int | None = None


def local_genesis(home: Path) -> Genesis | None:
    """``<home>/genesis.json`` if there is one (a broken one is an error, not None)."""
    path = home / "genesis.json"
    if not path.exists():
        return None
    return Genesis.load(path)


def pin_chain(
    client: NodeClient, home: Path, chain_id: str | None = None, max_fee: int | None = None
) -> Pinned:
    """The chain id, parameters and fee cap to sign under (see the module docstring).

    Raises ``chain_id_unknown`` when nothing local names the chain, and
    ``chain_id_mismatch`` when the node reports another chain id than the pinned one.
    """
    genesis = local_genesis(home)
    if chain_id is not None:
        source = "given by --chain-id"
    elif genesis is not None:
        chain_id, source = genesis.chain_id, f"from {home / 'genesis.json'}"
    else:
        raise ChainIdUnknownError(
            f"no chain id to sign for: {home / 'genesis.json'} does not exist; "
            "pass --chain-id (or --home of the network's node); nothing was signed"
        )
    reported = client.status().get("chain_id")
    if reported != chain_id:
        raise ChainIdMismatchError(
            f"the node at {client.url} serves chain {reported!r}, not {chain_id!r} "
            f"({source}); nothing was signed"
        )
    if genesis is not None and genesis.chain_id == chain_id:
        params = local = genesis.params
    else:
        params, local = node_params(client), ChainParams()
    per_byte = None
    if params.economics:
        raw = client.params()
        current = raw.get("fee_per_byte") if raw is not None else None
        current = current if isinstance(current, int) else params.fee_per_byte
        per_byte = with_headroom(current, params)
    if max_fee is None:
        max_fee = local.min_fee(local.max_tx_bytes, per_byte)
    return Pinned(chain_id, params, max_fee, source, per_byte)


def node_params(client: NodeClient) -> ChainParams:
    """The node's ``GET /v1/params``, else the defaults: used only without a genesis."""
    raw = client.params()
    if raw is not None:
        return _params_from(raw.get("params", raw))
    return ChainParams()


def _params_from(raw: Any) -> ChainParams:
    if not isinstance(raw, dict):
        return ChainParams()
    known = known_params()
    try:
        return ChainParams.from_dict({k: v for k, v in raw.items() if k in known})
    except FocusflowError:
        return ChainParams()


def build_tx(
    key: KeyPair,
    chain_id: str,
    nonce: int,
    msgs: Sequence[Msg],
    params: ChainParams,
    fee: int | None = None,
    max_fee: int | None = None,
    fee_per_byte: int | None = None,
) -> Tx:
    """The signed transaction, paying ``fee`` or else the minimum for its own size
    (at ``fee_per_byte``, the pin's under the economy).

    Refused (``fee_over_cap``), before anything is sent, when the fee is above
    ``max_fee``; refused (``over_limit``) when it is larger than ``max_tx_bytes``.
    """
    if fee is not None:
        tx = make_tx(key, chain_id, nonce, fee, msgs)
    else:
        tx = make_tx_at_min_fee(
            key, chain_id, nonce, msgs, params, gas_fee(msgs, params), fee_per_byte
        )
    if max_fee is not None and tx.fee > max_fee:
        how = (
            "given by --fee"
            if fee is not None
            else (
                f"fee_base={params.fee_base} + fee_per_byte={params.fee_per_byte} * "
                f"{len(tx.encoded)} bytes"
            )
        )
        raise FeeOverCapError(
            f"the fee would be {tx.fee} ({how}), over --max-fee={max_fee}; nothing was sent"
        )
    if len(tx.encoded) > params.max_tx_bytes:
        raise OverLimitError(
            f"the transaction would be {len(tx.encoded)} bytes, over max_tx_bytes="
            f"{params.max_tx_bytes}; send fewer links per transaction"
        )
    return tx


def spends(msgs: Sequence[Msg], params: ChainParams) -> dict[str, int]:
    """What the messages take from each liquid balance besides the fee, by denom.

    Only what a message takes in full is counted: the most a message may take
    (``dex.add``'s ``max_a`` and ``max_b``, ``dex.swap_out``'s ``max_in``) is
    decided by the pool, and the commands that send them check it against the
    pool themselves.
    """
    out: dict[str, int] = {}

    def take(denom: str, amount: int) -> None:
        out[denom] = out.get(denom, 0) + amount

    for m in msgs:
        body = m.body
        if m.type == "send":
            take(body.get("denom", CYB), body["amount"])
        elif m.type == "stake":
            take(CYB, body["amount"])
        elif m.type == "link":
            take(CYB, len(body["links"]) * params.link_burn)
        elif m.type == "name.register":
            take(CYB, name_fee(body["name"], params.name_fee))
        elif m.type == "blob.put":
            take(CYB, len(body["data"]) * params.blob_credit_per_byte)
        elif m.type == "dex.create":
            take(body["a"], body["amount_a"])
            take(body["b"], body["amount_b"])
        elif m.type == "dex.remove":
            take(share_denom(body["a"], body["b"]), body["shares"])
        elif m.type == "dex.swap":
            take(body["path"][0], body["amount_in"])
        elif m.type == "dex.mint":
            take(CYB, body["amount"])
        elif m.type == "dex.redeem":
            take(H, body["amount"])
    return {denom: amount for denom, amount in out.items() if amount}


def spend_of(msgs: Sequence[Msg], params: ChainParams) -> int:
    """What the messages take from the liquid ``cyb`` balance (besides the fee)."""
    return spends(msgs, params).get(CYB, 0)


def preflight(
    tx: Tx,
    account: ReportedAccount,
    params: ChainParams,
    balances: Mapping[str, int] | None = None,
    more: Mapping[str, int] | None = None,
) -> None:
    """Refuse what would only burn a fee: unaffordable spends, links over the budget.

    ``balances`` are the account's liquid balances by denom (``NodeClient.balances``);
    without them only ``cyb`` is checked, against the account's balance. The fee
    is paid in the gas token: ``h`` under the economy, else ``cyb``. ``more`` is
    spent besides what :func:`spends` counts (what a pool decides, quoted by the
    command that sends it).
    """
    needs = spends(tx.msgs, params)
    for denom, amount in (more or {}).items():
        needs[denom] = needs.get(denom, 0) + amount
    gas = H if params.economics else CYB
    needs[gas] = needs.get(gas, 0) + tx.fee
    have = dict(balances) if balances is not None else {CYB: account.balance}
    for denom in sorted(needs, key=lambda d: (d != CYB, d)):
        if denom not in have and balances is None:
            continue  # not known here: the chain checks it
        if have.get(denom, 0) < needs[denom]:
            spend = needs[denom] - (tx.fee if denom == gas else 0)
            unit = "" if denom == CYB and not params.economics else f" {denom}"
            how = f" (fee {tx.fee} + {spend})" if denom == gas else ""
            raise InsufficientFundsError(
                f"{account.address} has {have.get(denom, 0)}{unit}, needs "
                f"{needs[denom]}{unit}{how}; nothing was sent"
            )
    bonded = account.bonded
    neudeg = account.neudeg
    for m in tx.msgs:
        if m.type == "stake":
            bonded += m.body["amount"]
        elif m.type == "unstake":
            amount = m.body["amount"]
            if amount > bonded:
                raise InsufficientFundsError(
                    f"{account.address} has {bonded} bonded, cannot unstake {amount}; "
                    "nothing was sent"
                )
            if (bonded - amount) < neudeg * params.min_link_weight:
                raise OverLinkBudgetError(
                    f"{neudeg} links need {neudeg * params.min_link_weight} bonded; unstaking "
                    f"{amount} of {bonded} would leave too little; nothing was sent"
                )
            bonded -= amount
        elif m.type == "validator.register" and bonded < params.power_unit:
            raise InsufficientStakeError(
                f"{account.address} bonds {bonded}; a validator needs power_unit="
                f"{params.power_unit} bonded (add --stake); nothing was sent"
            )
        elif m.type == "link":
            neudeg += len(m.body["links"])
            need = neudeg * params.min_link_weight
            if need > bonded:
                raise OverLinkBudgetError(
                    f"{neudeg} links need {need} bonded stake at min_link_weight="
                    f"{params.min_link_weight}; {account.address} has {bonded}: stake more "
                    "with `focusflow tx stake`; nothing was sent"
                )


def wait_tx(
    client: NodeClient, tx_hash: str, timeout: float = WAIT_TIMEOUT_S, poll: float = POLL_S
) -> dict[str, Any]:
    """Poll ``GET /v1/txs/{hash}`` until it is committed; its record then."""
    deadline = time.monotonic() + timeout
    unknown = 0
    while True:
        try:
            record = client.tx(tx_hash)
        except RemoteError as exc:
            if exc.code != "unknown_tx":
                raise
            unknown += 1
            # Just accepted, so unknown twice in a row means dropped, not a race.
            if unknown >= 2:
                raise TxDroppedError(
                    f"transaction {tx_hash} was accepted but the node no longer knows it "
                    "(left out of a block: nonce or fee no longer fit)"
                ) from None
        else:
            unknown = 0
            if record.get("status") == "committed":
                return record
        if time.monotonic() >= deadline:
            raise TxTimeoutError(
                f"transaction {tx_hash} not committed after {timeout:g}s; "
                f"check later with: focusflow query tx {tx_hash}"
            )
        time.sleep(poll)


def check_receipt(record: dict[str, Any]) -> None:
    """Raise TxFailedError (with the receipt's code) unless the transaction succeeded."""
    code = record.get("code")
    if code != "ok":
        log = record.get("log") or code
        raise TxFailedError(
            f"transaction {record.get('hash')} failed at height {record.get('height')}: {log}",
            str(code),
        )
