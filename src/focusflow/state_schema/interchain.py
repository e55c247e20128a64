"""A chain's place in a network of rollups, as its state records it.

``/kv/interchain/place`` holds ``[role, bucket, buckets, rule]`` (bucket -1 on
the hub) and ``/kv/interchain/chain/<bucket 2>`` the chain id of each rollup,
written at genesis from the genesis's ``interchain`` section
(``chain.interchain``). The graph module reads the place on every ``link``
message to refuse links of another bucket; a chain on its own has neither key.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.chain.state import Readable
from focusflow.core.encoding import decode

PLACE_KEY = b"/kv/interchain/place"
CHAIN_PREFIX = b"/kv/interchain/chain/"


def chain_key(bucket: int) -> bytes:
    return CHAIN_PREFIX + bucket.to_bytes(2, "big")


@dataclass(frozen=True)
class Place:
    role: str
    bucket: int
    buckets: int
    rule: str


def place(state: Readable) -> Place | None:
    """This chain's role and bucket; None for a chain on its own."""
    raw = state.get(PLACE_KEY)
    if raw is None:
        return None
    role, bucket, buckets, rule = decode(raw, "interchain place")
    return Place(role, bucket, buckets, rule)


def rollup_chain_id(state: Readable, bucket: int) -> str | None:
    raw = state.get(chain_key(bucket))
    return None if raw is None else str(decode(raw, "rollup chain id"))
