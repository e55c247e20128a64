"""Batches, availability votes and batch certificates: the DAG mempool's messages.

Every validator packs client transactions into :class:`Batch` es and sends them
to the others; each validator that stores a batch signs a :class:`BatchVote` for
it and returns the vote to the batch's author; votes from validators holding more
than 2/3 of the stake form a :class:`BatchCertificate`. A certificate proves the
batch is available: at least one honest validator beyond any faulty third holds
it and serves it on request. Blocks then order certificates, not transactions,
so dissemination is spread over all validators instead of all passing through
the proposer's uplink (Danezis, Kokoris-Kogias, Sonnino, Spiegelman: "Narwhal
and Tusk", EuroSys 2022; ordering stays Tendermint here).

A batch occupies one *slot* ``(epoch, author, sequence)``: ``epoch`` is the
validator-set epoch whose set certifies it, ``sequence`` counts the author's
batches in that epoch. An honest author seals one batch per slot and an honest
validator votes for at most one digest per slot; two quorums above 2/3 for two
digests of one slot would share more than 1/3 of the stake, so they need faulty
validators holding more than 1/3. An author's signature on two digests of one
slot (or a voter's on two) is :class:`BatchEquivocation` evidence.

What is signed (canonical CBOR, each kind under its own domain tag, so none of
these signatures verifies as a proposal, a vote or each other's):

- the author: ``[BATCH_DOMAIN, chain_id, epoch, author, sequence, digest]``;
- a voter: ``[BATCH_VOTE_DOMAIN, chain_id, epoch, author, sequence, digest]``.

``digest = sha256(encode(["batch", epoch, author, sequence, [tx, ...]]))`` binds
the transactions; the signatures bind the digest, so a certificate or evidence
is small and verifies without the transactions.

Wire forms (every decoder checks the length of its input before decoding and
the shape and ranges after, raising ``DecodeError`` with the flaw named):

- batch: ``["batch", epoch, author, sequence, [tx, ...], signature]``;
- vote: ``["batch_vote", epoch, author, sequence, digest, voter, signature]``;
- certificate: ``["batch_cert", epoch, author, sequence, digest,
  author_signature, [[voter, signature], ...]]`` with voters sorted and distinct,
  so a certificate has one encoding;
- evidence: ``["batch_equivocation", kind, signer, epoch, author, sequence,
  digest_a, signature_a, digest_b, signature_b]`` with ``digest_a < digest_b``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from focusflow.consensus.errors import (
    InvalidBatchCertificateError,
    InvalidBatchError,
    InvalidEvidenceError,
)
from focusflow.consensus.messages import VALUE_ID_SIZE, check_bytes, check_int
from focusflow.consensus.validators import ValidatorSet, has_two_thirds
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256
from focusflow.core.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, KeyPair, verify

BATCH_DOMAIN = "focusflow/consensus/batch/v1"
BATCH_VOTE_DOMAIN = "focusflow/consensus/batch-vote/v1"
DIGEST_SIZE = VALUE_ID_SIZE
#: Transactions one batch holds at most.
MAX_BATCH_TXS = 4096
#: Bytes of transactions one batch holds at most (the sum of their lengths).
MAX_BATCH_TX_BYTES = 1 << 20
#: Encoded batch bytes a decoder accepts: the transactions plus at most 9 bytes of
#: CBOR head per transaction and the fixed fields.
MAX_BATCH_WIRE_BYTES = MAX_BATCH_TX_BYTES + 9 * MAX_BATCH_TXS + 512
#: Voters a certificate may list: the largest set a light block may list
#: (chain/header_verify.py), as for a switch's polka.
MAX_CERT_SIGNERS = 1024
MAX_VOTE_WIRE_BYTES = 512
MAX_CERT_WIRE_BYTES = 512 + MAX_CERT_SIGNERS * (PUBLIC_KEY_SIZE + SIGNATURE_SIZE + 8)
MAX_EVIDENCE_WIRE_BYTES = 1024

EquivocationKind = Literal["batch", "vote"]


def batch_digest(epoch: int, author: bytes, sequence: int, txs: Iterable[bytes]) -> bytes:
    return sha256(encode(["batch", epoch, author, sequence, list(txs)]))


def batch_sign_bytes(
    chain_id: str, epoch: int, author: bytes, sequence: int, digest: bytes
) -> bytes:
    return encode([BATCH_DOMAIN, chain_id, epoch, author, sequence, digest])


def batch_vote_sign_bytes(
    chain_id: str, epoch: int, author: bytes, sequence: int, digest: bytes
) -> bytes:
    return encode([BATCH_VOTE_DOMAIN, chain_id, epoch, author, sequence, digest])


@dataclass(frozen=True)
class Batch:
    """Transactions sealed by ``author`` into its slot ``(epoch, sequence)``."""

    epoch: int
    author: bytes
    sequence: int
    txs: tuple[bytes, ...]
    signature: bytes
    digest: bytes

    @classmethod
    def seal(
        cls, key: KeyPair, chain_id: str, epoch: int, sequence: int, txs: Iterable[bytes]
    ) -> Batch:
        txs = tuple(txs)
        check_batch_bounds(txs)
        digest = batch_digest(epoch, key.public_key, sequence, txs)
        sig = key.sign(batch_sign_bytes(chain_id, epoch, key.public_key, sequence, digest))
        return cls(epoch, key.public_key, sequence, txs, sig, digest)

    @property
    def slot(self) -> tuple[int, bytes, int]:
        return (self.epoch, self.author, self.sequence)

    @property
    def size(self) -> int:
        """Bytes of transactions (what the bandwidth carries, framing aside)."""
        return sum(len(tx) for tx in self.txs)

    def verify_signature(self, chain_id: str) -> bool:
        return verify(
            self.author,
            self.signature,
            batch_sign_bytes(chain_id, self.epoch, self.author, self.sequence, self.digest),
        )


@dataclass(frozen=True)
class BatchVote:
    """``voter`` stores the batch ``digest`` of slot ``(epoch, author, sequence)``."""

    epoch: int
    author: bytes
    sequence: int
    digest: bytes
    voter: bytes
    signature: bytes

    @classmethod
    def sign(cls, key: KeyPair, chain_id: str, batch: Batch) -> BatchVote:
        msg = batch_vote_sign_bytes(
            chain_id, batch.epoch, batch.author, batch.sequence, batch.digest
        )
        return cls(
            batch.epoch, batch.author, batch.sequence, batch.digest, key.public_key, key.sign(msg)
        )

    @property
    def slot(self) -> tuple[int, bytes, int]:
        return (self.epoch, self.author, self.sequence)

    def verify_signature(self, chain_id: str) -> bool:
        msg = batch_vote_sign_bytes(chain_id, self.epoch, self.author, self.sequence, self.digest)
        return verify(self.voter, self.signature, msg)


@dataclass(frozen=True)
class BatchCertificate:
    """More than 2/3 of the stake stores batch ``digest``; with its author's signature."""

    epoch: int
    author: bytes
    sequence: int
    digest: bytes
    author_signature: bytes
    #: ``(voter, signature)`` sorted by voter key, each voter once.
    signatures: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def from_votes(cls, batch: Batch, votes: Iterable[BatchVote]) -> BatchCertificate:
        """Bundle votes for ``batch``; InvalidBatchCertificateError if one is for another."""
        sigs: dict[bytes, bytes] = {}
        for v in votes:
            if v.slot != batch.slot or v.digest != batch.digest:
                raise InvalidBatchCertificateError("a vote of the certificate is for another batch")
            sigs.setdefault(v.voter, v.signature)
        return cls(
            batch.epoch,
            batch.author,
            batch.sequence,
            batch.digest,
            batch.signature,
            tuple((pk, sigs[pk]) for pk in sorted(sigs)),
        )

    @property
    def slot(self) -> tuple[int, bytes, int]:
        return (self.epoch, self.author, self.sequence)

    @property
    def signers(self) -> tuple[bytes, ...]:
        return tuple(pk for pk, _ in self.signatures)


