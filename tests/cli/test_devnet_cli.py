"""``focusflow tx``, ``query`` and ``import`` against a real devnet process.

One devnet for the module (its start costs the focus kernels' warm-up); each
test uses its own keys and particles so the order of tests does not matter.
Bad input must give one ``error:`` line, exit status 2, and leave the chain
as it was: nothing in the mempool, no nonce used, no fee taken.
"""

from __future__ import annotations

import socket

import pytest

from focusflow.cli.import_cmd import neuron_key
from focusflow.core.cid import cid_of_text
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from tests.cli.helpers import assert_user_error, run_cli
from tests.helpers import SAMPLE


def _account(capsys, who):
    result = run_cli(capsys, "query", "account", who, "--json")
    assert result.code == 0, result.err
    return result.json()


def _unchanged(capsys, who, before):
    """Nothing moved: same account, empty mempool."""
    assert _account(capsys, who) == before
    status = run_cli(capsys, "query", "status", "--json").json()
    assert status["mempool"]["txs"] == 0


def _funded_key(capsys, name, amount=10_000_000, stake=None, passphrase=None, monkeypatch=None):
    """A new wallet key holding ``amount`` from dev (and ``stake`` bonded)."""
    if passphrase is None:
        assert run_cli(capsys, "keys", "add", name, "--unencrypted").code == 0
    else:
        monkeypatch.setenv("FOCUSFLOW_PASSPHRASE", passphrase)
        assert run_cli(capsys, "keys", "add", name).code == 0
    sent = run_cli(capsys, "tx", "send", name, amount, "--wait", "--json")
    assert sent.code == 0, sent.err
    if stake:
        staked = run_cli(capsys, "tx", "stake", stake, "--from", name, "--wait", "--json")
        assert staked.code == 0, staked.err


def test_link_two_text_particles_and_see_them_in_top(env, capsys):
    linked = run_cli(capsys, "tx", "link", "apple", "banana", "--wait", "--json")
    assert linked.code == 0, linked.err
    result = linked.json()
    assert result["status"] == "committed" and result["code"] == "ok"
    apple, banana = cid_of_text("apple"), cid_of_text("banana")
    assert result["links"] == [[apple, banana]]

    top = run_cli(capsys, "query", "top", "--json")
    assert top.code == 0, top.err
    cids = [p["cid"] for p in top.json()["particles"]]
    assert apple in cids and banana in cids
    assert top.json()["height"] >= result["height"]

    particle = run_cli(capsys, "query", "particle", "apple", "--json").json()
    assert particle["cid"] == apple and particle["links_out"] >= 1
    links = run_cli(capsys, "query", "links", apple, "--json").json()
    assert banana in [x["cid"] for x in links["links"]]
    human = run_cli(capsys, "query", "top")
    assert apple in human.out  # piped tables keep whole CIDs


def test_unknown_key_changes_nothing(env, capsys):
    dev = _account(capsys, "dev")
    result = run_cli(capsys, "tx", "link", "a", "b", "--from", "nobody")
    assert_user_error(result, "unknown_key")
    _unchanged(capsys, "dev", dev)


def test_wrong_passphrase_changes_nothing(env, capsys, monkeypatch):
    _funded_key(capsys, "alice", stake=100, passphrase="right", monkeypatch=monkeypatch)
    before = _account(capsys, "alice")
    monkeypatch.setenv("FOCUSFLOW_PASSPHRASE", "wrong")
    assert_user_error(
        run_cli(capsys, "tx", "link", "x1", "y1", "--from", "alice"), "wrong_passphrase"
    )
    _unchanged(capsys, "alice", before)
    monkeypatch.setenv("FOCUSFLOW_PASSPHRASE", "right")
    ok = run_cli(capsys, "tx", "link", "x1", "y1", "--from", "alice", "--wait", "--json")
    assert ok.code == 0 and ok.json()["code"] == "ok", ok.err


