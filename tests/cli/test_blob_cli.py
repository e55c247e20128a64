"""``focusflow blob`` against a real devnet: put, dedup, get, rm, and what is refused.

The devnet is a real process with its LMDB chunk store in its home; the CLI
talks to it over HTTP as a user's would. A blob read back is compared byte for
byte with the file put, and its CID recomputed here.
"""

from __future__ import annotations

import hashlib
import io
import socket
import time

import httpx
import numpy as np
import pytest

from focusflow.cli import blob_cmd
from focusflow.client import BadNodeAnswerError, NodeClient
from focusflow.core.cid import cid_from_bytes, cid_of_bytes, cid_to_bytes
from focusflow.services.storage import dag
from focusflow.services.storage.chunk_store import ChunkStore
from focusflow.services.storage.proofs import verify_retrievability
from tests.cli.helpers import assert_user_error, run_cli


def _random(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_put_get_dedup_and_rm_through_the_cli(env, capsys, tmp_path):
    data = bytearray(_random(6 << 20, 1))
    src = tmp_path / "a.bin"
    src.write_bytes(bytes(data))
    first = run_cli(capsys, "blob", "put", src, "--json")
    assert first.code == 0, first.err
    put = first.json()
    assert put["size"] == len(data) and put["new_chunks"] == put["chunks"] > 1
    root = cid_to_bytes(put["cid"])
    with env.client() as c:
        r = c.get(f"/v1/chunks/{put['cid']}")
        assert r.status_code == 200, r.text[:300]
        node = r.content
        assert root == bytes([1, dag.DAG_CBOR, 0x12, 0x20]) + hashlib.sha256(node).digest()
        assert c.get(f"/v1/blobs/{put['cid']}").content == bytes(data)
    # one byte changed: a chunk or two and the root are new, the rest is kept
    data[len(data) // 3] ^= 1
    src.write_bytes(bytes(data))
    second = run_cli(capsys, "blob", "put", src, "--json").json()
    assert second["cid"] != put["cid"] and second["new_chunks"] <= 2
    assert second["new_bytes"] < 0.05 * len(data)
    out = tmp_path / "back.bin"
    got = run_cli(capsys, "blob", "get", second["cid"], "--out", out, "--json")
    assert got.code == 0, got.err
    assert out.read_bytes() == bytes(data)
    assert not out.with_name("back.bin.part").exists()
    removed = run_cli(capsys, "blob", "rm", put["cid"])
    assert removed.code == 0, removed.err
    with env.client() as c:
        assert c.get(f"/v1/blobs/{put['cid']}").status_code == 404
        assert c.get(f"/v1/blobs/{second['cid']}").content == bytes(data)


def test_a_small_blob_is_the_particle_of_its_bytes(env, capsys, tmp_path):
    src = tmp_path / "cats.txt"
    src.write_bytes(b"cats")
    put = run_cli(capsys, "blob", "put", src, "--json").json()
    assert put["cid"] == cid_of_bytes(b"cats") and put["chunks"] == 1


def test_the_api_refuses_what_it_must(env):
    with env.client() as c:
        r = c.post("/v1/blobs", content=b"x" * 10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert _declared_too_large(env) == 413
        missing = cid_of_bytes(b"never put here")
        assert c.get(f"/v1/blobs/{missing}").status_code == 404
        assert c.get(f"/v1/chunks/{missing}").status_code == 404
        r = c.delete(f"/v1/blobs/{missing}", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        # a CIDv0 is a particle but no block this store makes
        v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
        assert c.get(f"/v1/chunks/{v0}").status_code == 404
        # fetching from other nodes takes the put's credential; the devnet has no peers
        assert c.post(f"/v1/blobs/{missing}/fetch").status_code == 401
        auth = {"Authorization": f"Bearer {env.admin_token()}"}
        r = c.post(f"/v1/blobs/{missing}/fetch", headers=auth)
        assert r.status_code == 404 and r.json()["error"]["code"] == "blob_unavailable"


def test_get_of_a_blob_the_node_lacks_asks_it_to_fetch_and_says_why_not(env, capsys, tmp_path):
    missing = cid_of_bytes(b"held by no node")
    r = run_cli(capsys, "blob", "get", missing, "--out", tmp_path / "x")
    assert r.code != 0 and "blob_unavailable" in r.err and "no peers" in r.err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.part").exists()


def _raw_put(env, declared: int, body: bytes = b"", wait: float = 0.0) -> bytes:
    """Send ``POST /v1/blobs`` declaring ``declared`` bytes and sending ``body``
    (fewer, or none: an HTTP client will not declare what it does not send),
    then close; the first line of the answer when ``wait`` is 0."""
    url = httpx.URL(env.api)
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/blobs HTTP/1.1\r\nHost: {url.host}\r\n"
            f"Authorization: Bearer {env.admin_token()}\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
            + body
        )
        if wait:
            time.sleep(wait)
            return b""
        return sock.recv(4096).split(b"\r\n", 1)[0]


def _declared_too_large(env) -> int:
    """The status a put declaring 2 GiB gets, the body never sent."""
    return int(_raw_put(env, 2**31).split()[1])


def test_an_upload_cut_short_pins_nothing(env, tmp_path):
    data = _random(1 << 20, 7)
    sent = data[:600_000]
    _raw_put(env, len(data), sent, wait=0.5)
    # what the node would have pinned had it taken the part it got for the blob
    local = ChunkStore(tmp_path / "local")
    partial = cid_from_bytes(local.put(io.BytesIO(sent)).cid)
    time.sleep(1.5)  # the node has seen the connection close by now
    with env.client() as c:
        assert c.get(f"/v1/blobs/{partial}").status_code == 404


def test_put_without_credentials_and_a_missing_file_are_user_errors(env, capsys, tmp_path):
    assert_user_error(run_cli(capsys, "blob", "put", tmp_path / "none"), "bad_input_file")
    src = tmp_path / "f"
    src.write_bytes(b"hello")
    r = run_cli(capsys, "blob", "put", src, "--token", "ffk_notatoken")
    assert r.code != 0 and "unauthorized" in r.err


@pytest.fixture(scope="module")
def lying():
    """A loopback node that answers ``/v1/chunks/{cid}`` from ``app.state.blocks``
    and streams ``app.state.body`` as any blob; a client to it."""
    from fastapi import FastAPI
    from fastapi.responses import Response

    from focusflow.testing.lightnode import serve

    app = FastAPI()

    @app.get("/v1/chunks/{cid}")
    def block(cid: str) -> Response:
        return Response(app.state.blocks[cid_to_bytes(cid)], media_type="application/octet-stream")

    @app.get("/v1/blobs/{cid}")
    def blob(cid: str) -> Response:
        return Response(app.state.body, media_type="application/octet-stream")

    url, stop = serve(app)
    made: list[NodeClient] = []

    def client(blocks: dict[bytes, bytes], body: bytes = b"") -> NodeClient:
        app.state.blocks, app.state.body = blocks, body
        made.append(NodeClient(url))
        return made[-1]

    yield client
    for made_client in made:
        made_client.close()
    stop()


def test_get_checks_every_block_before_writing_it(lying):
    chunk = _random(dag.CHUNK_MIN, 2)
    leaf = dag.cid_bytes(dag.RAW, chunk)
    assert list(blob_cmd._verified_chunks(lying({leaf: chunk}), leaf)) == [chunk]
    with pytest.raises(dag.BlobError, match="does not hash"):
        list(blob_cmd._verified_chunks(lying({leaf: chunk[:-1] + b"\0"}), leaf))
    # an oversized block is refused before it is read whole, let alone hashed
    big = _random(dag.CHUNK_MAX + 1, 3)
    big_cid = dag.cid_bytes(dag.RAW, big)
    with pytest.raises(BadNodeAnswerError, match=f"over {dag.CHUNK_MAX} bytes"):
        blob_cmd._block(lying({big_cid: big}), big_cid)
    # a blob of two chunks: its stream is cut where the root says and each part checked
    other = _random(dag.CHUNK_MIN, 4)
    links = [dag.Link(leaf, len(chunk)), dag.Link(dag.cid_bytes(dag.RAW, other), len(other))]
    root, ((root_cid, node),) = dag.build(links)
    blocks = {root_cid: node}
    good = chunk + other
    assert list(blob_cmd._verified_chunks(lying(blocks, good), root.cid)) == [chunk, other]
    for body, match in (
        (good[:-1] + bytes([good[-1] ^ 1]), "does not hash"),
        (good[:-1], "ended before"),
        (good + b"x", "longer"),
    ):
        with pytest.raises(dag.BlobError, match=match):
            list(blob_cmd._verified_chunks(lying(blocks, body), root.cid))


def test_get_of_a_cid_that_is_no_blob_is_a_user_error(env, capsys, tmp_path):
    v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    r = run_cli(capsys, "blob", "get", v0, "--out", tmp_path / "o")
    assert_user_error(r, "invalid_parameter")
    missing = cid_from_bytes(dag.cid_bytes(dag.RAW, b"absent"))
    r = run_cli(capsys, "blob", "get", missing, "--out", tmp_path / "o")
    assert r.code != 0 and "blob_unavailable" in r.err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.part").exists()


def test_a_pin_request_pays_the_node_that_proves_it_holds_the_blob(env, capsys, tmp_path):
    data = _random(3 << 20, 21)
    src = tmp_path / "kept.bin"
    src.write_bytes(data)
    put = run_cli(capsys, "blob", "put", src, "--json").json()
    asked = run_cli(capsys, "tx", "pin", "request", put["cid"], "--size", len(data), "--reward",
                    1_000, "--bounty", 5_000, "--blocks", 200, "--wait", "--json")  # fmt: skip
    assert asked.code == 0, asked.err
    (event,) = [e for e in asked.json()["events"] if e["type"] == "pin.request"]
    request = event["request"]
    with env.client() as c:
        pin = c.get(f"/v1/pins/{request}").json()
        assert (pin["cid"], pin["size"], pin["escrow"]) == (put["cid"], len(data), 5_000)
        assert c.get(f"/v1/pins/{'0' * 32}").json()["error"]["code"] == "unknown_pin"
        # a proof the node gives for any byte of a blob it holds, checked here
        r = c.get(f"/v1/blobs/{put['cid']}/proof", params={"offset": 12345})
        path = [bytes.fromhex(b) for b in r.json()["path"]]
        verify_retrievability(cid_to_bytes(put["cid"]), len(data), 12345, path)
        past = c.get(f"/v1/blobs/{put['cid']}/proof", params={"offset": len(data)})
        assert past.status_code == 404
    proved = run_cli(capsys, "tx", "pin", "prove", request, "--json")
    assert proved.code == 0, proved.err
    with env.client() as c:
        assert c.get(f"/v1/pins/{request}").json()["escrow"] == 4_000
    # a second proof within pin_period is refused by the chain, and says why
    again = run_cli(capsys, "tx", "pin", "prove", request, "--json")
    assert again.code != 0 and "pin_refused" in again.err
