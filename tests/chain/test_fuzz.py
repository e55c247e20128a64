"""Random and mutated bytes at the decoders: only the typed errors come out, state stays."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focusflow.chain import BlockRecord, decode_tx
from focusflow.chain.errors import BlockError, TxError
from focusflow.chain.mempool import Mempool
from focusflow.core.errors import DecodeError
from focusflow.modules.accounts import Account
from focusflow.node import open_chain
from focusflow.testing.chains import ALICE, link, new_chain, tx
from tests.chain.evidence_helpers import KEYS, double_vote, step
from tests.chain.evidence_helpers import genesis as evidence_genesis

VALID_TX = tx(ALICE, 0, link(("a", "b"), ("b", "c")))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = new_chain(tmp_path_factory.mktemp("fuzz"))
    c.produce_block([VALID_TX])
    return c


@pytest.fixture(scope="module")
def evidence_record(tmp_path_factory) -> bytes:
    """A stored block that carries duplicate-vote evidence (a second seed for mutations)."""
    c = open_chain(tmp_path_factory.mktemp("fuzz-evidence"), evidence_genesis(), KEYS[0])
    step(c)
    c.add_evidence(double_vote(KEYS[3], 1))
    step(c)
    record = c.block_record(2)
    assert record.block.evidence
    return record.encode()


@st.composite
def mutated(draw, seed: bytes):
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i : i + draw(st.integers(1, 16))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            data += data[i : i + draw(st.integers(1, 32))]
    return bytes(data)


def fuzz_inputs(seed: bytes):
    return st.one_of(st.binary(max_size=256), mutated(seed))


def _check_tx_bytes(chain, data):
    with contextlib.suppress(DecodeError, TxError):
        decode_tx(data)
    pool = Mempool(chain.chain_id, chain.params)
    try:
        pool.add(data, lambda a: Account(balance=10**18))
    except (DecodeError, TxError):
        pass
    else:
        assert data == VALID_TX  # only the unmutated transaction is admissible
    return pool


#: Examples per decoder in the default suite; the ``slow`` runs take 20x more.
EXAMPLES = 2_500


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_transaction_decoder_fuzz(chain, data):
    head = chain.head
    raw = data.draw(fuzz_inputs(VALID_TX))
    _check_tx_bytes(chain, raw)
    assert chain.head == head


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_block_decoder_fuzz(chain, evidence_record, data):
    _check_block_bytes(chain, evidence_record, data)


@pytest.mark.slow
@settings(max_examples=20 * EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_block_decoder_long_fuzz(chain, evidence_record, data):
    _check_block_bytes(chain, evidence_record, data)


def _check_block_bytes(chain, evidence_record, data):
    record = chain.block_record(1)
    with_evidence = BlockRecord.decode(evidence_record)
    seeds = [record.encode(), _plain(record), evidence_record, _plain(with_evidence)]
    seed = data.draw(st.sampled_from(seeds))
    raw = data.draw(fuzz_inputs(seed))
    head, root = chain.head, chain.store.root
    with contextlib.suppress(DecodeError):
        BlockRecord.decode(raw)
    with pytest.raises((DecodeError, BlockError)):
        chain.apply_block(raw)
    assert chain.head == head and chain.store.root == root


def _plain(record: BlockRecord) -> bytes:
    import brotli

    return brotli.decompress(record.encode())


@pytest.mark.slow
@settings(max_examples=80 * EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_transaction_decoder_long_fuzz(chain, data):
    _check_tx_bytes(chain, data.draw(fuzz_inputs(VALID_TX)))
