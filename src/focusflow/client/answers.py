"""The node's answers that callers compute with, read into typed values.

Most answers are shown as the node gave them (the CLI prints ``--json``
answers unchanged), so the client hands them out as JSON objects. The few
that a caller does arithmetic on (an account's nonce and balance before it
signs, its balances per token) are read here, each field checked, so that a
node answering ``"balance": "lots"`` is a ``bad_node_answer`` and not a
crash in the middle of building a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from focusflow.client.errors import BadNodeAnswerError


@dataclass(frozen=True)
class ReportedAccount:
    """An account as a node reports it (``GET /v1/accounts/{address}``): not
    verified (the light client proves its own, ``light.answers.AccountAnswer``),
    and with the node's mempool in ``pending_nonce``, which the state does not hold."""

    address: str
    balance: int
    nonce: int
    bonded: int
    neudeg: int
    #: Next free nonce counting the node's mempool (None: the node did not say).
    pending_nonce: int | None = None

    @property
    def next_nonce(self) -> int:
        """The nonce a new transaction takes: after this account's pending ones."""
        return self.nonce if self.pending_nonce is None else self.pending_nonce

    @classmethod
    def from_json(cls, doc: dict[str, Any], address: str) -> ReportedAccount:
        """The account of ``doc``; a field the node leaves out is 0 (None for
        ``pending_nonce``, which older nodes do not send)."""
        pending = doc.get("pending_nonce")
        return cls(
            address,
            _amount(doc.get("balance", 0), "balance"),
            _amount(doc.get("nonce", 0), "nonce"),
            _amount(doc.get("bonded", 0), "bonded"),
            _amount(doc.get("neudeg", 0), "neudeg"),
            None if pending is None else _amount(pending, "pending_nonce"),
        )


def balances_of(doc: dict[str, Any]) -> dict[str, int] | None:
    """``{denom: amount}`` of a ``GET /v1/balances/{address}`` answer, or None
    when it lists none (a node that does not keep them per token)."""
    held = doc.get("balances")
    if not isinstance(held, dict):
        return None
    return {str(denom): _amount(amount, f"balances.{denom}") for denom, amount in held.items()}


def _amount(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadNodeAnswerError(f"the node's {name} is {value!r}, not an integer >= 0")
    return value


__all__ = ["ReportedAccount", "balances_of"]
