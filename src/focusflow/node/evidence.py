"""Equivocation evidence: verified into the chain's pool, or refused.

Evidence reaches a node two ways: gossiped on the ``evidence`` topic (gossip
intake, gossip_intake.py) and reported by this node's own state machine when
it sees a validator sign two votes for one step (``ReportEvidence``, carried
out by the consensus driver, consensus_driver.py). Gossip carries every kind,
batch equivocations of the DAG mempool too (``BlockEvidence``). Both go through
:func:`hold_evidence`: the chain's evidence pool verifies it and holds it for
the next proposer to include and the bank to slash. What it answers decides
what gossip does next: new evidence is gossiped on, evidence that proves
nothing costs the peer that sent it, and evidence outside the age window,
already punished, already held or beyond a full pool is dropped without blame
(a peer a block behind or ahead sees the window shifted).
"""

from __future__ import annotations

import logging

from focusflow.chain.chain import Chain
from focusflow.chain.errors import (
    AlreadyPunishedError,
    EvidenceError,
    EvidenceOutOfRangeError,
    EvidencePoolFullError,
)
from focusflow.consensus import BlockEvidence

log = logging.getLogger("focusflow.node")


def hold_evidence(chain: Chain, evidence: BlockEvidence) -> bool | None:
    """Verify ``evidence`` into the chain's pool: True if new (gossip it on),
    None if known, out of the age window, punished already or the pool is
    full (dropped, nobody blamed), False if it proves nothing."""
    try:
        added = chain.add_evidence(evidence)
    except (EvidenceOutOfRangeError, AlreadyPunishedError, EvidencePoolFullError):
        return None
    except EvidenceError as exc:
        log.info("invalid evidence", extra={"fields": {"error": str(exc)}})
        return False
    if added:
        log.warning(
            "equivocation evidence",
            extra={
                "fields": {
                    "validator": evidence.validator.hex()[:16],
                    "evidence": evidence.hash().hex()[:16],
                }
            },
        )
    return True if added else None


__all__ = ["hold_evidence"]