def check_batch_bounds(txs: tuple[bytes, ...]) -> None:
    """InvalidBatchError unless ``txs`` fits MAX_BATCH_TXS and MAX_BATCH_TX_BYTES."""
    if len(txs) > MAX_BATCH_TXS:
        raise InvalidBatchError(
            f"a batch holds at most {MAX_BATCH_TXS} transactions, not {len(txs)}"
        )
    size = sum(len(tx) for tx in txs)
    if size > MAX_BATCH_TX_BYTES:
        raise InvalidBatchError(f"a batch holds at most {MAX_BATCH_TX_BYTES} bytes, not {size}")


def verify_batch(batch: Batch, validators: ValidatorSet, chain_id: str, epoch: int) -> None:
    """InvalidBatchError unless ``batch`` is of ``epoch``, by a member, signed, digest right."""
    if batch.epoch != epoch:
        raise InvalidBatchError(f"batch is of epoch {batch.epoch}, not {epoch}")
    if validators.power_of(batch.author) == 0:
        raise InvalidBatchError(f"batch author {batch.author.hex()} is not a validator")
    check_batch_bounds(batch.txs)
    if batch.digest != batch_digest(batch.epoch, batch.author, batch.sequence, batch.txs):
        raise InvalidBatchError("batch digest does not hash its transactions")
    if not batch.verify_signature(chain_id):
        raise InvalidBatchError(f"bad batch signature of {batch.author.hex()}")


