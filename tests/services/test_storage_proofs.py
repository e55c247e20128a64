"""Proofs of state (``services.storage.proofs``): each kind made by its prover
and checked by its verifier, and forged proofs of each kind refused.

Space and time go through Chia's own libraries (``chiapos``, ``chiavdf``), so a
proof that verifies here verifies there; the checks below flip bits, move
challenges, swap plot ids and iterations, and every change must fail."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from focusflow.services.storage.chunk_store import ChunkStore
from focusflow.services.storage.proofs import (
    K_MIN,
    ProofOfStateError,
    challenge_offset,
    make_plot,
    plot_id,
    prove_retrievability,
    prove_space,
    prove_time,
    prove_work,
    verify_retrievability,
    verify_space,
    verify_time,
    verify_work,
)


def _challenge(i: int) -> bytes:
    return hashlib.sha256(b"challenge" + i.to_bytes(4, "big")).digest()


@pytest.fixture(scope="module")
def plot(tmp_path_factory):
    return make_plot(tmp_path_factory.mktemp("plots"), b"k" * 32, K_MIN, seed=b"s" * 32)


def _a_proof(plot):
    for i in range(200):
        proofs = prove_space(plot, _challenge(i))
        if proofs:
            return _challenge(i), proofs[0]
    raise AssertionError("no proof in 200 challenges (one is expected per challenge)")


def test_a_plot_answers_challenges_with_proofs_that_verify(plot):
    assert plot.plot_id == plot_id(b"k" * 32, b"s" * 32) and plot.path.stat().st_size > 1 << 20
    challenge, proof = _a_proof(plot)
    quality = verify_space(plot.plot_id, K_MIN, challenge, proof)
    assert len(quality) == 32
    # on average one proof a challenge
    found = sum(len(prove_space(plot, _challenge(i))) for i in range(40))
    assert 15 <= found <= 80


def test_forged_proofs_of_space_fail(plot):
    challenge, proof = _a_proof(plot)
    flipped = bytearray(proof)
    flipped[3] ^= 0x10
    other_id = plot_id(b"m" * 32, b"s" * 32)  # the same plot claimed under another key
    for pid, k, ch, p in (
        (plot.plot_id, K_MIN, challenge, bytes(flipped)),
        (other_id, K_MIN, challenge, proof),
        (plot.plot_id, K_MIN, hashlib.sha256(challenge).digest(), proof),
        (plot.plot_id, K_MIN + 1, challenge, proof),  # wrong length for k
        (plot.plot_id, K_MIN, challenge, proof[:-1]),
    ):
        with pytest.raises(ProofOfStateError):
            verify_space(pid, k, ch, p)


def test_a_proof_of_time_verifies_only_for_its_challenge_and_iterations():
    challenge = _challenge(1)
    out = prove_time(challenge, 20_000)
    assert len(out) == 200
    verify_time(challenge, 20_000, out)
    flipped = bytearray(out)
    flipped[150] ^= 1
    for ch, n, o in (
        (challenge, 20_001, out),
        (challenge, 19_999, out),
        (_challenge(2), 20_000, out),
        (challenge, 20_000, bytes(flipped)),
        (challenge, 20_000, out[:199]),
        (challenge, 0, out),
    ):
        with pytest.raises(ProofOfStateError):
            verify_time(ch, n, o)


def test_a_proof_of_work_meets_its_target():
    challenge = _challenge(3)
    nonce = prove_work(challenge, 12)
    verify_work(challenge, nonce, 12)
    digest = hashlib.sha256(challenge + nonce).digest()
    assert int.from_bytes(digest, "big") >> (256 - 12) == 0  # checked here by hand
    with pytest.raises(ProofOfStateError):
        verify_work(challenge, nonce, 40)
    other = _challenge(4)  # fixed inputs: the nonce does not meet 12 bits there
    assert int.from_bytes(hashlib.sha256(other + nonce).digest(), "big") >> (256 - 12) != 0
    with pytest.raises(ProofOfStateError):
        verify_work(other, nonce, 12)
    with pytest.raises(ProofOfStateError):
        verify_work(challenge, nonce[:7], 12)


@pytest.mark.parametrize("size", [40_000, 3 << 20, 70 << 20])
def test_a_retrievability_proof_leads_from_the_root_to_the_asked_byte(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    store = ChunkStore(tmp_path / "s")
    root = store.put(io.BytesIO(data)).cid
    for i in range(5):
        offset = challenge_offset(_challenge(i), size)
        path = prove_retrievability(store, root, offset)
        verify_retrievability(root, size, offset, path)
        chunk = path[-1]
        # the chunk holds the asked byte: find it in the blob where the proof says
        start = data.find(chunk)
        assert start <= offset < start + len(chunk) and data[offset] in chunk
    # forged: another chunk, a flipped byte, a path cut short, another offset's path
    offset = challenge_offset(_challenge(9), size)
    path = prove_retrievability(store, root, offset)
    flipped = [*path[:-1], bytes([path[-1][0] ^ 1]) + path[-1][1:]]
    forgeries = [flipped, path[:-1] or [b""], [*path, path[-1]]]
    other = (offset + 300_000) % size
    other_path = prove_retrievability(store, root, other)
    if other_path[-1] != path[-1]:
        forgeries.append(other_path)
    for bad in forgeries:
        with pytest.raises(ProofOfStateError):
            verify_retrievability(root, size, offset, bad)
    with pytest.raises(ProofOfStateError):
        verify_retrievability(root, size + 1, offset, path)  # a size its root does not say
