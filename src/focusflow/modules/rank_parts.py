"""Rank and inflow messages cut into packets, and put back together.

A bucket's rank (or the hub's inflow to it) can be far larger than one IBC
packet may carry (``modules.ibc.MAX_PACKET_DATA``), and larger than one
relayer transaction may hold. So every message travels as parts: packet
``[i, k, bytes]`` is part ``i`` of ``k``, each at most :data:`PART_BYTES` of
the message's encoding. The channel is ordered, so the receiver takes the
parts of a message one after the other, keeps them in its state until the
last arrives, and only then reads the message; a part out of place (an index
that is not the next, a count that changed, too many parts) is refused in its
acknowledgement and drops what was gathered.
"""

from __future__ import annotations

from typing import Any, Final

from focusflow.chain.errors import MalformedMessageError, OverLimitError
from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode, encode

#: Bytes of a message one part carries: a relayer transaction (1 MiB at most)
#: holds a header and a few parts with their proofs.
PART_BYTES: Final = 192 << 10
#: Most parts of one message (about 60 MiB, the largest rank packet).
MAX_PARTS: Final = 320


def split(message: bytes) -> list[bytes]:
    """The packets' data that carry ``message``, in order."""
    k = max(1, -(-len(message) // PART_BYTES))
    if k > MAX_PARTS:
        raise OverLimitError(f"a message of {len(message)} bytes needs more than {MAX_PARTS} parts")
    chunks = [message[i * PART_BYTES : (i + 1) * PART_BYTES] for i in range(k)]
    return [encode([i, k, chunk]) for i, chunk in enumerate(chunks)]


def take(state: PendingState, key: bytes, data: bytes) -> bytes | None:
    """Take one part; the whole message once its last part is in, else None.
    ``key`` holds the parts gathered so far (one message at a time per channel)."""
    part: Any = decode(data, "message part")
    ok = (
        isinstance(part, list)
        and len(part) == 3
        and type(part[0]) is int
        and type(part[1]) is int
        and isinstance(part[2], bytes)
    )
    if not ok:
        state.delete(key)
        raise MalformedMessageError("a part is [index, count, bytes]")
    i, k, chunk = part
    raw = state.get(key)
    gathered: list[Any] = decode(raw, "parts") if raw else [k, []]
    count, chunks = gathered
    if not (0 < k <= MAX_PARTS and i == len(chunks) and k == count and len(chunk) <= PART_BYTES):
        state.delete(key)
        raise MalformedMessageError(
            f"part {i} of {k} out of place ({len(chunks)} of {count} gathered)"
        )
    chunks.append(chunk)
    if len(chunks) < k:
        state.put(key, encode([k, chunks]))
        return None
    state.delete(key)
    return b"".join(chunks)
