"""An account as the state holds it: liquid balance, nonce and bonded stake.

The one record every layer means by an account. The modules read and write it
at ``/token/acct/<address>`` (``modules.accounts``: its key, its encoding, the
debits and credits); the mempool's admission checks a sender's nonce and balance
against it. It is defined here, in the chain layer, so that the mempool can
name it: the chain cannot import the modules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Account:
    """Amounts in the base unit of the gas token."""

    balance: int = 0
    nonce: int = 0
    bonded: int = 0


__all__ = ["Account"]