def test_node_down(env, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dev = _account(capsys, "dev")
    for args in (["tx", "link", "a", "b"], ["query", "status"]):
        result = run_cli(capsys, *args, "--node", f"http://127.0.0.1:{port}")
        assert_user_error(result, "node_unreachable")
        assert f"127.0.0.1:{port}" in result.err
    _unchanged(capsys, "dev", dev)


def test_a_chain_id_other_than_the_nodes_changes_nothing(env, capsys):
    """The devnet's genesis pins its chain id; --chain-id names another: refused."""
    dev = _account(capsys, "dev")
    chain_id = run_cli(capsys, "query", "status", "--json").json()["chain_id"]
    result = run_cli(capsys, "tx", "link", "a", "b", "--chain-id", "not-" + chain_id)
    assert_user_error(result, "chain_id_mismatch")
    assert f"serves chain {chain_id!r}, not 'not-{chain_id}'" in result.err
    _unchanged(capsys, "dev", dev)
    capped = run_cli(capsys, "tx", "link", "a", "b", "--max-fee", 10)
    assert_user_error(capped, "fee_over_cap")
    _unchanged(capsys, "dev", dev)


def test_malformed_cid_changes_nothing(env, capsys):
    dev = _account(capsys, "dev")
    bad = "QmPcfxEfW317u3bbz8MbEhjoMZ5HMFsx5TbsEHWPd1kLL0"  # '0' is not base58
    result = run_cli(capsys, "tx", "link", bad, "banana")
    assert_user_error(result, "invalid_cid")
    assert result.out == ""
    _unchanged(capsys, "dev", dev)
    assert_user_error(run_cli(capsys, "query", "particle", bad), "invalid_cid")


def test_transactions_sent_back_to_back_take_consecutive_nonces(env, capsys):
    """Without --wait the second command must not reuse the first one's nonce."""
    first = run_cli(capsys, "tx", "link", "queued-a", "queued-b", "--json")
    second = run_cli(capsys, "tx", "link", "queued-b", "queued-c", "--json")
    assert first.code == 0 and second.code == 0, (first.err, second.err)
    assert second.json()["nonce"] == first.json()["nonce"] + 1
    third = run_cli(capsys, "tx", "link", "queued-c", "queued-a", "--wait", "--json")
    assert third.code == 0 and third.json()["nonce"] == second.json()["nonce"] + 1, third.err
    for sent in (first, second):  # nonce order: they are in by the time the third is
        status = run_cli(capsys, "query", "tx", sent.json()["hash"], "--json").json()
        assert status["status"] == "committed" and status["code"] == "ok", status


def test_unpaired_and_self_links_refused(env, capsys):
    dev = _account(capsys, "dev")
    assert_user_error(run_cli(capsys, "tx", "link", "a", "b", "c"), "invalid_parameter")
    assert_user_error(run_cli(capsys, "tx", "link", "same", "same"), "invalid_parameter")
    _unchanged(capsys, "dev", dev)


def test_a_models_proposals_are_reviewed_and_linked_in_one_command(env, capsys, tmp_path):
    """`tx link --proposals FILE --top 2` shows the two likeliest proposals and
    links exactly those, in one transaction signed by the user's key."""
    file = tmp_path / "implicit.tsv"
    file.write_text(
        "from\tto\tprobability\n"
        "prop-dog\tprop-wolf\t0.2\n"
        "prop-dog\tprop-cat\t0.05\n"
        "prop-dog\tprop-fox\t0.4\n"
    )
    linked = run_cli(capsys, "tx", "link", "--proposals", file, "--top", 2, "--wait", "--json")
    assert linked.code == 0, linked.err
    assert "prop-dog -> prop-fox (p = 0.4)" in linked.err
    assert "prop-cat" not in linked.err
    dog, fox, wolf = (cid_of_text(t) for t in ("prop-dog", "prop-fox", "prop-wolf"))
    assert linked.json()["links"] == [[dog, fox], [dog, wolf]]
    out = run_cli(capsys, "query", "links", dog, "--json").json()
    assert {x["cid"] for x in out["links"]} == {fox, wolf}


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ("prop-a\tprop-b\t0.5\n", "bad_input_file", "header"),
        ("from\tto\tprobability\nprop-a\tprop-b\n", "bad_input_file", "line 2: 2 fields"),
        ("from\tto\tprobability\nprop-a\tprop-a\t0.5\n", "bad_input_file", "self-link"),
        ("from\tto\tprobability\nprop-a\tprop-b\tnan\n", "bad_input_file", "not in [0, 1]"),
        ("from\tto\tprobability\nprop-a\tprop-b\t1.5\n", "bad_input_file", "not in [0, 1]"),
        ("from\tto\tprobability\nprop-a\tprop-b\t0.1\n", "invalid_parameter", "nothing"),
    ],
)
def test_bad_proposals_files_link_nothing(env, capsys, tmp_path, body, code, says):
    dev = _account(capsys, "dev")
    file = tmp_path / "bad.tsv"
    file.write_text(body)
    result = run_cli(capsys, "tx", "link", "--proposals", file, "--min-probability", 0.2, "--json")
    assert_user_error(result, code)
    assert says in result.err
    _unchanged(capsys, "dev", dev)


