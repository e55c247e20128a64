"""Data availability over QUIC between real node runtimes on loopback (one process).

Each runtime is a :class:`ValidatorRuntime` with its own chain, QUIC transport
and the :class:`DANet` extension, as ``focusflow node start`` wires them; the
lying peer is a plain ``focusflow.net.Node`` serving tampered proofs. What is
checked: shares and proofs are served and sampled over QUIC; a proposer that
withholds its proposal's square, or a peer that serves proofs that do not
verify, fails the sampling (and the liar loses score); a proposal check refuses
such a proposal on a validator; a block whose data root covers a badly encoded
square is proven so by the node that syncs it, which gossips the proof and
halts, and a node that only hears the proof verifies it and halts too; a forged
or uncertified proof is refused and costs its sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random

import pytest

from focusflow.chain.da_commit import (
    RECENT_SQUARES,
    block_square,
    recent_squares,
)
from focusflow.consensus import Broadcast, Proposal
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import KeyPair
from focusflow.da import (
    find_bad_encoding,
    share_proof_to_cbor,
    verify_bad_encoding_proof,
)
from focusflow.net import NetConfig, Node, Verdict
from focusflow.node.da_net import (
    SHARES,
    DAConfig,
    DANet,
    decode_fraud,
    encode_fraud,
    sample_peer,
)
from focusflow.node.faults import FaultPlan, bad_encoding
from focusflow.node.validator import ValidatorRuntime, decode_value
from focusflow.testing.chains import ALICE, VALIDATOR, genesis, link, new_chain, tx

T0 = 1_700_000_000_000
#: A node that serves no share of a square not committed yet.
WITHHOLD_PROPOSALS = FaultPlan(da_withhold_proposals=True)
LINKS = 40


def _txs(tag: str, nonce: int = 0) -> list[bytes]:
    return [tx(ALICE, nonce, link(*[(f"{tag}{i}", f"{tag}{i + 1}") for i in range(LINKS)]))]


def _runtime(tmp_path, name, chain, *, key=None, peers=(), follow_only=True, config=None):
    rt = ValidatorRuntime(
        chain,
        key or KeyPair.generate(),
        wal_path=tmp_path / f"{name}.wal",
        listen=("127.0.0.1", 0),
        peers=list(peers),
        follow_only=follow_only,
    )
    rt.extensions.append(DANet(config or DAConfig()))
    return rt


def _address(rt: ValidatorRuntime) -> str:
    host, port = rt.net.address
    return f"{rt.net.id.hex()}@{host}:{port}"


async def _until(check, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _server_and_sampler(tmp_path, chain_a, gen):
    """``(a, b)``: validator ``a`` serving ``chain_a``'s squares and a follower
    ``b`` that dials nobody by itself; both stopped on the way out."""
    a = _runtime(tmp_path, "a", chain_a, key=VALIDATOR)
    await a.start_async()
    b = _runtime(tmp_path, "b", new_chain(tmp_path / "b", gen, producer=False))
    b.net.static_peers = []
    try:
        await b.start_async()
        yield a, b
    finally:
        await b.stop_async()
        await a.stop_async()


@pytest.fixture(scope="module")
def gen():
    return genesis(focus={"mode": "diffusion"})


def test_shares_sampled_over_quic_withheld_and_lying_peers_fail(tmp_path, gen):
    chain_a = new_chain(tmp_path / "a", gen)
    chain_a.produce_block(_txs("a"), time_ms=T0 + 1)
    header = chain_a.head
    pending = block_square(_txs("p", 1) + _txs("q", 0))  # a square built here, not committed
    liar_key = KeyPair.generate()

    async def main():
        async with _server_and_sampler(tmp_path, chain_a, gen) as (a, b):
            await sampled(a, b)

    async def sampled(a, b):
        liar = Node(liar_key, config=NetConfig(network_id=gen.hash))
        square = block_square(chain_a.block_record(1).block.txs)

        async def lying_shares(peer, payload):
            _height, _root, coords = decode(payload)
            out = []
            for r, c in coords:
                proof = square.proof(r, c)
                share = bytearray(proof.share)
                share[100] ^= 1
                out.append(share_proof_to_cbor(dataclasses.replace(proof, share=bytes(share))))
            return encode(out)

        liar.register(SHARES, lying_shares)
        await liar.start()
        try:
            await b.net.connect(_address(a))
            await b.net.connect(liar.peer_address)
            rng = random.Random(7)
            # The committed square: 16 samples, every proof verified.
            ok = await sample_peer(b.net, a.net.id, 1, header.data_root, square.width, 16, 2.0, rng)
            assert ok.available and len(ok.samples) == 16 and not ok.failed
            # A square built (proposed or validated) there but not committed.
            ok2 = await sample_peer(
                b.net, a.net.id, 2, pending.data_root(), pending.width, 16, 2.0, rng
            )
            assert ok2.available
            # The same node withholding its uncommitted squares: every sample missing.
            a.da.faults = WITHHOLD_PROPOSALS
            gone = await sample_peer(
                b.net, a.net.id, 2, pending.data_root(), pending.width, 16, 2.0, rng
            )
            assert not gone.available and len(gone.failed) == 16
            # Committed squares are still served.
            assert (
                await sample_peer(b.net, a.net.id, 1, header.data_root, square.width, 4, 2.0, rng)
            ).available
            # A peer serving shares whose proofs do not verify: unavailable, and reported.
            before = b.net.scores.score(liar_key.public_key)
            lied = await sample_peer(
                b.net, liar_key.public_key, 1, header.data_root, square.width, 16, 2.0, rng
            )
            assert not lied.available and len(lied.failed) == 16
            assert b.net.scores.score(liar_key.public_key) < before
            # Shares of another block's square do not verify under this data root either.
            wrong = await sample_peer(
                b.net, a.net.id, 1, pending.data_root(), square.width, 8, 2.0, rng
            )
            assert not wrong.available
        finally:
            await liar.stop()

    asyncio.run(main())


def test_sampling_waits_for_a_proposer_that_is_reconnecting(tmp_path, gen):
    """A validator that just restarted (or whose proposer did) is not connected
    for a moment: sampling asks again until its deadline instead of counting
    every share missing, and a proposer that never comes back is still
    unavailable once the deadline passes."""
    chain_a = new_chain(tmp_path / "a", gen)
    chain_a.produce_block(_txs("a"), time_ms=T0 + 1)
    header = chain_a.head

    async def main():
        square = block_square(chain_a.block_record(1).block.txs)
        rng = random.Random(3)
        async with _server_and_sampler(tmp_path, chain_a, gen) as (a, b):
            sampling = asyncio.ensure_future(
                sample_peer(b.net, a.net.id, 1, header.data_root, square.width, 16, 2.0, rng)
            )
            await asyncio.sleep(0.3)
            assert not sampling.done()
            await b.net.connect(_address(a))
            result = await sampling
            assert result.available and len(result.samples) == 16
            nobody = KeyPair.generate().public_key
            t0 = asyncio.get_running_loop().time()
            gone = await sample_peer(b.net, nobody, 1, header.data_root, square.width, 4, 0.5)
            assert not gone.available
            assert 0.4 < asyncio.get_running_loop().time() - t0 < 2.0

    asyncio.run(main())


def test_a_validator_refuses_a_proposal_its_proposer_does_not_serve(tmp_path, gen):
    """The proposal check on a validator: the proposer's square sampled over QUIC."""
    chain_a = new_chain(tmp_path / "a", gen)
    chain_a.produce_block(_txs("a"), time_ms=T0 + 1)
    proposal = chain_a.propose(_txs("b", 1), time_ms=T0 + 2)  # block 2, not committed

    async def main():
        a = _runtime(tmp_path, "a", chain_a, key=VALIDATOR)
        await a.start_async()
        chain_b = new_chain(tmp_path / "b", gen, producer=False)
        b = _runtime(tmp_path, "b", chain_b, follow_only=False, config=DAConfig(timeout=1.0))
        await b.start_async()
        try:
            await b.net.connect(_address(a))
            check = b.extensions[0].check_proposal
            assert await asyncio.to_thread(check, proposal.record) is None
            a.da.faults = WITHHOLD_PROPOSALS
            refused = await asyncio.to_thread(check, proposal.record)
            assert refused is not None and "sampling failed" in refused
            # A full node samples too but only logs: it does not vote.
            b.follow_only = True
            assert await asyncio.to_thread(check, proposal.record) is None
        finally:
            await b.stop_async()
            await a.stop_async()

    asyncio.run(main())


