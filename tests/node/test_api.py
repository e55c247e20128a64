"""The REST API of a real devnet process: every read endpoint, and every bad input
answered with its stable code and no change of state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import KeyPair
from focusflow.modules.accounts import account_key
from focusflow.store import Proof, verify_proof
from focusflow.testing.devnet import link_msg, signed, wait_height, wait_tx


def submit(c, tx) -> dict:
    r = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
    return {"status": r.status_code, **r.json()}


@pytest.fixture(scope="module")
def linked(shared_devnet):
    """The dev key linked a small triangle plus a tail; returns its committed status."""
    net = shared_devnet
    tx = signed(
        net,
        net.dev_key(),
        [link_msg(("alpha", "beta"), ("beta", "gamma"), ("gamma", "alpha"), ("delta", "alpha"))],
    )
    with net.client() as c:
        accepted = submit(c, tx)
    assert accepted["status"] == 202, accepted
    return wait_tx(net, accepted["hash"])


def test_status_reports_chain_and_focus(shared_devnet, linked):
    with shared_devnet.client() as c:
        s = c.get("/v1/status").json()
    assert s["chain_id"].startswith("focusflow-devnet-")
    assert s["height"] >= linked["height"]
    assert s["focus"]["particles"] == 4 and s["focus"]["links"] == 4
    assert s["focus"]["iterations"] > 0
    assert len(s["state_root"]) == 64 and s["validator"].startswith("focus1")


def test_committed_links_move_focus(shared_devnet, linked):
    assert linked["code"] == "ok" and linked["events"][0]["count"] == 4
    alpha = cid_of_text("alpha")
    with shared_devnet.client() as c:
        top = c.get("/v1/focus/top", params={"k": 4}).json()
        one = c.get(f"/v1/focus/particles/{alpha}").json()
        ins = c.get(f"/v1/particles/{alpha}/links", params={"direction": "in"}).json()
        outs = c.get(f"/v1/particles/{alpha}/links", params={"direction": "out"}).json()
        karma = c.get(f"/v1/focus/neurons/{shared_devnet.dev_key().address}").json()
        history = c.get("/v1/focus/syntropy").json()["history"]
    ranks = [p["rank"] for p in top["particles"]]
    assert ranks == [1, 2, 3, 4]
    focus = [p["focus"] for p in top["particles"]]
    assert focus == sorted(focus, reverse=True) and abs(sum(focus) - 1) < 1e-9
    # alpha has two in-links (gamma, delta): it is the top particle.
    assert top["particles"][0]["cid"] == alpha and one["rank"] == 1
    assert one["focus_q"] == top["particles"][0]["focus_q"]
    assert (one["links_in"], one["links_out"]) == (2, 1)
    assert {x["cid"] for x in ins["links"]} == {cid_of_text("gamma"), cid_of_text("delta")}
    assert [x["cid"] for x in outs["links"]] == [cid_of_text("beta")]
    assert karma["neudeg"] == 4 and karma["karma"] > 0
    assert history[-1]["particles"] == 4 and history[-1]["syntropy"] > 0


def test_blocks_by_height_hash_and_latest(shared_devnet, linked):
    with shared_devnet.client() as c:
        block = c.get(f"/v1/blocks/{linked['height']}").json()
        by_hash = c.get(f"/v1/blocks/hash/{block['hash']}").json()
        latest = c.get("/v1/blocks/latest").json()
        recent = c.get("/v1/blocks", params={"limit": 3}).json()["blocks"]
    assert linked["hash"] in block["txs"] and by_hash == block
    assert latest["height"] >= block["height"]
    assert [b["height"] for b in recent] == list(
        range(recent[0]["height"], recent[0]["height"] - 3, -1)
    )
    assert len(block["commit"]) == 1


def test_validators_show_the_devnet_as_a_set_of_one(shared_devnet, linked):
    """The devnet is a network of one: it proposes every height, and its last vote is
    its own, for the latest block or the height after."""
    with shared_devnet.client() as c:
        status = c.get("/v1/status").json()
        body = c.get("/v1/validators").json()
        refused = c.post("/v1/validators")
        (v,) = body["validators"]
        vote = v["last_vote"]
        voted_block = c.get(f"/v1/blocks/{vote['height']}")
    assert v["address"] == status["validator"] and len(v["public_key"]) == 64
    assert v["power"] == body["total_power"] == 1
    assert v["proposer"] is True and v["proposer_priority"] == 0
    assert body["height"] >= status["height"] and body["round"] == 0
    assert body["step"] in ("propose", "prevote", "precommit", "commit")
    assert vote["height"] >= status["height"] and vote["round"] == 0
    assert vote["type"] in ("prevote", "precommit")
    assert abs(vote["time_ms"] - time.time() * 1000) < 60_000
    if voted_block.status_code == 200:  # the vote's height is committed: it voted for that block
        block = voted_block.json()
        assert vote["value_id"] == block["hash"]
        assert block["commit"][0]["public_key"] == v["public_key"]
    assert (refused.status_code, refused.json()["error"]["code"]) == (405, "method_not_allowed")


def test_method_not_allowed_names_every_method_of_the_path(shared_devnet):
    """A 405 carries ``Allow`` with all the methods the path answers (RFC 9110), also
    where several routes share the path."""
    expected = {
        ("POST", "/v1/validators"): "GET",
        ("TRACE", "/v1/txs"): "POST",
        ("GET", "/v1/txs/batch"): "POST",
        ("OPTIONS", "/v1/txs/batch"): "POST",
        ("PUT", "/v1/txs/" + "ab" * 32): "GET",
        ("DELETE", "/v1/query/views"): "GET, POST",
        ("PUT", "/v1/query/views/some_view"): "DELETE, GET",
        ("PATCH", "/v1/focus/top"): "GET",
    }
    with shared_devnet.client() as c:
        for (method, path), allow in expected.items():
            r = c.request(method, path)
            assert r.status_code == 405, (method, path, r.text)
            assert r.json()["error"]["code"] == "method_not_allowed"
            assert r.headers.get("allow") == allow, (method, path, r.headers)
        missing = c.request("PUT", "/v1/no/such/path")
    assert missing.status_code == 404 and "allow" not in missing.headers


def test_state_proof_verifies_account(shared_devnet, linked):
    key = shared_devnet.dev_key()
    path = account_key(key.address_raw)
    with shared_devnet.client() as c:
        p = c.get("/v1/proofs", params={"key": "hex:" + path.hex()}).json()
        account = c.get(f"/v1/accounts/{key.address}").json()
        absent = c.get("/v1/proofs", params={"key": "/kv/name/nobody-here"}).json()
    value = bytes.fromhex(p["value"])
    assert (
        decode(value, "account")[:2] == [account["balance"], account["nonce"]]
        or p["height"] != account
    )
    assert verify_proof(
        bytes.fromhex(p["root"]), path, value, Proof.decode(bytes.fromhex(p["proof"]))
    )
    assert not verify_proof(
        bytes.fromhex(p["root"]), path, value + b"x", Proof.decode(bytes.fromhex(p["proof"]))
    )
    assert absent["value"] is None
    assert verify_proof(
        bytes.fromhex(absent["root"]),
        b"/kv/name/nobody-here",
        None,
        Proof.decode(bytes.fromhex(absent["proof"])),
    )


def test_names_and_cbor_submission(shared_devnet, linked):
    net = shared_devnet
    cid = cid_of_text("alpha")
    tx = signed(
        net,
        net.dev_key(),
        [Msg("name.register", {"name": "alpha-page", "cid": cid_to_bytes(cid)})],
        fee=20_000,
    )
    with net.client() as c:
        r = c.post("/v1/txs", content=tx.encoded, headers={"content-type": "application/cbor"})
        assert r.status_code == 202
        assert wait_tx(net, r.json()["hash"])["code"] == "ok"
        name = c.get("/v1/names/alpha-page").json()
        missing = c.get("/v1/names/not-registered")
    expected = {"name": "alpha-page", "cid": cid, "owner": net.dev_key().address}
    assert name == {**expected, "address": None}  # no name.address sent
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_name"


def _snapshot(c, address: str) -> tuple:
    return (c.get(f"/v1/accounts/{address}").json(), c.get("/v1/status").json()["mempool"]["txs"])


def test_bad_transactions_are_refused_and_change_nothing(shared_devnet, linked):
    net = shared_devnet
    key = net.dev_key()
    good = signed(net, key, [link_msg(("x1", "x2"))])
    forged = bytearray(good.encoded)
    forged[-5] ^= 0x01  # inside the signature
    stranger = KeyPair.from_seed(b"s" * 32)
    cases = {
        "bad_signature": {"tx": bytes(forged).hex()},
        "malformed": {"tx": "zz"},
        "insufficient_funds": None,
        "bad_nonce": {"tx": signed(net, key, [link_msg(("x1", "x2"))], nonce=0).encoded.hex()},
    }
    other_chain = encode(["other-chain", *decode(good.encoded, "tx")[1:]])
    with net.client() as c:
        before = _snapshot(c, key.address)
        for code, body in cases.items():
            if body is None:
                continue
            r = c.post("/v1/txs", json=body)
            assert r.status_code == 400 and r.json()["error"]["code"] == code, (code, r.text)
        r = c.post("/v1/txs", content=other_chain, headers={"content-type": "application/cbor"})
        assert r.json()["error"]["code"] in ("wrong_chain_id", "bad_signature")
        poor = signed(net, stranger, [link_msg(("x1", "x2"))])
        r = c.post("/v1/txs", json={"tx": poor.encoded.hex()})
        # A stranger's tx is admitted (fees are charged at execution) or refused; it never
        # changes the dev key's account.
        for body, status, code in [
            (b"{not json", 400, "malformed"),
            (b'{"tx": 5}', 400, "malformed"),
            (b'{"tx": "00", "extra": 1}', 400, "malformed"),
            (b"[]", 400, "malformed"),
        ]:
            r = c.post("/v1/txs", content=body, headers={"content-type": "application/json"})
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
        r = c.post("/v1/txs", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        r = c.post(
            "/v1/txs", content=b"0" * (3 << 20), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        time.sleep(0.5)
        after = _snapshot(c, key.address)
    assert after[0] == before[0]


def test_chunked_submissions_answer_like_sized_ones(shared_devnet, linked):
    """A body without Content-Length takes the framework's route, not the hot path:
    same codes, and the body cap still counts the streamed chunks."""
    net = shared_devnet
    key = net.dev_key()
    forged = bytearray(signed(net, key, [link_msg(("c1", "c2"))]).encoded)
    forged[-5] ^= 0x01
    body = json.dumps({"tx": bytes(forged).hex()}).encode()
    ctype = {"content-type": "application/json"}
    with net.client() as c:
        sized = c.post("/v1/txs", content=body, headers=ctype)
        chunked = c.post("/v1/txs", content=iter([body[:10], body[10:]]), headers=ctype)
        huge = c.post("/v1/txs", content=iter([b"0" * (1 << 20)] * 3), headers=ctype)
        good = signed(net, key, [link_msg(("c1", "c2"))])
        accepted = c.post(
            "/v1/txs", content=iter([good.encoded]), headers={"content-type": "application/cbor"}
        )
    assert sized.status_code == chunked.status_code == 400
    assert sized.json() == chunked.json() and sized.json()["error"]["code"] == "bad_signature"
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
    assert accepted.status_code == 202 and accepted.json()["hash"] == good.hash.hex()
    wait_tx(net, accepted.json()["hash"])


def test_replayed_transaction_is_refused(shared_devnet, linked):
    net = shared_devnet
    tx = signed(net, net.dev_key(), [link_msg(("r1", "r2"))])
    with net.client() as c:
        first = submit(c, tx)
        again = submit(c, tx)
        assert first["status"] == 202 and again["error"]["code"] == "duplicate_tx"
        wait_tx(net, first["hash"])
        replay = submit(c, tx)
        assert replay["status"] == 400 and replay["error"]["code"] == "bad_nonce"
        assert c.get(f"/v1/txs/{first['hash']}").json()["status"] == "committed"


def test_top_list_is_the_same_on_the_fast_path_and_through_the_framework(shared_devnet, linked):
    """Plain queries are answered by the hot-path middleware, others by the FastAPI
    route; both must give the same bytes and headers for the same k."""
    with shared_devnet.client() as c:
        height = c.get("/v1/status").json()["height"]
        for _ in range(20):
            fast = c.get("/v1/focus/top?k=3")
            slow = c.get("/v1/focus/top?k=3&unused=1")
            default_fast = c.get("/v1/focus/top")
            default_slow = c.get("/v1/focus/top?unused=1")
            if fast.json()["height"] == slow.json()["height"] == default_slow.json()["height"]:
                break
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    assert default_fast.content == default_slow.content
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    assert int(fast.headers["content-length"]) == len(fast.content)
    assert fast.json()["height"] >= height and len(fast.json()["particles"]) == 3


def test_read_errors_have_stable_codes(shared_devnet, linked):
    unknown = cid_of_text("never linked")
    cases = [
        (f"/v1/focus/particles/{unknown}", 404, "unknown_particle"),
        ("/v1/focus/particles/not-a-cid", 400, "invalid_cid"),
        (f"/v1/particles/{unknown}/links", 404, "unknown_particle"),
        (f"/v1/particles/{cid_of_text('alpha')}/links?direction=sideways", 400, "malformed"),
        ("/v1/accounts/focus1xyz", 400, "invalid_address"),
        ("/v1/focus/top?k=0", 400, "malformed"),
        ("/v1/focus/top?k=abc", 400, "malformed"),
        ("/v1/focus/top?k=1001", 400, "malformed"),
        ("/v1/focus/top?k=-1", 400, "malformed"),
        ("/v1/txs/" + "ab" * 32, 404, "unknown_tx"),
        ("/v1/txs/nothex", 400, "malformed"),
        ("/v1/blocks/999999999", 404, "unknown_block"),
        ("/v1/blocks/hash/" + "00" * 32, 404, "unknown_block"),
        ("/v1/no/such/route", 404, "not_found"),
        ("/v1/proofs?key=hex:zz", 400, "malformed"),
    ]
    with shared_devnet.client() as c:
        for path, status, code in cases:
            r = c.get(path)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), path


def test_faucet_needs_the_admin_token(shared_devnet, linked):
    net = shared_devnet
    to = KeyPair.from_seed(b"f" * 32).address
    with net.client() as c:
        denied = c.post("/v1/admin/faucet", json={"address": to, "amount": 7})
        wrong = c.post(
            "/v1/admin/faucet",
            json={"address": to, "amount": 7},
            headers={"Authorization": "Bearer nope"},
        )
        assert denied.status_code == wrong.status_code == 401
        assert c.get(f"/v1/accounts/{to}").json()["balance"] == 0
        ok = c.post(
            "/v1/admin/faucet",
            json={"address": to, "amount": 7},
            headers={"Authorization": f"Bearer {net.admin_token()}"},
        )
        assert ok.status_code == 202
        wait_tx(net, ok.json()["hash"])
        assert c.get(f"/v1/accounts/{to}").json()["balance"] == 7


def _auth_cli(net, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "focusflow", "auth", "token", *args, "--home", str(net.home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_scoped_tokens_from_the_cli_reach_the_running_node(shared_devnet, linked):
    """A token issued by the CLI while the node runs does what its role allows
    (the faucet), is forbidden the rest (views), and is refused once revoked."""
    net = shared_devnet
    issued = _auth_cli(net, "issue", "--subject", "ci", "--role", "faucet", "--json")
    assert issued.returncode == 0, issued.stderr
    doc = json.loads(issued.stdout)
    bearer = {"Authorization": f"Bearer {doc['token']}"}
    assert "secret_sha256" not in doc and doc["roles"] == ["faucet"]
    to = KeyPair.from_seed(b"t" * 32).address
    view = {"name": "tok", "program": "?[x] := x = 1", "output": "?"}
    with net.client() as c:
        ok = c.post("/v1/admin/faucet", json={"address": to, "amount": 3}, headers=bearer)
        assert ok.status_code == 202, ok.text
        wait_tx(net, ok.json()["hash"])
        assert c.get(f"/v1/accounts/{to}").json()["balance"] == 3
        denied = c.post("/v1/query/views", json=view, headers=bearer)
        assert (denied.status_code, denied.json()["error"]["code"]) == (403, "forbidden")
        assert all(v["name"] != "tok" for v in c.get("/v1/query/views").json()["views"])
        anonymous = c.post("/v1/query/views", json=view)
        assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "unauthorized")

        revoked = _auth_cli(net, "revoke", doc["id"])
        assert revoked.returncode == 0, revoked.stderr
        again = c.post("/v1/admin/faucet", json={"address": to, "amount": 3}, headers=bearer)
        assert (again.status_code, again.json()["error"]["code"]) == (401, "unauthorized")
        assert c.get(f"/v1/accounts/{to}").json()["balance"] == 3
    listed = json.loads(_auth_cli(net, "list", "--json").stdout)
    assert [t["revoked"] for t in listed if t["id"] == doc["id"]] == [True]


def test_an_operator_logs_in_with_a_password_set_by_the_cli(shared_devnet, linked):
    """``auth password set`` on the running node's home, then POST /v1/auth/login:
    the token it answers does what the user's role allows."""
    net = shared_devnet
    password = "a long enough passphrase"
    cli = [sys.executable, "-m", "focusflow", "auth", "password", "set", "--home", str(net.home)]
    done = subprocess.run(
        [*cli, "--user", "ops", "--role", "faucet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "FOCUSFLOW_PASSWORD": password},
    )
    assert done.returncode == 0, done.stderr
    assert password not in (net.home / "passwords.json").read_text()
    to = KeyPair.from_seed(b"p" * 32).address
    with net.client() as c:
        wrong = c.post("/v1/auth/login", json={"user": "ops", "password": password + "!"})
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "unauthorized")
        long = c.post("/v1/auth/login", json={"user": "ops", "password": "x" * 10_000})
        assert long.status_code == 400
        ok = c.post("/v1/auth/login", json={"user": "ops", "password": password, "ttl_s": 120})
        assert ok.status_code == 200, ok.text
        doc = ok.json()
        assert doc["roles"] == ["faucet"] and doc["token"].startswith("ffk_")
        bearer = {"Authorization": f"Bearer {doc['token']}"}
        sent = c.post("/v1/admin/faucet", json={"address": to, "amount": 2}, headers=bearer)
        assert sent.status_code == 202, sent.text
        # the faucet spends the dev key's next nonce: wait for it, so the tests
        # after this one on the shared devnet read the dev key's nonce settled
        wait_tx(net, sent.json()["hash"])
        view = {"name": "pw", "program": "?[x] := x = 1", "output": "?"}
        denied = c.post("/v1/query/views", json=view, headers=bearer)
        assert denied.status_code == 403


