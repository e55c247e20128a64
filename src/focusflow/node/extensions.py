"""The seam where optional parts plug into a running node.

A node is a :class:`~focusflow.node.validator.ValidatorRuntime` (a validator,
or a full node that follows consensus without signing). Parts that serve or
check more than consensus needs (data-availability shares over QUIC and the
sampling of proposals, bad-encoding fraud proofs, state-sync snapshots, blobs
found through the DHT) are
extensions: each is attached once, after the runtime is built and before its
transport starts, so it can register request handlers and gossip topics on
``runtime.net``, add ``runtime.proposal_checks`` and listen to commits
(``runtime.listeners``); it is stopped when the node stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from focusflow.node.validator import ValidatorRuntime


class NodeExtension(Protocol):
    """One optional part of a node; see the module docstring."""

    def attach(self, runtime: ValidatorRuntime) -> None:
        """Register handlers and hooks on ``runtime`` (its loop is not running yet)."""

    async def stop(self) -> None:
        """Release what ``attach`` and later work took (tasks, files)."""


def default_extensions(config: dict) -> list[NodeExtension]:
    """The extensions a network node (validator or full node) runs, from its config.json."""
    from focusflow.node.blob_net import BlobNet  # blobs found through the DHT, moved over QUIC
    from focusflow.node.da_net import DANet  # data availability over QUIC, fraud proofs
    from focusflow.node.state_sync import StateSync  # snapshots written and served

    return [DANet.from_config(config), StateSync.from_config(config), BlobNet.from_config(config)]


__all__ = ["NodeExtension", "default_extensions"]
