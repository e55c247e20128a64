"""Scoped API tokens: shown once, stored hashed, expiring, revocable.

A token is ``ffk_<id>_<secret>``: a 16-hex-digit id (how it is named in
listings and revoked) and 32 random bytes (URL-safe base64). The store keeps
the SHA-256 of the secret, never the secret, so a leaked store file admits no
one: the secret carries 256 bits, so a fast hash is enough (a password, with
its few bits, would need a slow one). Each token names its subject, the roles
it carries (``acl.Policy`` decides what they allow) and its expiry.

:meth:`TokenStore.verify` bounds the text before parsing it, compares hashes
in constant time, and refuses an unknown, malformed, expired or revoked token
with ``unauthorized`` and a reason, the same way whichever part is wrong
would tell an attacker which one; the reason is for the node's log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.services.auth.shared_file import SharedJson

PREFIX = "ffk_"
#: Longest text taken as a token (anything longer is refused unread).
MAX_TOKEN = 128
#: Longest lifetime a token may be issued with (90 days).
MAX_TTL_S = 90 * 24 * 3600
#: Records of tokens expired longer ago than this are dropped at the next change.
PRUNE_AFTER_MS = 24 * 3600 * 1000
_FORMAT = re.compile(r"ffk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class UnauthorizedError(FocusflowError):
    """A credential that admits no one (the API answers 401)."""

    code = "unauthorized"

    def __init__(self, reason: str) -> None:
        super().__init__("invalid credentials")
        #: Why, for the node's log (not for the client).
        self.reason = reason


@dataclass
class TokenRecord:
    id: str
    subject: str
    roles: list[str]
    expires_ms: int
    secret_sha256: str
    revoked: bool = False


def _now_ms() -> int:
    return int(time.time() * 1000)


class TokenStore:
    """Tokens in one JSON file, rewritten atomically on every change.

    Several processes share the file: the CLI issues and revokes while a node
    verifies. Every change reloads the file under an exclusive lock before it
    writes (so two writers never drop each other's tokens), and a reader calls
    :meth:`refresh` to see changes made elsewhere (a revocation takes effect
    at the next request, not at the next restart).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = SharedJson(self.path, "token file", [])
        self._records: dict[str, TokenRecord] = {}
        self.refresh()

    def refresh(self) -> None:
        """Reload the file if it changed since it was last read (one ``stat`` if not)."""
        if self._file.changed():
            self._load(self._file.read())

    def _load(self, raw: object) -> None:
        try:
            self._records = {r["id"]: TokenRecord(**r) for r in raw}  # type: ignore[attr-defined]  # checked by the except
        except (TypeError, KeyError) as exc:
            raise InvalidParameterError(f"{self.path}: not a token file: {exc}") from None

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the store's lock with the file's latest contents loaded; write
        them back on leaving."""
        with self._file.locked():
            self._load(self._file.read())
            yield
            self._file.write([asdict(r) for r in self._records.values()])

    def issue(
        self, subject: str, roles: list[str], ttl_s: int, now_ms: int | None = None
    ) -> tuple[str, TokenRecord]:
        """A new token (its text is returned here only) and its record."""
        if not isinstance(subject, str) or not 0 < len(subject) <= 128:
            raise InvalidParameterError("a token's subject is 1..128 characters")
        if not roles or not all(isinstance(r, str) and 0 < len(r) <= 64 for r in roles):
            raise InvalidParameterError("a token carries 1 or more roles of 1..64 characters")
        if not (isinstance(ttl_s, int) and 0 < ttl_s <= MAX_TTL_S):
            raise InvalidParameterError(f"a token lives 1..{MAX_TTL_S} seconds, got {ttl_s}")
        token_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        now = _now_ms() if now_ms is None else now_ms
        record = TokenRecord(
            token_id,
            subject,
            sorted(set(roles)),
            now + ttl_s * 1000,
            hashlib.sha256(secret.encode()).hexdigest(),
        )
        with self._changing():
            # records of tokens expired a day before are dropped here: logins
            # issue one each, and the file must not grow with them forever
            stale = now - PRUNE_AFTER_MS
            self._records = {k: r for k, r in self._records.items() if r.expires_ms > stale}
            self._records[token_id] = record
        return f"{PREFIX}{token_id}_{secret}", record

    def verify(self, token: str, now_ms: int | None = None) -> TokenRecord:
        """The record of a valid token; :class:`UnauthorizedError` otherwise."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN:
            raise UnauthorizedError("not a token")
        match = _FORMAT.fullmatch(token)
        if match is None:
            raise UnauthorizedError("malformed token")
        record = self._records.get(match.group(1))
        digest = hashlib.sha256(match.group(2).encode()).hexdigest()
        expected = record.secret_sha256 if record is not None else "0" * 64
        if not hmac.compare_digest(digest, expected) or record is None:
            raise UnauthorizedError("unknown token")
        if record.revoked:
            raise UnauthorizedError(f"token {record.id} is revoked")
        if (_now_ms() if now_ms is None else now_ms) >= record.expires_ms:
            raise UnauthorizedError(f"token {record.id} expired")
        return record

    def revoke(self, token_id: str) -> None:
        with self._changing():
            record = self._records.get(token_id)
            if record is None:
                raise InvalidParameterError(f"no token {token_id!r}")
            record.revoked = True

    def records(self) -> list[TokenRecord]:
        """Every token's record (no secrets: only their hashes are kept)."""
        return list(self._records.values())
