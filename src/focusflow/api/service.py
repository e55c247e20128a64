"""What the API needs from a running node, as a protocol.

The node (``focusflow.node``) sits above the API in the layers, so the API
cannot import it; it states here everything the routes read of a node or ask
of it, and the node's runtime provides it. Routes reach the node only through
:class:`NodeService` (``focusflow.api.state.AppState.node``), so what they use
is what mypy checks the runtime against. Members that are only read are
properties: the runtime may hold a narrower type, or a plain attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from focusflow.chain.chain import Chain
    from focusflow.chain.da_commit import FraudRecord
    from focusflow.chain.focus_view import FocusView
    from focusflow.chain.mempool import Mempool
    from focusflow.chain.pending import BlockResult
    from focusflow.chain.tx import Tx
    from focusflow.consensus.validators import ValidatorSet
    from focusflow.consensus.votes_seen import VotesSeen
    from focusflow.core.errors import FocusflowError
    from focusflow.core.keys import KeyPair
    from focusflow.da import ExtendedSquare, ShareProof


class SquareServer(Protocol):
    """What ``/v1/da`` reads of the node's data-availability squares (``node.da``)."""

    def square(self, height: int) -> ExtendedSquare: ...

    def share_proof(self, height: int, row: int, col: int) -> ShareProof: ...

    def fraud(self, height: int) -> FraudRecord | None: ...


class BootstrapStatus(Protocol):
    """What ``/v1/bootstrap`` reads of the duty that runs a network's bootstrap phases."""

    def status(self) -> dict[str, Any]:
        """The phase, the certificate presented, the links and the peers dialed."""
        ...


class BlockEvent(Protocol):
    """One committed block, as the app's block listeners read it (the node's
    runtime hands them its own event type)."""

    @property
    def result(self) -> BlockResult: ...

    @property
    def view(self) -> FocusView:
        """The focus view published after the block."""
        ...

    @property
    def previous(self) -> FocusView:
        """The focus view published before it."""
        ...

    @property
    def interval(self) -> float:
        """Seconds since the block before."""
        ...


class NodeService(Protocol):
    """A running node, as the API sees it (see the module docstring)."""

    @property
    def chain(self) -> Chain: ...

    @property
    def mempool(self) -> Mempool: ...

    @property
    def view(self) -> FocusView:
        """The focus view published after the last committed block."""
        ...

    @property
    def syntropy(self) -> Iterable[dict[str, float]]:
        """Recent ``{height, syntropy, entropy, particles}`` points, oldest first."""
        ...

    #: Called with each committed block (the app adds its own on start).
    listeners: list[Callable[[Any], None]]

    @property
    def faucet_key(self) -> KeyPair | None:
        """The funded dev key the faucet sends from (devnets only)."""
        ...

    @property
    def votes_seen(self) -> VotesSeen:
        """The last vote this node saw from each validator."""
        ...

    @property
    def follow_only(self) -> bool:
        """A full node: follows consensus and serves the API, never signs."""
        ...

    @property
    def halted(self) -> str | None:
        """Why this node stopped following its chain (a verified fraud proof), or None."""
        ...

    @property
    def da(self) -> SquareServer | None:
        """The node's data-availability squares; None for a node that serves none."""
        ...

    @property
    def bootstrap(self) -> BootstrapStatus | None:
        """The bootstrap phases' duty, where the node runs one (a network validator)."""
        ...

    @property
    def interchain_apis(self) -> Mapping[str, Sequence[str]]:
        """The APIs of the other chains of this node's network of rollups, by chain
        id (its config's ``interchain_apis``): where transactions and queries for
        another chain are sent."""
        ...

    @property
    def consensus_state(self) -> tuple[int, int, str, ValidatorSet] | None:
        """(height, round, step, validator set of that height) of this node's
        consensus; None for a runtime that runs none."""
        ...

    def dag_status(self) -> dict[str, int] | None:
        """The DAG mempool's counters on a DAG chain's validator; None elsewhere."""
        ...

    async def admit(self, raw: bytes) -> Tx:
        """Admit one transaction off the event loop (raises why not)."""
        ...

    async def admit_many(self, raws: list[bytes]) -> list[Tx | FocusflowError]:
        """Admit a batch off the event loop: each Tx or the error that refused it."""
        ...

    def is_pending(self, tx_hash: bytes) -> bool:
        """Whether the transaction waits in this node's mempool."""
        ...

    def next_nonce(self, address: bytes) -> int:
        """The nonce a new transaction of ``address`` takes after its pending ones."""
        ...

    def fee_per_byte(self) -> int:
        """The base fee per byte the next block charges."""
        ...

    def faucet(self, address: bytes, amount: int) -> Tx:
        """Send ``amount`` from the faucet key (blocking: call it from a worker thread)."""
        ...


__all__ = ["BlockEvent", "BootstrapStatus", "NodeService", "SquareServer"]
