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
from focusflow.consensus.poll_messages import PollMessage


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


@dataclass(frozen=True)
class SendTo:
    """Send a poll message to the validators ``peers`` (all validators when None).

    Polls go to a sample of ``k`` validators and chits back to one poller, not to
    everyone: that is what makes a poll cost ``2k`` messages, not ``n``.
    """

    peers: tuple[bytes, ...] | None
    message: PollMessage


@dataclass(frozen=True)
class Accept:
    """A polling engine finalized ``value`` at ``height`` (Snowman's "accept").

    Unlike :class:`Decide` it carries no certificate: a polled decision is final
    for the node that reached it, with the failure probability its parameters
    give, and nothing a third party can check with signatures alone
    (``docs/consensus.md`` says what block sync accepts instead). The host applies
    the block and calls ``start_height(height + 1, next_set)``, as for Decide.
    """

    height: int
    value: bytes
    value_id: bytes
    polls: int


Action = Broadcast | ScheduleTimeout | Decide | ReportEvidence | SendTo | Accept
