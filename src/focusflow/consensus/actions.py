"""What the state machine asks its host to do, and the timer events it gets back.

The state machine never touches a socket, a clock or a disk of its own (only the
WAL through its signer): each input returns a list of actions, and the host
(the node's event loop, or the simulator) carries them out in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.consensus.certificate import CommitCertificate
from focusflow.consensus.evidence import Evidence
from focusflow.consensus.messages import Message, Step


@dataclass(frozen=True)
class Timeout:
    """A timer event: feed it back to ``on_timeout`` when its delay has passed."""

    step: Step
    height: int
    round: int


@dataclass(frozen=True)
class Broadcast:
    """Gossip this signed message to every validator (it is already applied locally)."""

    message: Message


@dataclass(frozen=True)
class ScheduleTimeout:
    """Call ``on_timeout(timeout)`` after ``delay`` seconds (Algorithm 1, "schedule")."""

    timeout: Timeout
    delay: float


@dataclass(frozen=True)
class Decide:
    """``decision_p[h] = v`` (line 51): commit ``value`` with its certificate.

    The host applies the block, then calls ``start_height(height + 1, next_set)``.
    """

    height: int
    round: int
    value: bytes
    value_id: bytes
    certificate: CommitCertificate


@dataclass(frozen=True)
class ReportEvidence:
    """A validator equivocated: gossip the evidence and offer it to the next block."""

    evidence: Evidence


Action = Broadcast | ScheduleTimeout | Decide | ReportEvidence
