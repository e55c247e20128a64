"""How much a light client (and a node that state-syncs) trusts what it verified.

Kept apart from ``verify`` so that the command line and the node read the
defaults without loading the chain layer.
"""

from __future__ import annotations

from fractions import Fraction

#: CometBFT's default: more than 1/3 of the trusted set must have signed a far header.
DEFAULT_TRUST_LEVEL = Fraction(1, 3)
#: How long a verified header stays a root of trust: two weeks (CometBFT's
#: example). After it, the validators that signed it may have unbonded and could
#: sign a fork at no cost, so it must stay below the unbonding period in time.
DEFAULT_TRUSTING_PERIOD_S = 14 * 24 * 3600

__all__ = ["DEFAULT_TRUSTING_PERIOD_S", "DEFAULT_TRUST_LEVEL"]
