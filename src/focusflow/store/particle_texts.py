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
(``api.routes_texts``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import lmdb

from focusflow.core.cid import raw_cid_bytes
from focusflow.core.errors import FocusflowError, InvalidParameterError, StoreError

#: Longest text kept for a particle, in UTF-8 bytes (a paragraph, a title, a word).
MAX_TEXT_BYTES = 4096
#: Most texts written in one call (one write transaction; one API request).
MAX_BATCH = 64
#: Address space reserved for the map (sparse: the file grows as texts come).
MAP_SIZE = 1 << 36


class TextTooLargeError(FocusflowError):
    """A particle text is longer than MAX_TEXT_BYTES in UTF-8."""

    code = "text_too_large"


class TextMismatchError(FocusflowError):
    """A text offered for a CID does not hash to that CID."""

    code = "text_mismatch"


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
        #: Bumped by every write that added a text, so renderings that show
        #: texts (the API's cached top list) know when to render again.
        self.generation = 0

    def close(self) -> None:
        self.env.close()

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
        with self._lock, self.env.begin(write=True, db=self._texts) as txn:
            added = sum(1 for cid, raw in checked if txn.put(cid, raw, overwrite=False))
        if added:
            self.generation += 1
        return added
