"""A cube's ledger: hash-linked entries of decided proposals, each with its signatures.

An entry is the canonical CBOR of the map ``{"height", "prev", "payload", "refs",
"votes"}``: its height (0 for the genesis), the hash of the entry before it (32
zero bytes for the genesis), the decided proposal's bytes, the heads of the
connected cubes' ledgers it cross-references (``{cube id: head hash}``), and
the votes ``[[vertex, signature], ...]`` in vertex order. An entry's hash is
SHA-256 of its bytes; the canonical encoding makes those bytes unique for its
content, so nothing is re-encoded to hash it.

Each vote signs :func:`~focusflow.konomi.votes.vote_message` over the entry's
*proposal digest*, SHA-256 of the canonical CBOR of ``[prev, payload, refs]``,
so a signature binds the proposal to its place in the chain and to the
cross-references: changing any of them, or moving an entry, breaks its
signatures. The genesis entry's payload is ``{"cube": id, "keys": {vertex:
public key}}`` and all eight vertices sign it: a verifier needs nothing but the
entries (and, to check cross-references, the other cubes' entries). Trust in a
ledger comes down to its genesis hash; pin it (``expected_head``/the genesis) to
tell one cube's ledger from another's.

:func:`verify_ledger` checks, for entry after entry: its shape, its height, its
link to the entry before, every signature under the genesis keys, the 2/3 rule
(6 of 8 distinct vertices), and the cross-references. The first failure raises
the error of its code with the entry's index. The structural checks run first
and cheap; the signatures, nearly all of the cost, are checked in parallel
threads (libsodium releases the interpreter lock). A large ledger can instead be
split into spans of consecutive entries checked in worker processes, each span
linked to the hash of the entry before it; the failures found are merged so that
the same first failure is reported as in one pass.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256
from focusflow.core.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, KeyPair, verify
from focusflow.konomi.errors import (
    LedgerBadSignatureError,
    LedgerBrokenLinkError,
    LedgerCrossRefError,
    LedgerError,
    LedgerHashMismatchError,
    LedgerMalformedError,
    LedgerNoQuorumError,
    LedgerOutOfOrderError,
    LedgerTooLargeError,
)
from focusflow.konomi.votes import (
    VOTERS,
    Decision,
    Evidence,
    Tally,
    Vote,
    quorum,
    sign_vote,
    vote_message,
)

GENESIS_PREV = bytes(32)
HASH_SIZE = 32
#: Largest decided proposal an entry carries.
MAX_PAYLOAD = 16 * 1024
#: Most cross-references in one entry.
MAX_REFS = 64
#: Largest encoded entry: the payload, the votes and the references with room to spare.
MAX_ENTRY_BYTES = MAX_PAYLOAD + MAX_REFS * 200 + 2048
#: Most entries one verification reads (a file, a request).
MAX_ENTRIES = 1_000_000
_FIELDS = frozenset({"height", "prev", "payload", "refs", "votes"})
_ORDER = {v: i for i, v in enumerate(VOTERS)}
#: Signatures per verification task: large enough that a task's overhead is small.
_CHUNK = 4096
#: Fewest entries worth starting worker processes for (about 0.1 s of checks on one core).
_PROCESS_MIN_ENTRIES = 256


def proposal_digest(prev: bytes, payload: bytes, refs: Mapping[str, bytes]) -> bytes:
    """What the vertices sign at an entry: its proposal bound to its place and references."""
    return sha256(encode([prev, payload, dict(refs)]))


@dataclass(frozen=True)
class Entry:
    """One ledger entry and its canonical bytes."""

    height: int
    prev: bytes
    payload: bytes
    refs: dict[str, bytes]
    votes: tuple[tuple[str, bytes], ...]
    data: bytes = field(repr=False, compare=False)

    @classmethod
    def build(
        cls,
        height: int,
        prev: bytes,
        payload: bytes,
        refs: Mapping[str, bytes],
        votes: Sequence[tuple[str, bytes]],
    ) -> Entry:
        """An entry from its fields (votes put in vertex order)."""
        ordered = tuple(sorted(votes, key=lambda v: _ORDER.get(v[0], len(_ORDER))))
        body = {
            "height": height,
            "prev": prev,
            "payload": payload,
            "refs": dict(refs),
            "votes": [list(v) for v in ordered],
        }
        return cls(height, prev, payload, dict(refs), ordered, encode(body))

    @property
    def hash(self) -> bytes:
        """SHA-256 of the entry's canonical bytes."""
        return sha256(self.data)

    @property
    def digest(self) -> bytes:
        """The proposal digest its votes sign."""
        return proposal_digest(self.prev, self.payload, self.refs)

    def to_json(self) -> dict[str, Any]:
        """A readable form (bytes as hex); the wire form is :attr:`data` in hex."""
        return {
            "height": self.height,
            "hash": self.hash.hex(),
            "prev": self.prev.hex(),
            "payload": self.payload.hex(),
            "refs": {k: v.hex() for k, v in self.refs.items()},
            "votes": {v: s.hex() for v, s in self.votes},
        }


