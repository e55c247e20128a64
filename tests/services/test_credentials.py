"""The admin endpoints' credentials: the admin token, scoped tokens and the
policy, decided by one Authorizer; token files shared between processes."""

from __future__ import annotations

import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.services.auth.credentials import (
    MAX_AUTHORIZATION,
    Authorizer,
    ForbiddenError,
    policy_from_json,
)
from focusflow.services.auth.tokens import TokenStore, UnauthorizedError

ADMIN = "a" * 64


@pytest.fixture
def auth(tmp_path):
    return Authorizer.for_home(ADMIN, tmp_path / "tokens.json")


def test_the_admin_token_may_do_anything(auth):
    for action, resource in (("write", "node/faucet"), ("admin", "node/views/top")):
        who = auth.authorize(f"Bearer {ADMIN}", action, resource)
        assert who.roles == ("admin",) and who.via == "admin token"
    assert auth.authorize(f"bearer   {ADMIN}  ", "read", "anything/at/all").subject == "operator"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {ADMIN}",
        f"Bearer {ADMIN[:-1]}",
        f"Bearer {ADMIN}x",
        "Bearer ffk_0123456789abcdef_" + "A" * 43,  # well formed, never issued
        "Bearer ffk_nothex",
        "Bearer " + "x" * MAX_AUTHORIZATION,
    ],
)
def test_anything_else_is_unauthorized(auth, header):
    with pytest.raises(UnauthorizedError) as err:
        auth.authorize(header, "write", "node/faucet")
    assert err.value.code == "unauthorized" and err.value.message == "invalid credentials"


def test_an_empty_admin_token_admits_no_one(tmp_path):
    auth = Authorizer("", TokenStore(tmp_path / "tokens.json"))
    with pytest.raises(UnauthorizedError):
        auth.authorize("Bearer ", "write", "node/faucet")
    with pytest.raises(UnauthorizedError):
        auth.authorize("Bearer x", "write", "node/faucet")


def test_a_token_does_what_its_roles_allow_and_nothing_more(auth, tmp_path):
    token, record = TokenStore(tmp_path / "tokens.json").issue("ci", ["faucet"], 600)
    who = auth.authorize(f"Bearer {token}", "write", "node/faucet")
    assert (who.subject, who.via, who.roles) == ("ci", f"token {record.id}", ("faucet",))
    for action, resource in (("admin", "node/views/top"), ("admin", "node/faucet")):
        with pytest.raises(ForbiddenError) as err:
            auth.authorize(f"Bearer {token}", action, resource)
        assert err.value.code == "forbidden"
        assert "no grant" in err.value.reason and record.id in err.value.reason

    views, _ = TokenStore(tmp_path / "tokens.json").issue("ops", ["views"], 600)
    auth.authorize(f"Bearer {views}", "admin", "node/views/top")
    with pytest.raises(ForbiddenError):
        auth.authorize(f"Bearer {views}", "write", "node/faucet")


def test_a_token_revoked_by_another_process_is_refused_at_once(auth, tmp_path):
    """The CLI revokes through its own store while the node's authorizer holds
    the file loaded: the next request must see the revocation."""
    cli = TokenStore(tmp_path / "tokens.json")
    token, record = cli.issue("ci", ["faucet"], 600)
    auth.authorize(f"Bearer {token}", "write", "node/faucet")
    TokenStore(tmp_path / "tokens.json").revoke(record.id)
    with pytest.raises(UnauthorizedError) as err:
        auth.authorize(f"Bearer {token}", "write", "node/faucet")
    assert "revoked" in err.value.reason


def test_two_stores_never_drop_each_others_tokens(tmp_path):
    """Each change reloads the file under the lock before writing it."""
    path = tmp_path / "tokens.json"
    a, b = TokenStore(path), TokenStore(path)
    ta, ra = a.issue("a", ["faucet"], 600)
    tb, rb = b.issue("b", ["views"], 600)  # b loaded the file before a wrote it
    tc, rc = a.issue("c", ["faucet"], 600)
    fresh = TokenStore(path)
    assert {r.id for r in fresh.records()} == {ra.id, rb.id, rc.id}
    for token in (ta, tb, tc):
        fresh.verify(token)
    b.revoke(rc.id)  # b never saw c before it took the lock
    assert {r.id: r.revoked for r in TokenStore(path).records()} == {
        ra.id: False,
        rb.id: False,
        rc.id: True,
    }


def test_a_damaged_token_file_is_a_clear_error(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    with pytest.raises(InvalidParameterError, match="not a token file"):
        TokenStore(path)


def test_configured_roles_extend_and_narrow_the_node_roles():
    policy = policy_from_json(
        {
            "roles": {
                "faucet": [{"action": "write", "pattern": "node/faucet", "deny": True}],
                "reader": [{"action": "admin", "pattern": "node/views/public"}],
            }
        }
    )
    assert not policy.decide(["faucet"], "write", "node/faucet").allowed  # the deny wins
    assert policy.decide(["reader"], "admin", "node/views/public").allowed
    assert not policy.decide(["reader"], "admin", "node/views/other").allowed
    assert policy.decide(["admin"], "write", "node/faucet").allowed


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"roles": [], "extra": 1},
        {"roles": {"r": "write"}},
        {"roles": {"r": [{"action": "fly", "pattern": "node/faucet"}]}},
        {"roles": {"r": [{"action": "write"}]}},
        {"roles": {"r": [{"action": "write", "pattern": "a/**/b"}]}},
        {"roles": {"r": [{"action": "write", "pattern": "node", "deny": "yes"}]}},
        {"roles": {"r": [{"action": "write", "pattern": "node", "why": 1}]}},
        {"roles": {"": []}},
        {"roles": {f"r{i}": [] for i in range(65)}},
        {"roles": {"r": [{"action": "read", "pattern": "x"}] * 65}},
    ],
)
def test_a_bad_acl_config_is_refused(doc):
    with pytest.raises(InvalidParameterError):
        policy_from_json(doc)
