"""A chain's place in a network of rollups, as its state records it.

Written at genesis from the genesis's ``interchain`` section
(``chain.interchain``); a chain on its own has none of these keys:

* ``/kv/interchain/place`` holds ``[role, bucket, buckets, rule,
  merge_interval_ms, stale_after_ms]`` (bucket -1 on the hub): the graph module
  reads it on every ``link`` message to refuse links of another bucket;
* ``/kv/interchain/chain/<bucket 2>`` holds each rollup's chain id, and
  ``/kv/interchain/bucket/<chain id>`` its bucket;
* ``/kv/interchain/hub`` holds the hub's chain id.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.chain.state import Readable
from focusflow.core.encoding import decode

PLACE_KEY = b"/kv/interchain/place"
CHAIN_PREFIX = b"/kv/interchain/chain/"
BUCKET_PREFIX = b"/kv/interchain/bucket/"
HUB_KEY = b"/kv/interchain/hub"


def chain_key(bucket: int) -> bytes:
    return CHAIN_PREFIX + bucket.to_bytes(2, "big")


def bucket_key(chain_id: str) -> bytes:
    return BUCKET_PREFIX + chain_id.encode()


@dataclass(frozen=True)
class Place:
    role: str
    bucket: int
    buckets: int
    rule: str
    merge_interval_ms: int
    stale_after_ms: int


def place(state: Readable) -> Place | None:
    """This chain's role and bucket; None for a chain on its own."""
    raw = state.get(PLACE_KEY)
    if raw is None:
        return None
    return Place(*decode(raw, "interchain place"))


def rollup_chain_id(state: Readable, bucket: int) -> str | None:
    raw = state.get(chain_key(bucket))
    return None if raw is None else str(decode(raw, "rollup chain id"))


def bucket_of_chain(state: Readable, chain_id: str) -> int | None:
    raw = state.get(bucket_key(chain_id))
    return None if raw is None else int(decode(raw, "rollup bucket"))


def hub_chain_id(state: Readable) -> str | None:
    raw = state.get(HUB_KEY)
    return None if raw is None else str(decode(raw, "hub chain id"))