def _bytes(value: object, size: int | None, what: str, index: int) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        want = f"{size} bytes" if size is not None else "bytes"
        raise LedgerMalformedError(f"entry {index}: {what} must be {want}", index)
    return value


def decode_entry(data: bytes, index: int) -> Entry:
    """The entry whose canonical encoding is ``data``; LedgerMalformedError otherwise.
    ``index`` (its position in what is checked) goes into the error."""
    if not isinstance(data, bytes) or len(data) > MAX_ENTRY_BYTES:
        raise LedgerMalformedError(f"entry {index}: not bytes of at most {MAX_ENTRY_BYTES}", index)
    try:
        body = decode(data, "ledger entry")
    except DecodeError as exc:
        raise LedgerMalformedError(f"entry {index}: {exc}", index) from None
    if not isinstance(body, dict) or set(body) != _FIELDS:
        raise LedgerMalformedError(f"entry {index}: fields must be {sorted(_FIELDS)}", index)
    height = body["height"]
    if not isinstance(height, int) or isinstance(height, bool) or height < 0:
        raise LedgerMalformedError(f"entry {index}: height must be a natural number", index)
    prev = _bytes(body["prev"], HASH_SIZE, "prev", index)
    payload = _bytes(body["payload"], None, "payload", index)
    if len(payload) > MAX_PAYLOAD:
        raise LedgerMalformedError(f"entry {index}: payload over {MAX_PAYLOAD} bytes", index)
    refs = body["refs"]
    if not isinstance(refs, dict) or len(refs) > MAX_REFS:
        raise LedgerMalformedError(f"entry {index}: refs must be a map of <= {MAX_REFS}", index)
    for k, v in refs.items():
        if not isinstance(k, str):
            raise LedgerMalformedError(f"entry {index}: a ref's cube id must be text", index)
        _bytes(v, HASH_SIZE, f"ref {k!r}", index)
    votes = body["votes"]
    if not isinstance(votes, list) or len(votes) > len(VOTERS):
        raise LedgerMalformedError(f"entry {index}: votes must be a list of <= 8", index)
    out: list[tuple[str, bytes]] = []
    for vote in votes:
        if not (isinstance(vote, list) and len(vote) == 2 and vote[0] in _ORDER):
            raise LedgerMalformedError(f"entry {index}: a vote must be [vertex, signature]", index)
        out.append((vote[0], _bytes(vote[1], SIGNATURE_SIZE, "a signature", index)))
    ranks = [_ORDER[v] for v, _ in out]
    if ranks != sorted(set(ranks)):
        raise LedgerMalformedError(
            f"entry {index}: votes must be in vertex order, one per vertex", index
        )
    return Entry(height, prev, payload, refs, tuple(out), data)


def genesis_payload(cube_id: str, public_keys: Mapping[str, bytes]) -> bytes:
    """The genesis entry's payload: the cube's id and its vertices' public keys."""
    return encode({"cube": cube_id, "keys": dict(public_keys)})


