"""Compiled WASM modules kept on disk, so a restart or an evicted module costs a
file read instead of a compile.

wasmtime's ``Module.deserialize`` runs machine code from the bytes it is
given and is unsafe on bytes anyone else could have written. So an artifact
is trusted only because of where it lies and what it says of itself:

* the directory is the node's own (created 0700, refused when another user
  owns it or others may write to it), and only this module writes there, each
  file under a fresh name first and then renamed into place (no reader sees
  half a file);
* a file's name holds the code's hash and the engine's fingerprint (the
  wasmtime version, the engine's settings, the machine and the version of
  the checks ``wasm.store`` made), so an artifact of another engine or of
  code checked under other rules is never looked up;
* a file starts with the SHA-256 of the rest, checked before deserializing,
  so a torn or damaged file is recompiled, not run.

A file that fails any of this is deleted and the module compiled again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from focusflow.core.errors import HomeError

log = logging.getLogger("focusflow.vm.wasm")

#: The first bytes of every artifact, before the digest of the rest.
MAGIC = b"focusflow-cwasm\n"


class Artifacts:
    """The compiled modules of one engine in ``path``, by code hash."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.path.stat()
        if info.st_uid != os.geteuid():
            raise HomeError(f"{self.path} belongs to another user: compiled code is not run")
        if stat.S_IMODE(info.st_mode) & 0o022:
            raise HomeError(f"{self.path} is writable by others: compiled code is not run")

    def file(self, code_hash: bytes) -> Path:
        return self.path / f"{code_hash.hex()}-{self.fingerprint}.cwasm"

    def load(self, code_hash: bytes, engine: Any) -> Any | None:
        """The module kept for ``code_hash``, or None (none kept, or a file that
        does not check out, which is removed)."""
        import wasmtime

        path = self.file(code_hash)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("compiled module unreadable", extra={"fields": {"path": str(path)}})
            log.debug("read failed: %s", exc)
            return None
        digest, payload = raw[len(MAGIC) : len(MAGIC) + 32], raw[len(MAGIC) + 32 :]
        if not raw.startswith(MAGIC) or hashlib.sha256(payload).digest() != digest:
            self._drop(path, "its digest does not match")
            return None
        try:
            return wasmtime.Module.deserialize(engine, payload)
        except wasmtime.WasmtimeError:
            self._drop(path, "wasmtime refuses it")
            return None

    def save(self, code_hash: bytes, module: Any) -> None:
        """Keep ``module``'s compiled code; a failure to write only costs a
        later compile, so it is logged, not raised."""
        payload = bytes(module.serialize())
        path = self.file(code_hash)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".cwasm")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(MAGIC + hashlib.sha256(payload).digest() + payload)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("compiled module not kept", extra={"fields": {"path": str(path)}})
            log.debug("write failed: %s", exc)

    def _drop(self, path: Path, why: str) -> None:
        log.warning(f"compiled module dropped: {why}", extra={"fields": {"path": str(path)}})
        path.unlink(missing_ok=True)
