"""The seam where optional parts plug into a running node.

A node is a :class:`~focusflow.node.validator.ValidatorRuntime` (a validator,
or a full node that follows consensus without signing). Parts that serve or
check more than consensus needs (data-availability shares over QUIC and the
sampling of proposals, bad-encoding fraud proofs, state-sync snapshots, blobs
found through the DHT, the CA's signing duty, the bootstrap phases) are
extensions: each is attached once, on the node's event loop after the runtime
is built and before its transport starts, and stopped when the node stops.

What an extension may do to the node is :class:`ExtensionHost`, and nothing
else: register request handlers and subscribe to gossip topics, add checks a
proposal must pass before this node prevotes for it, listen to commits and to
certified blocks that block sync refused, run work on the node's event loop
from a worker thread, submit its own transactions, and stop the node from
following a chain it proved invalid. It reads the chain, the data-availability
store, the validator set under consensus and the transport (to ask peers, not
to serve them). The runtime's consensus state, its tasks and its event loop
stay its own: an extension that reached into them would break with any change
to how consensus runs, where this protocol is what mypy holds the runtime to.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from focusflow.chain.block import BlockRecord
    from focusflow.chain.chain import Chain
    from focusflow.chain.errors import BlockError
    from focusflow.chain.tx import Msg, Tx
    from focusflow.consensus import ValidatorSet
    from focusflow.core.keys import KeyPair
    from focusflow.net import Node
    from focusflow.net.node import GossipHandler
    from focusflow.net.reqresp import Handler
    from focusflow.node.da_store import DAStore
    from focusflow.node.faults import FaultPlan
    from focusflow.node.runtime import BlockEvent

T = TypeVar("T")

#: A check a proposal must pass before this node prevotes for it: given the
#: re-executed block and the node id of the proposal's signer (None when
#: unknown), None, or why it refuses. Runs in a worker thread.
ProposalCheck = Callable[["BlockRecord", "bytes | None"], "str | None"]


class ExtensionHost(Protocol):
    """What a node offers the extensions attached to it (see the module docstring)."""

    @property
    def chain(self) -> Chain: ...

    @property
    def da(self) -> DAStore:
        """The node's data-availability squares and the fraud proofs it holds."""
        ...

    @property
    def net(self) -> Node | None:
        """The transport, to ask peers and to publish; None on the devnet (no peers)."""
        ...

    @property
    def vset(self) -> ValidatorSet:
        """The validator set of the height under consensus."""
        ...

    @property
    def follow_only(self) -> bool:
        """A full node: follows consensus, never votes."""
        ...

    @property
    def faults(self) -> FaultPlan | None:
        """The faults a test made this node commit (``node.faults``); None: honest."""
        ...

    @property
    def halted(self) -> str | None:
        """Why this node stopped following its chain, or None."""
        ...

    def register(self, name: str, handler: Handler) -> None:
        """Serve request ``name`` to peers (needs the transport)."""
        ...

    def subscribe(self, topic: str, handler: GossipHandler) -> None:
        """Receive the gossip of ``topic`` (needs the transport)."""
        ...

    def add_proposal_check(self, check: ProposalCheck) -> None:
        """Refuse proposals that fail ``check`` (see :data:`ProposalCheck`)."""
        ...

    def on_commit(self, listener: Callable[[BlockEvent], None]) -> None:
        """Call ``listener`` after each committed block, on the thread that committed it."""
        ...

    def on_refused_block(self, listener: Callable[[bytes, BlockError], None]) -> None:
        """Call ``listener`` on the event loop with a certified block that block
        sync could not apply (its bytes as served) and why."""
        ...

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        """Call ``callback(*args)`` on the node's event loop, from any thread."""
        ...

    def run_soon(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the node's event loop, from any thread; its future."""
        ...

    def submit_as(self, key: KeyPair, msgs: list[Msg]) -> Tx:
        """Sign ``msgs`` with ``key`` at the minimum fee and the next nonce, and submit."""
        ...

    def halt(self, reason: str) -> None:
        """Stop following this chain for good (a verified fraud proof)."""
        ...


class NodeExtension(Protocol):
    """One optional part of a node; see the module docstring."""

    def attach(self, host: ExtensionHost) -> None:
        """Register handlers and hooks on ``host`` (on its event loop; the
        transport is not started yet)."""

    async def stop(self) -> None:
        """Release what ``attach`` and later work took (tasks, files)."""


def default_extensions(config: dict[str, object]) -> list[NodeExtension]:
    """The extensions a network node (validator or full node) runs, from its config.json."""
    from focusflow.node.blob_net import BlobNet  # blobs found through the DHT, moved over QUIC
    from focusflow.node.da_net import DANet  # data availability over QUIC, fraud proofs
    from focusflow.node.state_sync import StateSync  # snapshots written and served

    return [DANet.from_config(config), StateSync.from_config(config), BlobNet.from_config(config)]


__all__ = ["ExtensionHost", "NodeExtension", "ProposalCheck", "default_extensions"]
