"""Inference on a real devnet: POST /v1/infer, the walk WebSocket and
``focusflow infer --node``, with every bad request refused by its code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.testing.devnet import link_msg, signed, start_devnet, wait_tx


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    devnet = start_devnet(tmp_path_factory.mktemp("infer") / "home")
    tx = signed(
        devnet,
        devnet.dev_key(),
        [
            link_msg(
                ("cats", "mammals"),
                ("dogs", "mammals"),
                ("mammals", "animals"),
                ("cats", "whiskers"),
                ("animals", "cats"),
                ("animals", "dogs"),
            ),
            Msg("name.register", {"name": "kitty", "cid": cid_to_bytes(cid_of_text("cats"))}),
        ],
        fee=40_000,
    )
    with devnet.client() as c:
        r = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
        assert r.status_code == 202, r.text
    assert wait_tx(devnet, r.json()["hash"])["code"] == "ok"
    yield devnet
    devnet.stop()


def test_infer_answers_from_the_committed_graph(net):
    with net.client() as c:
        doc = c.post("/v1/infer", json={"context": ["dogs"], "top": 3}).json()
        by_name = c.post("/v1/infer", json={"context": [{"name": "kitty"}], "top": 2}).json()
    assert doc["context"] == [cid_of_text("dogs")]
    assert doc["particles"][0]["cid"] == cid_of_text("mammals")
    assert [p["rank"] for p in doc["particles"]] == [1, 2, 3]
    assert sum(p["probability"] for p in doc["particles"]) <= 1.0 + 1e-9
    assert doc["path"] in ("local", "whole-graph")
    assert 0.0 <= doc["error_bound"] < 0.1
    assert by_name["context"] == [cid_of_text("cats")]
    assert cid_of_text("cats") not in [p["cid"] for p in by_name["particles"]]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"context": []}, 400, "invalid_parameter"),
        ({"context": ["never linked"]}, 404, "unknown_particle"),
        ({"context": [{"name": "nobody"}]}, 404, "unknown_name"),
        ({"context": ["cats"], "top": 0}, 400, "invalid_parameter"),
        ({"context": ["cats"], "top": 10**9}, 400, "invalid_parameter"),
        ({"context": ["cats"] * 65}, 400, "invalid_parameter"),
        ({"context": ["cats"], "mode": "cyberank"}, 400, "invalid_parameter"),
        ({"context": ["cats"], "semcons": {"nobody": 1}}, 404, "unknown_semcon"),
        ({"context": ["cats"], "tol": "small"}, 400, "invalid_parameter"),
        (
            {"context": ["cats"], "semcons": {f"s{i}": 1 for i in range(17)}},
            400,
            "invalid_parameter",
        ),
        ({"context": ["cats"], "semcons": {"x" * 129: 1}}, 400, "invalid_parameter"),
        ({"context": ["cats"], "extra": 1}, 400, "invalid_parameter"),
        ([1, 2], 400, "invalid_parameter"),
    ],
)
def test_bad_requests_are_refused_with_their_code(net, body, status, code):
    with net.client() as c:
        r = c.post("/v1/infer", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_whole_numbers_written_as_floats_are_integers(net):
    """JSON has one number type: ``3.0`` is the integer 3, as the OpenAPI schema's
    ``integer`` says; a fraction is still refused."""
    with net.client() as c:
        whole = c.post("/v1/infer", json={"context": ["cats"], "top": 3.0, "seed": 7.0})
        plain = c.post("/v1/infer", json={"context": ["cats"], "top": 3, "seed": 7})
        part = c.post("/v1/infer", json={"context": ["cats"], "top": 2.5})
    assert whole.status_code == 200, whole.text
    assert len(whole.json()["particles"]) == len(plain.json()["particles"]) <= 3
    assert (part.status_code, part.json()["error"]["code"]) == (400, "invalid_parameter")


def test_a_body_that_is_not_json_is_malformed(net):
    with net.client() as c:
        r = c.post("/v1/infer", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed"


def _walk(net, request: dict) -> list[dict]:
    url = net.api.replace("http", "ws", 1) + "/v1/infer/walk"
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps(request))
        out = []
        while True:
            doc = json.loads(ws.recv(timeout=30))
            out.append(doc)
            if "done" in doc or "error" in doc:
                return out


def test_walks_stream_one_step_a_message_and_repeat_with_a_seed(net):
    first = _walk(net, {"context": ["cats"], "steps": 4, "seed": 5})
    again = _walk(net, {"context": ["cats"], "steps": 4, "seed": 5})
    assert first[-1]["done"] is True and first[-1]["steps"] == len(first) - 1
    assert [m.get("cid") for m in first] == [m.get("cid") for m in again]
    assert [m["step"] for m in first[:-1]] == list(range(1, len(first)))
    refused = _walk(net, {"context": ["cats"], "steps": 10_000})
    assert refused[-1]["error"]["code"] == "invalid_parameter"


def test_the_cli_asks_the_node(net):
    cmd = [sys.executable, "-m", "focusflow", "infer", "--node", net.api]
    top = subprocess.run(
        [*cmd, "--context", "dogs", "--top", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert top.returncode == 0, top.stderr
    assert json.loads(top.stdout)["particles"][0]["particle"] == cid_of_text("mammals")
    named = subprocess.run(
        [*cmd, "--context", "@kitty", "--json"], capture_output=True, text=True, timeout=60
    )
    assert json.loads(named.stdout)["context"] == [{"particle": cid_of_text("cats")}]
    walk = subprocess.run(
        [*cmd, "--context", "cats", "--walk", "3", "--seed", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert walk.returncode == 0, walk.stderr
    assert [s["step"] for s in json.loads(walk.stdout)["steps"]] == [1, 2, 3]
    bad = subprocess.run(
        [*cmd, "--context", "never linked"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "unknown_particle" in bad.stderr


def test_graph_pages_cover_the_committed_graph(net):
    with net.client() as c:
        whole = c.get("/v1/graph/links").json()
        parts = [
            c.get("/v1/graph/links", params={"start": s, "limit": 2}).json()
            for s in range(0, whole["total"], 2)
        ]
        particles = c.get("/v1/graph/particles").json()
        neurons = c.get("/v1/graph/neurons").json()
        beyond = c.get("/v1/graph/links", params={"start": 10**9}).json()
        bad = [
            c.get("/v1/graph/links", params=p)
            for p in ({"limit": 0}, {"limit": 100_001}, {"start": -1}, {"start": "x"})
        ]
    assert whole["total"] >= 6 and len(whole["src"]) == whole["total"]
    assert [x for p in parts for x in p["src"]] == whole["src"]
    assert [x for p in parts for x in p["neuron"]] == whole["neuron"]
    assert [p["start"] for p in parts] == list(range(0, whole["total"], 2))
    assert cid_of_text("mammals") in particles["cids"]
    assert max(whole["src"] + whole["dst"]) < particles["total"] == len(particles["cids"])
    assert len(neurons["addresses"]) == len(neurons["stakes"]) == neurons["total"]
    assert beyond["src"] == [] and beyond["start"] == whole["total"]
    for r in bad:
        assert r.status_code == 400 and r.json()["error"]["code"] == "malformed"


def test_compile_from_the_node(net, tmp_path):
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "focusflow"]
    made = subprocess.run(
        [*cmd, "compile", "--node", net.api, "--out", str(out), "--eval-contexts", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    report = json.loads(made.stdout)
    with net.client() as c:
        links = c.get("/v1/graph/links").json()
    assert report["source"]["node"] == net.api
    assert report["graph"]["links"] == links["total"]
    assert report["source"]["heights"][0] <= links["height"]
    top = subprocess.run(
        [*cmd, "infer", "--model", str(out), "--context", "dogs", "--top", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert top.returncode == 0, top.stderr
    assert json.loads(top.stdout)["particles"][0]["particle"] == cid_of_text("mammals")
    both = subprocess.run(
        [*cmd, "compile", "--node", net.api, "--graph", "x.tsv", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert both.returncode == 2 and "exactly one of" in both.stderr
