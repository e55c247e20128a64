"""Proofs of state and pin requests in the state.

``/kv/proofs/ch/<address><kind>`` holds an open challenge ``[height,
challenge]``, ``/kv/proofs/of/<address><kind>`` the newest verified claim
``[height, value]``; ``/kv/pins/req/<request id>`` a pin request ``[cid, size,
owner, reward, escrow left, expiry height]``, ``/kv/pins/ch/<request
id><pinner>`` a pinner's open challenge and ``/kv/pins/paid/<request
id><pinner>`` the height of its last paid proof (``modules.proofs`` holds the
rules).
"""

from __future__ import annotations

from typing import Any

from focusflow.chain.state import Readable
from focusflow.core.encoding import decode

CHALLENGE_PREFIX = b"/kv/proofs/ch/"
RESULT_PREFIX = b"/kv/proofs/of/"
REQUEST_PREFIX = b"/kv/pins/req/"
PIN_CHALLENGE_PREFIX = b"/kv/pins/ch/"
PAID_PREFIX = b"/kv/pins/paid/"


def result_of(state: Readable, sender: bytes, kind: str) -> tuple[int, Any] | None:
    """``(height, value)`` of the sender's newest verified claim of ``kind``."""
    raw = state.get(RESULT_PREFIX + sender + kind.encode())
    if raw is None:
        return None
    height, value = decode(raw, "proof result")
    return height, value


def pin_request(state: Readable, request: bytes) -> list[Any] | None:
    """``[cid, size, owner, reward, escrow left, expiry height]`` of a pin request."""
    raw = state.get(REQUEST_PREFIX + request)
    return None if raw is None else list(decode(raw, "pin request"))
