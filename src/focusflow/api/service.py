"""What the API needs from a running node, as a protocol.

The node (``focusflow.node``) sits above the API in the layers, so the API
cannot import it; it states here what it calls, and the node's runtime
provides it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from focusflow.chain.chain import Chain
from focusflow.chain.focus_view import FocusView
from focusflow.chain.mempool import Mempool
from focusflow.chain.tx import Tx
from focusflow.consensus.validators import ValidatorSet
from focusflow.consensus.votes_seen import VotesSeen
from focusflow.core.errors import FocusflowError


class NodeService(Protocol):
    chain: Chain
    mempool: Mempool
    view: FocusView
    syntropy: Any
    listeners: list[Callable[[Any], None]]
    faucet_key: Any
    #: The last vote this node saw from each validator.
    votes_seen: VotesSeen
    #: A full node: follows consensus and serves the API, never signs.
    follow_only: bool
    #: Why this node stopped following its chain (a verified fraud proof), or None.
    halted: str | None

    @property
    def consensus_state(self) -> tuple[int, int, str, ValidatorSet]:
        """(height, round, step, validator set of that height) of this node's consensus."""
        ...

    def submit(self, raw: bytes | Tx) -> Tx: ...

    async def admit(self, raw: bytes) -> Tx:
        """Admit one transaction off the event loop (raises why not)."""
        ...

    async def admit_many(self, raws: list[bytes]) -> list[Tx | FocusflowError]:
        """Admit a batch off the event loop: each Tx or the error that refused it."""
        ...

    def is_pending(self, tx_hash: bytes) -> bool: ...

    def faucet(self, address: bytes, amount: int) -> Tx: ...
