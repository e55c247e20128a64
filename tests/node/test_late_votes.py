"""A vote that arrives after its height was decided still shows its validator voting.

Four validators decide a height on the first three precommits; the fourth's
arrives after the node has moved on, so the state machine drops it. When
``GET /v1/validators`` learnt of votes only through the state machine, a
validator that was always the last to vote was shown as never having voted
(``last_vote`` null), which is what an operator reads as "silent". A late vote
is recorded once its signature is checked, and a bad one is still refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from focusflow.consensus import Step, Vote, encode_message
from focusflow.core.hashing import sha256
from focusflow.net import Verdict
from focusflow.node import open_chain
from focusflow.node.validator import ValidatorRuntime
from tests.chain.evidence_helpers import CHAIN_ID, KEYS, genesis, step


class Reports:
    """Where the runtime reports peers (the network's scorer, here a list)."""

    def __init__(self) -> None:
        self.offences: list[tuple[bytes, str]] = []

    def report(self, peer: bytes, offence: object, reason: str) -> None:
        self.offences.append((peer, reason))


def test_a_late_precommit_is_seen_and_a_forged_one_is_not(tmp_path):
    chain = open_chain(tmp_path / "chain", genesis(), KEYS[0])
    step(chain)
    decided = chain.block_record(1).block.hash
    runtime = ValidatorRuntime(chain, KEYS[0], wal_path=tmp_path / "wal", listen=None)
    reports = Reports()
    runtime.intake.net = reports  # type: ignore[assignment]

    async def main():
        await runtime.consensus.start_height()
        assert runtime.tm.height == 2
        late = Vote.sign(KEYS[3], CHAIN_ID, 1, 0, Step.PRECOMMIT, decided)
        forged = replace(
            Vote.sign(KEYS[2], CHAIN_ID, 1, 0, Step.PRECOMMIT, decided), value_id=sha256(b"x")
        )
        assert runtime.votes_seen.last(KEYS[3].public_key) is None
        got = await runtime.intake.receive(KEYS[1].public_key, late, encode_message(late))
        assert got == Verdict.IGNORE and len(runtime.inbox) == 0  # not for the machine
        seen = runtime.votes_seen.last(KEYS[3].public_key)
        assert seen is not None
        assert (seen.height, seen.round, seen.step, seen.value_id) == (
            1,
            0,
            Step.PRECOMMIT,
            decided,
        )
        await runtime.intake.receive(KEYS[1].public_key, forged, encode_message(forged))
        assert runtime.votes_seen.last(KEYS[2].public_key) is None
        assert reports.offences == [(KEYS[1].public_key, "sent vote h1 r0: bad vote signature")]

    try:
        asyncio.run(main())
    finally:
        runtime.signer.wal.close()