def test_a_reproposal_is_sampled_from_its_signer_not_its_vanished_maker(tmp_path, gen):
    """A block re-proposed in a later round is sampled from the validator that
    re-proposes it (it holds the square), not from its maker: a maker that went
    down after proposing would otherwise get its block refused in every round
    by the validators that missed the polka, while the rest stay locked on it."""
    chain_a = new_chain(tmp_path / "a", gen)
    chain_a.produce_block(_txs("a"), time_ms=T0 + 1)
    proposal = chain_a.propose(_txs("b", 1), time_ms=T0 + 2)  # block 2, not committed

    async def main():
        a = _runtime(tmp_path, "a", chain_a, key=VALIDATOR)
        await a.start_async()
        b = _runtime(
            tmp_path,
            "b",
            new_chain(tmp_path / "b", gen, producer=False),
            follow_only=False,
            config=DAConfig(timeout=1.0),
        )
        await b.start_async()
        c = _runtime(tmp_path, "c", new_chain(tmp_path / "c", gen, producer=False))
        await c.start_async()
        try:
            await b.net.connect(_address(a))
            await b.net.connect(_address(c))
            a.da.faults = WITHHOLD_PROPOSALS  # the maker serves nothing (it is gone)
            check = b.extensions[0].check_proposal
            refused = await asyncio.to_thread(check, proposal.record)
            assert refused is not None and "from the proposer" in refused
            assert await asyncio.to_thread(check, proposal.record, a.net.id) == refused
            # Re-proposed by a validator holding the square: sampled there, available.
            assert await asyncio.to_thread(check, proposal.record, c.net.id) is None
            c.da.faults = WITHHOLD_PROPOSALS
            refused = await asyncio.to_thread(check, proposal.record, c.net.id)
            assert refused is not None and "from the re-proposer" in refused
        finally:
            await c.stop_async()
            await b.stop_async()
            await a.stop_async()

    asyncio.run(main())


