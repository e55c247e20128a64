"""Which rollup a cyberlink belongs to: the bucketing rule of a network of rollups.

A network of rollups splits the graph by the links' *source* particles: every
out-link of a particle lives on one rollup, so that rollup knows the particle's
whole row of the transition matrix (its out-degree, the normalisation of
diffusion) without asking anyone. The rule is named by the hub's genesis and
copied into every rollup's, so nodes, the CLI and the API compute a link's
owner themselves and a user never needs to know it:

* ``source`` (default): ``murmur64(source CID) mod buckets``, where murmur64 is
  the first 64 bits (little-endian, unsigned) of MurmurHash3 x64-128 with seed
  0 over the CID's binary form: well spread, fast, and the hash the focus
  engine's shards use for particles.
* ``semcon``: a link that names a semantic context goes to
  ``murmur64(semcon CID) mod buckets``, so one context's links stay on one
  rollup; a link without one falls back to its source's bucket. The bucket of a
  particle's row is then no longer unique, so this rule is for networks whose
  focus is computed per context (documented in docs/rollups.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import mmh3

BucketRule = Literal["source", "semcon"]

#: The rules a genesis may name.
RULES: Final[tuple[BucketRule, ...]] = ("source", "semcon")

#: Most buckets (rollups) one hub registers.
MAX_BUCKETS: Final = 4096


def murmur64(data: bytes) -> int:
    """The first 64 bits of MurmurHash3 x64-128 (seed 0) of ``data``, unsigned."""
    return int.from_bytes(mmh3.hash_bytes(data, 0, True)[:8], "little")


def particle_bucket(cid: bytes, buckets: int) -> int:
    """The bucket that owns particle ``cid`` (its out-links, its focus row)."""
    return murmur64(cid) % buckets


def link_bucket(entry: Sequence[bytes], buckets: int, rule: BucketRule = "source") -> int:
    """The bucket of one link ``[from, to]`` or ``[from, to, semcon]``."""
    if rule == "semcon" and len(entry) > 2:
        return murmur64(entry[2]) % buckets
    return murmur64(entry[0]) % buckets
