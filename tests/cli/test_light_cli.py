"""``focusflow light`` against real nodes on loopback, honest and lying.

Every node is the node's real app over a real chain served by uvicorn; a lying
node is that app with its answers rewritten on the way out (focusflow.testing.lightnode,
``Lie``). Each lie must end the command with one ``error: ... [code]`` line and
exit status 3, and leave the light store as it was.
"""

from __future__ import annotations

import json

import httpx
import pytest

from focusflow.chain.genesis import Genesis
from focusflow.consensus.certificate import decode_certificate, encode_certificate
from focusflow.core.cid import cid_from_bytes
from focusflow.core.encoding import decode, encode
from focusflow.core.hashing import sha256
from focusflow.light.store import STORE_FILE
from focusflow.testing.chains import ALICE, genesis, particle
from focusflow.testing.lightnode import build_chain, node_app, serve
from tests.cli.helpers import run_cli

HUB = cid_from_bytes(particle("hub"))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """Chain A and chain B (same genesis and validator, diverging at height 3)."""
    root = tmp_path_factory.mktemp("lightnet")
    a = build_chain(root / "a", 6)
    b = build_chain(root / "b", 6, fork_at=3, tag="x")
    gen = root / "genesis.json"
    genesis(focus={"mode": "diffusion"}).save(gen)
    url_a, stop_a = serve(node_app(a))
    url_b, stop_b = serve(node_app(b))
    yield {"a": a, "b": b, "genesis": gen, "url_a": url_a, "url_b": url_b, "root": root}
    stop_a()
    stop_b()
    a.close()
    b.close()


def sync(capsys, url, home, gen, *extra):
    return run_cli(capsys, "light", "sync", "--node", url, "--genesis", gen, "--home", home,
                   "--json", *extra)  # fmt: skip


def assert_lie(result, code: str) -> None:
    """Exit 3 and exactly one ``error: ... [code]`` line."""
    lines = result.err.strip().splitlines()
    assert result.code == 3, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert lines[0].endswith(f"[{code}]"), result.err


@pytest.fixture
def synced(net, tmp_path, capsys):
    """A light home synced from genesis against honest node A."""
    home = tmp_path / "light"
    r = sync(capsys, net["url_a"], home, net["genesis"])
    assert r.code == 0, r
    return home


def lying(net, rewrite):
    url, stop = serve(node_app(net["a"], rewrite))
    return url, stop


def test_sync_and_every_query_verify_against_an_honest_node(net, tmp_path, capsys):
    home = tmp_path / "light"
    r = sync(capsys, net["url_a"], home, net["genesis"])
    assert r.code == 0, r
    head = net["a"].head
    assert r.json() == {"height": 6, "hash": head.hash.hex(), "verified_headers": 2}
    assert (home / STORE_FILE).exists()
    url = net["url_a"]
    r = run_cli(capsys, "light", "query", "particle", HUB, "--node", url, "--home", home, "--json")
    assert r.code == 0, r
    got = r.json()
    assert got["particle"] == HUB and got["height"] == 6 and got["verified"] is True
    stated = httpx.get(f"{url}/v1/focus/particles/{HUB}").json()
    assert (got["focus_q"], got["focus"]) == (stated["focus_q"], stated["focus"]) != (0, 0.0)
    r = run_cli(capsys, "light", "query", "balance", ALICE.address, "--node", url,
                "--home", home, "--json")  # fmt: skip
    assert r.code == 0 and r.json()["nonce"] == 6, r
    r = run_cli(capsys, "light", "query", "name", "hubname", "--node", url, "--home", home,
                "--json")  # fmt: skip
    assert r.code == 0 and r.json()["cid"] == HUB, r
    r = run_cli(capsys, "light", "query", "name", "nobody", "--node", url, "--home", home,
                "--json")  # fmt: skip
    assert r.code == 0 and r.json()["cid"] is None, r
    r = run_cli(capsys, "light", "query", "links", HUB, "--node", url, "--home", home, "--json")
    assert r.code == 0, r
    links = r.json()["links"]
    assert len(links) == 6 and all(link["from"] == HUB for link in links)
    r = run_cli(capsys, "light", "sample", 3, "--node", url, "--samples", 16,
                "--home", home, "--json")  # fmt: skip
    assert r.code == 0, r
    # the block's square is 2 x 2: 16 samples asked, its 4 distinct shares sampled
    assert {k: r.json()[k] for k in ("height", "samples", "requested", "available")} == {
        "height": 3,
        "samples": 4,
        "requested": 16,
        "available": True,
    }