def test_a_proposal_sent_without_its_square_built_here_is_served_all_the_same(tmp_path, gen):
    """A validator that re-proposes a block it locked on before a restart (from
    its WAL) never built that block's square in this process; once it sends the
    proposal it holds the square, so the validators sampling it get their shares."""
    chain_a = new_chain(tmp_path / "a", gen)
    chain_a.produce_block(_txs("a"), time_ms=T0 + 1)
    value = chain_a.propose(_txs("r", 1), time_ms=T0 + 2).proposal_value()
    record = decode_value(value)
    root = record.block.header.data_root
    for i in range(RECENT_SQUARES):  # the square is pushed out, as by a restart
        block_square(_txs(f"evict{i}", i))
    assert recent_squares.get(root) is None

    async def main():
        async with _server_and_sampler(tmp_path, chain_a, gen) as (a, b):
            await b.net.connect(_address(a))
            width = block_square(record.block.txs, keep=False).width
            before = await sample_peer(b.net, a.net.id, 2, root, width, 8, 1.0)
            assert not before.available
            proposal = Proposal.sign(VALIDATOR, chain_a.chain_id, 2, 1, 0, value, record.block.hash)
            await a.consensus.act([Broadcast(proposal)])
            after = await sample_peer(b.net, a.net.id, 2, root, width, 8, 1.0)
            assert after.available

    asyncio.run(main())


def test_bad_encoding_is_proven_gossiped_and_halts_the_nodes_that_verify_it(tmp_path, gen):
    chain_a = new_chain(tmp_path / "a", gen)

    async def main():
        a = _runtime(tmp_path, "a", chain_a, key=VALIDATOR)
        # The producer commits a data root over a square with a corrupted parity
        # share; its DA store keeps that square (the listener) to serve it.
        with bad_encoding():
            chain_a.produce_block(_txs("a"), time_ms=T0 + 1)
        bad = chain_a.block_record(1)
        await a.start_async()
        b = _runtime(tmp_path, "b", new_chain(tmp_path / "b", gen, producer=False))
        await b.start_async()
        c = _runtime(tmp_path, "c", new_chain(tmp_path / "c", gen, producer=False))
        await c.start_async()
        try:
            await c.net.connect(_address(b))  # c hears of block 1 from b only
            await b.net.connect(_address(a))  # b block-syncs from a
            await _until(lambda: b.halted and c.halted, 30, "both honest nodes halt")
            for node in (b, c):
                assert node.chain.height == 0  # nothing of the bad chain was accepted
                record = node.da.fraud(1)
                assert record is not None and record.header.hash == bad.block.hash
                assert verify_bad_encoding_proof(bad.block.header.data_root, record.proof)
                assert "badly encoded" in node.halted
            assert b.extensions[0].stats["fraud_built"] == 1
            assert c.extensions[0].stats["fraud_accepted"] == 1
            assert record.proof.axis == "row" and record.proof.index == 0
            # Halted nodes stop following: no commit, no sync.
            await asyncio.sleep(1.5)
            assert b.chain.height == 0 and c.chain.height == 0
        finally:
            await c.stop_async()
            await b.stop_async()
            await a.stop_async()

    asyncio.run(main())