def verify_batch_vote(vote: BatchVote, validators: ValidatorSet, chain_id: str, epoch: int) -> None:
    """InvalidBatchError unless ``vote`` is of ``epoch``, by a member, for a member, signed."""
    if vote.epoch != epoch:
        raise InvalidBatchError(f"batch vote is of epoch {vote.epoch}, not {epoch}")
    if validators.power_of(vote.voter) == 0:
        raise InvalidBatchError(f"batch voter {vote.voter.hex()} is not a validator")
    if validators.power_of(vote.author) == 0:
        raise InvalidBatchError(f"batch author {vote.author.hex()} is not a validator")
    if not vote.verify_signature(chain_id):
        raise InvalidBatchError(f"bad batch vote signature of {vote.voter.hex()}")


def verify_batch_certificate(
    cert: BatchCertificate, validators: ValidatorSet, chain_id: str, epoch: int
) -> None:
    """InvalidBatchCertificateError unless more than 2/3 of the stake signed ``cert``.

    ``validators`` is the set of ``epoch``. The author must be a member and its
    signature on the digest valid (so a certificate also proves what the author
    sealed, which makes a certificate and a conflicting batch evidence). Every
    voter signature must verify and come from a distinct member; a non-member's
    signature is refused, not skipped.
    """
    if cert.epoch != epoch:
        raise InvalidBatchCertificateError(
            f"batch certificate is of epoch {cert.epoch}, not {epoch}"
        )
    if validators.power_of(cert.author) == 0:
        raise InvalidBatchCertificateError(f"batch author {cert.author.hex()} is not a validator")
    sealed = batch_sign_bytes(chain_id, cert.epoch, cert.author, cert.sequence, cert.digest)
    if not verify(cert.author, cert.author_signature, sealed):
        raise InvalidBatchCertificateError(f"bad author signature of {cert.author.hex()}")
    message = batch_vote_sign_bytes(chain_id, cert.epoch, cert.author, cert.sequence, cert.digest)
    power = 0
    seen: set[bytes] = set()
    for voter, sig in cert.signatures:
        if voter in seen:
            raise InvalidBatchCertificateError(f"voter {voter.hex()} signed twice")
        seen.add(voter)
        weight = validators.power_of(voter)
        if weight == 0:
            raise InvalidBatchCertificateError(f"signer {voter.hex()} is not a validator")
        if not verify(voter, sig, message):
            raise InvalidBatchCertificateError(f"bad batch vote signature of {voter.hex()}")
        power += weight
    if not has_two_thirds(power, validators.total_power):
        raise InvalidBatchCertificateError(
            f"signers hold {power} of {validators.total_power} stake, not more than 2/3"
        )


