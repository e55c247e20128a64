"""The append-only edge-delta log.

Blocks append batches (new links, stake changes); nothing is ever rewritten.
Consumers remember the sequence number they have seen and ask for what came
after, which is how the focus engine learns what to patch and where to push.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.graph.links import LinkBatch, StakeBatch


@dataclass(frozen=True)
class LogEntry:
    seq: int
    batch: LinkBatch | StakeBatch


class DeltaLog:
    """Ordered batches with sequence numbers starting at 1."""

    def __init__(self) -> None:
        self._entries: list[LogEntry] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def head(self) -> int:
        """Sequence number of the newest entry (0 when empty)."""
        return len(self._entries)

    def append(self, batch: LinkBatch | StakeBatch) -> int:
        seq = len(self._entries) + 1
        self._entries.append(LogEntry(seq, batch))
        return seq

    def since(self, seq: int) -> list[LogEntry]:
        """Entries with sequence number greater than ``seq``."""
        return self._entries[seq:]
