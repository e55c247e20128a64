"""Proposals that name certified batches (a chain whose mempool is the DAG).

Two validators in one process, each with its own chain and DAG mempool; the
batch, its vote and its certificate are handed between them as the network
would. The proposer's value carries no transactions; the other validator
rebuilds the block from the batch it holds and re-executes it. Tampered values
(a forged certificate, a skipped transaction the header does not say, an index
past the transactions, a batch nobody can serve) are refused, and a committed
block's certificates are ordered on both, so they are not proposed again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys

import pytest

from focusflow.chain.block import sign_certificate
from focusflow.chain.genesis import Genesis
from focusflow.consensus.batches import Batch, BatchCertificate, BatchEquivocation, encode_batch
from focusflow.core.errors import DecodeError, InvalidParameterError
from focusflow.core.keys import KeyPair
from focusflow.net.errors import InvalidMessageError
from focusflow.node import open_chain
from focusflow.node.dag_host import BatchRefusedError
from focusflow.node.dag_values import DagValue, decode_dag_value
from focusflow.node.validator import ValidatorRuntime
from focusflow.testing.chains import ALICE, BALANCE, BOB, CHAIN_ID, STAKE, link, new_chain, tx

V1 = KeyPair.from_seed(b"dag-validator-1".ljust(32, b"\0"))
V2 = KeyPair.from_seed(b"dag-validator-2".ljust(32, b"\0"))


def dag_genesis() -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": 1_700_000_000_000,
            "params": {"focus": {"mode": "tri"}, "consensus": {"mempool": "dag"}},
            "accounts": [
                {"address": k.address, "balance": BALANCE, "stake": STAKE} for k in (ALICE, BOB)
            ],
            "validators": [
                {"name": "a", "public_key": V1.public_key.hex(), "power": 1},
                {"name": "b", "public_key": V2.public_key.hex(), "power": 1},
            ],
        }
    )


@pytest.fixture
def pair(tmp_path):
    """Two validators' runtimes over their own chains of one genesis."""
    runtimes = []
    for name, key in (("a", V1), ("b", V2)):
        chain = open_chain(tmp_path / name, dag_genesis(), key)
        runtimes.append(
            ValidatorRuntime(chain, key, wal_path=tmp_path / f"{name}.wal", listen=None)
        )
    yield runtimes
    for r in runtimes:
        r.signer.wal.close()
        r.dag.signer.wal.close()


def certify(author: ValidatorRuntime, other: ValidatorRuntime) -> BatchCertificate:
    """Seal the author's pool into a batch, have ``other`` vote, and give both the
    certificate (what the batch request and the certificate gossip do)."""
    (batch,) = author.dag.seal()
    vote = other.dag.dag.on_batch(batch)
    cert = author.dag.dag.on_vote(vote)
    assert cert is not None
    assert other.dag.dag.on_certificate(cert)
    return cert


def proposed(a: ValidatorRuntime, b: ValidatorRuntime) -> tuple[BatchCertificate, bytes]:
    """Two of Alice's links sealed by a, certified by both, and a's proposal."""
    a.submit(tx(ALICE, 0, link(("x", "y"))))
    a.submit(tx(ALICE, 1, link(("y", "z"))))
    cert = certify(a, b)
    return cert, a.proposals.get_value(1)


def test_a_value_names_certificates_and_the_other_validator_rebuilds_the_block(pair):
    a, b = pair
    cert, value = proposed(a, b)
    dv = decode_dag_value(value, 10_000)
    assert dv.certs == (cert,) and dv.skipped == ()
    assert dv.record.block.txs == ()  # the transactions travel in the batch only
    assert b.proposals.value_id(value) == a.proposals.value_id(value)
    assert b.proposals.is_valid(1, value)
    block = b.proposals.decode(value).block
    assert len(block.txs) == 2

    # Committed on both: the certificate is ordered, the next payload is empty.
    certificate = sign_certificate([V1, V2], CHAIN_ID, 1, block.hash)
    for r in (a, b):
        r.proposals.deciding(value)
        pending = r.proposals.executed(block.hash)
        r.after_commit(r.chain.commit(pending, certificate))
        assert r.dag.payload().certs == ()
        assert r.dag.dag.floor(V1.public_key) == 1
    status = a.dag_status()
    assert status is not None and status["sealed"] == 1
    assert status["unordered"] == 0 and status["uncertified"] == 0 and status["epoch"] == 0
    assert a.chain.head.hash == b.chain.head.hash


