"""Who is asking, and may they: the one check every admin endpoint makes.

An admin endpoint names the action and the resource it is about to touch
(``write`` on ``node/faucet``, ``admin`` on ``node/views/top``) and hands the
request's ``Authorization`` header (and the client certificate its TLS
connection verified, if any) to :meth:`Authorizer.authorize`. Two kinds of
bearer credential are taken:

- the node's admin token (the ``admin_token`` file of its home), which holds
  the ``admin`` role: every action on every resource;
- a scoped API token (``ffk_…``, :mod:`tokens`) whose roles the policy
  decides on, deny by default (:mod:`acl`);

and, without a bearer header, an operator's client certificate (mutual TLS,
:mod:`certificates`), whose roles the node's ``api_tls.client_roles`` names.

A missing, malformed, unknown, expired or revoked credential is
``unauthorized`` (401); a valid one whose roles do not allow the action is
``forbidden`` (403). Both say as little as possible to the client; the reason
is kept on the error for the node's log.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.services.auth.acl import ACTIONS, Grant, Policy, decide
from focusflow.services.auth.certificates import ClientCertificates
from focusflow.services.auth.passwords import (
    LoginGate,
    PasswordStore,
    check_password,
    check_user,
)
from focusflow.services.auth.tokens import PREFIX, TokenRecord, TokenStore, UnauthorizedError

#: Longest ``Authorization`` header read at all (a token is at most 128
#: characters, the admin token 64 hex digits).
MAX_AUTHORIZATION = 256
#: Most roles a configured policy may define, and grants a role may hold.
MAX_ROLES = 64
MAX_GRANTS = 64

#: A login's token lives an hour unless asked otherwise, a day at most.
LOGIN_TTL_S = 3600
MAX_LOGIN_TTL_S = 24 * 3600

#: The admin token's role.
ADMIN_ROLE = "admin"

#: The roles every node knows: ``admin`` may do anything; ``faucet`` may send
#: from the node's dev key; ``views`` may register and drop views. An
#: operator adds roles (or narrows these with denies) in ``config.json``'s
#: ``"acl"`` (:func:`policy_from_json`).
NODE_ROLES: dict[str, tuple[Grant, ...]] = {
    ADMIN_ROLE: (Grant("*", "**"),),
    "faucet": (Grant("write", "node/faucet"),),
    "views": (Grant("admin", "node/views/**"),),
    "blobs": (Grant("write", "node/blobs"),),
}


class ForbiddenError(FocusflowError):
    """Valid credentials whose roles do not allow the action (the API answers 403)."""

    code = "forbidden"

    def __init__(self, action: str, resource: str, reason: str) -> None:
        super().__init__(f"not allowed to {action} {resource}")
        #: What decided, for the node's log.
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who (``subject``), how (``via``) and its roles."""

    subject: str
    via: str
    roles: tuple[str, ...]


def policy_from_json(doc: Any, base: Mapping[str, tuple[Grant, ...]] = NODE_ROLES) -> Policy:
    """``base`` with the roles of a config's ``"acl"`` object added or extended.

    ``{"roles": {"name": [{"action": "write", "pattern": "node/faucet",
    "deny": false}, ...]}}``: a role named in ``base`` keeps its grants and
    gets these after them (a deny there narrows it). Bounded in roles and
    grants; anything else is ``invalid_parameter``.
    """
    roles = {name: list(grants) for name, grants in base.items()}
    if doc is None:
        return Policy(roles)
    if not isinstance(doc, dict) or set(doc) - {"roles"}:
        raise InvalidParameterError('"acl" is {"roles": {name: [grant, ...]}}')
    given = doc.get("roles", {})
    if not isinstance(given, dict) or len(given) > MAX_ROLES:
        raise InvalidParameterError(f'"acl.roles" maps at most {MAX_ROLES} role names to grants')
    for name, grants in given.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            raise InvalidParameterError("a role name is 1..64 characters")
        if not isinstance(grants, list) or len(grants) > MAX_GRANTS:
            raise InvalidParameterError(f"role {name!r}: a list of at most {MAX_GRANTS} grants")
        for g in grants:
            if not isinstance(g, dict) or set(g) - {"action", "pattern", "deny"}:
                raise InvalidParameterError(f"role {name!r}: a grant is {{action, pattern, deny?}}")
            deny = g.get("deny", False)
            if not isinstance(deny, bool):
                raise InvalidParameterError(f"role {name!r}: a grant's deny is true or false")
            action, pattern = g.get("action"), g.get("pattern")
            if not isinstance(action, str) or not isinstance(pattern, str):
                raise InvalidParameterError(f"role {name!r}: a grant's action and pattern are text")
            roles.setdefault(name, []).append(Grant(action, pattern, deny))
    return Policy(roles)


