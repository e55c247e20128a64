"""The texts of particles, kept by one node: content verified by its hash, not state.

A particle is a CID; the chain never holds what it names. A node may keep the
text a CID was made from (``core.cid.cid_of_text``: CIDv1, raw codec, sha2-256
of the UTF-8 bytes) so that people see "cats" instead of ``bafkrei...``. Like
content on IPFS, a text needs no trust: anyone recomputes its CID, and a text
whose CID differs from the one it is offered for is refused here
(``text_mismatch``). Nothing of this is consensus: another node may keep other
texts, and the state root does not cover them.

The store is one LMDB environment of its own (``<home>/texts``; the chain's
store in ``data/`` is replaced whole by a state sync, the texts are not), with
one database mapping a binary CID to the UTF-8 bytes of its text. Writes are
durable when :meth:`ParticleTexts.put` returns (LMDB syncs each write
transaction). It is bounded by what the caller admits: at most
``MAX_TEXT_BYTES`` a text and ``MAX_BATCH`` texts a write, and the node admits
only texts of particles that links, which cost their senders, name
(``api.routes_texts``), or that a committed link transaction carried
(``modules.links``: every node executing the block stores them).

Beside the LMDB a full-text index (``search.sqlite``: SQLite's FTS5 with the
trigram tokenizer, from Python's own ``sqlite3``) answers :meth:`ParticleTexts.search`
without case, by prefix and by substring. It is written in the same call as
the texts, so it is up to date as soon as a block's texts are stored, and is
rebuilt from the LMDB when the two disagree on opening (an index deleted, or
texts kept before it existed).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lmdb

from focusflow.core.cid import raw_cid_bytes
from focusflow.core.errors import (
    FocusflowError,
    InvalidParameterError,
    StoreError,
    TextMismatchError,
    TextTooLargeError,
)

__all__ = [
    "MAX_BATCH",
    "MAX_TEXT_BYTES",
    "ParticleTexts",
    "SearchIndex",
    "TextMatch",
    "TextMismatchError",
    "TextTooLargeError",
    "UnknownTextError",
    "cid_of_text_bytes",
    "fold",
    "text_bytes",
]

#: Longest text kept for a particle, in UTF-8 bytes (a paragraph, a title, a word).
MAX_TEXT_BYTES = 4096
#: Most texts written in one call (one write transaction; one API request).
MAX_BATCH = 64
#: Address space reserved for the map (sparse: the file grows as texts come).
MAP_SIZE = 1 << 36
#: Longest search query, in characters.
MAX_QUERY_CHARS = 256
#: Most matches one search returns.
MAX_SEARCH_RESULTS = 100
#: A substring match needs this many characters (the index holds trigrams);
#: a shorter query matches texts by prefix only.
MIN_SUBSTRING_CHARS = 3
#: The search index's file inside the store's directory.
SEARCH_FILE = "search.sqlite"


class UnknownTextError(FocusflowError):
    """The node keeps no text for this particle."""

    code = "unknown_text"


def text_bytes(text: object) -> bytes:
    """The UTF-8 bytes of a particle text, refused unless 1 to MAX_TEXT_BYTES of them.

    Checked before anything else is done with the text: a request cannot make
    the node hash or store more than this per text.
    """
    if not isinstance(text, str) or not text:
        raise InvalidParameterError("a particle text is a non-empty string")
    if len(text) > MAX_TEXT_BYTES:
        raise TextTooLargeError(
            f"a particle text is at most {MAX_TEXT_BYTES} UTF-8 bytes; "
            f"this one has {len(text)} characters"
        )
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameterError(
            "a particle text must be valid Unicode (no lone surrogates)"
        ) from None
    if len(raw) > MAX_TEXT_BYTES:
        raise TextTooLargeError(
            f"a particle text is at most {MAX_TEXT_BYTES} UTF-8 bytes; this one has {len(raw)}"
        )
    return raw


def fold(text: str) -> str:
    """A text as the search index compares it: case-folded, runs of white space (and
    NUL, which FTS5's query syntax cannot hold) one space."""
    return " ".join(text.casefold().replace("\x00", " ").split())


@dataclass(frozen=True)
class TextMatch:
    """One search result: the particle, its text, and how it matched the query."""

    cid: bytes
    text: str
    #: ``exact`` (the whole text, without case), ``prefix`` or ``substring``.
    match: str


_MATCH_ORDER = {"exact": 0, "prefix": 1, "substring": 2}


class SearchIndex:
    """The full-text index of a text store (module docstring), in one SQLite file.

    One connection, used under a lock by the commit thread (writes) and the
    API's worker threads (searches): SQLite's own locking is not relied on.
    """

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.executescript(
                # The index is rebuilt from the LMDB whenever their counts differ,
                # so a commit lost with the power needs no sync of its own.
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                "CREATE TABLE IF NOT EXISTS texts("
                " id INTEGER PRIMARY KEY, cid BLOB UNIQUE NOT NULL,"
                " text TEXT NOT NULL, folded TEXT NOT NULL);"
                "CREATE INDEX IF NOT EXISTS texts_folded ON texts(folded);"
                "CREATE VIRTUAL TABLE IF NOT EXISTS grams USING fts5("
                " folded, content='texts', content_rowid='id', tokenize='trigram');"
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the particle text index at {path}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM texts").fetchone()[0])

    def add(self, items: Iterable[tuple[bytes, str]]) -> None:
        """Index each ``(binary CID, text)`` not indexed yet, in one transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                for cid, text in items:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO texts(cid, text, folded) VALUES (?, ?, ?)",
                        (cid, text, fold(text)),
                    )
                    if cur.rowcount:
                        db.execute(
                            "INSERT INTO grams(rowid, folded) VALUES (?, ?)",
                            (cur.lastrowid, fold(text)),
                        )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def clear(self) -> None:
        with self._lock:
            self._db.executescript(
                "BEGIN; DELETE FROM texts; INSERT INTO grams(grams) VALUES ('delete-all'); COMMIT;"
            )

    def search(self, query: str, limit: int) -> list[TextMatch]:
        """Texts matching ``query`` without case: exact first, then by prefix, then
        by substring (three or more characters), shorter texts first within each."""
        q = fold(query)
        if not q:
            return []
        # Every character at or above the folded query, below its last one's successor.
        upper = q[:-1] + chr(ord(q[-1]) + 1) if ord(q[-1]) < 0x10FFFF else None
        found: dict[bytes, TextMatch] = {}
        with self._lock:
            db = self._db
            rows = db.execute(
                "SELECT cid, text, folded FROM texts WHERE folded >= ?"
                + (" AND folded < ?" if upper is not None else "")
                + " ORDER BY length(folded), folded LIMIT ?",
                (q, upper, limit) if upper is not None else (q, limit),
            ).fetchall()
            for cid, text, folded in rows:
                kind = "exact" if folded == q else "prefix"
                found[bytes(cid)] = TextMatch(bytes(cid), text, kind)
            if len(q) >= MIN_SUBSTRING_CHARS and len(found) < limit:
                phrase = '"' + q.replace('"', '""') + '"'
                rows = db.execute(
                    "SELECT t.cid, t.text FROM grams JOIN texts t ON t.id = grams.rowid"
                    " WHERE grams MATCH ? ORDER BY length(t.folded), t.folded LIMIT ?",
                    (phrase, limit + len(found)),
                ).fetchall()
                for cid, text in rows:
                    key = bytes(cid)
                    if key not in found:
                        found[key] = TextMatch(key, text, "substring")
        ordered = sorted(found.values(), key=lambda m: (_MATCH_ORDER[m.match], len(m.text), m.text))
        return ordered[:limit]


def cid_of_text_bytes(raw: bytes) -> bytes:
    """The binary CID of a text's UTF-8 bytes (what ``cid_of_text`` spells)."""
    return raw_cid_bytes(raw)


class ParticleTexts:
    """A node's particle texts in an LMDB environment at ``path`` (see the module docstring)."""

    def __init__(self, path: Path | str, *, map_size: int = MAP_SIZE) -> None:
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.env = lmdb.open(str(self.path), map_size=map_size, max_dbs=1)
        except lmdb.Error as exc:
            raise StoreError(f"cannot open the particle texts at {self.path}: {exc}") from None
        self._texts = self.env.open_db(b"texts")
        self._lock = threading.Lock()
        self.index = SearchIndex(self.path / SEARCH_FILE)
        if len(self.index) != len(self):
            self._reindex()
        #: Bumped by every write that added a text, so renderings that show
        #: texts (the API's cached top list) know when to render again.
        self.generation = 0

    def close(self) -> None:
        self.index.close()
        self.env.close()

    def _reindex(self) -> None:
        """Rebuild the search index from the LMDB, a thousand texts a transaction."""
        self.index.clear()
        batch: list[tuple[bytes, str]] = []
        with self.env.begin(db=self._texts) as txn:
            for cid, raw in txn.cursor():
                batch.append((bytes(cid), bytes(raw).decode("utf-8")))
                if len(batch) >= 1000:
                    self.index.add(batch)
                    batch = []
        self.index.add(batch)

    def search(self, query: str, limit: int = 20) -> list[TextMatch]:
        """Kept texts matching ``query`` (:meth:`SearchIndex.search`); ``query`` is at
        most MAX_QUERY_CHARS characters (one of white space only matches nothing),
        ``limit`` 1 to MAX_SEARCH_RESULTS."""
        if not isinstance(query, str):
            raise InvalidParameterError("a search query is a text")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidParameterError(
                f"a search query is at most {MAX_QUERY_CHARS} characters; this one has {len(query)}"
            )
        if not 1 <= limit <= MAX_SEARCH_RESULTS:
            raise InvalidParameterError(f"a search limit is 1 to {MAX_SEARCH_RESULTS}")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidParameterError("a search query must be valid Unicode") from None
        return self.index.search(query, limit)

    def __enter__(self) -> ParticleTexts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        with self.env.begin(db=self._texts) as txn:
            return int(txn.stat(self._texts)["entries"])

    def get(self, cid: bytes) -> str | None:
        """The text kept for a binary CID, or None."""
        with self.env.begin(db=self._texts) as txn:
            raw = txn.get(cid)
        return None if raw is None else bytes(raw).decode("utf-8")

    def get_many(self, cids: Iterable[bytes]) -> list[str | None]:
        """:meth:`get` of many CIDs in one read transaction, in order."""
        with self.env.begin(db=self._texts) as txn:
            found = [txn.get(cid) for cid in cids]
        return [None if raw is None else bytes(raw).decode("utf-8") for raw in found]

    def items(self) -> list[tuple[bytes, str]]:
        """Every kept ``(binary CID, text)``, read in one transaction: the facts of
        the Datalog ``text`` relation over this node."""
        with self.env.begin(db=self._texts) as txn:
            return [(bytes(c), bytes(r).decode("utf-8")) for c, r in txn.cursor()]

    def put(self, items: Sequence[tuple[bytes, str]]) -> int:
        """Keep each ``(binary CID, text)``; how many were new.

        Every text is checked first (size, then that it hashes to its CID) and
        nothing is written unless all pass; then all are written in one durable
        transaction. A text already kept is kept as it is (it is the same text:
        the CID says so).
        """
        if len(items) > MAX_BATCH:
            raise InvalidParameterError(f"at most {MAX_BATCH} texts are kept at once")
        checked = []
        for cid, text in items:
            raw = text_bytes(text)
            if cid_of_text_bytes(raw) != cid:
                raise TextMismatchError(
                    f"the text {text[:40]!r} does not hash to the CID it was given for"
                )
            checked.append((bytes(cid), raw))
        if not checked:
            return 0
        with self._lock:
            with self.env.begin(write=True, db=self._texts) as txn:
                new = [(cid, raw) for cid, raw in checked if txn.put(cid, raw, overwrite=False)]
            self.index.add((cid, raw.decode("utf-8")) for cid, raw in new)
        if new:
            self.generation += 1
        return len(new)
