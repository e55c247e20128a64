"""Where a node and its wallet keep their files: the home directory.

One rule for the node and every CLI command, so ``focusflow devnet`` and
``focusflow keys`` agree without being told twice: an explicit ``--home``
wins, then ``$FOCUSFLOW_HOME``, then ``<data dir>/focusflow/devnet`` with the
data dir of the XDG Base Directory spec (``$XDG_DATA_HOME`` when it is an
absolute path, else ``~/.local/share``). ``platformdirs`` is not a dependency,
and the XDG rule is the one documented in docs/api.md on every platform.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

from focusflow.core.errors import InvalidParameterError

ENV_HOME = "FOCUSFLOW_HOME"


def default_home() -> Path:
    """``<XDG data dir>/focusflow/devnet``."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "focusflow" / "devnet"


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    """The home directory to use (not created): ``home``, else $FOCUSFLOW_HOME, else default."""
    if home is not None and str(home) != "":
        return Path(home).expanduser()
    env = os.environ.get(ENV_HOME, "")
    if env:
        return Path(env).expanduser()
    return default_home()


def tokens_path(home: Path) -> Path:
    """A node's scoped API tokens (stored hashed), beside its admin token."""
    return Path(home) / "tokens.json"


def passwords_path(home: Path) -> Path:
    """A node's operators' passwords, as Argon2id hashes."""
    return Path(home) / "passwords.json"


def keys_dir(home: Path) -> Path:
    """The wallet's directory inside a home."""
    return Path(home) / "keys"


def validator_key_path(home: Path) -> Path:
    """The node's consensus key (block and vote signing) inside a home.

    Homes made before the account key was split off also use it as the
    validator's account; see :func:`account_key_path`.
    """
    return Path(home) / "validator_key"


def account_key_path(home: Path) -> Path:
    """The validator's account key (its bonded stake, fees, rewards) inside a home:
    kept apart from the consensus key so that a leaked signing key cannot move
    funds and the account can be kept offline. Absent in homes made before the
    split, where the consensus key is the account."""
    return Path(home) / "account_key"


#: ``open_private`` modes and the flag each adds to create-for-writing.
_PRIVATE_MODES = {"w": os.O_TRUNC, "wb": os.O_TRUNC, "a": os.O_APPEND, "ab": os.O_APPEND}


@overload
def open_private(path: str | os.PathLike[str], mode: Literal["w", "a"] = "w") -> TextIO: ...
@overload
def open_private(path: str | os.PathLike[str], mode: Literal["wb", "ab"]) -> BinaryIO: ...
def open_private(path: str | os.PathLike[str], mode: str = "w") -> IO[Any]:
    """Open ``path`` for writing (``w``/``wb`` truncate, ``a``/``ab`` append),
    created owner-only (0600) when new.

    What a home holds (keys, the signer's log, the node's settings) is its
    owner's alone; ``open()`` would create files with the umask's permissions
    and leave them readable by others until a later chmod.
    """
    if mode not in _PRIVATE_MODES:
        raise ValueError(f"open_private writes: mode must be one of {sorted(_PRIVATE_MODES)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | _PRIVATE_MODES[mode], 0o600)
    return os.fdopen(fd, mode)


def write_private_file(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` durably: a temporary file created with
    ``mode`` (owner-only by default) is written and fsynced, renamed over
    ``path``, and the directory fsynced.

    A crash leaves either the old file or the new one, never a torn or empty
    one: a home whose genesis, key or token is half written cannot start.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


#: Bytes of randomness in a new bearer token (the node's admin token, Konomi's token).
TOKEN_BYTES = 32


def create_token_file(path: str | os.PathLike[str]) -> str:
    """Write a fresh random bearer token to ``path`` (owner-only, durable); returns it."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    write_private_file(path, token + "\n")
    return token


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The bearer token in ``path`` (surrounding whitespace removed).

    Raises OSError when the file cannot be read and ValueError when it is empty:
    an empty token would let anyone in.
    """
    token = Path(path).read_text().strip()
    if not token:
        raise InvalidParameterError(f"the token file {path} is empty")
    return token


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an IP address or ``localhost``) names this machine only:
    what a server may bind without being told that it faces the network."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def fsync_dir(path: str | os.PathLike[str], *, strict: bool = False) -> None:
    """Make a new or renamed entry in directory ``path`` durable (POSIX: fsync
    the directory; the file's own bytes must be synced already).

    Where the directory cannot be opened or synced (some platforms and file
    systems) this is skipped, unless ``strict``: a log that promises
    durability (the consensus WAL) must hear of it.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if strict:
            raise
    finally:
        os.close(fd)
