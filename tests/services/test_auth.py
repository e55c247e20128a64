"""The ACL decides every (roles, action, resource) as its rules say, denying by
default; tokens are shown once, stored hashed, and refused when unknown,
malformed, expired or revoked."""

from __future__ import annotations

import itertools
import json

import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.services.auth.acl import ACTIONS, Grant, Policy, decide
from focusflow.services.auth.tokens import MAX_TOKEN, TokenStore, UnauthorizedError

POLICY = Policy(
    {
        "viewer": [Grant("read", "node/**"), Grant("read", "konomi/**")],
        "operator": [
            Grant("*", "node/**"),
            Grant("admin", "node/keys/**", deny=True),
            Grant("write", "konomi/cubes/*"),
        ],
        "keyholder": [Grant("admin", "node/keys/*")],
    }
)
RESOURCES = [
    "node/status",
    "node/keys/dev",
    "node/peers/a/b",
    "konomi/cubes/c1",
    "konomi/grid",
    "other/x",
]


def expected(roles: set[str], action: str, resource: str) -> bool:
    """The same rules, spelled out case by case for this policy."""
    node = resource.startswith("node/")
    keys = resource.startswith("node/keys/")
    if "operator" in roles and keys and action == "admin":
        return False  # the operator's deny wins over any grant
    if "keyholder" in roles and action == "admin" and keys and resource.count("/") == 2:
        return True
    if "operator" in roles and node:
        return True
    if "operator" in roles and action == "write" and resource.startswith("konomi/cubes/"):
        return True
    return "viewer" in roles and action == "read" and (node or resource.startswith("konomi/"))


@pytest.mark.parametrize(
    "roles",
    [
        set(c)
        for n in range(4)
        for c in itertools.combinations(["viewer", "operator", "keyholder"], n)
    ]
    + [{"nobody"}],
)
def test_every_role_set_action_and_resource_is_decided_as_the_rules_say(roles):
    for action, resource in itertools.product(ACTIONS, RESOURCES):
        got = decide(POLICY, roles, action, resource)
        assert got.allowed == expected(roles, action, resource), (roles, action, resource, got)
        assert got.reason == "no grant" or got.reason.startswith("role ")


def test_patterns_and_bad_questions():
    assert Grant("read", "a/*/c").matches("read", ("a", "b", "c"))
    assert not Grant("read", "a/*/c").matches("read", ("a", "b", "c", "d"))
    assert Grant("read", "a/**").matches("read", ("a",))
    assert not Grant("read", "a/**").matches("read", ("b",))
    for bad in (
        lambda: Grant("fly", "a"),
        lambda: Grant("read", "a/**/b"),
        lambda: Grant("read", ""),
    ):
        with pytest.raises(InvalidParameterError):
            bad()
    for action, resource in (
        ("fly", "node/status"),
        ("read", ""),
        ("read", "a//b"),
        ("read", "x" * 600),
    ):
        with pytest.raises(InvalidParameterError):
            decide(POLICY, ["viewer"], action, resource)


def test_a_token_is_shown_once_stored_hashed_and_verified(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    token, record = store.issue("ops@example", ["operator"], 3600, now_ms=1_000)
    assert token.startswith("ffk_") and len(token) <= MAX_TOKEN
    stored = (tmp_path / "tokens.json").read_text()
    secret = token[len("ffk_") + 16 + 1 :]  # the secret may itself hold '_'
    assert len(secret) == 43 and secret not in stored and record.secret_sha256 in stored
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    again = TokenStore(tmp_path / "tokens.json")  # read back from the file
    assert again.verify(token, now_ms=2_000).roles == ["operator"]
    assert decide(POLICY, again.verify(token, now_ms=2_000).roles, "write", "node/status").allowed


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # another secret
        lambda t: t.replace("ffk_", "ffx_"),
        lambda t: t + "x",
        lambda t: "ffk_" + "0" * 16 + t[20:],  # an unknown id
        lambda t: t * 3,  # over the length cap
        lambda t: "",
    ],
)
def test_a_wrong_token_is_unauthorized(tmp_path, mutate):
    store = TokenStore(tmp_path / "tokens.json")
    token, _ = store.issue("a", ["viewer"], 60, now_ms=0)
    with pytest.raises(UnauthorizedError) as info:
        store.verify(mutate(token), now_ms=1)
    assert info.value.code == "unauthorized" and str(info.value.message) == "invalid credentials"


def test_expired_and_revoked_tokens_are_refused(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    token, record = store.issue("a", ["viewer"], 60, now_ms=0)
    assert store.verify(token, now_ms=59_999)
    with pytest.raises(UnauthorizedError, match="invalid credentials") as info:
        store.verify(token, now_ms=60_000)
    assert "expired" in info.value.reason
    store.revoke(record.id)
    with pytest.raises(UnauthorizedError) as info:
        store.verify(token, now_ms=1)
    assert "revoked" in info.value.reason
    assert json.loads((tmp_path / "tokens.json").read_text())[0]["revoked"] is True
    for bad in (("", ["r"], 1), ("a", [], 1), ("a", ["r"], 0), ("a", ["r"], 10**9)):
        with pytest.raises(InvalidParameterError):
            store.issue(*bad)
    with pytest.raises(InvalidParameterError):
        store.revoke("nope")