@dataclass(frozen=True)
class BatchEquivocation:
    """``signer`` signed two digests for one slot: as its author (``"batch"``) or as
    a voter (``"vote"``). Neither happens with an honest validator."""

    kind: EquivocationKind
    signer: bytes
    epoch: int
    author: bytes
    sequence: int
    digest_a: bytes
    signature_a: bytes
    digest_b: bytes
    signature_b: bytes

    @classmethod
    def of(
        cls,
        kind: EquivocationKind,
        signer: bytes,
        slot: tuple[int, bytes, int],
        first: tuple[bytes, bytes],
        second: tuple[bytes, bytes],
    ) -> BatchEquivocation:
        """The canonical evidence of two ``(digest, signature)`` pairs, in either order."""
        (da, sa), (db, sb) = sorted((first, second))
        epoch, author, sequence = slot
        return cls(kind, signer, epoch, author, sequence, da, sa, db, sb)

    @property
    def validator(self) -> bytes:
        """The equivocating validator: what every kind of evidence names as
        ``validator``, so the chain handles them alike."""
        return self.signer

    @property
    def slot(self) -> tuple[int, bytes, int]:
        return (self.epoch, self.author, self.sequence)

    def hash(self) -> bytes:
        """Identifies the evidence, as the other kinds' ``hash()`` (the chain
        names it in its slash event and its API)."""
        return sha256(encode_batch_equivocation(self))


def verify_batch_equivocation(
    evidence: BatchEquivocation, validators: ValidatorSet, chain_id: str
) -> None:
    """InvalidEvidenceError unless ``evidence`` proves a member signed two digests of one slot."""
    e = evidence
    if e.digest_a >= e.digest_b:
        raise InvalidEvidenceError("batch equivocation digests are not two, in order")
    if validators.power_of(e.signer) == 0:
        raise InvalidEvidenceError(f"equivocating signer {e.signer.hex()} is not a validator")
    if e.kind == "batch" and e.signer != e.author:
        raise InvalidEvidenceError("a batch equivocation's signer is the batch author")
    sign_bytes = batch_sign_bytes if e.kind == "batch" else batch_vote_sign_bytes
    for digest, sig in ((e.digest_a, e.signature_a), (e.digest_b, e.signature_b)):
        if not verify(e.signer, sig, sign_bytes(chain_id, e.epoch, e.author, e.sequence, digest)):
            raise InvalidEvidenceError(f"a signature of the {e.kind} equivocation does not verify")


# Wire forms.


def encode_batch(batch: Batch) -> bytes:
    b = batch
    return encode(["batch", b.epoch, b.author, b.sequence, list(b.txs), b.signature])


def encode_batch_vote(vote: BatchVote) -> bytes:
    v = vote
    return encode(["batch_vote", v.epoch, v.author, v.sequence, v.digest, v.voter, v.signature])


def encode_batch_certificate(cert: BatchCertificate) -> bytes:
    c = cert
    sigs = [[pk, sig] for pk, sig in c.signatures]
    return encode(["batch_cert", c.epoch, c.author, c.sequence, c.digest, c.author_signature, sigs])


#: The first bytes of every encoded batch equivocation: a CBOR array of 10 and its
#: tag. Evidence of every kind travels on one topic and in one block list, so
#: ``consensus.evidence.decode_evidence`` tells this kind by these bytes and
#: hands it to :func:`decode_batch_equivocation`, whose bound then applies
#: before anything is decoded.
BATCH_EQUIVOCATION_HEAD = b"\x8a" + encode("batch_equivocation")


def encode_batch_equivocation(evidence: BatchEquivocation) -> bytes:
    e = evidence
    return encode(
        [
            "batch_equivocation",
            e.kind,
            e.signer,
            e.epoch,
            e.author,
            e.sequence,
            e.digest_a,
            e.signature_a,
            e.digest_b,
            e.signature_b,
        ]
    )


def _decode(data: bytes, limit: int, what: str) -> object:
    if not isinstance(data, bytes):
        raise DecodeError(f"malformed {what}: not bytes")
    if len(data) > limit:
        raise DecodeError(f"malformed {what}: {len(data)} bytes, more than {limit}")
    return decode(data, what)


def _slot_fields(epoch: object, author: object, sequence: object, what: str) -> None:
    check_int(epoch, "epoch", 0, what)
    check_bytes(author, PUBLIC_KEY_SIZE, "author key", what)
    check_int(sequence, "sequence", 0, what)


