"""Reaching Ray: a cluster at an address, or a local one started for the call.

Ray is the ``cluster`` extra (``pip install 'focusflow[cluster]'``): a node
never needs it, so it is imported here, through ``core.extras``, and nowhere
at a module's top.
"""

from __future__ import annotations

import os
from types import ModuleType

from focusflow.core.errors import InvalidParameterError
from focusflow.core.extras import import_extra

#: Object store of a local Ray started for one solve, when the caller names
#: none: enough for the halo buffers and the shards' inputs of a graph that
#: fits this machine (Ray's own default takes 30 % of memory).
LOCAL_OBJECT_STORE = 512 * 2**20


def ray_module() -> ModuleType:
    """Ray, or ``missing_extra`` naming the ``cluster`` extra."""
    return import_extra("ray", "cluster", "a sharded focus solve")


def connect(cluster: str | None, shards: int) -> tuple[ModuleType, bool]:
    """Ray connected to ``cluster`` (``host:port`` of a head node, or ``auto``),
    or a local Ray for this process; returns it and whether this call started it.

    A local Ray is given at least one logical CPU per shard (so every shard gets
    its actor even on a small machine) and the object store above."""
    ray = ray_module()
    if ray.is_initialized():
        return ray, False
    if cluster is not None:
        if not cluster or any(c.isspace() for c in cluster):
            raise InvalidParameterError(
                f"cluster address must be host:port or 'auto', got {cluster!r}"
            )
        try:
            ray.init(address=cluster, log_to_driver=False, logging_level="ERROR")
        except ConnectionError as exc:
            raise InvalidParameterError(f"no Ray cluster answers at {cluster}: {exc}") from exc
        return ray, True
    ray.init(
        num_cpus=max(shards, os.cpu_count() or 1),
        object_store_memory=LOCAL_OBJECT_STORE,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        configure_logging=False,
    )
    return ray, True
