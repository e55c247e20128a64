"""The sampling light client against honest and withholding nodes."""

from __future__ import annotations

import dataclasses
import math
import random
from hashlib import sha256

import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.da import (
    DEFAULT_SAMPLES,
    FOCUSFLOW_NAMESPACE,
    Sampler,
    ShareUnavailableError,
    detection_probability,
    sample,
    samples_for_confidence,
    share_id,
)


@pytest.fixture(scope="module")
def eds(block_square):
    return block_square(3, 100, 300)


def test_default_sample_count_reaches_99_9_percent_for_every_k():
    assert DEFAULT_SAMPLES == samples_for_confidence(0.999) == 25
    assert 0.75**25 <= 0.001 < 0.75**24
    for k in (1, 2, 16, 128, 512, 10**6):
        assert detection_probability(k, DEFAULT_SAMPLES) >= 0.999


def test_confidence_bounds():
    with pytest.raises(InvalidParameterError):
        samples_for_confidence(1.0)
    assert samples_for_confidence(0.99) == math.ceil(math.log(0.01) / math.log(0.75))


def test_share_id_layout():
    want = sha256(
        FOCUSFLOW_NAMESPACE
        + (1).to_bytes(4, "big")
        + (2).to_bytes(4, "big")
        + (3).to_bytes(8, "big")
    )
    assert share_id(FOCUSFLOW_NAMESPACE, 1, 2, 3) == want.digest()


def test_honest_node_is_available(eds):
    result = sample(
        eds.data_root(), eds.width, 9, lambda q: eds.proof(q.row, q.col), rng=random.Random(1)
    )
    assert result.available and not result.failed
    assert len(set(result.samples)) == DEFAULT_SAMPLES
    assert result.confidence >= 0.999


def test_withholding_node_is_unavailable(eds):
    # The node withholds a (k+1) x (k+1) block: just enough to make the square unrecoverable.
    k = eds.k

    def fetch(q):
        return None if q.row <= k and q.col <= k else eds.proof(q.row, q.col)

    caught = 0
    for seed in range(200):
        result = sample(eds.data_root(), eds.width, 9, fetch, rng=random.Random(seed))
        caught += not result.available
        assert result.confidence == detection_probability(k, DEFAULT_SAMPLES)
        assert all(r <= k and c <= k for r, c in result.failed)
    assert caught >= 199


def test_forged_shares_fail(eds):
    def fetch(q):
        proof = eds.proof(q.row, q.col)
        return dataclasses.replace(proof, share=bytes(512))

    result = sample(eds.data_root(), eds.width, 9, fetch, samples=5, rng=random.Random(2))
    assert not result.available and len(result.failed) == 5


def test_fetch_errors_count_as_missing(eds):
    def fetch(q):
        raise ConnectionError("node down")

    result = sample(eds.data_root(), eds.width, 9, fetch, samples=3)
    assert not result.available and len(result.failed) == 3


def test_refusals_count_as_missing_and_bugs_in_fetch_propagate(eds):
    def refused(q):
        raise ShareUnavailableError("withheld")

    result = sample(eds.data_root(), eds.width, 9, refused, samples=3)
    assert not result.available and len(result.failed) == 3

    def broken(q):
        return {}[q.row]

    with pytest.raises(KeyError):
        sample(eds.data_root(), eds.width, 9, broken, samples=3)


def test_sampler_is_sans_io(eds):
    sampler = Sampler(eds.data_root(), eds.width, height=4, samples=6, rng=random.Random(5))
    requests = sampler.requests()
    assert len(requests) == 6
    assert all(r.share_id == share_id(FOCUSFLOW_NAMESPACE, r.row, r.col, 4) for r in requests)
    for r in requests[:5]:
        assert sampler.receive(r, eds.proof(r.row, r.col))
    result = sampler.result()
    assert not result.available and result.failed == ((requests[5].row, requests[5].col),)
    with pytest.raises(InvalidParameterError):
        sampler.receive(requests[0], None)