def test_sync_from_a_trusted_height_and_hash(net, tmp_path, capsys):
    record = net["a"].block_record(4)
    home = tmp_path / "light"
    r = sync(capsys, net["url_a"], home, net["genesis"], "--trust-height", 4,
             "--trust-hash", record.block.hash.hex())  # fmt: skip
    assert r.code == 0 and r.json()["height"] == 6, r
    r = sync(capsys, net["url_a"], tmp_path / "other", net["genesis"], "--trust-height", 4,
             "--trust-hash", "00" * 32)  # fmt: skip
    assert_lie(r, "header_mismatch")


def test_a_wrong_balance_is_refused(net, synced, capsys):
    def rewrite(path, doc):
        if path.startswith("/v1/light/proofs/account/"):
            balance, nonce, bonded = decode(bytes.fromhex(doc["value"]), "account")
            return {**doc, "value": encode([balance + 10**9, nonce, bonded]).hex()}
        return None

    url, stop = lying(net, rewrite)
    try:
        before = (synced / STORE_FILE).read_bytes()
        r = run_cli(capsys, "light", "query", "balance", ALICE.address, "--node", url,
                    "--home", synced, "--json")  # fmt: skip
        assert_lie(r, "bad_proof")
        assert (synced / STORE_FILE).read_bytes() == before
    finally:
        stop()


def test_a_stated_focus_that_is_not_the_proven_one_is_refused(net, synced, capsys):
    def rewrite(path, doc):
        if path.startswith("/v1/light/proofs/particle/"):
            return {**doc, "focus_q": doc["focus_q"] + 1, "focus": doc["focus"] * 2}
        return None

    url, stop = lying(net, rewrite)
    try:
        r = run_cli(capsys, "light", "query", "particle", HUB, "--node", url, "--home", synced,
                    "--json")  # fmt: skip
        assert_lie(r, "wrong_value")
    finally:
        stop()


def test_a_forged_focus_chunk_is_refused(net, synced, capsys):
    def rewrite(path, doc):
        if path.startswith("/v1/light/proofs/particle/"):
            chunk = bytearray(bytes.fromhex(doc["chunk"]))
            chunk[0] ^= 1
            return {**doc, "chunk": chunk.hex()}
        return None

    url, stop = lying(net, rewrite)
    try:
        r = run_cli(capsys, "light", "query", "particle", HUB, "--node", url, "--home", synced,
                    "--json")  # fmt: skip
        assert_lie(r, "bad_proof")
    finally:
        stop()


def test_a_forged_state_proof_is_refused(net, synced, capsys):
    def rewrite(path, doc):
        if path.startswith("/v1/light/proofs/name/"):
            proof = bytearray(bytes.fromhex(doc["proof"]))
            proof[-5] ^= 0x40
            return {**doc, "proof": proof.hex()}
        return None

    url, stop = lying(net, rewrite)
    try:
        r = run_cli(capsys, "light", "query", "name", "hubname", "--node", url, "--home", synced,
                    "--json")  # fmt: skip
        assert_lie(r, "bad_proof")
        # Claiming a registered name is absent does not verify either.
        r = run_cli(capsys, "light", "query", "name", "hubname", "--node", net["url_a"],
                    "--home", synced, "--json")  # fmt: skip
        assert r.code == 0 and r.json()["cid"] == HUB
    finally:
        stop()


