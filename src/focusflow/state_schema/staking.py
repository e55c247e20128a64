"""Stake in the state besides the account record: unbonding entries, the
registered validators, and the jailed ones.

``/token/unbond/<release height, 8 bytes><address>`` holds the amount an
address unstaked that becomes liquid at that height (one integer, summed over
the unstakes of one block); ``/token/validator/<public key>`` holds ``[name]``
of a registered validator, ``/token/jailed/<public key>`` the first height a
jailed one may return. ``modules.bank`` and ``modules.validators`` hold the rules.
"""

from __future__ import annotations

UNBOND_PREFIX = b"/token/unbond/"
VALIDATOR_PREFIX = b"/token/validator/"
JAILED_PREFIX = b"/token/jailed/"


def unbonding_at(release: int) -> bytes:
    """The prefix of every entry released at height ``release``."""
    return UNBOND_PREFIX + release.to_bytes(8, "big")


def unbond_key(release: int, address: bytes) -> bytes:
    return unbonding_at(release) + address


def validator_key(public_key: bytes) -> bytes:
    return VALIDATOR_PREFIX + public_key


def jailed_key(public_key: bytes) -> bytes:
    return JAILED_PREFIX + public_key
