"""Operators' passwords: Argon2id hashes on disk, logins exchanged for tokens,
and the gate that bounds what a guesser can make the server hash."""

from __future__ import annotations

import json

import pytest
from argon2 import PasswordHasher

from focusflow.core.errors import InvalidParameterError
from focusflow.services.auth import passwords as pw
from focusflow.services.auth.credentials import Authorizer
from focusflow.services.auth.passwords import (
    LoginBusyError,
    LoginGate,
    PasswordStore,
    TooManyAttemptsError,
)
from focusflow.services.auth.tokens import TokenStore, UnauthorizedError

#: Cheap parameters for the tests' speed; the node uses argon2-cffi's defaults.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
GOOD = "correct horse battery staple"


@pytest.fixture
def store(tmp_path):
    s = PasswordStore(tmp_path / "passwords.json", FAST)
    s.set("ops", GOOD, ["views"])
    return s


def _authorizer(tmp_path, store) -> Authorizer:
    return Authorizer("a" * 64, TokenStore(tmp_path / "tokens.json"), passwords=store)


def test_the_file_holds_argon2id_hashes_only(store, tmp_path):
    path = tmp_path / "passwords.json"
    text = path.read_text()
    assert GOOD not in text and "$argon2id$" in text
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(text)
    assert doc["ops"]["roles"] == ["views"]
    # the node's own store reads what the CLI wrote, and a default hasher verifies it
    assert PasswordStore(path).verify("ops", GOOD).roles == ("views",)
    assert PasswordStore(path).hasher.time_cost == 3  # argon2-cffi's RFC 9106 defaults


def test_a_login_gives_a_token_with_the_users_roles(store, tmp_path):
    auth = _authorizer(tmp_path, store)
    token, record = auth.login("ops", GOOD, "10.0.0.1", ttl_s=60)
    assert record.subject == "user:ops" and record.roles == ["views"]
    assert auth.authorize(f"Bearer {token}", "admin", "node/views/x").subject == "user:ops"


@pytest.mark.parametrize(
    ("user", "password", "error"),
    [
        ("ops", GOOD + "!", UnauthorizedError),
        ("nobody", GOOD, UnauthorizedError),  # same answer: no user named
        ("Ops", GOOD, InvalidParameterError),
        ("ops", "short", InvalidParameterError),  # bounded before any hashing
        ("ops", "x" * (pw.MAX_PASSWORD + 1), InvalidParameterError),
        ("ops", "\ud800" * 20, InvalidParameterError),
        ("ops", None, InvalidParameterError),
    ],
)
def test_bad_logins(store, tmp_path, user, password, error):
    auth = _authorizer(tmp_path, store)
    with pytest.raises(error):
        auth.login(user, password, "10.0.0.1")
    assert TokenStore(tmp_path / "tokens.json").records() == []


def test_failures_close_the_user_then_the_client_for_a_window(store, tmp_path):
    now = [1000.0]
    auth = _authorizer(tmp_path, store)
    auth.gate = LoginGate(clock=lambda: now[0])
    for _ in range(pw.MAX_USER_FAILURES):
        with pytest.raises(UnauthorizedError):
            auth.login("ops", "wrong password!", "10.0.0.1")
    with pytest.raises(TooManyAttemptsError):  # even the right password, unhashed
        auth.login("ops", GOOD, "10.0.0.2")
    now[0] += pw.WINDOW_S
    auth.login("ops", GOOD, "10.0.0.2")  # the window passed

    # one address spraying many users is closed too
    for i in range(pw.MAX_CLIENT_FAILURES):
        with pytest.raises(UnauthorizedError):
            auth.login(f"user{i}", GOOD, "10.9.9.9")
    with pytest.raises(TooManyAttemptsError):
        auth.login("ops", GOOD, "10.9.9.9")
    auth.login("ops", GOOD, "10.0.0.3")  # others are not


def test_verifications_at_once_are_bounded():
    gate = LoginGate()
    held = [gate.slot() for _ in range(pw.MAX_CONCURRENT)]
    with pytest.raises(LoginBusyError):
        gate.slot()
    with held[0]:
        pass  # released on leaving
    with gate.slot():
        pass


def test_the_failure_table_is_bounded(monkeypatch):
    monkeypatch.setattr(pw, "MAX_TRACKED", 10)
    gate = LoginGate()
    for i in range(100):
        gate.failed(f"u{i}", f"c{i}")
    assert len(gate._failures) == 10


def test_users_are_set_replaced_and_removed(store, tmp_path):
    other = PasswordStore(tmp_path / "passwords.json", FAST)  # loaded before the change
    store.set("admin2", GOOD, ["admin"])
    other.set("ops", "another good passphrase", ["faucet"])  # must keep admin2
    fresh = PasswordStore(tmp_path / "passwords.json", FAST)
    assert {(r.user, r.roles) for r in fresh.records()} == {
        ("admin2", ("admin",)),
        ("ops", ("faucet",)),
    }
    with pytest.raises(UnauthorizedError):
        fresh.verify("ops", GOOD)
    fresh.remove("ops")
    with pytest.raises(InvalidParameterError):
        fresh.remove("ops")
    with pytest.raises(UnauthorizedError):
        _authorizer(tmp_path, PasswordStore(tmp_path / "passwords.json", FAST)).login(
            "ops", "another good passphrase", "10.0.0.1"
        )
    for user, password, roles in (("ops", GOOD, []), ("9x", GOOD, ["r"]), ("ops", "", ["r"])):
        with pytest.raises(InvalidParameterError):
            store.set(user, password, roles)


def test_without_passwords_a_server_takes_no_logins(tmp_path):
    auth = Authorizer("a" * 64, TokenStore(tmp_path / "tokens.json"))
    with pytest.raises(UnauthorizedError):
        auth.login("ops", GOOD, "10.0.0.1")