def read_genesis(entry: Entry) -> tuple[str, dict[str, bytes]]:
    """The cube id and public keys a genesis entry names."""
    if entry.height != 0 or entry.prev != GENESIS_PREV:
        raise LedgerOutOfOrderError("the ledger must start with its genesis entry", 0)
    try:
        body = decode(entry.payload, "genesis payload")
    except DecodeError as exc:
        raise LedgerMalformedError(f"entry 0: {exc}", 0) from None
    if not (isinstance(body, dict) and set(body) == {"cube", "keys"}):
        raise LedgerMalformedError("entry 0: genesis payload must be {cube, keys}", 0)
    cube_id, keys = body["cube"], body["keys"]
    if not isinstance(cube_id, str) or not isinstance(keys, dict) or set(keys) != set(VOTERS):
        raise LedgerMalformedError("entry 0: genesis must name the cube and 8 vertex keys", 0)
    for v, k in keys.items():
        _bytes(k, PUBLIC_KEY_SIZE, f"{v}'s key", 0)
    if len(set(keys.values())) != len(VOTERS):
        # One key under two names would let one signer count as several vertices.
        raise LedgerMalformedError("entry 0: the 8 vertex keys must be distinct", 0)
    return cube_id, keys


@dataclass(frozen=True)
class LedgerReport:
    """What a verification found: the cube, its head, and how much was checked."""

    cube_id: str
    entries: int
    head: bytes
    signatures: int
    unchecked_refs: int

    def to_json(self) -> dict[str, Any]:
        """JSON form of a passed verification."""
        return {
            "ok": True,
            "cube_id": self.cube_id,
            "entries": self.entries,
            "height": self.entries - 1,
            "head": self.head.hex(),
            "signatures": self.signatures,
            "unchecked_refs": self.unchecked_refs,
        }


def _verify_chunk(checks: list[tuple[int, bytes, bytes, bytes]]) -> int | None:
    """The index of the first entry with a signature that does not verify, or None."""
    for index, key, signature, message in checks:
        if not verify(key, signature, message):
            return index
    return None


