"""The wallet key store: round trips, file modes, passphrases, tampering, names."""

from __future__ import annotations

import json
import os
import stat

import pytest

from focusflow.core.errors import (
    InvalidParameterError,
    KeyExistsError,
    KeyFileError,
    UnknownKeyError,
    WrongPassphraseError,
)
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import ENV_TEST_SCRYPT_N, KeyInfo, Keystore

# A cheap scrypt keeps the suite fast; one test below uses the real default.
FAST_N = 2**10


@pytest.fixture
def store(tmp_path):
    return Keystore(tmp_path / "keys", scrypt_n=FAST_N)


def _key(i: int = 1) -> KeyPair:
    return KeyPair.from_seed(bytes([i]) * 32)


def test_encrypted_round_trip(store):
    key = _key()
    info = store.add("alice", key, "correct horse")
    assert info == KeyInfo("alice", key.address, key.public_key, True)
    loaded = store.load("alice", "correct horse")
    assert loaded.seed == key.seed
    assert store.info("alice") == info
    text = store.file_of("alice").read_text()
    assert key.seed.hex() not in text
    doc = json.loads(text)
    assert doc["version"] == 1 and doc["encrypted"] is True
    assert doc["crypto"]["kdf"] == "scrypt" and doc["crypto"]["cipher"] == "chacha20-poly1305"


def test_default_kdf_cost_round_trip(tmp_path, monkeypatch):
    """New files get scrypt n = 2**17 unless the test-only variable lowers it."""
    monkeypatch.delenv(ENV_TEST_SCRYPT_N, raising=False)
    store = Keystore(tmp_path / "keys")
    store.add("k", _key(), "pw")
    assert json.loads(store.file_of("k").read_text())["crypto"]["kdfparams"]["n"] == 2**17
    assert store.load("k", "pw").seed == _key().seed


def test_files_with_an_older_cost_still_open(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_TEST_SCRYPT_N, raising=False)
    Keystore(tmp_path / "keys", scrypt_n=2**15).add("old", _key(3), "pw")
    store = Keystore(tmp_path / "keys")
    assert store.scrypt_n == 2**17
    assert store.load("old", "pw").seed == _key(3).seed


def test_the_test_only_cost_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_TEST_SCRYPT_N, str(2**11))
    store = Keystore(tmp_path / "keys")
    store.add("k", _key(), "pw")
    assert json.loads(store.file_of("k").read_text())["crypto"]["kdfparams"]["n"] == 2**11
    for bad in ("12", "512", "x", str(2**11 + 1)):
        monkeypatch.setenv(ENV_TEST_SCRYPT_N, bad)
        with pytest.raises(InvalidParameterError):
            Keystore(tmp_path / "keys")


def test_unencrypted_round_trip(store):
    key = _key(2)
    info = store.add("dev", key, None)
    assert info.encrypted is False
    assert store.load("dev").seed == key.seed
    assert store.load("dev", "ignored").seed == key.seed
    assert json.loads(store.file_of("dev").read_text())["seed"] == key.seed.hex()


