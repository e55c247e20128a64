"""A DAG mempool restarted from its log keeps its one-digest-per-slot rules.

Each test runs a validator on a real log file (``BatchSigner`` over a
``WriteAheadLog``), drops the object as a crash would (the file closed, nothing
else kept), opens a new one on the same file and checks what it signs. The
restarted validator without its log (``signer=None``) is shown voting for a
second digest of a slot, which is what the log prevents.
"""

from __future__ import annotations

import pytest

from focusflow.consensus.batch_signer import COMPACT_EVERY, BatchSigner
from focusflow.consensus.batches import Batch, BatchCertificate, BatchVote
from focusflow.consensus.dag_mempool import DagMempool, DagParams
from focusflow.consensus.errors import (
    InvalidBatchCertificateError,
    InvalidBatchError,
    SignRefusedError,
    WALError,
)
from focusflow.consensus.validators import ValidatorSet
from focusflow.consensus.wal import KIND_VOTE, WALEntry, WriteAheadLog
from focusflow.core.errors import InvalidParameterError

from .harness import CHAIN
from .test_dag_mempool import KS, VS, flat

OPEN: list[WriteAheadLog] = []


@pytest.fixture(autouse=True)
def _close_logs():
    yield
    while OPEN:
        OPEN.pop().close()


def log(path) -> WriteAheadLog:
    wal = WriteAheadLog(path)
    OPEN.append(wal)
    return wal


def start(path, key=KS[1], epoch: int = 0, params: DagParams | None = None) -> DagMempool:
    signer = BatchSigner(key, CHAIN, log(path))
    return DagMempool(key, CHAIN, VS, epoch, flat, params or DagParams(), signer=signer)


def crash(n: DagMempool) -> None:
    assert n.signer is not None
    n.signer.wal.close()


def twins() -> tuple[Batch, Batch]:
    """Two batches of KS[0] for its slot 0: an equivocating author."""
    return (
        Batch.seal(KS[0], CHAIN, 0, 0, [b"\x01x"]),
        Batch.seal(KS[0], CHAIN, 0, 0, [b"\x01y"]),
    )


def test_a_restarted_voter_refuses_the_second_digest_of_a_slot(tmp_path):
    x, y = twins()
    path = tmp_path / "dag.wal"
    n = start(path)
    vx = n.on_batch(x)
    assert vx is not None
    crash(n)
    again = start(path)
    assert again.voted == {x.slot: x.digest}
    assert again.on_batch(y) is None  # no vote for the twin
    assert again.on_batch(x) == vx  # the same vote, from the log
    # Without the log the restarted validator votes for the twin: equivocation.
    forgetful = DagMempool(KS[1], CHAIN, VS, 0, flat, DagParams())
    assert forgetful.on_batch(y) is not None


def test_a_restarted_author_resends_its_batch_and_never_reseals_the_slot(tmp_path):
    path = tmp_path / "dag.wal"
    a = start(path, key=KS[0])
    a.submit(b"\x05one")
    batch = a.tick()
    assert batch is not None and batch.sequence == 0
    crash(a)
    again = start(path, key=KS[0])
    assert again.resend() == [batch]  # the same bytes to broadcast again
    again.submit(b"\x05two")
    nxt = again.tick()
    assert nxt is not None and nxt.sequence == 1 and nxt.txs == (b"\x05two",)
    # Asked for slot 0 again, whatever the transactions, the signer gives batch 0.
    assert again.signer is not None
    assert again.signer.sign_batch(0, 0, [b"\x05other"]) == batch
    # Votes for the resent batch still form its certificate.
    votes = [BatchVote.sign(k, CHAIN, batch) for k in KS[1:4]]
    cert = None
    for v in [again.on_batch(batch), *votes]:
        assert v is not None
        cert = again.on_vote(v) or cert
    assert isinstance(cert, BatchCertificate) and cert.digest == batch.digest


