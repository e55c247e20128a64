"""A JSON document in one file that several processes read and change.

The CLI changes a node's credential files while the node reads them; two
CLIs may change one at once. Writes go to a temporary file that is synced
and renamed over the old one (a reader never sees half a file), under an
exclusive ``flock`` on a side file, after reading the file again under that
lock (a writer never drops what another wrote since it last read). Readers
ask :meth:`SharedJson.changed` (one ``stat``) before reading again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from focusflow.core.errors import InvalidParameterError


class SharedJson:
    """``path``'s JSON document; ``what`` names it in errors ("token file")."""

    def __init__(self, path: Path, what: str, empty: Any) -> None:
        self.path = Path(path)
        self.what = what
        self.empty = empty
        self._seen: tuple[int, int, int] | None = None

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def changed(self) -> bool:
        """Whether the file differs from what :meth:`read` last returned."""
        return self._stamp() != self._seen or self._seen is None

    def read(self) -> Any:
        """The document (``empty`` when there is no file yet)."""
        stamp = self._stamp()
        doc = self.empty
        if stamp is not None:
            try:
                doc = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise InvalidParameterError(f"{self.path}: not a {self.what}: {exc}") from None
        self._seen = stamp
        return doc

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file's exclusive lock (read it again inside, then :meth:`write`)."""
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def write(self, doc: Any) -> None:
        """Replace the document: owner-only, synced, renamed into place."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        self._seen = self._stamp()