def test_file_and_dir_modes(store):
    store.add("alice", _key(), "pw")
    assert stat.S_IMODE(store.file_of("alice").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o700
    assert sorted(os.listdir(store.path)) == ["alice.json"]  # no temporary file left


def test_loose_existing_dir_is_tightened(tmp_path):
    d = tmp_path / "keys"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    Keystore(d, scrypt_n=FAST_N).add("a", _key(), None)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_wrong_or_missing_passphrase(store):
    store.add("alice", _key(), "right")
    with pytest.raises(WrongPassphraseError) as exc:
        store.load("alice", "wrong")
    assert exc.value.code == "wrong_passphrase"
    with pytest.raises(WrongPassphraseError):
        store.load("alice")


def test_passphrase_is_unicode_normalised(store):
    store.add("u", _key(), "caf\u00e9")  # precomposed é
    assert store.load("u", "cafe\u0301").seed == _key().seed  # e + combining accent


def _tamper(store, name, edit):
    path = store.file_of(name)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_flipped_ciphertext_byte_is_detected_not_taken_for_wrong_passphrase(store):
    store.add("alice", _key(), "pw")

    def flip(doc):
        ct = bytearray.fromhex(doc["crypto"]["ciphertext"])
        ct[5] ^= 0x01
        doc["crypto"]["ciphertext"] = ct.hex()

    _tamper(store, "alice", flip)
    with pytest.raises(KeyFileError) as exc:
        store.load("alice", "pw")
    assert exc.value.code == "bad_key_file"
    assert str(store.file_of("alice")) in str(exc.value)


def test_swapped_public_fields_are_detected(store):
    """Another key's address and public key pasted in: list/info and load both refuse."""
    store.add("alice", _key(1), "pw")
    other = _key(9)

    def swap_address(doc):
        doc["address"] = other.address

    _tamper(store, "alice", swap_address)
    with pytest.raises(KeyFileError, match="address"):
        store.info("alice")
    with pytest.raises(KeyFileError):
        store.list()

    store.delete("alice")
    store.add("alice", _key(1), "pw")

    def swap_both(doc):  # consistent on its face, so only the AEAD can tell
        doc["address"] = other.address
        doc["public_key"] = other.public_key.hex()

    _tamper(store, "alice", swap_both)
    assert store.info("alice").address == other.address
    with pytest.raises(KeyFileError, match="altered"):
        store.load("alice", "pw")


def test_unencrypted_seed_not_matching_public_key(store):
    store.add("dev", _key(1), None)
    _tamper(store, "dev", lambda doc: doc.update(seed=_key(3).seed.hex()))
    with pytest.raises(KeyFileError, match="does not match"):
        store.load("dev")


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[1, 2]", b'{"version": 2, "name": "k"}', b'{"version": 1, "name": "x"}'],
)
def test_corrupt_files(store, content):
    store.add("k", _key(), None)
    store.file_of("k").write_bytes(content)
    with pytest.raises(KeyFileError) as exc:
        store.load("k")
    assert str(store.file_of("k")) in str(exc.value)


def test_hostile_scrypt_parameters_refused(store):
    store.add("k", _key(), "pw")
    _tamper(store, "k", lambda doc: doc["crypto"]["kdfparams"].update(n=2**30))
    with pytest.raises(KeyFileError, match="scrypt"):
        store.load("k", "pw")


def test_exists_list_order_and_delete(store):
    assert store.list() == []
    for name in ["zed", "Alpha", "mid.1", "a_b-c"]:
        store.add(name, KeyPair.generate(), None)
    assert [k.name for k in store.list()] == sorted(["zed", "Alpha", "mid.1", "a_b-c"])
    assert store.exists("zed") and not store.exists("nope")
    store.delete("zed")
    assert not store.exists("zed")
    with pytest.raises(UnknownKeyError):
        store.delete("zed")
    with pytest.raises(UnknownKeyError) as exc:
        store.load("zed")
    assert exc.value.code == "unknown_key"


def test_add_never_overwrites(store):
    store.add("alice", _key(1), None)
    with pytest.raises(KeyExistsError) as exc:
        store.add("alice", _key(2), "pw")
    assert exc.value.code == "key_exists"
    assert store.load("alice").seed == _key(1).seed


@pytest.mark.parametrize("name", ["", "a/b", "../x", "a b", "x" * 65, "é", "a\n"])
def test_bad_names(store, name):
    with pytest.raises(InvalidParameterError):
        store.add(name, _key(), None)
    with pytest.raises(InvalidParameterError):
        store.load(name)
    assert not store.path.exists() or os.listdir(store.path) == []


def test_empty_passphrase_refused(store):
    with pytest.raises(InvalidParameterError):
        store.add("k", _key(), "")
    assert not store.exists("k")
