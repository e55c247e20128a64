"""``focusflow keys``: the wallet as a user drives it from a shell."""

from __future__ import annotations

import io
import json
import stat

import pytest

from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from tests.cli.helpers import assert_user_error, run_cli


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home picked by $FOCUSFLOW_HOME; no passphrase in the environment."""
    h = tmp_path / "home"
    monkeypatch.setenv("FOCUSFLOW_HOME", str(h))
    monkeypatch.delenv("FOCUSFLOW_PASSPHRASE", raising=False)
    return h


def test_add_encrypted_list_show_export(home, capsys, monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_PASSPHRASE", "s3cret")
    added = run_cli(capsys, "keys", "add", "alice", "--json")
    assert added.code == 0, added.err
    info = added.json()
    assert info["name"] == "alice" and info["encrypted"] is True
    path = home / "keys" / "alice.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["address"] == info["address"]

    listed = run_cli(capsys, "keys", "list", "--json").json()
    assert listed == [info]
    assert run_cli(capsys, "keys", "show", "alice", "--address").out.strip() == info["address"]
    table = run_cli(capsys, "keys", "list").out
    assert "alice" in table and info["address"] in table

    exported = run_cli(capsys, "keys", "export", "alice", "--yes")
    assert exported.code == 0
    seed = bytes.fromhex(exported.out.strip())
    assert KeyPair.from_seed(seed).address == info["address"]


def test_export_with_wrong_passphrase_prints_nothing_secret(home, capsys, monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_PASSPHRASE", "right")
    run_cli(capsys, "keys", "add", "alice")
    monkeypatch.setenv("FOCUSFLOW_PASSPHRASE", "wrong")
    result = run_cli(capsys, "keys", "export", "alice", "--yes")
    assert_user_error(result, "wrong_passphrase")
    assert result.out == ""


def test_export_needs_confirmation_off_a_terminal(home, capsys):
    assert run_cli(capsys, "keys", "add", "dev", "--unencrypted").code == 0
    result = run_cli(capsys, "keys", "export", "dev")
    assert_user_error(result, "invalid_parameter")
    assert "--yes" in result.err and result.out == ""


def test_encrypted_add_without_passphrase_source_refuses(home, capsys):
    result = run_cli(capsys, "keys", "add", "alice")
    assert_user_error(result, "invalid_parameter")
    assert "FOCUSFLOW_PASSPHRASE" in result.err
    assert not (home / "keys" / "alice.json").exists()


def test_unencrypted_needs_the_flag_and_holds_the_seed(home, capsys):
    assert run_cli(capsys, "keys", "add", "dev", "--unencrypted").code == 0
    doc = json.loads((home / "keys" / "dev.json").read_text())
    assert doc["encrypted"] is False and len(doc["seed"]) == 64


def test_import_round_trip_from_stdin_and_file(home, capsys, monkeypatch, tmp_path):
    key = KeyPair.from_seed(bytes(range(32)))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(key.seed.hex().encode())))
    result = run_cli(capsys, "keys", "import", "k1", "--seed-file", "-", "--unencrypted", "--json")
    assert result.code == 0, result.err
    assert result.json()["address"] == key.address

    seed_file = tmp_path / "seed.txt"
    seed_file.write_text(key.seed.hex() + "\n")
    monkeypatch.setenv("FOCUSFLOW_PASSPHRASE", "pw")
    result = run_cli(capsys, "keys", "import", "k2", "--seed-file", seed_file, "--json")
    assert result.json()["encrypted"] is True
    assert Keystore(home / "keys").load("k2", "pw").seed == key.seed


@pytest.mark.parametrize("content", ["zz", "00" * 31, ""])
def test_import_bad_seed(home, capsys, tmp_path, content):
    seed_file = tmp_path / "seed.txt"
    seed_file.write_text(content)
    result = run_cli(capsys, "keys", "import", "k", "--seed-file", seed_file, "--unencrypted")
    assert_user_error(result, "bad_input_file")
    assert not (home / "keys" / "k.json").exists()


def test_import_missing_file(home, capsys, tmp_path):
    result = run_cli(
        capsys, "keys", "import", "k", "--seed-file", tmp_path / "nope", "--unencrypted"
    )
    assert_user_error(result, "bad_input_file")


def test_duplicate_name_keeps_the_first_key(home, capsys):
    first = run_cli(capsys, "keys", "add", "dev", "--unencrypted", "--json").json()
    assert_user_error(run_cli(capsys, "keys", "add", "dev", "--unencrypted"), "key_exists")
    assert run_cli(capsys, "keys", "show", "dev", "--json").json() == first


@pytest.mark.parametrize("name", ["a/b", "x" * 65, "sp ace", "caf\u00e9"])
def test_bad_names(home, capsys, name):
    assert_user_error(run_cli(capsys, "keys", "add", name, "--unencrypted"), "invalid_parameter")


def test_unknown_key(home, capsys):
    assert_user_error(run_cli(capsys, "keys", "show", "nobody"), "unknown_key")
    assert_user_error(run_cli(capsys, "keys", "export", "nobody", "--yes"), "unknown_key")


def test_home_flag_beats_environment(home, capsys, tmp_path):
    other = tmp_path / "other"
    assert run_cli(capsys, "keys", "add", "k", "--unencrypted", "--home", other).code == 0
    assert (other / "keys" / "k.json").exists()
    assert run_cli(capsys, "keys", "list", "--json").json() == []


def test_tampered_file_is_one_error_line(home, capsys):
    run_cli(capsys, "keys", "add", "dev", "--unencrypted")
    path = home / "keys" / "dev.json"
    doc = json.loads(path.read_text())
    doc["address"] = KeyPair.from_seed(bytes(32)).address
    path.write_text(json.dumps(doc))
    result = run_cli(capsys, "keys", "list")
    assert_user_error(result, "bad_key_file")
    assert str(path) in result.err


def test_delete(home, capsys):
    run_cli(capsys, "keys", "add", "dev", "--unencrypted")
    assert_user_error(run_cli(capsys, "keys", "delete", "dev"), "invalid_parameter")
    assert (home / "keys" / "dev.json").exists()
    assert run_cli(capsys, "keys", "delete", "dev", "--yes").code == 0
    assert not (home / "keys" / "dev.json").exists()
