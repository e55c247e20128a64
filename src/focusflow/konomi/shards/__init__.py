"""A Konomi grid split over shards that each own their blocks (docs/konomi.md, *Shards*).

A block belongs to shard ``splitmix64(morton(x, y, z)) % shards`` (the hash
:meth:`BlockArray.shard_of` already uses). Each shard holds its blocks' state and
writes them to its slice of the store before it answers; a coordinator routes
every request to the owner and fans face operations out to all shards. The
shards run as Ray actors (the ``cluster`` extra, :mod:`.actor`) or, for tests
and a single machine without Ray, in the coordinator's own process.
"""

from focusflow.konomi.shards.coordinator import Coordinator, LocalShards
from focusflow.konomi.shards.routing import owners, split
from focusflow.konomi.shards.state import ShardState

__all__ = ["Coordinator", "LocalShards", "ShardState", "owners", "split"]