def test_hiding_a_name_is_refused(net, synced, capsys):
    def rewrite(path, doc):
        if path.startswith("/v1/light/proofs/name/"):
            return {**doc, "value": None}
        return None

    url, stop = lying(net, rewrite)
    try:
        r = run_cli(capsys, "light", "query", "name", "hubname", "--node", url, "--home", synced,
                    "--json")  # fmt: skip
        assert_lie(r, "bad_proof")
    finally:
        stop()


def test_a_link_not_in_its_proven_message_is_refused(net, synced, capsys):
    other = cid_from_bytes(particle("elsewhere"))

    def rewrite(path, doc):
        if path.startswith("/v1/light/proofs/links/"):
            links = [dict(link) for link in doc["links"]]
            links[0]["to"] = other
            return {**doc, "links": links}
        return None

    url, stop = lying(net, rewrite)
    try:
        r = run_cli(capsys, "light", "query", "links", HUB, "--node", url, "--home", synced,
                    "--json")  # fmt: skip
        assert_lie(r, "wrong_value")
    finally:
        stop()


def _headers(rewrite_header):
    """Rewrite every header answer."""

    def rewrite(path, doc):
        if path.startswith("/v1/light/header/"):
            return rewrite_header(doc)
        return None

    return rewrite


def test_a_header_with_a_forged_certificate_is_refused(net, tmp_path, capsys):
    def forge(doc):
        cert = decode_certificate(bytes.fromhex(doc["certificate_cbor"]))
        sig = cert.signatures[0]
        bad = bytearray(sig.signature)
        bad[0] ^= 1
        forged = type(cert)(
            cert.height, cert.round, cert.value_id, (type(sig)(sig.public_key, bytes(bad)),)
        )
        return {**doc, "certificate_cbor": encode_certificate(forged).hex()}

    url, stop = lying(net, _headers(forge))
    try:
        r = sync(capsys, url, tmp_path / "light", net["genesis"])
        assert_lie(r, "bad_certificate")
        assert not (tmp_path / "light" / STORE_FILE).exists()
    finally:
        stop()


def test_a_header_changed_under_its_certificate_is_refused(net, synced, capsys):
    """Another state root, the hash recomputed: the certificate commits another block."""

    def change(doc):
        if doc["height"] != 6:
            return None
        fields = decode(bytes.fromhex(doc["header_cbor"]), "header")
        fields[5] = sha256(b"another state")
        raw = encode(fields)
        return {**doc, "header_cbor": raw.hex(), "hash": sha256(raw).hex()}

    def rewrite(path, doc):
        return change(doc) if path.startswith("/v1/light/header/") else None

    url, stop = lying(net, rewrite)
    try:
        # The store already holds 6: a different header there must not be taken.
        r = sync(capsys, url, synced, net["genesis"])
        assert_lie(r, "bad_certificate")
        r = sync(capsys, url, synced.parent / "fresh", net["genesis"])
        assert_lie(r, "bad_certificate")
    finally:
        stop()


def test_header_bytes_that_do_not_hash_to_the_claimed_hash_are_refused(net, tmp_path, capsys):
    def change(doc):
        fields = decode(bytes.fromhex(doc["header_cbor"]), "header")
        fields[2] += 1
        return {**doc, "header_cbor": encode(fields).hex()}

    url, stop = lying(net, _headers(change))
    try:
        assert_lie(sync(capsys, url, tmp_path / "light", net["genesis"]), "header_mismatch")
    finally:
        stop()


def test_validators_that_are_not_the_headers_set_are_refused(net, tmp_path, capsys):
    def change(doc):
        stronger = [{**v, "power": v["power"] + 1} for v in doc["validators"]]
        return {**doc, "validators": stronger}

    url, stop = lying(net, _headers(change))
    try:
        r = sync(capsys, url, tmp_path / "light", net["genesis"])
        assert_lie(r, "validator_set_mismatch")
    finally:
        stop()