def test_ordered_slots_are_forgotten_and_the_log_compacts(tmp_path):
    path = tmp_path / "dag.wal"
    params = DagParams(window=COMPACT_EVERY + 8)
    a = start(path, key=KS[0], params=params)
    signers = KS[1:4]
    for i in range(COMPACT_EVERY + 4):
        a.submit(bytes([9, i % 256, i // 256]))
        batch = a.tick()
        assert batch is not None
        cert = None
        for v in [a.on_batch(batch), *(BatchVote.sign(k, CHAIN, batch) for k in signers)]:
            assert v is not None
            cert = a.on_vote(v) or cert
        assert cert is not None
        a.on_certificate(cert)
        a.apply_block([cert])
    assert a.signer is not None
    # Compacted: the floor record, no ordered batch or vote.
    assert len(a.signer.wal.entries()) < 20
    assert a.signer.batches == {} and a.signer.votes == {}
    crash(a)
    again = start(path, key=KS[0], params=params)
    assert again.resend() == []
    again.submit(b"\x09new")
    nxt = again.tick()
    assert nxt is not None and nxt.sequence == COMPACT_EVERY + 4
    # A slot below the author's own ordered floor is refused after the restart too.
    assert again.signer is not None
    with pytest.raises(SignRefusedError):
        again.signer.sign_batch(0, 3, [b"\x01late"])


def test_an_epoch_ends_and_its_slots_leave_the_log(tmp_path):
    x, _ = twins()
    path = tmp_path / "dag.wal"
    n = start(path)
    assert n.on_batch(x) is not None
    assert n.signer is not None
    n.signer.end_epoch(1)
    assert n.signer.wal.entries() == []
    crash(n)
    assert start(path, epoch=1).voted == {}


def test_a_log_of_another_validator_or_kind_is_refused(tmp_path):
    x, _ = twins()
    path = tmp_path / "dag.wal"
    n = start(path, key=KS[1])
    assert n.on_batch(x) is not None
    crash(n)
    with pytest.raises(WALError, match="not this validator's"):
        start(path, key=KS[2])
    other = tmp_path / "consensus.wal"
    log(other).append(WALEntry(KIND_VOTE, 1, b"\x80"))
    with pytest.raises(WALError, match="not a DAG mempool record"):
        BatchSigner(KS[1], CHAIN, log(other))
    signer = BatchSigner(KS[2], CHAIN, log(tmp_path / "x.wal"))
    with pytest.raises(InvalidParameterError, match="another key"):
        DagMempool(KS[1], CHAIN, VS, 0, flat, DagParams(), signer=signer)


def test_a_torn_last_record_is_cut_and_the_vote_before_it_kept(tmp_path):
    x, y = twins()
    path = tmp_path / "dag.wal"
    n = start(path)
    assert n.on_batch(x) is not None
    crash(n)
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x01\x00garbage")  # a record cut by a crash mid-write
    again = start(path)
    assert again.on_batch(y) is None and again.voted == {x.slot: x.digest}


def test_batches_that_arrive_together_are_voted_with_one_fsync(tmp_path, monkeypatch):
    x, y = twins()
    others = [Batch.seal(KS[i], CHAIN, 0, 0, [bytes([i, 1])]) for i in (2, 3)]
    forged = Batch(0, KS[4].public_key, 0, (b"\x01z",), b"\x00" * 64, x.digest)
    n = start(tmp_path / "dag.wal")
    assert n.signer is not None
    writes: list[int] = []
    real = n.signer.wal.append_many
    monkeypatch.setattr(
        n.signer.wal, "append_many", lambda entries: (writes.append(len(entries)), real(entries))
    )
    out = n.on_batches([x, forged, y, *others, x])
    assert writes == [3]  # three new votes, one write and one fsync
    assert isinstance(out[1], InvalidBatchError)  # the forged one alone is refused
    assert out[2] is None  # the twin of x gets no vote
    assert out[0] is not None and out[5] == out[0]  # x again: the same vote
    pairs = zip(out[3:5], others, strict=True)
    assert all(v is not None and v.digest == b.digest for v, b in pairs)
    crash(n)
    again = start(tmp_path / "dag.wal")
    assert again.on_batch(y) is None and set(again.voted) == {x.slot, *(b.slot for b in others)}


def test_an_epochs_unordered_own_transactions_are_sealed_again_in_the_next(tmp_path):
    """Author KS[0]: batch 0 certified and ordered, batch 1 certified but not
    ordered, batch 2 sealed without votes, one transaction still pooled. In the
    next epoch (another set) exactly the last three batches' worth go into the
    new pool, sealed into epoch 1's slot 0; epoch 0's certificates are refused
    there, and the log holds nothing of epoch 0."""
    a = start(tmp_path / "dag.wal", key=KS[0])
    certs = []
    for i, txs in enumerate([[b"\x05o"], [b"\x05c"], [b"\x05s"]]):
        for tx in txs:
            a.submit(tx)
        batch = a.tick()
        assert batch is not None and batch.sequence == i
        if i < 2:
            cert = None
            for v in [a.on_batch(batch), *(BatchVote.sign(k, CHAIN, batch) for k in KS[1:4])]:
                assert v is not None
                cert = a.on_vote(v) or cert
            assert cert is not None
            certs.append(cert)
    a.apply_block([certs[0]])
    a.submit(b"\x05p")
    assert a.leftovers() == [b"\x05c", b"\x05s", b"\x05p"]
    # The next set drops KS[4] and gives KS[0] more power.
    vs1 = ValidatorSet.create({k.public_key: p for k, p in zip(KS[:4], (4, 3, 2, 1), strict=True)})
    b, shed = a.next_epoch(vs1, 1)
    assert shed == [] and b.epoch == 1 and len(b) == 3 and b.resend() == []
    sealed = b.tick()
    assert sealed is not None and (sealed.epoch, sealed.sequence) == (1, 0)
    assert set(sealed.txs) == {b"\x05c", b"\x05s", b"\x05p"}
    with pytest.raises(InvalidBatchCertificateError, match="epoch"):
        b.check_payload([certs[1]], 10)
    assert b.signer is not None
    assert all(e.height == 1 for e in b.signer.wal.entries())
    with pytest.raises(InvalidParameterError, match="follow"):
        b.next_epoch(vs1, 1)
    gone = ValidatorSet.create({k.public_key: 1 for k in KS[1:4]})
    with pytest.raises(InvalidParameterError, match="not in the next epoch"):
        b.next_epoch(gone, 2)
    assert b.signer.wal.entries()  # a refused change left the log as it was
