"""Hostile poll traffic at a validator's gossip intake, and attestations past the
round window.

A poll message is bounded before it is decoded, its signature and its signer's
place in the set checked, and it is never forwarded: whatever fails is the
sender's fault (``Verdict.REJECT``), nothing reaches the engine. A chain that
runs Tendermint drops polls in its driver. An attestation (a precommit at the
attestation round, far past any round window) reaches a polling engine.
"""

from __future__ import annotations

import asyncio

from focusflow.consensus import Query, Step, Vote, encode_message, encode_poll_message
from focusflow.consensus.notarise import ACCEPT_ROUND
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair
from focusflow.net import Verdict
from focusflow.node import open_chain
from focusflow.node.gossip_intake import MAX_POLL_BYTES
from focusflow.node.inbox import Received
from focusflow.node.validator import ValidatorRuntime
from tests.chain.evidence_helpers import CHAIN_ID, KEYS, genesis, step


def runtime_for(tmp_path, consensus):
    params = {} if consensus is None else {"consensus": consensus}
    chain = open_chain(tmp_path / "chain", genesis(**params), KEYS[0])
    step(chain)
    return ValidatorRuntime(chain, KEYS[0], wal_path=tmp_path / "wal", listen=None)


def drain(runtime) -> list:
    """What the intake queued for the consensus task (emptied)."""
    items = []
    while len(runtime.inbox):
        items.append(runtime.inbox._queue.get_nowait())
    return items


def test_hostile_polls_are_refused_before_the_engine(tmp_path):
    runtime = runtime_for(tmp_path, {"engine": "snowman"})
    sender = KEYS[1].public_key

    async def main():
        await runtime.consensus.start_height()
        drain(runtime)
        height, round_, step, _ = runtime.consensus_state
        assert (height, round_, step) == (2, 0, "poll")  # what /v1/status shows
        assert runtime.consensus.locked() == (None, None)
        on_poll = runtime.intake.on_poll
        good = Query.sign(KEYS[1], CHAIN_ID, 2, 7)
        assert await on_poll(sender, b"\x00" * (MAX_POLL_BYTES + 1)) == Verdict.REJECT
        assert await on_poll(sender, b"\xff\x00junk") == Verdict.REJECT
        forged = Query(2, 7, KEYS[1].public_key, bytes(64))
        assert await on_poll(sender, encode_poll_message(forged)) == Verdict.REJECT
        outsider = KeyPair.from_seed(b"o" * 32)
        stranger = Query.sign(outsider, CHAIN_ID, 2, 7)
        assert await on_poll(sender, encode_poll_message(stranger)) == Verdict.REJECT
        other_chain = Query.sign(KEYS[1], "another-chain", 2, 7)
        assert await on_poll(sender, encode_poll_message(other_chain)) == Verdict.REJECT
        far = Query.sign(KEYS[1], CHAIN_ID, 10_000, 7)
        assert await on_poll(sender, encode_poll_message(far)) == Verdict.IGNORE
        assert drain(runtime) == []
        # A good one is queued for the engine and not forwarded (IGNORE).
        assert await on_poll(sender, encode_poll_message(good)) == Verdict.IGNORE
        [item] = drain(runtime)
        assert isinstance(item, Received) and item.message == good

    try:
        asyncio.run(main())
    finally:
        runtime.signer.wal.close()


def test_attestations_pass_the_round_window_and_polls_stay_out_of_tendermint(tmp_path):
    runtime = runtime_for(tmp_path, {"engine": "snowman"})

    async def main():
        await runtime.consensus.start_height()
        drain(runtime)
        vote = Vote.sign(KEYS[2], CHAIN_ID, 2, ACCEPT_ROUND, Step.PRECOMMIT, sha256(b"v"))
        got = await runtime.intake.receive(KEYS[2].public_key, vote, encode_message(vote))
        assert got == Verdict.ACCEPT
        [item] = drain(runtime)
        assert item.message == vote

    try:
        asyncio.run(main())
    finally:
        runtime.signer.wal.close()

    plain = runtime_for(tmp_path / "tm", None)

    async def tendermint():
        await plain.consensus.start_height()
        drain(plain)
        query = Query.sign(KEYS[1], CHAIN_ID, 2, 7)
        raw = encode_poll_message(query)
        assert await plain.intake.on_poll(KEYS[1].public_key, raw) == Verdict.IGNORE
        # Queued, but the Tendermint driver drops it: nothing is signed or sent.
        [item] = drain(plain)
        await plain.consensus.handle(item)
        assert all(e.kind != "chits" for e in plain.signer.wal.entries())

    try:
        asyncio.run(tendermint())
    finally:
        plain.signer.wal.close()