def test_a_fork_is_reported_with_both_headers(net, synced, capsys):
    r = sync(capsys, net["url_b"], synced, net["genesis"])
    assert_lie(r, "fork")
    assert net["a"].head.hash.hex() in r.err and net["b"].head.hash.hex() in r.err


def test_trusting_a_hash_that_conflicts_with_a_verified_header_is_a_fork(net, synced, capsys):
    other = net["b"].head
    r = sync(capsys, net["url_b"], synced, net["genesis"], "--trust-height", other.height,
             "--trust-hash", other.hash.hex())  # fmt: skip
    assert_lie(r, "fork")


def test_a_witness_on_another_fork_is_reported(net, tmp_path, capsys):
    r = sync(capsys, net["url_a"], tmp_path / "light", net["genesis"], "--witness", net["url_b"])
    assert_lie(r, "fork")
    assert net["b"].head.hash.hex() in r.err
    r = sync(capsys, net["url_a"], tmp_path / "l2", net["genesis"], "--witness", net["url_a"])
    assert r.code == 0, r


def test_every_node_a_command_asks_is_closed_when_it_ends(net, tmp_path, capsys, monkeypatch):
    from focusflow.light import client as light_client

    opened: list[light_client.Node] = []

    class Recorded(light_client.Node):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(light_client, "Node", Recorded)
    home = tmp_path / "light"
    r = sync(capsys, net["url_a"], home, net["genesis"], "--witness", net["url_a"])
    assert r.code == 0, r
    r = sync(capsys, net["url_a"], tmp_path / "l2", net["genesis"], "--witness", net["url_b"])
    assert_lie(r, "fork")
    r = run_cli(capsys, "light", "query", "name", "hubname", "--node", net["url_a"],
                "--home", home, "--json")  # fmt: skip
    assert r.code == 0, r
    r = run_cli(capsys, "light", "sample", 3, "--node", net["url_a"],
                "--home", home, "--json")  # fmt: skip
    assert r.code == 0, r
    assert len(opened) == 6 and all(node.api.closed for node in opened)


def test_another_chains_genesis_is_refused(net, tmp_path, capsys):
    raw = json.loads(net["genesis"].read_text())
    raw["chain_id"] = "focusflow-other"
    other = tmp_path / "other.json"
    Genesis.from_json(raw).save(other)
    r = sync(capsys, net["url_a"], tmp_path / "light", other)
    assert_lie(r, "chain_id_mismatch")


def test_withheld_shares_make_a_block_unavailable(net, synced, capsys):
    def rewrite(path, doc):
        if "/shares/" in path:
            share = bytearray(bytes.fromhex(doc["share"]))
            share[-1] ^= 0xFF
            return {**doc, "share": share.hex()}
        return None

    url, stop = lying(net, rewrite)
    try:
        r = run_cli(capsys, "light", "sample", 3, "--node", url, "--samples", 16,
                    "--home", synced, "--json")  # fmt: skip
        assert r.code == 3, r
        assert r.json()["available"] is False
    finally:
        stop()


def test_bad_input_exits_2(net, tmp_path, capsys):
    r = run_cli(capsys, "light", "query", "particle", HUB, "--node", net["url_a"],
                "--home", tmp_path / "none", "--json")  # fmt: skip
    assert r.code == 2 and r.err.strip().endswith("[not_synced]"), r
    r = sync(capsys, net["url_a"], tmp_path / "l", net["genesis"], "--trust-height", 3)
    assert r.code == 2 and "[invalid_parameter]" in r.err, r
    r = sync(capsys, "http://127.0.0.1:9", tmp_path / "l", net["genesis"])
    assert r.code == 2 and "[node_request_failed]" in r.err, r
