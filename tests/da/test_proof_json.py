"""The JSON form of share proofs (REST API and light client): round trip, and refusal of
anything malformed with the ``malformed`` code before any verification."""

from __future__ import annotations

import copy
import json

import pytest

from focusflow.core.errors import DecodeError
from focusflow.da import proof_from_json, proof_to_json, verify_share_proof


@pytest.fixture(scope="module")
def eds(block_square):
    return block_square(5, 40, 200)


def test_round_trip_through_json_text_keeps_the_proof(eds):
    for row, col in ((0, 0), (eds.k - 1, eds.k), (eds.width - 1, eds.width - 1), (eds.k, 1)):
        proof = eds.proof(row, col)
        wire = json.loads(json.dumps(proof_to_json(proof)))
        back = proof_from_json(row, col, proof.share.hex(), wire)
        assert back == proof
        assert verify_share_proof(eds.data_root(), back)


def _bad_variants(good: dict):
    def edit(fn):
        v = copy.deepcopy(good)
        fn(v)
        return v

    yield "not an object", []
    yield "no nmt_proof", edit(lambda v: v.pop("nmt_proof"))
    yield "root_proof a list", edit(lambda v: v.update(root_proof=[1, 2]))
    yield "axis", edit(lambda v: v.update(axis="diagonal"))
    yield "start a string", edit(lambda v: v["nmt_proof"].update(start="0"))
    yield "start a bool", edit(lambda v: v["nmt_proof"].update(start=True))
    yield "negative total", edit(lambda v: v["root_proof"].update(total=-4))
    yield "huge index", edit(lambda v: v["root_proof"].update(index=2**70))
    yield "node not hex", edit(lambda v: v["nmt_proof"]["nodes"].__setitem__(0, "zz"))
    yield "nodes not a list", edit(lambda v: v["nmt_proof"].update(nodes="00"))
    yield "too many aunts", edit(lambda v: v["root_proof"].update(aunts=["00"] * 65))
    yield "axis_root missing", edit(lambda v: v.pop("axis_root"))
    yield "axis_root huge", edit(lambda v: v.update(axis_root="00" * 10_000))


def test_malformed_json_is_refused_with_a_stable_code(eds):
    proof = eds.proof(1, 1)
    good = proof_to_json(proof)
    for what, bad in _bad_variants(good):
        with pytest.raises(DecodeError) as err:
            proof_from_json(1, 1, proof.share.hex(), bad)
        assert err.value.code == "malformed", what
    for share in ("xyz", 5, None):
        with pytest.raises(DecodeError):
            proof_from_json(1, 1, share, good)
    for coord in (-1, "1", 1.0, None):
        with pytest.raises(DecodeError):
            proof_from_json(coord, 1, proof.share.hex(), good)
