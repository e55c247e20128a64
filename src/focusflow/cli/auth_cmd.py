"""``focusflow auth token issue|list|revoke``: scoped API tokens.

A token carries roles (``faucet``, ``views``, ``admin`` or any the node's
``config.json`` defines under ``"acl"``; ``konomi`` for a Konomi server given
the file with ``--tokens``) and an expiry. The server checks it on every admin
request, so issuing and revoking take effect at once, with it running. The
token's text is printed once, at issue: the file keeps only its hash.
docs/trust.md is the contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypedDict

import typer

from focusflow.cli.common import HomeOpt, JsonOpt, console, print_json
from focusflow.core.home import resolve_home, tokens_path

if TYPE_CHECKING:
    from focusflow.services.auth.passwords import PasswordStore
    from focusflow.services.auth.tokens import TokenRecord, TokenStore

auth_app = typer.Typer(help="Credentials for a node's admin endpoints.", no_args_is_help=True)
token_app = typer.Typer(help="Scoped API tokens: issue, list, revoke.", no_args_is_help=True)
auth_app.add_typer(token_app, name="token")
password_app = typer.Typer(
    help="Operators' passwords (Argon2id), exchanged for tokens at POST /v1/auth/login.",
    no_args_is_help=True,
)
auth_app.add_typer(password_app, name="password")
ENV_PASSWORD = "FOCUSFLOW_PASSWORD"


FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        help="A token file of its own (a Konomi server's --tokens) instead of the home's.",
        show_default=False,
    ),
]


def _store(home: str | None, file: Path | None) -> TokenStore:
    from focusflow.core.errors import InputFileError
    from focusflow.services.auth.tokens import TokenStore

    if file is not None:
        if not file.parent.is_dir():
            raise InputFileError(f"{file.parent}: no such directory")
        return TokenStore(file)
    root = resolve_home(home)
    if not root.is_dir():
        raise InputFileError(f"{root}: no node home there (give --home or $FOCUSFLOW_HOME)")
    return TokenStore(tokens_path(root))


@token_app.command("issue")
def issue_cmd(
    subject: str = typer.Option(..., "--subject", help="Who holds it (shown in logs)."),
    role: list[str] = typer.Option(..., "--role", help="A role it carries (repeatable)."),
    ttl: int = typer.Option(86_400, "--ttl", help="Lifetime in seconds (at most 90 days)."),
    home: HomeOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a token; its text is printed this once."""
    token, record = _store(home, file).issue(subject, role, ttl)
    if as_json:
        print_json({"token": token, **_public(record)})
        return
    console.print(f"token {record.id} for {record.subject}, roles {', '.join(record.roles)}")
    print(token)


@token_app.command("list")
def list_cmd(home: HomeOpt = None, file: FileOpt = None, as_json: JsonOpt = False) -> None:
    """Every token's id, subject, roles, expiry and state (never a secret)."""
    records = [_public(r) for r in _store(home, file).records()]
    if as_json:
        print_json(records)
        return
    for r in records:
        state = "revoked" if r["revoked"] else "active"
        console.print(f"{r['id']}  {r['subject']}  {','.join(r['roles'])}  {state}")


@token_app.command("revoke")
def revoke_cmd(
    token_id: str = typer.Argument(..., help="The token's id (from list)."),
    home: HomeOpt = None,
    file: FileOpt = None,
) -> None:
    """Revoke a token: the node (or Konomi server) refuses it from its next request on."""
    _store(home, file).revoke(token_id)
    console.print(f"token {token_id} revoked")


class TokenDoc(TypedDict):
    """A token as ``list --json`` shows it: the record without its secret's hash."""

    id: str
    subject: str
    roles: list[str]
    expires_ms: int
    revoked: bool


def _public(record: TokenRecord) -> TokenDoc:
    return {
        "id": record.id,
        "subject": record.subject,
        "roles": list(record.roles),
        "expires_ms": record.expires_ms,
        "revoked": record.revoked,
    }


def _passwords(home: str | None) -> PasswordStore:
    from focusflow.core.errors import InputFileError
    from focusflow.core.home import passwords_path
    from focusflow.services.auth.passwords import PasswordStore

    root = resolve_home(home)
    if not root.is_dir():
        raise InputFileError(f"{root}: no node home there (give --home or $FOCUSFLOW_HOME)")
    return PasswordStore(passwords_path(root))


def _new_password() -> str:
    """$FOCUSFLOW_PASSWORD, else asked twice on a terminal."""
    import getpass
    import os
    import sys

    from focusflow.core.errors import InvalidParameterError

    given = os.environ.get(ENV_PASSWORD)
    if given:
        return given
    if not sys.stdin.isatty():
        raise InvalidParameterError(f"no terminal to ask the password on: set ${ENV_PASSWORD}")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise InvalidParameterError("the two passwords differ")
    return first


@password_app.command("set")
def password_set_cmd(
    user: str = typer.Option(..., "--user", help="The operator's name (a-z 0-9 . _ -)."),
    role: list[str] = typer.Option(..., "--role", help="A role the user holds (repeatable)."),
    home: HomeOpt = None,
) -> None:
    """Create or replace an operator (password from $FOCUSFLOW_PASSWORD, else asked)."""
    _passwords(home).set(user, _new_password(), role)
    console.print(f"user {user} set, roles {', '.join(sorted(set(role)))}")


@password_app.command("remove")
def password_remove_cmd(
    user: str = typer.Option(..., "--user", help="The operator to remove."), home: HomeOpt = None
) -> None:
    """Remove an operator: no new logins (tokens already issued live out their hour)."""
    _passwords(home).remove(user)
    console.print(f"user {user} removed")


@password_app.command("list")
def password_list_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Operators and their roles (never a hash)."""
    users = [{"user": r.user, "roles": list(r.roles)} for r in _passwords(home).records()]
    if as_json:
        print_json(users)
        return
    for u in users:
        console.print(f"{u['user']}  {','.join(u['roles'])}")
