"""The relay checks of consensus gossip and block sync's claim checks, on the
real objects (no network): what is blamed on whom, and what is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import types

import pytest

from focusflow.consensus import Proposal, Step, ValidatorSet, Vote
from focusflow.consensus.certificate import CommitCertificate, encode_certificate
from focusflow.core.encoding import encode
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair
from focusflow.net import NetConfig, Node
from focusflow.net.errors import RemoteError, RequestTimeoutError
from focusflow.net.reqresp import BUSY, HANDLER_FAILED
from focusflow.node.gossip_check import (
    FutureMessages,
    GossipFaultError,
    VerifiedSignatures,
    check_for_height,
    check_signature,
)
from focusflow.node.peer_requests import PeerRequests
from focusflow.node.sync import (
    ClaimError,
    RateLimiter,
    check_claim,
    parse_status,
    sync_refusal_is_a_lie,
)

CHAIN = "test-chain"
KEYS = [KeyPair.from_seed(bytes([k + 1]) * 32) for k in range(4)]
VSET = ValidatorSet.create({k.public_key: 10 for k in KEYS})


def vote(key: KeyPair, height: int = 5, round: int = 0) -> Vote:
    return Vote.sign(key, CHAIN, height, round, Step.PREVOTE, None)


def proposal(key: KeyPair, round: int = 0, valid_round: int = -1, value: bytes = b"v") -> Proposal:
    return Proposal.sign(key, CHAIN, 5, round, valid_round, value, sha256(value))


def proposer_key(round: int) -> KeyPair:
    pk = VSET.proposer(round).public_key
    return next(k for k in KEYS if k.public_key == pk)


def test_a_bad_signature_is_the_senders_fault() -> None:
    good = vote(KEYS[0])
    check_signature(good, CHAIN, VerifiedSignatures())
    forged = Vote(good.height, good.round, good.step, None, good.validator, bytes(64))
    with pytest.raises(GossipFaultError) as info:
        check_signature(forged, CHAIN, VerifiedSignatures())
    assert not info.value.signer_at_fault
    with pytest.raises(GossipFaultError):
        check_signature(good, "another-chain", VerifiedSignatures())


def test_height_checks_blame_the_signer_only_for_what_it_signed() -> None:
    check_for_height(vote(KEYS[1]), VSET, sha256)
    with pytest.raises(GossipFaultError, match="outside the validator set") as info:
        check_for_height(vote(KeyPair.generate()), VSET, sha256)
    assert not info.value.signer_at_fault
    right = proposer_key(0)
    check_for_height(proposal(right), VSET, sha256)
    wrong = next(k for k in KEYS if k is not right)
    with pytest.raises(GossipFaultError, match="not from its proposer") as info:
        check_for_height(proposal(wrong), VSET, sha256)
    assert info.value.signer_at_fault  # a member signed a proposal out of turn
    with pytest.raises(GossipFaultError, match="not from its proposer") as info:
        check_for_height(proposal(KeyPair.generate()), VSET, sha256)
    assert not info.value.signer_at_fault
    with pytest.raises(GossipFaultError, match="valid round") as info:
        check_for_height(proposal(proposer_key(1), round=1, valid_round=1), VSET, sha256)
    assert info.value.signer_at_fault
    swapped = proposal(right)
    swapped = Proposal(5, 0, -1, b"other", swapped.value_id, swapped.proposer, swapped.signature)
    with pytest.raises(GossipFaultError, match="hash of its value") as info:
        check_for_height(swapped, VSET, sha256)
    assert not info.value.signer_at_fault  # the value is not signed


def test_held_future_messages_are_bounded_per_peer_and_in_total() -> None:
    held = FutureMessages(peer_bytes=1000, peer_count=3, total_bytes=2000, total_count=5)
    m = vote(KEYS[0], height=6)
    assert all(held.add(b"a", m, b"x" * 100) for _ in range(3))
    assert not held.add(b"a", m, b"x" * 100)  # count per peer
    assert not held.add(b"b", m, b"x" * 1001)  # bytes per peer
    assert held.add(b"b", m, b"x" * 1000)
    assert not held.add(b"c", m, b"x" * 1000)  # bytes in total
    assert held.add(b"c", m, b"x" * 100)
    assert not held.add(b"d", m, b"x")  # count in total
    assert len(held) == 5 and held.size == 1400 and held.dropped == 4
    other = vote(KEYS[1], height=7)
    held.add(b"c", other, b"y")  # refused (full): taking height 6 returns the five
    assert [s for s, _, _ in held.take(6)] == [b"a", b"a", b"a", b"b", b"c"]
    assert len(held) == 0 and held.size == 0
    held.add(b"a", other, b"y")
    assert held.take(6) == []  # not the height started: dropped


def test_verified_signatures_remember_successes_only() -> None:
    cache = VerifiedSignatures(capacity=2)
    good = vote(KEYS[0])
    args = (good.validator, good.signature, good.sign_bytes(CHAIN))
    assert cache(*args) and cache(*args)
    assert not cache(good.validator, bytes(64), good.sign_bytes(CHAIN))
    for k in KEYS[1:]:
        v = vote(k)
        assert cache(v.validator, v.signature, v.sign_bytes(CHAIN))
    assert len(cache._good) == 2


def certificate(height: int, signers: list[KeyPair], chain: str = CHAIN) -> bytes:
    value_id = sha256(b"block %d" % height)
    votes = [Vote.sign(k, chain, height, 0, Step.PRECOMMIT, value_id) for k in signers]
    return encode_certificate(CommitCertificate.from_votes(votes))


def test_a_claimed_height_needs_a_certificate_from_over_a_third_of_the_known_set() -> None:
    check_claim(9, certificate(9, KEYS[:2]), VSET, CHAIN)  # 20 of 40 > 1/3
    with pytest.raises(ClaimError, match="without a commit certificate"):
        check_claim(10**12, None, VSET, CHAIN)
    with pytest.raises(ClaimError, match="not the claimed"):
        check_claim(10**12, certificate(9, KEYS), VSET, CHAIN)
    with pytest.raises(ClaimError, match="not more than 1/3"):
        check_claim(9, certificate(9, KEYS[:1]), VSET, CHAIN)  # 10 of 40
    strangers = [KeyPair.generate() for _ in range(4)]
    with pytest.raises(ClaimError, match="not more than 1/3"):
        check_claim(9, certificate(9, strangers), VSET, CHAIN)  # a set of its own making
    with pytest.raises(ClaimError):
        check_claim(9, certificate(9, KEYS, chain="another-chain"), VSET, CHAIN)
    with pytest.raises(ClaimError, match="undecodable"):
        check_claim(9, b"\x00junk", VSET, CHAIN)


@pytest.mark.parametrize(
    "value",
    [
        [5],
        [5, None],
        [5, None, 1, 2],
        "5",
        [-1, None, 0],
        [True, None, 0],
        [5, "x", 0],
        [5, None, -1],
        [5, None, 6],
        [5, None, True],
    ],
)
def test_malformed_status_answers_are_claim_errors(value) -> None:
    with pytest.raises(ClaimError):
        parse_status(value)


def test_status_rate_limit_is_per_peer_and_refills() -> None:
    now = [0.0]
    limit = RateLimiter(rate=2.0, burst=3.0, clock=lambda: now[0])
    assert [limit.allow(b"a") for _ in range(4)] == [True, True, True, False]
    assert limit.allow(b"b")
    now[0] += 0.5
    assert limit.allow(b"a") and not limit.allow(b"a")


def test_transaction_gossip_verdicts(tmp_path) -> None:
    """A transaction is forwarded only once admitted; a bad signature is the
    sender's fault (relayers admit before forwarding); any other refusal (here:
    already known) is neither forwarded nor blamed."""
    import asyncio

    from focusflow.net import Verdict
    from focusflow.node.validator import ValidatorRuntime
    from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx

    chain = new_chain(tmp_path / "c", genesis())
    runtime = ValidatorRuntime(chain, KeyPair.generate(), wal_path=tmp_path / "wal", listen=None)
    good = tx(ALICE, 0, link(("a", "b")))
    forged = bytearray(good)
    forged[-1] ^= 1  # the signature's last byte

    async def main() -> list[Verdict]:
        return [await runtime.intake.on_tx(b"peer", raw) for raw in (bytes(forged), good, good)]

    try:
        assert asyncio.run(main()) == [Verdict.REJECT, Verdict.ACCEPT, Verdict.IGNORE]
    finally:
        runtime.signer.wal.close()


class _NoBlocks:
    """A store installed from a snapshot at height 10, its head at 20, that
    has lost every block (what ``PeerRequests.serve_block`` reads of a chain)."""

    base = 10
    height = 20

    @contextlib.contextmanager
    def reader(self):
        yield types.SimpleNamespace(block=lambda height: None)


def test_block_sync_blames_a_missing_block_only_where_the_peer_claimed_to_hold_it() -> None:
    """Over real QUIC: a block the serving store never held (below its snapshot
    base) is answered ``block_not_kept`` and costs nothing; a block it should
    hold is ``unknown_block``, a lie after a certified claim; a busy peer and a
    failed handler are not lies either."""

    async def main() -> None:
        asker = Node(KeyPair.generate(), config=NetConfig(request_timeout=2.0))
        server = Node(KeyPair.generate())
        await asker.start()
        await server.start()
        await asker.connect(server.peer_address)
        holder = types.SimpleNamespace(chain=_NoBlocks())
        server.register("block", functools.partial(PeerRequests.serve_block, holder))
        codes = {}
        for height in (5, 10, 11, 20):
            with pytest.raises(RemoteError) as err:
                await asker.request(server.id, "block", encode(height))
            codes[height] = err.value.remote_code
        await asker.stop()
        await server.stop()
        return codes

    codes = asyncio.run(asyncio.wait_for(main(), 20))
    assert codes == {
        5: "block_not_kept",
        10: "block_not_kept",
        11: "unknown_block",
        20: "unknown_block",
    }
    lies = {
        code: sync_refusal_is_a_lie(RemoteError("refused", code))
        for code in ("unknown_block", "block_not_kept", BUSY, HANDLER_FAILED)
    }
    assert lies == {
        "unknown_block": True,
        "block_not_kept": False,
        BUSY: False,
        HANDLER_FAILED: False,
    }
    assert not sync_refusal_is_a_lie(RequestTimeoutError("no answer"))