def test_proposals_and_pairs_do_not_mix(env, capsys, tmp_path):
    dev = _account(capsys, "dev")
    file = tmp_path / "p.tsv"
    file.write_text("from\tto\tprobability\nprop-a\tprop-b\t0.5\n")
    both = run_cli(capsys, "tx", "link", "x", "y", "--proposals", file)
    assert_user_error(both, "invalid_parameter")
    assert_user_error(run_cli(capsys, "tx", "link", "x", "y", "--top", 1), "invalid_parameter")
    assert_user_error(run_cli(capsys, "tx", "link"), "invalid_parameter")
    assert_user_error(
        run_cli(capsys, "tx", "link", "--proposals", tmp_path / "missing.tsv"), "bad_input_file"
    )
    _unchanged(capsys, "dev", dev)


def test_links_beyond_the_stake_are_refused_before_any_fee(env, capsys):
    _funded_key(capsys, "bob")  # funded, nothing bonded
    before = _account(capsys, "bob")
    result = run_cli(capsys, "tx", "link", "p", "q", "--from", "bob")
    assert_user_error(result, "over_link_budget")
    assert "tx stake" in result.err
    _unchanged(capsys, "bob", before)


def test_send_stake_unstake_name_blob_and_proof(env, capsys, tmp_path):
    _funded_key(capsys, "carol", amount=1_000_000, stake=50)
    carol = _account(capsys, "carol")
    assert carol["bonded"] == 50 and carol["nonce"] == 1

    reg = run_cli(
        capsys,
        "tx",
        "name",
        "register",
        "carols-page",
        "hello carol",
        "--from",
        "carol",
        "--wait",
        "--json",
    )
    assert reg.code == 0 and reg.json()["code"] == "ok", reg.err
    name = run_cli(capsys, "query", "name", "carols-page", "--json").json()
    assert name["cid"] == cid_of_text("hello carol") and name["owner"] == carol["address"]

    blob_file = tmp_path / "blob.txt"
    blob_file.write_bytes(b"some bytes on chain")
    blob = run_cli(capsys, "tx", "blob", blob_file, "--from", "carol", "--wait", "--json")
    assert blob.code == 0 and blob.json()["code"] == "ok", blob.err
    assert blob.json()["cid"] == cid_of_text("some bytes on chain")

    unstake = run_cli(capsys, "tx", "unstake", "20", "--from", "carol", "--wait", "--json")
    assert unstake.code == 0, unstake.err
    after = _account(capsys, "carol")
    assert after["bonded"] == 30 and after["nonce"] == carol["nonce"] + 3

    proof = run_cli(capsys, "query", "proof", "--account", "carol", "--json")
    assert proof.code == 0 and proof.json()["verified"] is True, proof.err
    human = run_cli(capsys, "query", "proof", "--account", "carol")
    assert "nonce 4" in human.out and "verified" in human.out


def test_a_failing_transaction_reports_its_receipt_code(env, capsys):
    """Preflight cannot see ownership: the chain refuses, --wait says so with its code."""
    _funded_key(capsys, "dave", amount=100_000)
    mine = run_cli(capsys, "tx", "name", "register", "daves-name", "x", "--wait")
    assert mine.code == 0, mine.err  # registered by dev
    before = _account(capsys, "dave")
    result = run_cli(
        capsys, "tx", "name", "update", "daves-name", "y", "--from", "dave", "--wait", "--json"
    )
    assert_user_error(result, "not_owner")
    assert result.json()["code"] == "not_owner"  # the receipt is still printed
    after = _account(capsys, "dave")
    assert after["nonce"] == before["nonce"] + 1 and after["balance"] < before["balance"]


def test_a_name_says_where_its_node_listens(env, capsys):
    assert run_cli(capsys, "tx", "name", "register", "eves-node", "x", "--wait").code == 0
    r = run_cli(capsys, "tx", "name", "address", "eves-node", "[2001:db8::7]:26656", "--wait")
    assert r.code == 0, r.err
    got = run_cli(capsys, "query", "name", "eves-node", "--json").json()
    assert got["address"] == "[2001:db8::7]:26656"
    # refused before anything is signed: no port
    assert_user_error(run_cli(capsys, "tx", "name", "address", "eves-node", "2001:db8::7"),
                      "invalid_name")  # fmt: skip
    assert run_cli(capsys, "tx", "name", "address", "eves-node", "", "--wait").code == 0
    assert run_cli(capsys, "query", "name", "eves-node", "--json").json()["address"] is None