def test_forged_and_uncertified_fraud_proofs_are_refused_and_cost_the_sender(tmp_path, gen):
    bad_chain = new_chain(tmp_path / "bad", gen)
    with bad_encoding():
        bad_chain.produce_block(_txs("a"), time_ms=T0 + 1)
        bad_square = block_square(bad_chain.block_record(1).block.txs)
    good_chain = new_chain(tmp_path / "good", gen)
    good_chain.produce_block(_txs("a"), time_ms=T0 + 1)
    good = good_chain.block_record(1)
    bad = bad_chain.block_record(1)
    proof = find_bad_encoding(bad_square)
    assert proof is not None

    async def main():
        c = _runtime(tmp_path, "c", new_chain(tmp_path / "c", gen, producer=False))
        await c.start_async()
        dan = c.extensions[0]
        sender = KeyPair.generate().public_key
        try:
            from focusflow.chain.da_commit import FraudRecord

            # A valid proof against the certified honest block's header? It does
            # not verify against that header's data root: refused.
            forged = FraudRecord(good.block.header, good.commit, proof)
            assert await dan._on_fraud(sender, encode_fraud(forged)) is Verdict.REJECT
            # The right proof without the certificate that the block was committed:
            # a proposal nobody committed halts nobody.
            bare = FraudRecord(bad.block.header, None, proof)
            assert await dan._on_fraud(sender, encode_fraud(bare)) is Verdict.REJECT
            # A certificate of another block.
            other = FraudRecord(bad.block.header, good.commit, proof)
            assert await dan._on_fraud(sender, encode_fraud(other)) is Verdict.REJECT
            # Garbage and oversized payloads are refused before decoding.
            assert await dan._on_fraud(sender, b"\x00junk") is Verdict.REJECT
            assert await dan._on_fraud(sender, bytes(5 << 20)) is Verdict.REJECT
            assert c.halted is None and c.da.fraud(1) is None
            # The genuine one halts.
            genuine = FraudRecord(bad.block.header, bad.commit, proof)
            assert decode_fraud(encode_fraud(genuine)) == genuine
            assert await dan._on_fraud(sender, encode_fraud(genuine)) is Verdict.ACCEPT
            assert c.halted and c.da.fraud(1) == genuine
        finally:
            await c.stop_async()

    asyncio.run(main())


def test_config_keys_are_checked():
    assert DAConfig.from_config({}) == DAConfig()
    cfg = DAConfig.from_config({"da_samples": 32, "da_sample_timeout": 0.5, "da_sampling": False})
    assert (cfg.samples, cfg.timeout, cfg.sampling) == (32, 0.5, False)
    from focusflow.core.errors import InvalidParameterError

    for bad in (
        {"da_samples": 0},
        {"da_samples": 65},
        {"da_samples": True},
        {"da_sample_timeout": 0},
        {"da_sample_timeout": "1"},
        {"da_sampling": 1},
    ):
        with pytest.raises(InvalidParameterError):
            DAConfig.from_config(bad)


