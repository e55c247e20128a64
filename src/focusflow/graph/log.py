"""The append-only edge-delta log.

Blocks append batches (new links, stake changes); nothing is ever rewritten.
Consumers remember the sequence number they have seen and ask for what came
after, which is how the focus engine learns what to patch and where to push.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.core.structure import Check
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

    def check_structure(self, check: Check, n_particles: int, n_neurons: int) -> list[LinkBatch]:
        """Entries numbered 1, 2, ... in order, each batch's ids within the
        interned counts (see the batches' own checks); returns the link
        batches in order."""
        attrs = check.fields(self, DeltaLog, ("_entries",))
        entries = attrs["_entries"]
        check.instance("_entries", entries, list)
        links = []
        for i, entry in enumerate(entries):
            at = check.at(f"_entries[{i}]")
            fields = at.fields(entry, LogEntry, ("seq", "batch"))
            at.integer("seq", fields["seq"], i + 1, i + 1)
            batch = fields["batch"]
            if type(batch) is LinkBatch:
                batch.check_structure(at.at("batch"), n_particles, n_neurons)
                links.append(batch)
            elif type(batch) is StakeBatch:
                batch.check_structure(at.at("batch"), n_neurons)
            else:
                at.fail("batch", f"is a {type(batch).__name__}, not a link or stake batch")
        return links
