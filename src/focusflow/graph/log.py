"""The edge-delta log.

Blocks append batches (new links, stake changes, link factors); nothing is
ever rewritten.
Consumers remember the sequence number they have seen and ask for what came
after, which is how the focus engine learns what to patch and where to push.

Entries every consumer has seen can be trimmed (:meth:`DeltaLog.trim`): the
graph's columns already hold their links, so a log kept whole would only be a
second copy of the graph (20 bytes a link) in memory, in every copy of a focus
state and in every checkpoint. Sequence numbers go on from where they were, so
a consumer's remembered number stays meaningful after a trim.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.core.structure import Check
from focusflow.graph.links import FactorBatch, LinkBatch, StakeBatch

#: What the log holds: new links, new stakes, new link factors.
Batch = LinkBatch | StakeBatch | FactorBatch


@dataclass(frozen=True)
class LogEntry:
    seq: int
    batch: Batch


class DeltaLog:
    """Ordered batches with sequence numbers starting at 1; the first
    ``trimmed`` of them are dropped."""

    def __init__(self) -> None:
        self._entries: list[LogEntry] = []
        self._trimmed = 0

    def __len__(self) -> int:
        """Entries held (appended and not trimmed)."""
        return len(self._entries)

    @property
    def head(self) -> int:
        """Sequence number of the newest entry (0 when none was ever appended)."""
        return self._trimmed + len(self._entries)

    @property
    def trimmed(self) -> int:
        """Entries dropped from the front: those numbered 1 .. ``trimmed``."""
        return self._trimmed

    def __deepcopy__(self, memo: dict[int, object]) -> DeltaLog:
        """A copy with its own list of the same entries: entries and their
        batches are never changed once appended, so copies share them."""
        twin = DeltaLog()
        twin._entries = list(self._entries)
        twin._trimmed = self._trimmed
        memo[id(self)] = twin
        return twin

    def append(self, batch: Batch) -> int:
        seq = self.head + 1
        self._entries.append(LogEntry(seq, batch))
        return seq

    def since(self, seq: int) -> list[LogEntry]:
        """Entries with sequence number greater than ``seq``; ValueError when
        some of them were trimmed (a consumer that fell behind a trim)."""
        if seq < self._trimmed:
            raise ValueError(f"log entries {seq + 1} .. {self._trimmed} were trimmed")
        return self._entries[seq - self._trimmed :]

    def trim(self, seen: int) -> int:
        """Drop the entries numbered up to ``seen`` (what every consumer has
        read); returns how many were dropped."""
        drop = max(0, min(seen, self.head) - self._trimmed)
        if drop:
            del self._entries[:drop]
            self._trimmed += drop
        return drop

    def check_structure(
        self, check: Check, n_particles: int, n_neurons: int, n_links: int
    ) -> list[LinkBatch]:
        """Entries numbered ``trimmed + 1``, ``trimmed + 2``, ... in order,
        each batch's ids within the interned counts (see the batches' own
        checks); returns the link batches in order."""
        attrs = check.fields(self, DeltaLog, ("_entries", "_trimmed"))
        entries = attrs["_entries"]
        check.instance("_entries", entries, list)
        trimmed = check.integer("_trimmed", attrs["_trimmed"], 0)
        links = []
        for i, entry in enumerate(entries):
            at = check.at(f"_entries[{i}]")
            fields = at.fields(entry, LogEntry, ("seq", "batch"))
            at.integer("seq", fields["seq"], trimmed + i + 1, trimmed + i + 1)
            batch = fields["batch"]
            if type(batch) is LinkBatch:
                batch.check_structure(at.at("batch"), n_particles, n_neurons)
                links.append(batch)
            elif type(batch) is StakeBatch:
                batch.check_structure(at.at("batch"), n_neurons)
            elif type(batch) is FactorBatch:
                batch.check_structure(at.at("batch"), n_links)
            else:
                at.fail("batch", f"is a {type(batch).__name__}, not a link, stake or factor batch")
        return links