def test_a_transaction_that_does_not_execute_is_skipped_by_index(pair):
    a, b = pair
    a.submit(tx(ALICE, 0, link(("x", "y"))))
    a.submit(tx(ALICE, 1, link(("y", "z"))))
    (batch,) = a.dag.seal()
    # Bob's transaction with a nonce from the future rides in b's own batch.
    b.dag.dag.submit(tx(BOB, 5, link(("q", "r"))))
    (batch_b,) = b.dag.seal()
    cert_a = a.dag.dag.on_vote(b.dag.dag.on_batch(batch))
    cert_b = b.dag.dag.on_vote(a.dag.dag.on_batch(batch_b))
    b.dag.dag.on_certificate(cert_a)
    a.dag.dag.on_certificate(cert_b)
    value = a.proposals.get_value(1)
    dv = decode_dag_value(value, 10_000)
    assert set(dv.certs) == {cert_a, cert_b}
    assert len(dv.skipped) == 1  # Bob's nonce 5
    assert b.proposals.is_valid(1, value)
    assert len(b.proposals.decode(value).block.txs) == 2


def tampered(value: bytes, **changes: object) -> bytes:
    dv = decode_dag_value(value, 10_000)
    return dataclasses.replace(dv, **changes).encode()


def test_tampered_values_are_refused(pair):
    a, b = pair
    cert, value = proposed(a, b)

    # A skipped transaction the header's root does not say.
    assert not b.proposals.is_valid(1, tampered(value, skipped=(0,)))
    # An index past the transactions.
    assert not b.proposals.is_valid(1, tampered(value, skipped=(7,)))
    # A certificate signed by a key outside the set.
    outsider = KeyPair.from_seed(b"outsider".ljust(32, b"\0"))
    forged = dataclasses.replace(cert, signatures=((outsider.public_key, cert.signatures[0][1]),))
    assert not b.proposals.is_valid(1, tampered(value, certs=(forged,)))
    # The same certificate twice.
    assert not b.proposals.is_valid(1, tampered(value, certs=(cert, cert)))
    # The untampered value still passes: nothing above changed b's state.
    assert b.proposals.is_valid(1, value)


def test_a_batch_nobody_serves_refuses_the_proposal_without_waiting(pair, tmp_path):
    """b holds the certificate (it checks) but not the batch, and has no peer to
    fetch it from: the proposal cannot be judged, so b does not prevote for it."""
    a, b = pair
    a.submit(tx(ALICE, 0, link(("x", "y"))))
    (batch,) = a.dag.seal()
    vote = b.dag.dag.on_batch(batch)
    cert = a.dag.dag.on_vote(vote)
    value = a.proposals.get_value(1)
    # A third runtime of b's key that never saw the batch.
    c = ValidatorRuntime(
        open_chain(tmp_path / "c", dag_genesis(), V2), V2, wal_path=tmp_path / "c.wal", listen=None
    )
    try:
        assert c.dag.dag.on_certificate(cert)
        assert not c.proposals.is_valid(1, value)
        assert c.chain.height == 0
    finally:
        c.signer.wal.close()
        c.dag.signer.wal.close()


@pytest.mark.parametrize(
    ("mutate", "flaw"),
    [
        (lambda v: v + b"\x00" * (4 << 20), "bytes, more than"),
        (lambda v: b"\x83" + v[1:], "DAG value"),
        (lambda v: v.replace(b"dag_value", b"dag_valuX"), "expected [dag_value"),
    ],
)
def test_hostile_value_bytes_are_refused_with_the_flaw_named(pair, mutate, flaw):
    a, b = pair
    a.submit(tx(ALICE, 0, link(("x", "y"))))
    certify(a, b)
    value = a.proposals.get_value(1)
    with pytest.raises(DecodeError, match=flaw.replace("[", r"\[")):
        decode_dag_value(mutate(value), 10_000)
    assert not b.proposals.is_valid(1, mutate(value))


