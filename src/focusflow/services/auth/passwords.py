"""Operators' passwords, stored as Argon2id hashes, and the gate in front of logins.

A password has few bits, so it is stored slowly: Argon2id (RFC 9106) with
argon2-cffi's parameters (3 passes over 64 MiB, 4 lanes), which makes every
guess cost the guesser 64 MiB and tens of milliseconds. That same cost is a
server's weakness, so every verification passes :class:`LoginGate` first: at
most ``MAX_CONCURRENT`` run at once (``login_busy`` beyond), and a user or a
client address that failed too often in the last window is refused before
any hashing (``too_many_attempts``). An unknown user is checked against a
dummy hash, so the answer takes as long as for a known one and names no
user. A successful login is exchanged for a short-lived scoped token
(:meth:`Authorizer.login`): the password is sent once, not with every request.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.services.auth.shared_file import SharedJson
from focusflow.services.auth.tokens import UnauthorizedError

USER = re.compile(r"[a-z][a-z0-9._-]{0,63}")
#: Characters of a password: long passphrases welcome, a megabyte to hash not
#: (256 characters are at most 1 KiB in UTF-8).
MIN_PASSWORD = 12
MAX_PASSWORD = 256
#: Verifications at once (each holds 64 MiB for tens of milliseconds).
MAX_CONCURRENT = 2
#: Failures that close a user or a client address until its window passes.
MAX_USER_FAILURES = 5
MAX_CLIENT_FAILURES = 20
WINDOW_S = 15 * 60
#: Users and addresses whose failures are remembered (the oldest are forgotten).
MAX_TRACKED = 10_000


class TooManyAttemptsError(FocusflowError):
    """A user or client failed too often lately: refused before any hashing (429)."""

    code = "too_many_attempts"


class LoginBusyError(FocusflowError):
    """Every password verification slot is taken: try again shortly (503)."""

    code = "login_busy"


def check_user(user: object) -> str:
    if not isinstance(user, str) or not USER.fullmatch(user):
        raise InvalidParameterError("a user name is 1-64 of a-z 0-9 . _ -, starting with a letter")
    return user


def check_password(password: object) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidParameterError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        raise InvalidParameterError("a password is valid Unicode text") from None
    return password


class _UserEntry(TypedDict):
    """A user's entry in the password file: the Argon2id hash and the roles
    (an entry written by hand may lack them: it then holds none)."""

    hash: str
    roles: NotRequired[list[str]]


@dataclass(frozen=True)
class PasswordRecord:
    user: str
    roles: tuple[str, ...]


class PasswordStore:
    """Users' Argon2id hashes and roles in one owner-only JSON file."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self._file = SharedJson(self.path, "password file", {})
        self._users: dict[str, _UserEntry] = {}
        self._dummy: str | None = None
        self.refresh()

    def refresh(self) -> None:
        if self._file.changed():
            self._load(self._file.read())

    def _load(self, doc: object) -> None:
        if not isinstance(doc, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("hash"), str) for v in doc.values()
        ):
            raise InvalidParameterError(f"{self.path}: not a password file")
        self._users = doc

    def set(self, user: str, password: str, roles: list[str]) -> None:
        """Create or replace ``user`` with ``password`` and ``roles``."""
        check_user(user)
        check_password(password)
        if not roles or not all(isinstance(r, str) and 0 < len(r) <= 64 for r in roles):
            raise InvalidParameterError("a user holds 1 or more roles of 1..64 characters")
        digest = self.hasher.hash(password)
        with self._file.locked():
            self._load(self._file.read())
            self._users[user] = {"hash": digest, "roles": sorted(set(roles))}
            self._file.write(self._users)

    def remove(self, user: str) -> None:
        with self._file.locked():
            self._load(self._file.read())
            if self._users.pop(user, None) is None:
                raise InvalidParameterError(f"no user {user!r}")
            self._file.write(self._users)

    def records(self) -> list[PasswordRecord]:
        return [PasswordRecord(u, tuple(v.get("roles", ()))) for u, v in self._users.items()]

    def verify(self, user: str, password: str) -> PasswordRecord:
        """The user's record if the password is theirs; :class:`UnauthorizedError` else.

        Slow on purpose (one Argon2id verification, also for an unknown user).
        """
        self.refresh()
        entry = self._users.get(user) if isinstance(user, str) else None
        stored = entry["hash"] if entry is not None else self._dummy_hash()
        try:
            self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise UnauthorizedError(f"wrong password for {user!r}") from None
        if entry is None:  # the dummy's password is random: never reached
            raise UnauthorizedError(f"no user {user!r}")
        return PasswordRecord(user, tuple(entry.get("roles", ())))

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            import secrets

            self._dummy = self.hasher.hash(secrets.token_urlsafe(32))
        return self._dummy


class LoginGate:
    """Bounds the logins a server verifies: concurrency, and failures per user
    and per client address within ``WINDOW_S``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, ()) if now - t < WINDOW_S]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def check(self, user: str, client: str) -> None:
        """Raise :class:`TooManyAttemptsError` if either has failed too often lately."""
        now = self.clock()
        with self._lock:
            if (
                len(self._recent(f"user:{user}", now)) >= MAX_USER_FAILURES
                or len(self._recent(f"client:{client}", now)) >= MAX_CLIENT_FAILURES
            ):
                raise TooManyAttemptsError(
                    "too many failed logins lately: wait a quarter of an hour"
                )

    def failed(self, user: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"user:{user}", f"client:{client}"):
                self._failures.setdefault(key, []).append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_TRACKED:
                self._failures.popitem(last=False)

    def slot(self) -> _Slot:
        """A verification slot (a context manager); :class:`LoginBusyError` if none is free."""
        if not self._slots.acquire(blocking=False):
            raise LoginBusyError("the server is verifying other logins: try again shortly")
        return _Slot(self._slots)


class _Slot:
    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self._slots = slots

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