class Authorizer:
    """The node's credentials (admin token, tokens, passwords) and its policy."""

    def __init__(
        self,
        admin_token: str,
        tokens: TokenStore | None = None,
        policy: Policy | None = None,
        passwords: PasswordStore | None = None,
        certificates: ClientCertificates | None = None,
    ) -> None:
        self._admin = admin_token.encode()
        self.certificates = certificates
        self.tokens = tokens
        self.policy = policy if policy is not None else Policy(NODE_ROLES)
        self.passwords = passwords
        self.gate = LoginGate()

    @classmethod
    def for_home(
        cls,
        admin_token: str,
        tokens_file: Path,
        acl: Any = None,
        passwords_file: Path | None = None,
        certificates: ClientCertificates | None = None,
    ) -> Authorizer:
        """A node's authorizer: its admin token, the token file of its home
        (made by ``focusflow auth token issue``; none yet is no tokens), the
        roles of its config, its operators' passwords (``focusflow auth
        password set``; none yet is no logins) and their client certificates
        (``api_tls``; None: the API takes none)."""
        passwords = PasswordStore(passwords_file) if passwords_file is not None else None
        policy = policy_from_json(acl)
        return cls(admin_token, TokenStore(tokens_file), policy, passwords, certificates)

    def login(
        self, user: str, password: str, client: str, ttl_s: int = LOGIN_TTL_S
    ) -> tuple[str, TokenRecord]:
        """A fresh scoped token with ``user``'s roles, for the right password.

        Bounded before anything is hashed (the user name's and the password's
        shape, the gate's failure counts and free slots); a wrong password
        counts against the user and the client address.
        """
        check_user(user)
        check_password(password)
        if not (isinstance(ttl_s, int) and 0 < ttl_s <= MAX_LOGIN_TTL_S):
            raise InvalidParameterError(f"a login's token lives 1..{MAX_LOGIN_TTL_S} seconds")
        if self.passwords is None or self.tokens is None:
            raise UnauthorizedError("this server takes no passwords")
        self.gate.check(user, client)
        with self.gate.slot():
            try:
                record = self.passwords.verify(user, password)
            except UnauthorizedError:
                self.gate.failed(user, client)
                raise
        return self.tokens.issue(f"user:{user}", list(record.roles), ttl_s)

    def authenticate(self, authorization: str | None, client_cert: str | None = None) -> Principal:
        """The caller a ``Bearer`` header names, else the client certificate the
        TLS layer verified (PEM; :mod:`certificates`); :class:`UnauthorizedError`
        otherwise. A bearer credential, when given, decides alone."""
        if authorization is None:
            if client_cert is not None and self.certificates is not None:
                who = self.certificates.identify(client_cert)
                via = f"client certificate {who.serial:x}"
                return Principal(f"cert:{who.subject}", via, who.roles)
            raise UnauthorizedError("no credentials")
        if len(authorization) > MAX_AUTHORIZATION:
            raise UnauthorizedError("header too long")
        scheme, _, given = authorization.strip().partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise UnauthorizedError("not a bearer credential")
        if given.startswith(PREFIX) and self.tokens is not None:
            self.tokens.refresh()
            record = self.tokens.verify(given)
            return Principal(record.subject, f"token {record.id}", tuple(record.roles))
        if self._admin and hmac.compare_digest(given.encode(), self._admin):
            return Principal("operator", "admin token", (ADMIN_ROLE,))
        raise UnauthorizedError("wrong admin token")

    def authorize(
        self,
        authorization: str | None,
        action: str,
        resource: str,
        client_cert: str | None = None,
    ) -> Principal:
        """The caller, if its roles allow ``action`` on ``resource``;
        :class:`UnauthorizedError` or :class:`ForbiddenError` otherwise."""
        if action not in ACTIONS:
            raise InvalidParameterError(f"action must be one of {', '.join(ACTIONS)}")
        who = self.authenticate(authorization, client_cert)
        decision = decide(self.policy, who.roles, action, resource)
        if not decision.allowed:
            raise ForbiddenError(action, resource, f"{who.via} ({who.subject}): {decision.reason}")
        return who