def test_query_errors_carry_the_node_codes(env, capsys):
    assert_user_error(run_cli(capsys, "query", "tx", "ab" * 32), "unknown_tx")
    assert_user_error(run_cli(capsys, "query", "name", "no-such-name"), "unknown_name")
    assert_user_error(run_cli(capsys, "query", "particle", "never linked"), "unknown_particle")
    assert_user_error(run_cli(capsys, "query", "account", "nobody"), "invalid_address")
    assert_user_error(run_cli(capsys, "query", "block", "99999999"), "unknown_block")
    assert run_cli(capsys, "query", "block", "1", "--json").json()["height"] == 1
    assert run_cli(capsys, "query", "cid", "apple", "--json").json()["cid"] == cid_of_text("apple")
    syn = run_cli(capsys, "query", "syntropy", "--json")
    assert syn.code == 0 and "history" in syn.json()
    blocks = run_cli(capsys, "query", "blocks", "--limit", "3", "--json").json()["blocks"]
    assert len(blocks) == 3 and blocks[0]["height"] > blocks[2]["height"]


def test_import_bostrom_is_idempotent_and_resumes(env, capsys):
    first = run_cli(
        capsys, "import", "bostrom", SAMPLE, "--limit", "200", "--batch", "40", "--json"
    )
    assert first.code == 0, first.err
    one = first.json()
    assert one["links_on_chain_before"] == 0 and one["links_sent"] == one["links"] == 200
    assert one["failed"] == []

    again = run_cli(capsys, "import", "bostrom", SAMPLE, "--limit", "200", "--json")
    assert again.code == 0, again.err
    two = again.json()
    assert two["links_on_chain_before"] == 200
    assert two["links_sent"] == two["txs_sent"] == two["funding_txs"] == 0

    rest = run_cli(capsys, "import", "bostrom", SAMPLE, "--batch", "500", "--json").json()
    assert rest["links_on_chain_before"] == 200
    assert rest["links_sent"] == rest["links"] - 200

    # Every neuron holds exactly its links of the file (duplicates counted once).
    import csv

    with SAMPLE.open() as f:
        rows = list(csv.DictReader(f))
    per_neuron: dict[str, set] = {}
    for r in rows:
        if r["particle_from"] != r["particle_to"]:
            per_neuron.setdefault(r["neuron"], set()).add((r["particle_from"], r["particle_to"]))
    chain_id = run_cli(capsys, "query", "status", "--json").json()["chain_id"]
    for neuron, links in per_neuron.items():
        acct = _account(capsys, neuron_key(chain_id, neuron).address)
        assert acct["neudeg"] == len(links), neuron
    assert rest["links"] == sum(len(v) for v in per_neuron.values())


def test_keys_command_sees_the_devnets_dev_key(env, capsys):
    listed = run_cli(capsys, "keys", "list", "--json").json()
    dev = next(k for k in listed if k["name"] == "dev")
    assert dev["encrypted"] is False
    assert Keystore(env.home / "keys").load("dev").address == dev["address"]
    assert (
        KeyPair.from_seed(
            bytes.fromhex(run_cli(capsys, "keys", "export", "dev", "--yes").out.strip())
        ).address
        == dev["address"]
    )


@pytest.mark.parametrize("batch", [True, False], ids=["batch-endpoint", "one-by-one"])
def test_bulk_submission_with_and_without_the_batch_endpoint(env, capsys, batch):
    """The importer's sender: in order, every hash returned, all committed."""
    from focusflow.chain.tx import Msg
    from focusflow.cli.import_cmd import _submit_all
    from focusflow.cli.txbuild import build_tx, pin_chain, wait_tx
    from focusflow.client import NodeClient

    key = env.dev_key()
    to = KeyPair.from_seed(bytes([7 + batch]) * 32).address_raw
    with NodeClient(env.api) as api:
        api.batch_supported = batch
        pin = pin_chain(api, env.home)
        chain_id, params = pin.chain_id, pin.params
        nonce = api.account(key.address).nonce
        txs = [
            build_tx(key, chain_id, nonce + i, [Msg("send", {"to": to, "amount": 1 + i})], params)
            for i in range(3)
        ]
        hashes = _submit_all(api, txs)
        assert hashes == [tx.hash.hex() for tx in txs]
        assert [wait_tx(api, h)["code"] for h in hashes] == ["ok"] * 3
        assert api.batch_supported is batch