def decode_batch(data: bytes) -> Batch:
    """The batch ``data`` encodes (its digest computed); DecodeError for anything else.

    Validity (member, signature) is :func:`verify_batch`'s; bounds are checked here.
    """
    what = "batch"
    item = _decode(data, MAX_BATCH_WIRE_BYTES, what)
    if not (isinstance(item, list) and len(item) == 6 and item[0] == "batch"):
        raise DecodeError("malformed batch: not a batch array of 6")
    _, epoch, author, sequence, txs, sig = item
    _slot_fields(epoch, author, sequence, what)
    if not isinstance(txs, list) or not all(isinstance(tx, bytes) for tx in txs):
        raise DecodeError("malformed batch: transactions are not an array of bytes")
    if len(txs) > MAX_BATCH_TXS or sum(len(tx) for tx in txs) > MAX_BATCH_TX_BYTES:
        raise DecodeError(
            f"malformed batch: more than {MAX_BATCH_TXS} transactions or {MAX_BATCH_TX_BYTES} bytes"
        )
    check_bytes(sig, SIGNATURE_SIZE, "signature", what)
    return Batch(
        epoch, author, sequence, tuple(txs), sig, batch_digest(epoch, author, sequence, txs)
    )


def decode_batch_vote(data: bytes) -> BatchVote:
    what = "batch vote"
    item = _decode(data, MAX_VOTE_WIRE_BYTES, what)
    if not (isinstance(item, list) and len(item) == 7 and item[0] == "batch_vote"):
        raise DecodeError("malformed batch vote: not a batch_vote array of 7")
    _, epoch, author, sequence, digest, voter, sig = item
    _slot_fields(epoch, author, sequence, what)
    check_bytes(digest, DIGEST_SIZE, "digest", what)
    check_bytes(voter, PUBLIC_KEY_SIZE, "voter key", what)
    check_bytes(sig, SIGNATURE_SIZE, "signature", what)
    return BatchVote(epoch, author, sequence, digest, voter, sig)


def decode_batch_certificate(data: bytes) -> BatchCertificate:
    what = "batch certificate"
    item = _decode(data, MAX_CERT_WIRE_BYTES, what)
    if not (isinstance(item, list) and len(item) == 7 and item[0] == "batch_cert"):
        raise DecodeError("malformed batch certificate: not a batch_cert array of 7")
    _, epoch, author, sequence, digest, author_sig, sigs = item
    _slot_fields(epoch, author, sequence, what)
    check_bytes(digest, DIGEST_SIZE, "digest", what)
    check_bytes(author_sig, SIGNATURE_SIZE, "author signature", what)
    if not isinstance(sigs, list) or len(sigs) > MAX_CERT_SIGNERS:
        raise DecodeError(
            "malformed batch certificate: signatures are not an array of at most "
            f"{MAX_CERT_SIGNERS}"
        )
    out: list[tuple[bytes, bytes]] = []
    for s in sigs:
        if not (isinstance(s, list) and len(s) == 2):
            raise DecodeError("malformed batch certificate: a signature entry is not a pair")
        check_bytes(s[0], PUBLIC_KEY_SIZE, "voter key", what)
        check_bytes(s[1], SIGNATURE_SIZE, "voter signature", what)
        out.append((s[0], s[1]))
    keys = [pk for pk, _ in out]
    if keys != sorted(set(keys)):
        raise DecodeError("malformed batch certificate: voters not sorted and distinct")
    return BatchCertificate(epoch, author, sequence, digest, author_sig, tuple(out))


def decode_batch_equivocation(data: bytes) -> BatchEquivocation:
    what = "batch equivocation"
    item = _decode(data, MAX_EVIDENCE_WIRE_BYTES, what)
    if not (isinstance(item, list) and len(item) == 10 and item[0] == "batch_equivocation"):
        raise DecodeError("malformed batch equivocation: not a batch_equivocation array of 10")
    _, kind, signer, epoch, author, sequence, da, sa, db, sb = item
    if kind not in ("batch", "vote"):
        raise DecodeError(f"malformed batch equivocation: kind {kind!r} is not batch or vote")
    check_bytes(signer, PUBLIC_KEY_SIZE, "signer key", what)
    _slot_fields(epoch, author, sequence, what)
    for name, digest, sig in (("a", da, sa), ("b", db, sb)):
        check_bytes(digest, DIGEST_SIZE, f"digest {name}", what)
        check_bytes(sig, SIGNATURE_SIZE, f"signature {name}", what)
    return BatchEquivocation(kind, signer, epoch, author, sequence, da, sa, db, sb)
