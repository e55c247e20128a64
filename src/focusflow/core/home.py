"""Where a node and its wallet keep their files: the home directory.

One rule for the node and every CLI command, so ``focusflow devnet`` and
``focusflow keys`` agree without being told twice: an explicit ``--home``
wins, then ``$FOCUSFLOW_HOME``, then ``<data dir>/focusflow/devnet`` with the
data dir of the XDG Base Directory spec (``$XDG_DATA_HOME`` when it is an
absolute path, else ``~/.local/share``). ``platformdirs`` is not a dependency,
and the XDG rule is the one documented in docs/api.md on every platform.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def keys_dir(home: Path) -> Path:
    """The wallet's directory inside a home."""
    return Path(home) / "keys"


def validator_key_path(home: Path) -> Path:
    """The node's validator key (consensus signing, and its account) inside a home."""
    return Path(home) / "validator_key"


#: ``open_private`` modes and the flag each adds to create-for-writing.
_PRIVATE_MODES = {"w": os.O_TRUNC, "wb": os.O_TRUNC, "a": os.O_APPEND, "ab": os.O_APPEND}


def open_private(path: str | os.PathLike[str], mode: str = "w"):
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