def test_value_fields_out_of_shape_are_refused(pair):
    a, b = pair
    a.submit(tx(ALICE, 0, link(("x", "y"))))
    certify(a, b)
    dv = decode_dag_value(a.proposals.get_value(1), 10_000)
    for skipped, flaw in (((2, 1), "sorted"), ((1, 1), "sorted"), ((-1,), "non-negative")):
        raw = DagValue(dv.record, dv.certs, skipped).encode()
        with pytest.raises(DecodeError, match=flaw):
            decode_dag_value(raw, 10_000)
    with pytest.raises(DecodeError, match="at most 1 skipped"):
        decode_dag_value(DagValue(dv.record, dv.certs, (0, 1)).encode(), 1)
    full = b.proposals.decode(a.proposals.get_value(1))  # a record with its transactions
    with pytest.raises(DecodeError, match="carries transactions"):
        decode_dag_value(DagValue(full, dv.certs, ()).encode(), 10_000)


def test_the_dag_mempool_is_a_genesis_choice_checked_before_use(tmp_path):
    from focusflow.consensus.engine import EngineConfig

    assert EngineConfig().to_plain() == {}  # old geneses hash as before
    assert EngineConfig(mempool="dag").to_plain() == {"mempool": "dag"}
    for plain, flaw in (
        ({"mempool": "gossip"}, "not one of"),
        ({"mempool": 1}, "must be a string"),
        ({"mempool": "dag", "engine": "snowman"}, "tendermint engine only"),
    ):
        with pytest.raises(InvalidParameterError, match=flaw):
            EngineConfig.from_plain(plain)
    chain = new_chain(tmp_path / "p")
    runtime = ValidatorRuntime(chain, V1, wal_path=tmp_path / "wal", listen=None)
    try:
        assert runtime.dag is None  # a proposer-mempool chain runs none
    finally:
        runtime.signer.wal.close()


def test_an_author_signing_two_batches_for_one_slot_is_evidence_in_the_chain_pool(pair):
    """Twins: the author's key seals two batches into slot (0, a, 0) and sends each
    to b. b votes for the first only; the second is refused, and the two
    signatures become batch equivocation evidence in b's chain evidence pool,
    which the next block carries and the bank slashes."""
    _, b = pair
    first = Batch.seal(V1, CHAIN_ID, 0, 0, [tx(ALICE, 0, link(("x", "y")))])
    twin = Batch.seal(V1, CHAIN_ID, 0, 0, [tx(ALICE, 0, link(("x", "z")))])
    assert asyncio.run(b.dag.serve_batch(V1.public_key, encode_batch(first)))
    assert len(b.chain.evidence) == 0
    with pytest.raises(BatchRefusedError):
        asyncio.run(b.dag.serve_batch(V1.public_key, encode_batch(twin)))
    (evidence,) = b.chain.evidence.pending()
    assert isinstance(evidence, BatchEquivocation)
    assert evidence.kind == "batch" and evidence.signer == V1.public_key
    # A batch sent by someone other than its author costs that peer.
    with pytest.raises(InvalidMessageError, match="from its author"):
        asyncio.run(b.dag.serve_batch(V2.public_key, encode_batch(first)))


