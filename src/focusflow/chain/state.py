"""Pending state: writes of a block (and of one transaction inside it) over the store.

Execution never writes the store directly. A block's changes collect in a
:class:`PendingState` that reads through to the committed version; each
transaction runs in a child that is merged into the block on success and
dropped on failure, so a failing transaction leaves nothing behind. The
block's merged writes become one store commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from focusflow.store import check_key

Getter = Callable[[bytes], bytes | None]
Scanner = Callable[[bytes], Iterable[tuple[bytes, bytes]]]


class Readable(Protocol):
    """Anything that reads state by key: a pending state, or a store reader."""

    def get(self, key: bytes) -> bytes | None: ...


class PendingState:
    """Reads see this layer's writes first, then the parent's (ultimately the store)."""

    def __init__(self, parent: Getter, scanner: Scanner | None = None) -> None:
        self._parent = parent
        self._scanner = scanner
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._parent(key)

    def put(self, key: bytes, value: bytes) -> None:
        check_key(key)
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        check_key(key)
        self.writes[key] = None

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Live key/value pairs under ``prefix``, in key order, pending writes included."""
        found: dict[bytes, bytes | None] = (
            dict(self._scanner(prefix)) if self._scanner is not None else {}
        )
        for key, value in self.writes.items():
            if key.startswith(prefix):
                found[key] = value
        return sorted((k, v) for k, v in found.items() if v is not None)

    def child(self) -> PendingState:
        return PendingState(self.get, self.scan)

    def frozen(self) -> PendingState:
        """This layer as it is now, over the same parent: writes made to it
        later do not show (the block scheduler's speculative runs read it
        while the block is built on the original)."""
        copy = PendingState(self._parent, self._scanner)
        copy.writes = dict(self.writes)
        return copy

    def merge(self, child: PendingState) -> None:
        self.writes.update(child.writes)
