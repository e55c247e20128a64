"""Why a node stops following its chain, for good.

Two things stop a node: a verified fraud proof showing a committed block is
invalid (focusflow.node.da_net calls :meth:`Halts.halt` through the extension
host), and an upgrade this code cannot run: the next height switches the
chain's focus algorithm to one this build lacks (``Chain.upgrade_needed``), so
the node halts as after a fraud proof, with ``UPGRADE NEEDED at height N`` in
``/v1/status`` and its log. Once halted, consensus takes no step and block
sync applies no block; the API keeps serving what was committed, and
``/v1/status`` says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from focusflow.chain.chain import Chain

log = logging.getLogger("focusflow.node")


class Halts:
    """The reason this node stopped following its chain, if it did; see the module docstring."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        #: Called on each halt (the consensus driver cancels its timers).
        self.on_halt: list[Callable[[], None]] = []
        #: Why this node stopped following its chain; None while it follows.
        self.reason: str | None = None

    def halt(self, reason: str) -> None:
        """Stop following this chain for good: consensus and sync stop, the API
        keeps serving what was committed, and /v1/status says why. The first
        reason is kept."""
        if self.reason is None:
            self.reason = reason
            log.error("stopped following the chain", extra={"fields": {"reason": reason}})
        for listener in self.on_halt:
            listener()

    def upgrade_halts(self) -> bool:
        """Whether this node stopped following: for good, or because the next
        height switches the chain's focus algorithm to one this code cannot run
        (it halts then, as after a fraud proof)."""
        if self.reason is None:
            needed = self.chain.upgrade_needed
            if needed is not None:
                self.halt(needed.message)
        return self.reason is not None


__all__ = ["Halts"]