@pytest.mark.parametrize(
    ("args", "flaw"),
    [
        (("--mempool", "dag", "--consensus", "snowman"), "tendermint engine only"),
        (("--mempool", "gossip"), "not one of"),
    ],
)
def test_testnet_refuses_a_mempool_it_cannot_run_before_writing_anything(tmp_path, args, flaw):
    home = tmp_path / "tn"
    cmd = [sys.executable, "-m", "focusflow", "testnet", "--home", str(home), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and flaw in result.stderr, result
    assert not home.exists()


def test_hostile_batch_fetch_and_certificate_messages_cost_their_sender(pair, tmp_path):
    """Each DAG input from the network is bounded and checked before it is
    stored: garbage or a forged signature is the sender's fault (the transport
    reports it), a well-formed request for something not held is a plain
    refusal, and nothing changes the DAG's state."""
    from focusflow.consensus.batches import encode_batch_certificate
    from focusflow.consensus.dag_mempool import FetchRequest
    from focusflow.net import Verdict
    from focusflow.node.dag_host import encode_fetch

    a, b = pair
    a.submit(tx(ALICE, 0, link(("x", "y"))))
    (batch,) = a.dag.seal()
    cert = a.dag.dag.on_vote(b.dag.dag.on_batch(batch))
    before = (len(b.dag.dag.unordered()), dict(b.dag.dag.voted))

    for junk in (b"", b"\xff" * 64, b"\x00" * (2 << 20)):
        with pytest.raises(InvalidMessageError):
            asyncio.run(b.dag.serve_batch(V1.public_key, junk))
    forged = dataclasses.replace(batch, signature=bytes(64))
    with pytest.raises(InvalidMessageError, match="signature"):
        asyncio.run(b.dag.serve_batch(V1.public_key, encode_batch(forged)))

    for junk in (b"", b"\xff", b"\x84" + b"\x00" * 200, encode_batch(batch)[:100]):
        with pytest.raises(InvalidMessageError):
            asyncio.run(b.dag.serve_fetch(V1.public_key, junk))
    unknown = FetchRequest((0, V1.public_key, 9), bytes(32), ())
    with pytest.raises(BatchRefusedError):
        asyncio.run(b.dag.serve_fetch(V1.public_key, encode_fetch(unknown)))
    held = FetchRequest(batch.slot, batch.digest, ())
    assert asyncio.run(b.dag.serve_fetch(V1.public_key, encode_fetch(held))) == encode_batch(batch)

    assert asyncio.run(b.dag.on_cert(V1.public_key, b"\xff" * 10)) is Verdict.REJECT
    bad = dataclasses.replace(cert, signatures=((V2.public_key, bytes(64)),))
    raw_bad = encode_batch_certificate(bad)
    # A validator without the batch checks a certificate at once: the forged
    # one is refused, the real one held and forwarded.
    c = ValidatorRuntime(
        open_chain(tmp_path / "c", dag_genesis(), V2), V2, wal_path=tmp_path / "c.wal", listen=None
    )
    try:
        assert asyncio.run(c.dag.on_cert(V1.public_key, raw_bad)) is Verdict.REJECT
        assert c.dag.dag.unordered() == []
        assert asyncio.run(c.dag.on_cert(V1.public_key, encode_batch_certificate(cert))) is (
            Verdict.ACCEPT
        )
    finally:
        c.signer.wal.close()
        c.dag.signer.wal.close()
    other_epoch = dataclasses.replace(cert, epoch=7)
    assert (
        asyncio.run(b.dag.on_cert(V1.public_key, encode_batch_certificate(other_epoch)))
        is Verdict.IGNORE
    )
    assert (len(b.dag.dag.unordered()), dict(b.dag.dag.voted)) == before


def test_a_validator_that_leaves_the_set_hands_on_what_it_owed_and_gossips_again(pair):
    """At an epoch whose set lacks it, a validator stops sealing: the
    transactions its DAG still held come back for the host to gossip to the
    validators that stay, and its clients' new transactions go by gossip."""
    from focusflow.consensus import ValidatorSet

    a, _ = pair
    a.submit(tx(ALICE, 0, link(("x", "y"))))
    (batch,) = a.dag.seal()  # sealed, never certified nor ordered
    a.dag.dag.submit(tx(BOB, 0, link(("p", "q"))))  # still in the pool
    assert a.dag.sealing
    without_a = ValidatorSet.create({V2.public_key: 1})
    epoch_blocks = a.chain.params.epoch_blocks
    owed = a.dag.adopt(epoch_blocks + 1, without_a)
    assert owed == [*batch.txs, tx(BOB, 0, link(("p", "q")))]
    assert not a.dag.sealing and a.dag_status()["epoch"] == -1
    assert a.dag.adopt(epoch_blocks + 2, without_a) == []  # handed on once
