"""Round timeouts that grow with the round number.

Algorithm 1 needs ``timeoutPropose(r)``, ``timeoutPrevote(r)`` and
``timeoutPrecommit(r)`` to grow with r: after the network stabilises (GST) the
timeouts eventually exceed the real message delay, and from then on a round with
an honest proposer decides (the paper's liveness argument, section 4). Linear
growth, as in CometBFT (``timeout + round * delta``), is enough for that and keeps
a stuck network retrying quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.consensus.messages import Step


@dataclass(frozen=True)
class Timeouts:
    """Seconds; defaults sized for validators on one LAN or loopback."""

    propose: float = 1.0
    propose_delta: float = 0.5
    prevote: float = 0.5
    prevote_delta: float = 0.25
    precommit: float = 0.5
    precommit_delta: float = 0.25

    def duration(self, step: Step, round: int) -> float:
        """The timeout that guards ``step`` in ``round``."""
        if step == Step.PROPOSE:
            return self.propose + round * self.propose_delta
        if step == Step.PREVOTE:
            return self.prevote + round * self.prevote_delta
        return self.precommit + round * self.precommit_delta