def _first_bad_signature(checks: list[tuple[int, bytes, bytes, bytes]], threads: int) -> int | None:
    if threads <= 1 or len(checks) <= _CHUNK:
        return _verify_chunk(checks)
    chunks = [checks[i : i + _CHUNK] for i in range(0, len(checks), _CHUNK)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        found = [i for i in pool.map(_verify_chunk, chunks) if i is not None]
    return min(found) if found else None


# Within one entry the failures rank in this order, as the checks run: its shape,
# height and link first, then its signatures, then the 2/3 rule, then its references.
_STRUCTURE, _SIGNATURE, _QUORUM, _REFS = range(4)


@dataclass
class _Span:
    """What checking a run of consecutive entries found, without the cross-references
    (those need the entries before, in order): the first failure as ``(index, rank,
    error)``, the hash of its last sound entry, and its entries' references."""

    failure: tuple[int, int, LedgerError] | None
    head: bytes
    signatures: int
    refs: list[tuple[int, dict[str, bytes]]]


def _check_span(
    cube_id: str,
    keys: Mapping[str, bytes],
    start: int,
    prev_hash: bytes,
    entries: Sequence[bytes | Entry],
    threads: int,
) -> _Span:
    """Check entries ``start, start + 1, ...`` whose predecessor hashes to ``prev_hash``:
    shape, height, link, signatures and the 2/3 rule. Self-contained, so that spans of
    one ledger can be checked in separate processes and their results merged."""
    checks: list[tuple[int, bytes, bytes, bytes]] = []
    failure: tuple[int, int, LedgerError] | None = None
    refs: list[tuple[int, dict[str, bytes]]] = []
    for index, raw in enumerate(entries, start):
        try:
            entry = _entry(raw, index)
            if entry.height != index:
                raise LedgerOutOfOrderError(
                    f"entry {index} has height {entry.height}, expected {index}", index
                )
            if entry.prev != prev_hash:
                raise LedgerBrokenLinkError(
                    f"entry {index}: prev is not the hash of entry {index - 1}", index
                )
        except LedgerError as exc:
            failure = (index, _STRUCTURE, exc)
            break
        digest = entry.digest
        for vertex, signature in entry.votes:
            checks.append(
                (index, keys[vertex], signature, vote_message(cube_id, index, vertex, digest))
            )
        prev_hash = entry.hash
        if entry.refs:
            refs.append((index, entry.refs))
        if not quorum(len(entry.votes)):
            failure = (
                index,
                _QUORUM,
                LedgerNoQuorumError(
                    f"entry {index}: {len(entry.votes)} of {len(VOTERS)} vertices signed, "
                    f"the 2/3 rule needs 6",
                    index,
                ),
            )
            break
    bad = _first_bad_signature(checks, threads)
    if bad is not None:
        failure = (
            bad,
            _SIGNATURE,
            LedgerBadSignatureError(
                f"entry {bad}: a signature does not verify under its vertex's genesis key", bad
            ),
        )
    return _Span(failure, prev_hash, len(checks), refs)


def _check_span_alone(
    job: tuple[str, dict[str, bytes], int, bytes, list[bytes | Entry]],
) -> _Span:
    """:func:`_check_span` on one thread, as a worker process runs it."""
    return _check_span(*job, threads=1)


def _check_spans(
    cube_id: str,
    keys: dict[str, bytes],
    entries: Sequence[bytes | Entry],
    genesis_hash: bytes,
    threads: int,
    processes: int,
) -> list[_Span]:
    """The entries after the genesis checked in spans: in this process (its threads
    share the signature checks) or, for a large ledger, spread over worker processes.

    In threads, decoding, hashing and building each signed message hold the
    interpreter lock; only libsodium's check runs in parallel, which bounds the gain
    to about 3 times on 16 cores. Worker processes each check whole spans: the
    parent only hashes each span's predecessor (for its link) and merges."""
    rest = entries[1:]
    if processes <= 1 or len(entries) < _PROCESS_MIN_ENTRIES:
        return [_check_span(cube_id, keys, 1, genesis_hash, rest, threads)]
    size = -(-len(rest) // (4 * processes))
    jobs = []
    for at in range(0, len(rest), size):
        before = entries[at]
        data = before.data if isinstance(before, Entry) else before
        # A predecessor that is not bytes fails in the span before; its hash is moot.
        link = sha256(data) if isinstance(data, bytes) else GENESIS_PREV
        jobs.append((cube_id, keys, at + 1, link, list(rest[at : at + size])))
    # A forked worker starts at once with the modules already imported, but forking
    # is unsafe once other threads run (a lock one of them holds stays held in the
    # child); then the workers come from a fork server started for the purpose.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(min(processes, len(jobs)), mp_context=context) as pool:
        return list(pool.map(_check_span_alone, jobs))


def _check_refs(
    entry_refs: Mapping[str, bytes],
    index: int,
    peers: Mapping[str, Mapping[bytes, int]],
    last: dict[str, int],
) -> int:
    """Check an entry's references against the peers' ledgers; returns the number
    of references to cubes whose ledger was not given."""
    unchecked = 0
    for cube, head in entry_refs.items():
        hashes = peers.get(cube)
        if hashes is None:
            unchecked += 1
            continue
        at = hashes.get(head)
        if at is None:
            raise LedgerCrossRefError(
                f"entry {index}: cube {cube!r} has no entry of hash {head.hex()}", index
            )
        if at < last.get(cube, 0):
            raise LedgerCrossRefError(
                f"entry {index}: the reference to {cube!r} goes back to height {at}", index
            )
        last[cube] = at
    return unchecked


def verify_ledger(
    entries: Sequence[bytes | Entry],
    peers: Mapping[str, Sequence[bytes | Entry]] | None = None,
    *,
    expected_head: bytes | None = None,
    threads: int | None = None,
    processes: int = 0,
) -> LedgerReport:
    """Verify a whole ledger from its entries alone (see the module docstring).

    ``peers`` maps cube ids to their ledgers' entries, each verified the same way
    first; references to cubes not in it are counted as unchecked. Raises the
    :class:`LedgerError` of the first failure, with the entry's index.

    ``threads`` (default: one per core) share the signature checks. ``processes``
    above 1 spreads a ledger of at least ``_PROCESS_MIN_ENTRIES`` entries over that
    many worker processes, started for this call: for a command-line verification,
    never inside a server (forking a process that serves requests is not safe).
    The result, and the first failure reported, are the same either way.
    """
    if not entries:
        raise LedgerOutOfOrderError("an empty ledger has no genesis", 0)
    if len(entries) > MAX_ENTRIES:
        raise LedgerTooLargeError(f"more than {MAX_ENTRIES} entries")
    threads = threads if threads is not None else os.cpu_count() or 1
    peer_hashes: dict[str, dict[bytes, int]] = {}
    for cube, their in (peers or {}).items():
        try:
            verify_ledger(their, threads=threads, processes=processes)
        except LedgerError as exc:
            # The peer's code, but no index: it would point into the other ledger.
            raise type(exc)(f"the ledger of cross-referenced cube {cube!r}: {exc}") from None
        # Verified: each item is its entry's canonical bytes, whose hash needs no decoding.
        peer_hashes[cube] = {
            sha256(e.data if isinstance(e, Entry) else e): i for i, e in enumerate(their)
        }
    first = _entry(entries[0], 0)
    cube_id, keys = read_genesis(first)
    genesis = _check_span(cube_id, keys, 0, GENESIS_PREV, entries[:1], threads)
    spans = [genesis]
    if genesis.failure is None:
        spans += _check_spans(cube_id, keys, entries, genesis.head, threads, processes)
    failures = [s.failure for s in spans if s.failure is not None]
    # Spans after a failed one are checked all the same: only a failure before the
    # first one found elsewhere can change the answer.
    first_failure = min(failures, key=lambda f: (f[0], f[1])) if failures else None
    last: dict[str, int] = {}
    unchecked = 0
    for index, refs in (r for s in spans for r in s.refs):
        if first_failure is not None and index >= first_failure[0]:
            break
        try:
            unchecked += _check_refs(refs, index, peer_hashes, last)
        except LedgerError as exc:
            first_failure = (index, _REFS, exc)
            break
    if first_failure is not None:
        raise first_failure[2]
    head = spans[-1].head
    if expected_head is not None and head != expected_head:
        raise LedgerHashMismatchError(
            f"the ledger's head {head.hex()} is not the expected {expected_head.hex()}",
            len(entries) - 1,
        )
    return LedgerReport(cube_id, len(entries), head, sum(s.signatures for s in spans), unchecked)


def _entry(raw: bytes | Entry, index: int) -> Entry:
    """An entry as given: decoded (and checked) from bytes, or re-checked from its bytes."""
    return decode_entry(raw.data if isinstance(raw, Entry) else raw, index)


class Ledger:
    """A cube's ledger as its CENTRAL node keeps it: appends decided proposals."""

    def __init__(self, cube_id: str, keys: Mapping[str, KeyPair], entries: Sequence[Entry] = ()):
        self.cube_id = cube_id
        self.keys = dict(keys)
        self.public_keys = {v: k.public_key for v, k in self.keys.items()}
        self.entries: list[Entry] = list(entries)
        if not self.entries:
            payload = genesis_payload(cube_id, self.public_keys)
            digest = proposal_digest(GENESIS_PREV, payload, {})
            votes = [(v, k.sign(vote_message(cube_id, 0, v, digest))) for v, k in self.keys.items()]
            self.entries.append(Entry.build(0, GENESIS_PREV, payload, {}, votes))

    @property
    def head(self) -> bytes:
        """The hash of the newest entry."""
        return self.entries[-1].hash

    @property
    def next_height(self) -> int:
        """The height of the next entry."""
        return len(self.entries)

    def append(self, decision: Decision, payload: bytes, refs: Mapping[str, bytes]) -> Entry:
        """Append a decided proposal (the votes must be for this height and proposal)."""
        prev = self.head
        if decision.height != self.next_height or decision.digest != proposal_digest(
            prev, payload, refs
        ):
            raise LedgerOutOfOrderError(
                f"a decision for height {decision.height} does not fit entry {self.next_height}",
                self.next_height,
            )
        entry = Entry.build(
            decision.height, prev, payload, refs, [(v.vertex, v.signature) for v in decision.votes]
        )
        self.entries.append(entry)
        return entry

    def decide(
        self,
        payload: bytes,
        refs: Mapping[str, bytes] | None = None,
        votes: Sequence[Vote] | None = None,
    ) -> tuple[Entry, list[Evidence]]:
        """One round: the vertices vote on ``payload`` at the next height, CENTRAL
        tallies and appends the decision.

        Without ``votes`` every vertex signs the proposal with its key, as an
        honest vertex does; given ``votes`` (from vertices elsewhere, or a test's
        Byzantine ones) are tallied as they are. Returns the new entry and the
        evidence of any conflicting votes; LedgerNoQuorumError (nothing appended)
        when no digest gathered 6 signatures.
        """
        if len(payload) > MAX_PAYLOAD:
            raise LedgerTooLargeError(f"a proposal is at most {MAX_PAYLOAD} bytes")
        refs = dict(refs or {})
        height = self.next_height
        digest = proposal_digest(self.head, payload, refs)
        if votes is None:
            votes = [sign_vote(k, self.cube_id, height, v, digest) for v, k in self.keys.items()]
        tally = Tally(self.cube_id, height, self.public_keys)
        evidence = tally.add_all(votes)
        decision = tally.decision()
        if decision is None or decision.digest != digest:
            raise LedgerNoQuorumError(
                f"no quorum for the proposal at height {height}: "
                f"{sum(v.digest == digest for v in tally.votes.values())} of {len(VOTERS)} "
                "vertices signed it, the 2/3 rule needs 6",
                height,
            )
        return self.append(decision, payload, refs), evidence

    def votes_at(self, height: int) -> list[Vote]:
        """The votes of an entry, as :class:`Vote` objects."""
        e = self.entries[height]
        return [Vote(self.cube_id, height, v, e.digest, s) for v, s in e.votes]


#: Largest ledger file :func:`read_ledger_file` reads (a 10^4-entry ledger is about 25 MB).
MAX_FILE_BYTES = 1 << 30


def entries_from_hex(items: object, first_index: int = 0) -> list[bytes]:
    """Entries from their wire form, a JSON list of hex strings (bounded in count;
    each bounded in length before it is decoded)."""
    if not isinstance(items, list):
        raise LedgerMalformedError("entries must be a list of hex strings")
    if len(items) > MAX_ENTRIES:
        raise LedgerTooLargeError(f"more than {MAX_ENTRIES} entries")
    out = []
    for i, item in enumerate(items, first_index):
        if not isinstance(item, str) or len(item) > 2 * MAX_ENTRY_BYTES:
            raise LedgerMalformedError(f"entry {i}: not a hex string of an entry", i)
        try:
            out.append(bytes.fromhex(item))
        except ValueError:
            raise LedgerMalformedError(f"entry {i}: not hex", i) from None
    return out


def ledger_document(cube_id: str, entries: Sequence[bytes | Entry]) -> dict[str, Any]:
    """A ledger as a JSON document (what ``focusflow konomi ledger export`` writes)."""
    return {
        "cube_id": cube_id,
        "entries": [(e.data if isinstance(e, Entry) else e).hex() for e in entries],
    }


def read_ledger_file(path: str | os.PathLike[str]) -> list[bytes]:
    """The entries of a ledger document on disk, bounded in bytes before parsing."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise LedgerTooLargeError(f"{path}: over {MAX_FILE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except ValueError:
        raise LedgerMalformedError(f"{path}: not JSON") from None
    if not isinstance(doc, dict) or "entries" not in doc:
        raise LedgerMalformedError(f"{path}: a ledger document is {{cube_id, entries}}")
    return entries_from_hex(doc["entries"])