def test_a_proof_for_a_height_ahead_is_held_and_acted_on_once_the_node_gets_there(tmp_path, gen):
    chain_a = new_chain(tmp_path / "a", gen)
    chain_a.produce_block(_txs("a"), time_ms=T0 + 1)
    with bad_encoding():
        chain_a.produce_block(_txs("b", 1), time_ms=T0 + 2)
        square = block_square(chain_a.block_record(2).block.txs)
    from focusflow.chain.da_commit import FraudRecord

    bad = chain_a.block_record(2)
    fraud = FraudRecord(bad.block.header, bad.commit, find_bad_encoding(square))
    chain_b = new_chain(tmp_path / "b", gen, producer=False)
    chain_b.apply_block(chain_a.block_record(1))  # b holds the good block 1 only

    async def main():
        b = _runtime(tmp_path, "b", chain_b)
        await b.start_async()
        c = _runtime(tmp_path, "c", new_chain(tmp_path / "c", gen, producer=False))
        await c.start_async()
        try:
            dan = c.extensions[0]
            sender = KeyPair.generate().public_key
            assert await dan._on_fraud(sender, encode_fraud(fraud)) is Verdict.IGNORE
            assert c.halted is None  # block 2 is two heights ahead: its set is not known yet
            await c.net.connect(_address(b))  # c syncs block 1, then judges the held proof
            await _until(lambda: c.halted is not None, 20, "the held proof halts c")
            assert c.chain.height == 1 and c.da.fraud(2) == fraud
        finally:
            await c.stop_async()
            await b.stop_async()

    asyncio.run(main())


def test_old_blocks_rebuilt_for_readers_do_not_evict_proposal_squares(tmp_path, gen):
    from focusflow.chain.da_commit import RECENT_SQUARES, recent_squares
    from focusflow.node.da_store import DAStore

    chain = new_chain(tmp_path / "a", gen)
    heights = range(1, RECENT_SQUARES + 2)
    for h in heights:
        chain.produce_block(_txs(f"h{h}", h - 1), time_ms=T0 + h)
    proposal = block_square(_txs("p", len(heights)))
    store = DAStore(chain)  # created after the blocks: every square is a rebuild
    for h in heights:
        store.square(h)
    assert store.rebuilt == len(heights) > RECENT_SQUARES
    assert recent_squares.get(proposal.data_root()) is proposal


def test_shares_served_to_one_peer_are_rate_limited_without_blame(tmp_path, gen):
    from focusflow.net.errors import RateLimitedError
    from focusflow.node.da_net import ShareBudget

    chain = new_chain(tmp_path / "a", gen)
    chain.produce_block(_txs("a"), time_ms=T0 + 1)
    rt = _runtime(tmp_path, "a", chain, key=VALIDATOR)
    dan = rt.extensions[0]
    dan.attach(rt)
    dan._budget = ShareBudget(rate=10)  # bursts of 20 shares
    ask = encode([1, chain.head.data_root, [[r, c] for r in range(2) for c in range(8)]])
    peer, other = KeyPair.generate().public_key, KeyPair.generate().public_key

    async def main():
        assert len(decode(await dan._serve_shares(peer, ask))) == 16
        with pytest.raises(RateLimitedError):
            await dan._serve_shares(peer, ask)
        assert len(decode(await dan._serve_shares(other, ask))) == 16  # per peer

    asyncio.run(main())


def test_a_square_fetched_for_a_fraud_proof_is_checked_row_by_row(tmp_path, gen):
    """Roots that do not hash to the data root, and a row that does not hash to
    its committed root, are refused (BadAnswerError) before anything is built."""
    from focusflow.node.da_net import AXIS, ROOTS, BadAnswerError, fetch_roots, fetch_square

    square = block_square(_txs("s"))
    root = square.data_root()
    liar_key = KeyPair.generate()

    async def main():
        b = _runtime(tmp_path, "b", new_chain(tmp_path / "b", gen, producer=False))
        await b.start_async()
        liar = Node(liar_key, config=NetConfig(network_id=gen.hash))
        lie = {"roots": False}

        async def roots(peer, payload):
            rows, cols = square.row_roots(), square.col_roots()
            if lie["roots"]:
                rows = [rows[1], rows[0], *rows[2:]]
            return encode([rows, cols])

        async def axis(peer, payload):
            _h, _r, _axis, index = decode(payload)
            row = square.row(index)
            if index == 3:
                row[5] = bytes(512)
            return encode(row)

        liar.register(ROOTS, roots)
        liar.register(AXIS, axis)
        await liar.start()
        try:
            peer = await b.net.connect(liar.peer_address)
            assert (await fetch_roots(b.net, peer, 1, root, 2.0))[0] == square.row_roots()
            with pytest.raises(BadAnswerError, match="row 3 does not hash"):
                await fetch_square(b.net, peer, 1, root)
            lie["roots"] = True
            with pytest.raises(BadAnswerError, match="do not hash to the data root"):
                await fetch_roots(b.net, peer, 1, root, 2.0)
        finally:
            await liar.stop()
            await b.stop_async()

    asyncio.run(main())
