"""BFT consensus: Tendermint and Snowman as sans-io state machines, with what they prove.

- :class:`Tendermint` runs Algorithm 1 of Buchman, Kwon and Milosevic (2018) for
  one validator; inputs are messages and timer events, outputs are actions.
- :class:`Snowman` polls samples of validators until Snowball finalizes a value
  (probabilistic safety); :class:`Fallback` is Tendermint that switches a
  stalled height to polling. :class:`EngineConfig` is the genesis's choice
  among them, and :class:`ConsensusEngine` the interface the host drives.
- :class:`ValidatorSet` holds keys and voting power, picks proposers, and changes
  at epoch boundaries.
- :class:`CommitCertificate` and :func:`verify_certificate` prove a decision to
  followers; :class:`DuplicateVoteEvidence`, :class:`DuplicateProposalEvidence`,
  :class:`DuplicateChitsEvidence` and :func:`verify_evidence` prove an
  equivocation to the chain, which slashes; :data:`BlockEvidence` adds the DAG
  mempool's batch equivocation (batches.py) to them.
- :class:`Signer` and :class:`WriteAheadLog` keep a validator from ever signing two
  different messages for one step, across crashes.

``docs/consensus.md`` is the specification, with the byte formats.
"""

from focusflow.consensus.actions import (
    Accept,
    Action,
    Broadcast,
    Decide,
    ReportEvidence,
    ScheduleTimeout,
    SendTo,
    Timeout,
)
from focusflow.consensus.certificate import (
    CommitCertificate,
    CommitSignature,
    decode_certificate,
    encode_certificate,
    verify_certificate,
)
from focusflow.consensus.engine import ENGINES, ConsensusEngine, EngineConfig
from focusflow.consensus.errors import (
    InvalidCertificateError,
    InvalidEvidenceError,
    InvalidMessageError,
    InvalidValidatorSetError,
    SignRefusedError,
    WALError,
)
from focusflow.consensus.evidence import (
    BlockEvidence,
    DuplicateChitsEvidence,
    DuplicateProposalEvidence,
    DuplicateVoteEvidence,
    Evidence,
    decode_evidence,
    encode_evidence,
    verify_evidence,
)
from focusflow.consensus.fallback import Fallback
from focusflow.consensus.messages import (
    Message,
    Proposal,
    Step,
    Vote,
    decode_message,
    encode_message,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from focusflow.consensus.poll_messages import (
    Chits,
    PollMessage,
    Query,
    Switch,
    decode_poll_message,
    encode_poll_message,
)
from focusflow.consensus.signer import Signer
from focusflow.consensus.snowball import SnowmanParams, failure_probability
from focusflow.consensus.snowman import Snowman
from focusflow.consensus.tendermint import Tendermint
from focusflow.consensus.timeouts import Timeouts
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.consensus.wal import WALEntry, WriteAheadLog

__all__ = [
    "ENGINES",
    "Accept",
    "Action",
    "BlockEvidence",
    "Broadcast",
    "Chits",
    "CommitCertificate",
    "CommitSignature",
    "ConsensusEngine",
    "Decide",
    "DuplicateChitsEvidence",
    "DuplicateProposalEvidence",
    "DuplicateVoteEvidence",
    "EngineConfig",
    "Evidence",
    "Fallback",
    "InvalidCertificateError",
    "InvalidEvidenceError",
    "InvalidMessageError",
    "InvalidValidatorSetError",
    "Message",
    "PollMessage",
    "Proposal",
    "Query",
    "ReportEvidence",
    "ScheduleTimeout",
    "SendTo",
    "SignRefusedError",
    "Signer",
    "Snowman",
    "SnowmanParams",
    "Step",
    "Switch",
    "Tendermint",
    "Timeout",
    "Timeouts",
    "Validator",
    "ValidatorSet",
    "Vote",
    "WALEntry",
    "WALError",
    "WriteAheadLog",
    "decode_certificate",
    "decode_evidence",
    "decode_message",
    "decode_poll_message",
    "encode_certificate",
    "encode_evidence",
    "encode_message",
    "encode_poll_message",
    "failure_probability",
    "proposal_sign_bytes",
    "verify_certificate",
    "verify_evidence",
    "vote_sign_bytes",
]