def test_metrics_expose_height_and_mempool(shared_devnet, linked):
    wait_height(shared_devnet, 2)
    with shared_devnet.client() as c:
        text = c.get("/metrics").text
    for name in (
        "focusflow_height",
        "focusflow_block_seconds_bucket",
        "focusflow_mempool_txs",
        "focusflow_focus_iterations",
        "focusflow_txs_submitted_total",
        "focusflow_block_txs",
        "focusflow_focus_checkpoints_written",
        "focusflow_focus_checkpoint_failures",
        "focusflow_focus_checkpoint_pause_seconds",
        "focusflow_scheduler_speculated",
        "focusflow_scheduler_merged",
        "focusflow_scheduler_rerun",
    ):
        assert name in text
    height = float(
        next(line.split()[1] for line in text.splitlines() if line.startswith("focusflow_height "))
    )
    assert height >= 2


def test_batch_accepts_each_transaction_on_its_own(shared_devnet, linked):
    net = shared_devnet
    key = net.dev_key()
    first = signed(net, key, [link_msg(("b1", "b2"))])
    second = signed(net, key, [link_msg(("b2", "b3"))], nonce=first.nonce + 1)
    forged = bytearray(second.encoded)
    forged[-3] ^= 1
    body = {"txs": [first.encoded.hex(), bytes(forged).hex(), second.encoded.hex(), "00"]}
    with net.client() as c:
        r = c.post("/v1/txs/batch", json=body)
        assert r.status_code == 200
        results = r.json()["results"]
        assert results[0] == {"hash": first.hash.hex()}
        assert results[1]["error"]["code"] == "bad_signature"
        assert results[2] == {"hash": second.hash.hex()}
        assert results[3]["error"]["code"] == "malformed"
        too_many = c.post("/v1/txs/batch", json={"txs": ["00"] * 1001})
        assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "over_limit"
        cbor = c.post(
            "/v1/txs/batch", content=b"\xa0", headers={"content-type": "application/cbor"}
        )
        assert cbor.json()["error"]["code"] == "malformed"
    assert wait_tx(net, second.hash.hex())["code"] == "ok"


def test_params_price_a_transaction(shared_devnet, linked):
    with shared_devnet.client() as c:
        doc = c.get("/v1/params").json()
    params = doc["params"]
    assert doc["chain_id"].startswith("focusflow-devnet-")
    tx = signed(shared_devnet, shared_devnet.dev_key(), [link_msg(("p1", "p2"))], fee=1)
    need = params["fee_base"] + params["fee_per_byte"] * len(tx.encoded)
    with shared_devnet.client() as c:
        low = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
    assert low.json()["error"]["code"] == "insufficient_fee"
    assert str(need) in low.json()["error"]["message"]
