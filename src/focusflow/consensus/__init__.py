"""BFT consensus: Tendermint as a sans-io state machine, with what it proves.

- :class:`Tendermint` runs Algorithm 1 of Buchman, Kwon and Milosevic (2018) for
  one validator; inputs are messages and timer events, outputs are actions.
- :class:`ValidatorSet` holds keys and voting power, picks proposers, and changes
  at epoch boundaries.
- :class:`CommitCertificate` and :func:`verify_certificate` prove a decision to
  followers; :class:`DuplicateVoteEvidence` and :func:`verify_evidence` prove an
  equivocation to the chain, which slashes.
- :class:`Signer` and :class:`WriteAheadLog` keep a validator from ever signing two
  different messages for one step, across crashes.

``docs/consensus.md`` is the specification, with the byte formats.
"""

from focusflow.consensus.actions import (
    Action,
    Broadcast,
    Decide,
    ReportEvidence,
    ScheduleTimeout,
    Timeout,
)
from focusflow.consensus.certificate import (
    CommitCertificate,
    CommitSignature,
    decode_certificate,
    encode_certificate,
    verify_certificate,
)
from focusflow.consensus.errors import (
    InvalidCertificateError,
    InvalidEvidenceError,
    InvalidMessageError,
    InvalidValidatorSetError,
    SignRefusedError,
    WALError,
)
from focusflow.consensus.evidence import (
    DuplicateProposalEvidence,
    DuplicateVoteEvidence,
    Evidence,
    decode_evidence,
    encode_evidence,
    verify_evidence,
)
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
from focusflow.consensus.signer import Signer
from focusflow.consensus.tendermint import Tendermint
from focusflow.consensus.timeouts import Timeouts
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.consensus.wal import WALEntry, WriteAheadLog

__all__ = [
    "Action",
    "Broadcast",
    "CommitCertificate",
    "CommitSignature",
    "Decide",
    "DuplicateProposalEvidence",
    "DuplicateVoteEvidence",
    "Evidence",
    "InvalidCertificateError",
    "InvalidEvidenceError",
    "InvalidMessageError",
    "InvalidValidatorSetError",
    "Message",
    "Proposal",
    "ReportEvidence",
    "ScheduleTimeout",
    "SignRefusedError",
    "Signer",
    "Step",
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
    "encode_certificate",
    "encode_evidence",
    "encode_message",
    "proposal_sign_bytes",
    "verify_certificate",
    "verify_evidence",
    "vote_sign_bytes",
]
