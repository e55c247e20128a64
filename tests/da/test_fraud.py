"""Bad-encoding fraud proofs, checked with the data root only."""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

import pytest

from focusflow.core.errors import FocusflowError
from focusflow.da import (
    ExtendedSquare,
    befp_from_json,
    befp_to_json,
    find_bad_encoding,
    verify_bad_encoding_proof,
)
from focusflow.da.proofs import prove_share


@pytest.fixture(scope="module")
def eds(block_square):
    return block_square(11, 40, 200)


def test_honest_square_has_no_fraud(eds):
    assert find_bad_encoding(eds) is None


@pytest.mark.parametrize(("row", "col"), [(0, 0), (1, 5), (6, 2), (7, 7)])
def test_bad_share_is_proven(eds, row, col):
    data = eds.data.copy()
    data[row, col, 100] ^= 0x5A
    bad = ExtendedSquare(data)
    proof = find_bad_encoding(bad)
    assert proof is not None
    assert (proof.axis, proof.index) == ("row", row)
    assert len(proof.shares) == bad.k
    assert verify_bad_encoding_proof(bad.data_root(), proof)
    # Against another square's data root, or with a share swapped, it proves nothing.
    assert not verify_bad_encoding_proof(eds.data_root(), proof)
    shares = list(proof.shares)
    shares[0] = dataclasses.replace(shares[0], share=bytes(512))
    assert not verify_bad_encoding_proof(
        bad.data_root(), dataclasses.replace(proof, shares=tuple(shares))
    )


def test_proof_of_a_good_axis_is_rejected(eds):
    data = eds.data.copy()
    data[2, 3, 0] ^= 1
    bad = ExtendedSquare(data)
    proof = find_bad_encoding(bad)
    assert proof.index == 2
    # Row 4 is a valid codeword: a proof built on it must not verify.
    fake = dataclasses.replace(
        proof,
        index=4,
        axis_root=bad.row_roots()[4],
        axis_root_proof=dataclasses.replace(proof.axis_root_proof, index=4),
        shares=tuple(prove_share(bad, 4, c, axis="col") for c in range(bad.k)),
    )
    assert not verify_bad_encoding_proof(bad.data_root(), fake)


def test_too_few_shares_prove_nothing(eds):
    data = eds.data.copy()
    data[0, 1, 7] ^= 1
    bad = ExtendedSquare(data)
    proof = find_bad_encoding(bad)
    short = dataclasses.replace(proof, shares=proof.shares[:-1])
    assert not verify_bad_encoding_proof(bad.data_root(), short)


def test_a_share_beyond_the_square_proves_nothing_and_raises_nothing(eds):
    """A hostile proof whose share names a position past the square's width
    (within the wire's bounds) is refused, not an index error in the verifier."""
    data = eds.data.copy()
    data[3, 2, 100] ^= 1
    bad = ExtendedSquare(data)
    proof = find_bad_encoding(bad)
    assert (proof.axis, proof.index) == ("row", 3)
    shares = list(proof.shares)
    shares[0] = dataclasses.replace(shares[0], col=bad.width + 1)
    hostile = dataclasses.replace(proof, shares=tuple(shares))
    assert verify_bad_encoding_proof(bad.data_root(), proof)
    assert not verify_bad_encoding_proof(bad.data_root(), hostile)


def test_a_square_width_that_is_no_power_of_two_proves_nothing_and_raises_nothing(eds):
    """Row 2's proof with its root path said to be among one root fewer
    (2 * width - 1: a width of 15, k = 7 here): the path still leads to the
    data root (leaf 2's path is the same in 31 leaves as in 32), and with no
    share the codec was asked for a codeword of 7 data shards and raised.
    Found by fuzzing the proof's JSON form."""
    data = eds.data.copy()
    data[2, 1, 100] ^= 0x5A
    bad = ExtendedSquare(data)
    proof = find_bad_encoding(bad)
    assert (proof.axis, proof.index) == ("row", 2)
    hostile = dataclasses.replace(
        proof,
        axis_root_proof=dataclasses.replace(proof.axis_root_proof, total=2 * bad.width - 1),
        shares=(),
    )
    assert not verify_bad_encoding_proof(bad.data_root(), hostile)


#: Counts and positions a hostile proof names: edges of an 8-share square's
#: sizes and of the wire's bounds (MAX_WIDTH 1024).
_FUZZ_INTS = (0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 1023, 1024, 2047, 2048)


def mutated_proof_json(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``doc`` (a proof's JSON form) with one to three of its counts,
    positions, axes or shares changed."""
    d = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        shares, root = d["shares"], d["axis_root_proof"]
        r = rng.random()
        if r < 0.1:
            d["index"] = rng.choice(_FUZZ_INTS)
        elif r < 0.2:
            d["axis"] = rng.choice(["row", "col"])
        elif r < 0.3:
            root["total"] = rng.choice(_FUZZ_INTS)
        elif r < 0.4:
            root["index"] = rng.choice(_FUZZ_INTS)
        elif r < 0.5:
            del shares[rng.randint(0, len(shares)) :]
        elif r < 0.55 and shares:
            shares.append(copy.deepcopy(rng.choice(shares)))
        elif shares:
            item = rng.choice(shares)
            field = rng.choice(["row", "col", "start", "end", "total", "index", "rtotal", "axis"])
            if field in ("row", "col"):
                item[field] = rng.choice(_FUZZ_INTS)
            elif field in ("start", "end", "total"):
                item["proof"]["nmt_proof"][field] = rng.choice(_FUZZ_INTS)
            elif field == "index":
                item["proof"]["root_proof"]["index"] = rng.choice(_FUZZ_INTS)
            elif field == "rtotal":
                item["proof"]["root_proof"]["total"] = rng.choice(_FUZZ_INTS)
            else:
                item["proof"]["axis"] = rng.choice(["row", "col"])
    return d


def test_hostile_proofs_off_the_wire_get_a_verdict_never_an_exception(eds):
    """600 mutations of a true proof's JSON form (what a peer or a node's
    fraud route hands over): each is refused by the decoder with its error,
    or given a verdict by the verifier, which never raises. The two refusals
    above were found this way."""
    data = eds.data.copy()
    data[2, 1, 100] ^= 0x5A
    bad = ExtendedSquare(data)
    doc = befp_to_json(find_bad_encoding(bad))
    root = bad.data_root()
    rng = random.Random(7)
    verdicts = {True: 0, False: 0}
    for _ in range(600):
        try:
            proof = befp_from_json(mutated_proof_json(doc, rng))
        except FocusflowError:
            continue
        verdicts[verify_bad_encoding_proof(root, proof)] += 1
    assert verdicts[False] > 100 and verdicts[True] > 0  # both outcomes were reached
