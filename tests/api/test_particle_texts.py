"""Particle texts on a real devnet process over HTTP: what the node keeps, what it
refuses and with which code, and that kept texts survive a restart."""

from __future__ import annotations

import json

import pytest

from focusflow.core.cid import cid_of_text
from focusflow.store.particle_texts import MAX_BATCH, MAX_TEXT_BYTES
from focusflow.testing.devnet import link_msg, signed, start_devnet, wait_tx

TEXTS = "/v1/particles/texts"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    devnet = start_devnet(tmp_path_factory.mktemp("texts") / "home", timeout=240)
    yield devnet
    devnet.stop()


def _link(net, *pairs: tuple[str, str], nonce: int | None = None) -> str:
    tx = signed(net, net.dev_key(), [link_msg(*pairs)], nonce=nonce)
    with net.client() as c:
        r = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
    assert r.status_code == 202, r.text
    return r.json()["hash"]


def _error(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


def test_texts_of_linked_particles_are_kept_and_shown(net):
    wait_tx(net, _link(net, ("cats", "mammals"), ("dogs", "mammals")))
    cats, mammals, dogs = (cid_of_text(t) for t in ("cats", "mammals", "dogs"))
    with net.client() as c:
        kept = c.post(TEXTS, json={"texts": ["cats", "mammals", "cats"]})
        assert kept.status_code == 200, kept.text
        assert kept.json() == {"cids": [cats, mammals, cats], "stored": 2, "unknown": []}
        assert c.get(f"/v1/particles/{mammals}/text").json() == {"cid": mammals, "text": "mammals"}

        top = c.get("/v1/focus/top").json()
        shown = {p["cid"]: p["text"] for p in top["particles"]}
        assert shown[cats] == "cats" and shown[mammals] == "mammals"
        assert shown[dogs] is None  # linked, but nobody gave its text
        assert top["total"] == len(top["particles"]) == 3
        assert c.get("/v1/focus/top", params={"k": 2}).json()["total"] == 3

        one = c.get(f"/v1/focus/particles/{mammals}").json()
        assert one["text"] == "mammals"
        ins = c.get(f"/v1/particles/{mammals}/links", params={"direction": "in"}).json()
        assert {x["cid"]: x["text"] for x in ins["links"]} == {cats: "cats", dogs: None}

        again = c.post(TEXTS, json={"texts": ["dogs"]}).json()
        assert again["stored"] == 1
        top = c.get("/v1/focus/top").json()  # the cached list is rendered again
        assert {p["cid"]: p["text"] for p in top["particles"]}[dogs] == "dogs"


def test_a_link_still_in_the_mempool_makes_its_texts_welcome(net):
    """A nonce past a gap keeps the transaction pending: its particles are not in
    the graph, yet the texts are kept (what `tx link` sends right after submitting)."""
    with net.client() as c:
        nonce = c.get(f"/v1/accounts/{net.dev_key().address}").json()["pending_nonce"]
        _link(net, ("pending-from", "pending-to"), nonce=nonce + 1)
        kept = c.post(TEXTS, json={"texts": ["pending-from", "pending-to"]}).json()
        assert kept["stored"] == 2 and kept["unknown"] == []
        assert c.get(f"/v1/focus/particles/{cid_of_text('pending-to')}").status_code == 404
        text = c.get(f"/v1/particles/{cid_of_text('pending-to')}/text").json()["text"]
        assert text == "pending-to"


def test_texts_no_link_names_are_not_kept(net):
    cid = cid_of_text("nobody linked this")
    with net.client() as c:
        r = c.post(TEXTS, json={"texts": ["nobody linked this", "cats"]})
        assert r.status_code == 200, r.text
        assert r.json()["unknown"] == [cid] and r.json()["stored"] == 1
        _error(c.get(f"/v1/particles/{cid}/text"), 404, "unknown_text")


@pytest.fixture(scope="module")
def refused(net):
    """A committed link whose texts only ever come beside bad input."""
    wait_tx(net, _link(net, ("refused-a", "refused-b")))


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b'{"texts": ["cats"', 400, "malformed"),
        (b"[" * 100_000, 400, "malformed"),
        (json.dumps({"texts": ["cats"] * (MAX_BATCH + 1)}).encode(), 400, "invalid_parameter"),
        (json.dumps({"texts": []}).encode(), 400, "invalid_parameter"),
        (json.dumps({"texts": "cats"}).encode(), 400, "invalid_parameter"),
        (json.dumps({"texts": ["cats", 7]}).encode(), 400, "invalid_parameter"),
        (json.dumps({"texts": ["cats", ""]}).encode(), 400, "invalid_parameter"),
        (json.dumps({"texts": ["cats"], "more": 1}).encode(), 400, "invalid_parameter"),
        (json.dumps(["cats"]).encode(), 400, "invalid_parameter"),
        (b'{"texts": ["cats", "\\ud800"]}', 400, "invalid_parameter"),
        (json.dumps({"texts": ["x" * (MAX_TEXT_BYTES + 1)]}).encode(), 400, "text_too_large"),
        # 1366 three-byte characters are 4098 UTF-8 bytes in fewer characters than the cap.
        (json.dumps({"texts": ["\u20ac" * 1366]}).encode(), 400, "text_too_large"),
        (b'{"texts": ["' + b"y" * (3 << 20) + b'"]}', 413, "body_too_large"),
    ],
    ids=[
        "not-json",
        "too-deep",
        "too-many",
        "empty",
        "not-a-list",
        "not-a-string",
        "empty-text",
        "unknown-field",
        "not-an-object",
        "lone-surrogate",
        "too-long",
        "too-many-bytes",
        "body-over-the-cap",
    ],
)
def test_bad_requests_are_refused_and_keep_nothing(net, refused, body, status, code):
    with net.client() as c:
        # A good text beside the bad input is not kept either.
        if body.startswith(b'{"texts": ["cats", '):
            body = body.replace(b'"cats"', b'"refused-a"', 1)
        r = c.post(TEXTS, content=body, headers={"content-type": "application/json"})
        _error(r, status, code)
        _error(c.get(f"/v1/particles/{cid_of_text('refused-a')}/text"), 404, "unknown_text")


def test_a_text_of_the_largest_size_is_kept(net):
    big = "z" * MAX_TEXT_BYTES
    wait_tx(net, _link(net, (big, "small")))
    with net.client() as c:
        assert c.post(TEXTS, json={"texts": [big]}).json()["stored"] == 1
        assert c.get(f"/v1/particles/{cid_of_text(big)}/text").json()["text"] == big


def test_get_text_of_a_bad_cid_is_invalid_cid(net):
    with net.client() as c:
        _error(c.get("/v1/particles/not-a-cid/text"), 400, "invalid_cid")


def test_kept_texts_survive_a_restart(tmp_path):
    home = tmp_path / "home"
    first = start_devnet(home, timeout=240)
    try:
        wait_tx(first, _link(first, ("durable", "texts")))
        with first.client() as c:
            assert c.post(TEXTS, json={"texts": ["durable", "texts"]}).json()["stored"] == 2
    finally:
        first.stop()
    second = start_devnet(home, timeout=240)
    try:
        with second.client() as c:
            got = c.get(f"/v1/particles/{cid_of_text('durable')}/text").json()
            assert got == {"cid": cid_of_text("durable"), "text": "durable"}
            top = c.get("/v1/focus/top").json()["particles"]
            assert {p["text"] for p in top} == {"durable", "texts"}
    finally:
        second.stop()
