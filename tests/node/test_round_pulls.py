"""Messages of the running height kept for ``round`` requests: each once.

A node asks its peers for the messages of its height whenever it has made no
progress for two seconds (``PeerRequests.pull_round``); every message it accepts is kept
to answer such requests. When a pulled message already kept was accepted and
kept again, a stalled height filled the store with copies: each pull then
carried megabytes of the same votes, every one decoded, queued and handed to
the state machine again, on every node every two seconds. The CPU this took
slowed the rounds that would have ended the stall (four validators on two
cores went tens of seconds between steps).
"""

from __future__ import annotations

import asyncio

from focusflow.consensus import Step, Vote, encode_message
from focusflow.core.encoding import decode, encode
from focusflow.net import Verdict
from focusflow.node import open_chain
from focusflow.node.inbox import Received
from focusflow.node.validator import ValidatorRuntime
from tests.chain.evidence_helpers import CHAIN_ID, KEYS, genesis


def test_a_message_is_kept_once_and_a_copy_is_not_queued_again(tmp_path):
    chain = open_chain(tmp_path / "chain", genesis(), KEYS[0])
    runtime = ValidatorRuntime(chain, KEYS[0], wal_path=tmp_path / "wal", listen=None)

    async def main():
        await runtime.consensus.start_height()
        height = runtime.tm.height
        vote = Vote.sign(KEYS[1], CHAIN_ID, height, 0, Step.PREVOTE, None)
        raw = encode_message(vote)
        first = await runtime.intake.receive(KEYS[1].public_key, vote, raw)
        assert first == Verdict.ACCEPT
        for _ in range(3):  # the same vote, accepted, and then pulled again and again
            await runtime.consensus.handle(Received(KEYS[1].public_key, vote, raw))
        assert runtime.held.messages.count(raw) == 1
        served = decode(await runtime.requests.serve_round(KEYS[2].public_key, encode(height)))
        assert served.count(raw) == 1
        queued = len(runtime.inbox)
        again = await runtime.intake.receive(KEYS[2].public_key, vote, raw)
        assert again == Verdict.IGNORE and len(runtime.inbox) == queued

    try:
        asyncio.run(main())
    finally:
        runtime.signer.wal.close()