def test_import_bostrom_skip_invalid_drops_and_counts_the_bad_row(env, capsys):
    """Real dumps hold rows whose particles are not CIDs (the shared sample's line
    239): the import stops there naming --skip-invalid, which it then takes."""
    from tests.helpers import SHARED_SAMPLE

    if not SHARED_SAMPLE.exists():
        pytest.skip(f"shared data not present at {SHARED_SAMPLE}")
    dev = _account(capsys, "dev")
    stopped = run_cli(capsys, "import", "bostrom", SHARED_SAMPLE, "--limit", "300")
    assert_user_error(stopped, "invalid_cid")
    assert ":239:" in stopped.err and "--skip-invalid" in stopped.err
    _unchanged(capsys, "dev", dev)

    args = ("import", "bostrom", SHARED_SAMPLE, "--skip-invalid", "--limit", "300")
    loaded = run_cli(capsys, *args, "--json")
    assert loaded.code == 0, loaded.err
    report = loaded.json()
    assert report["skipped_invalid_links"] == 1 and report["failed"] == []
    assert report["links"] == 300
    again = run_cli(capsys, *args)
    assert again.code == 0, again.err
    assert "skipped 1 links whose particles are not CIDs" in again.out


def test_linked_texts_are_kept_by_the_node_and_shown(env, capsys):
    """`tx link "cats" "mammals"` carries the texts in its transaction; query top,
    particle and links show them beside the CIDs, and top says how many rows it has
    of how many."""
    linked = run_cli(capsys, "tx", "link", "texts-cats", "texts-mammals", "--wait", "--json")
    assert linked.code == 0, linked.err
    assert linked.json()["texts"] == {"carried": 2}
    cats, mammals = cid_of_text("texts-cats"), cid_of_text("texts-mammals")

    top = run_cli(capsys, "query", "top", "-k", 1000, "--json").json()
    assert {p["cid"]: p["text"] for p in top["particles"]}[mammals] == "texts-mammals"
    human = run_cli(capsys, "query", "top", "-k", 1)
    assert human.code == 0, human.err
    assert top["total"] >= 2 and f"1 of {top['total']} particles" in human.out
    table = run_cli(capsys, "query", "top", "-k", 1000).out
    row = next(line for line in table.splitlines() if mammals in line)
    assert "texts-mammals" in row

    one = run_cli(capsys, "query", "particle", "texts-mammals")
    assert one.code == 0 and "texts-mammals" in one.out and mammals in one.out
    assert run_cli(capsys, "query", "particle", mammals, "--json").json()["text"] == "texts-mammals"
    links = run_cli(capsys, "query", "links", "texts-cats").out
    assert "texts-mammals" in next(line for line in links.splitlines() if mammals in line)

    by_cid = run_cli(capsys, "tx", "link", cats, "texts-birds", "--wait", "--json").json()
    assert by_cid["texts"] == {"carried": 1}  # only the text argument is carried


def test_a_text_too_long_to_keep_is_not_sent_and_the_link_goes_in(env, capsys):
    """Texts over a node's size limit are neither carried nor sent; the link still goes in."""
    long = "t" * 5000
    result = run_cli(capsys, "tx", "link", long, "texts-short", "--wait", "--json")
    assert result.code == 0, result.err
    assert result.json()["code"] == "ok"
    assert result.json()["texts"] == {"carried": 1, "stored": 0, "unknown": [], "too_large": 1}


def test_import_shows_its_progress_on_a_terminal(env, tmp_path):
    """On a terminal (a pty) the import says what it reads and how many links are in."""
    import os

    from tests.cli.test_keys_tty import ROOT, Terminal

    rows = SAMPLE.read_text().splitlines()[:31]
    small = tmp_path / "small.csv"
    small.write_text("\n".join(rows) + "\n")
    term = Terminal(
        "import",
        "bostrom",
        str(small),
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "FOCUSFLOW_HOME": str(env.home)},
    )
    term.expect("reading small.csv")
    term.expect("importing")
    term.expect("links")
    term.expect("neurons, 30 links")
    _, status = os.waitpid(term.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
