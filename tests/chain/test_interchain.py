"""A chain's place in a network of rollups: the genesis section, the bucket
rule, and the graph module refusing links of another bucket."""

from __future__ import annotations

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.chain.errors import GenesisError
from focusflow.focus.buckets import link_bucket, murmur64, particle_bucket
from focusflow.state_schema.interchain import place
from focusflow.state_schema.links import LINKS_PREFIX
from focusflow.testing.chains import (
    ALICE,
    CHAIN_ID,
    FEE,
    VALIDATOR,
    account,
    new_chain,
    particle,
    tx,
)

BUCKETS = 4


def _ref(chain_id: str, bucket: int | None = None) -> dict:
    doc = {
        "chain_id": chain_id,
        "validators": [{"public_key": VALIDATOR.public_key.hex(), "power": 1}],
    }
    return doc if bucket is None else {"bucket": bucket, **doc}


def section(role: str = "rollup", bucket: int | None = 0, **extra: object) -> dict:
    own = CHAIN_ID
    rollups = [
        _ref(own if (role == "rollup" and b == bucket) else f"r{b}", b) for b in range(BUCKETS)
    ]
    doc: dict = {
        "role": role,
        "buckets": BUCKETS,
        "hub": _ref(own if role == "hub" else "hub"),
        "rollups": rollups,
    }
    if bucket is not None:
        doc["bucket"] = bucket
    doc.update(extra)
    return doc


def interchain_genesis(doc: dict) -> Genesis:
    from focusflow.testing.chains import genesis

    raw = genesis(focus={"mode": "diffusion"}).to_json()
    raw["interchain"] = doc
    return Genesis.from_json(raw)


def test_murmur64_is_murmurhash3_x64_128s_first_half():
    # MurmurHash3_x64_128("hello", seed 0) = cbd8a7b341bd9b02 5b1e906a48ae1d19 (the
    # reference implementation's published output), its first 8 bytes little-endian.
    assert murmur64(b"hello") == int.from_bytes(bytes.fromhex("cbd8a7b341bd9b02"), "big")
    assert murmur64(b"") == 0


def test_a_link_goes_by_its_source_or_its_semantic_context():
    a, b, c = particle("a"), particle("b"), particle("c")
    assert link_bucket([a, b], 8) == particle_bucket(a, 8) == link_bucket([a, c], 8)
    assert link_bucket([a, b, c], 8, "semcon") == particle_bucket(c, 8)
    assert link_bucket([a, b], 8, "semcon") == particle_bucket(a, 8)
    spread = {particle_bucket(particle(f"p{i}"), 8) for i in range(200)}
    assert spread == set(range(8))


def test_the_section_round_trips_and_changes_the_genesis_hash():
    plain = interchain_genesis(section())
    assert plain.interchain is not None and plain.interchain.bucket == 0
    again = Genesis.from_json(plain.to_json())
    assert again == plain and again.hash == plain.hash
    from focusflow.testing.chains import genesis

    assert genesis(focus={"mode": "diffusion"}).hash != plain.hash
    hub = interchain_genesis(section("hub", None))
    assert hub.interchain is not None and hub.interchain.counterparties() == hub.interchain.rollups


@pytest.mark.parametrize(
    "change, words",
    [
        ({"role": "validator"}, "role"),
        ({"buckets": 0}, "buckets"),
        ({"bucket": 4}, "bucket"),
        ({"rule": "random"}, "rule"),
        ({"merge_interval_ms": 5}, "merge_interval_ms"),
        ({"extra": 1}, "unknown fields extra"),
        ({"hub": {"chain_id": "hub", "validators": []}}, "interchain.hub.validators"),
    ],
)
def test_a_bad_section_is_refused_by_name(change, words):
    doc = section()
    doc.update(change)
    with pytest.raises(GenesisError, match=words):
        interchain_genesis(doc)


def test_a_section_that_is_not_this_chains_is_refused():
    with pytest.raises(GenesisError, match="is not the rollup"):
        interchain_genesis(section(bucket=1) | {"rollups": section(bucket=0)["rollups"]})
    with pytest.raises(GenesisError, match="the hub owns no bucket"):
        interchain_genesis(section("hub", 0))
    dup = section()
    dup["rollups"][1]["chain_id"] = "r2"
    with pytest.raises(GenesisError, match="distinct chain ids"):
        interchain_genesis(dup)


def _pair_in(bucket: int, avoid: int | None = None) -> tuple[bytes, bytes]:
    for i in range(1000):
        src = particle(f"s{i}")
        if particle_bucket(src, BUCKETS) == bucket:
            return src, particle(f"t{i}")
    raise AssertionError("no particle in bucket")


def test_a_rollup_refuses_a_link_of_another_bucket_naming_its_owner(tmp_path):
    chain = new_chain(tmp_path, interchain_genesis(section(bucket=1)))
    with chain.reader() as r:
        assert place(r) is not None
    mine = _pair_in(1)
    theirs = _pair_in(3)
    before = account(chain, ALICE)
    result = chain.produce_block([tx(ALICE, 0, Msg("link", {"links": [list(mine), list(theirs)]}))])
    receipt = result.receipts[0]
    assert receipt.code == "wrong_bucket"
    assert "links[1] belongs to bucket 3 (chain r3); this is bucket 1" in receipt.log
    after = account(chain, ALICE)
    assert after.balance == before.balance - FEE and after.bonded == before.bonded
    with chain.reader() as r:
        assert list(r.items(LINKS_PREFIX)) == []
    ok = chain.produce_block([tx(ALICE, 1, Msg("link", {"links": [list(mine)]}))])
    assert ok.receipts[0].code == "ok"


def test_the_hub_holds_no_links(tmp_path):
    chain = new_chain(tmp_path, interchain_genesis(section("hub", None)))
    src, dst = _pair_in(2)
    result = chain.produce_block([tx(ALICE, 0, Msg("link", {"links": [[src, dst]]}))])
    assert result.receipts[0].code == "wrong_bucket"
    assert "the hub holds no links" in result.receipts[0].log


def test_a_chain_on_its_own_records_no_place(tmp_path):
    chain = new_chain(tmp_path)
    with chain.reader() as r:
        assert place(r) is None
