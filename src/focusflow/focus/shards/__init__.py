"""Focus past one machine: the tri-kernel solved by shards on a Ray cluster.

Particles are split among shards by ``murmur64(key) mod shards``
(``partition``); each shard owns its particles' rows of the operators and
their slice of ``phi`` (``layout``), lives in a Ray actor (``worker``), and
exchanges once per product only the values its neighbours' rows read, as one
compact buffer per pair of shards (``exchange``). The driver (``solve``) runs
the outer iteration: it sums the few scalars each step needs (an all-reduce,
or push-sum gossip among the shards: ``pushsum``), keeps the last iterate of
every shard for a restarted worker, and gathers the answer. docs/focus.md,
"Sharded solves", says when to use it and what it costs.
"""
