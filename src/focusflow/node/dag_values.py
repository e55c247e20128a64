"""Proposal values of a chain whose mempool is the DAG (consensus/dag_mempool.py).

A proposer on such a chain does not carry the block's transactions: every
validator already holds the certified batches they came in. Its value names
them instead:

    ["dag_value", record, [certificate, ...], [skipped index, ...]]

* ``record``: the block record (``BlockRecord.encode``) with the block's
  transactions left out: the header, the evidence and the parent's
  certificate. The header's ``txs_root`` still commits to the transactions,
  so the value's id is the block's hash, as on every chain, and the certificate
  that decides it names the same block that block sync, headers and light
  clients later see.
* the certificates, in the block's order (``batches.encode_batch_certificate``).
* the indexes, into ``block_transactions`` of the certificates' batches, of the
  transactions the block leaves out (sorted, distinct): those that do not
  execute (a nonce already used, a fee too low, a bad signature). A block must
  say so, because its transactions are ordered once their batch is: what it
  leaves out is not carried to a later block.

A validator rebuilds the block from the batches it holds (fetching the others
from their signers first) and re-executes it as any block: a value whose
rebuilt transactions do not hash to its header's root is refused there. The
committed block and its stored record are those of any chain.

Every bound is checked before the part it bounds is decoded: the value's bytes,
then the certificates' count and each one's bytes, then the indexes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from focusflow.chain.block import Block, BlockRecord
from focusflow.consensus.batches import (
    MAX_CERT_WIRE_BYTES,
    Batch,
    BatchCertificate,
    decode_batch_certificate,
    encode_batch_certificate,
)
from focusflow.consensus.dag_mempool import block_transactions
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError

#: Certificates one block orders at most: four rounds of 64 validators' batches.
MAX_BLOCK_CERTS = 256
#: The largest DAG proposal value: the record without its transactions is
#: small (a header, at most 16 pieces of evidence, the parent's certificate).
MAX_DAG_VALUE_BYTES = 4 << 20
#: The tag a DAG proposal value starts with.
DAG_VALUE_TAG = "dag_value"


@dataclass(frozen=True)
class DagValue:
    """A proposal value that names certified batches; see the module docstring."""

    #: The block record without its transactions.
    record: BlockRecord
    certs: tuple[BatchCertificate, ...]
    #: Indexes into the batches' transactions the block leaves out.
    skipped: tuple[int, ...]

    @property
    def block_hash(self) -> bytes:
        return self.record.block.hash

    def encode(self) -> bytes:
        return encode(
            [
                DAG_VALUE_TAG,
                self.record.encode(),
                [encode_batch_certificate(c) for c in self.certs],
                list(self.skipped),
            ]
        )

    def rebuild(self, batches: Sequence[Batch]) -> BlockRecord:
        """The block this value names, from its certificates' batches in order.

        DecodeError when the batches do not match the certificates or an index
        lies past the transactions (the value is then invalid, whoever holds
        the batches)."""
        if len(batches) != len(self.certs) or any(
            b.digest != c.digest for b, c in zip(batches, self.certs, strict=True)
        ):
            raise DecodeError("malformed DAG value: batches do not match its certificates")
        txs = block_transactions(batches)
        if self.skipped and self.skipped[-1] >= len(txs):
            raise DecodeError(
                f"malformed DAG value: skipped index {self.skipped[-1]} past {len(txs)} "
                "transactions"
            )
        skip = set(self.skipped)
        kept = tuple(tx for i, tx in enumerate(txs) if i not in skip)
        block = Block(self.record.block.header, kept, self.record.block.evidence)
        return BlockRecord(block=block, last_commit=self.record.last_commit)


def decode_dag_value(data: bytes, max_skipped: int) -> DagValue:
    """The DAG value ``data`` encodes; DecodeError naming the flaw otherwise.

    ``max_skipped``: the most indexes a block may leave out (the chain's
    ``max_block_txs`` times the batches' count bounds it; the caller passes the
    bound it holds)."""
    if not isinstance(data, bytes):
        raise DecodeError("malformed DAG value: not bytes")
    if len(data) > MAX_DAG_VALUE_BYTES:
        raise DecodeError(
            f"malformed DAG value: {len(data)} bytes, more than {MAX_DAG_VALUE_BYTES}"
        )
    value = decode(data, "DAG value")
    if not isinstance(value, list) or len(value) != 4 or value[0] != DAG_VALUE_TAG:
        raise DecodeError("malformed DAG value: expected [dag_value, record, certs, skipped]")
    _, record_raw, certs_raw, skipped_raw = value
    if not isinstance(record_raw, bytes):
        raise DecodeError("malformed DAG value: the record must be bytes")
    record = BlockRecord.decode(record_raw)
    if record.block.txs:
        raise DecodeError("malformed DAG value: the record carries transactions")
    if not isinstance(certs_raw, list) or len(certs_raw) > MAX_BLOCK_CERTS:
        raise DecodeError(f"malformed DAG value: at most {MAX_BLOCK_CERTS} certificates")
    certs: list[BatchCertificate] = []
    for raw in certs_raw:
        if not isinstance(raw, bytes) or len(raw) > MAX_CERT_WIRE_BYTES:
            raise DecodeError("malformed DAG value: a certificate must be bounded bytes")
        certs.append(decode_batch_certificate(raw))
    if not isinstance(skipped_raw, list) or len(skipped_raw) > max_skipped:
        raise DecodeError(f"malformed DAG value: at most {max_skipped} skipped indexes")
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in skipped_raw):
        raise DecodeError("malformed DAG value: skipped indexes must be non-negative integers")
    if any(a >= b for a, b in itertools.pairwise(skipped_raw)):
        raise DecodeError("malformed DAG value: skipped indexes must be sorted and distinct")
    return DagValue(record, tuple(certs), tuple(skipped_raw))


def skipped_indexes(offered: Sequence[bytes], kept: Sequence[bytes]) -> tuple[int, ...]:
    """The indexes of ``offered`` that ``kept`` (a subsequence of it, as
    ``Chain.propose`` returns: in order, bad ones skipped) leaves out."""
    out: list[int] = []
    j = 0
    for i, tx in enumerate(offered):
        if j < len(kept) and kept[j] == tx:
            j += 1
        else:
            out.append(i)
    if j != len(kept):
        raise ValueError("the block's transactions are not a subsequence of those offered")
    return tuple(out)


__all__ = [
    "DAG_VALUE_TAG",
    "MAX_BLOCK_CERTS",
    "MAX_DAG_VALUE_BYTES",
    "DagValue",
    "decode_dag_value",
    "skipped_indexes",
]
