"""A loaded graph kept in a file beside its source, keyed by the source's bytes.

Parsing a graph file costs seconds (WordNet's 109 MB CSV: Arrow's parse, the
keys' factorizing, the CIDs' check); reading back the columns that parse
produced costs a fifth to a half of that in process (R-MAT 18: 0.24 against
1.22 s; WordNet: 0.25 against 0.58 s, much of it the key tables' dicts; bench/
focus_e2e.py --readers). ``read_graph`` looks for ``<source>.ffgraph``
(or a file in ``$FOCUSFLOW_GRAPH_CACHE_DIR``) and uses it when it was made
from a file with the same bytes, read with the same options, by this version
of focusflow; otherwise it parses the source and writes the file for next time.

The key is the source's SHA-256, never its size or mtime alone (an edited file
of the same size must not reuse a stale graph): the size is a precheck that
spares reading a cache that cannot match. SHA-256 rather than BLAKE2b because
CPUs with SHA extensions hash it 1.7x faster (1.2 against 0.7 GB/s on the dev
VM); it is hashed in a thread while the cache is read, so on two cores a hit
costs the larger of the two.

The file is one header and raw little-endian columns, read with numpy only (no
pyarrow import on a hit): 8 bytes of magic, the header's length, a JSON header,
the sections in a fixed order, each sized by the header's counts (no offsets
are read from the file), then the SHA-256 of everything before it. A reader
trusts none of it: the magic, the header's size, the counts against bounds set
by the source's size, the file's size against the counts and the checksum are
checked before any column is decoded, and the columns then go through the
graph's own checks (ids in range, weights finite and >= 0, keys distinct, CIDs
valid). Anything that fails is a miss: the source is parsed and the file
written again. The file is read into memory, not mapped: a file truncated by
someone else while mapped would kill the process (SIGBUS) instead of failing a
check. Writers write a temporary file in the same directory and rename it, so
a reader sees a whole file or none; a directory that cannot be written to only
costs the cache (a debug-level note).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from focusflow import __version__
from focusflow.core.cid import validate_cid
from focusflow.core.cid_columns import plain_cid_mask
from focusflow.core.errors import InvalidCIDError, InvalidParameterError
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.links import ANONYMOUS, LinkBatch, StakeBatch

log = logging.getLogger("focusflow.graph.cache")

MAGIC = b"FFGRAPH\x01"
SUFFIX = ".ffgraph"
#: Set to 0 (or off, false, no) to neither read nor write graph caches.
ENV = "FOCUSFLOW_GRAPH_CACHE"
#: A directory for the caches instead of beside each source.
ENV_DIR = "FOCUSFLOW_GRAPH_CACHE_DIR"
#: What the readers do to a file: a change to their rules (what is dropped,
#: how keys are ordered) bumps it, so a cache of the old rules is not used.
READER_VERSION = 1
#: Sources smaller than this are parsed every time: their parse costs
#: milliseconds, and a cache file beside every small file is clutter.
MIN_SOURCE_BYTES = 1 << 20
#: The largest header a reader accepts (a real one is under 1 KiB).
MAX_HEADER_BYTES = 1 << 16
_HASH_CHUNK = 1 << 20
_DIGEST = 32


def enabled_by_env() -> bool:
    """Whether ``$FOCUSFLOW_GRAPH_CACHE`` leaves the cache on (it is on unless set off)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def cache_path(source: Path) -> Path:
    """Where the cache of ``source`` lives: beside it, or in ``$FOCUSFLOW_GRAPH_CACHE_DIR``
    under its name and a hash of its absolute path (two sources of one name differ)."""
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return source.with_name(source.name + SUFFIX)
    where = hashlib.sha256(os.fsencode(source.resolve())).hexdigest()[:16]
    return Path(directory) / f"{source.name}.{where}{SUFFIX}"


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB pieces (hashlib lets other
    threads run while it hashes them)."""
    h = hashlib.sha256()
    buf = bytearray(_HASH_CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


class _Digest(threading.Thread):
    """A file's digest computed in a thread (None if it could not be read)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.digest: str | None = None

    def run(self) -> None:
        with contextlib.suppress(OSError):
            self.digest = file_digest(self.path)

    def result(self) -> str | None:
        self.join()
        return self.digest


@dataclass(frozen=True)
class Options:
    """What besides the source's bytes decides the graph a reader makes."""

    fmt: str
    skip_invalid: bool
    #: SHA-256 of the stakes file, if one was given.
    stakes: str | None

    def header(self) -> dict[str, Any]:
        return {"fmt": self.fmt, "skip_invalid": self.skip_invalid, "stakes": self.stakes}


class UnusableCacheError(Exception):
    """The cache file is absent, of another source or options, or not well formed."""


# --- the file's layout ------------------------------------------------------------


def _sections(counts: dict[str, int]) -> list[tuple[str, np.dtype[Any], int]]:
    """``(name, dtype, count)`` of each section, in file order, from the header's counts."""
    u1, i4, f8 = np.dtype("u1"), np.dtype("<i4"), np.dtype("<f8")
    named = counts["named"] == 1
    return [
        ("particle_text", u1, counts["particle_bytes"]),
        ("neuron_text", u1, counts["neuron_bytes"]),
        ("src", i4, counts["links"]),
        ("dst", i4, counts["links"]),
        ("neuron", i4, counts["links"] if named else 0),
        ("weight", f8, 0 if named else counts["links"]),
        ("stake_ids", i4, counts["stakes"]),
        ("stake_values", f8, counts["stakes"]),
    ]


def _payload_size(counts: dict[str, int]) -> int:
    return sum(dtype.itemsize * n for _, dtype, n in _sections(counts))


_COUNTS = (
    "particles",
    "particle_bytes",
    "neurons",
    "neuron_bytes",
    "links",
    "named",
    "stakes",
    "dropped_self_links",
    "skipped_invalid",
)


def _check_counts(counts: object, source_size: int, stakes_size: int) -> dict[str, int]:
    """The header's counts, each an int within what a source of ``source_size``
    bytes (and a stakes file of ``stakes_size``) can give: a line is at least
    four bytes and every key is text of the file, so a huge count is a forged
    or broken header, refused before anything is read by it."""
    if not isinstance(counts, dict) or set(counts) != set(_COUNTS):
        raise UnusableCacheError("counts missing")
    if any(type(counts[k]) is not int or counts[k] < 0 for k in _COUNTS):
        raise UnusableCacheError("a count is not a non-negative integer")
    text_bound = 2 * (source_size + stakes_size) + 1
    bounds = {
        "particles": source_size,
        "particle_bytes": text_bound,
        "neurons": source_size + stakes_size,
        "neuron_bytes": text_bound,
        "links": source_size,
        "named": 1,
        "stakes": stakes_size,
        "dropped_self_links": source_size,
        "skipped_invalid": source_size,
    }
    for key, bound in bounds.items():
        if counts[key] > bound:
            raise UnusableCacheError(f"count {key} = {counts[key]} is past what the source holds")
    return dict(counts)


def _split_keys(blob: np.ndarray, count: int) -> list[str]:
    """``count`` keys from their UTF-8 text joined by NUL bytes."""
    if count == 0:
        if len(blob):
            raise UnusableCacheError("key text without keys")
        return []
    try:
        keys = blob.tobytes().decode("utf-8").split("\x00")
    except UnicodeDecodeError:
        raise UnusableCacheError("key text is not UTF-8") from None
    if len(keys) != count:
        raise UnusableCacheError(f"{len(keys)} keys where the header says {count}")
    return keys


def _join_keys(keys: list[Any]) -> bytes | None:
    """Keys as UTF-8 text joined by NUL bytes, or None when a key is not text or
    holds a NUL (such a graph is not cached)."""
    if not all(type(k) is str for k in keys):
        return None
    text = "\x00".join(keys)
    if text.count("\x00") != max(len(keys) - 1, 0):
        return None
    return text.encode("utf-8")


def _check_cids(blob: np.ndarray, keys: list[str]) -> None:
    """Every particle key a CID (a bostrom graph's keys must be; a cache is not
    taken on trust): checked as a column, the few others one by one."""
    if not keys:
        return
    seps = np.flatnonzero(blob == 0)
    starts = np.concatenate(([0], seps + 1))
    ends = np.append(seps, len(blob))
    for i in np.flatnonzero(~plain_cid_mask(blob, starts, ends)).tolist():
        try:
            validate_cid(keys[i])
        except InvalidCIDError:
            raise UnusableCacheError(f"particle {i} is not a CID") from None


# --- reading ----------------------------------------------------------------------


def _read_exact(fd: int, size: int) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise UnusableCacheError("file shorter than its header says")
        got += n
    return buf


def _open_regular(path: Path) -> int:
    """A descriptor of ``path`` if it is a regular file (a FIFO or device put in
    its place must neither block nor be read)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnusableCacheError(f"cannot open: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnusableCacheError("not a regular file")
    return fd


def _read_header(fd: int, file_size: int) -> tuple[dict[str, Any], bytes]:
    """The header and the file's bytes up to the sections (for the checksum),
    the header's size bounded before it is read."""
    start = _read_exact(fd, len(MAGIC) + 4) if file_size >= len(MAGIC) + 4 else b""
    if len(start) < len(MAGIC) + 4 or bytes(start[: len(MAGIC)]) != MAGIC:
        raise UnusableCacheError("not a focusflow graph cache (magic)")
    length = int.from_bytes(start[len(MAGIC) :], "little")
    if length > MAX_HEADER_BYTES or len(MAGIC) + 4 + length > file_size:
        raise UnusableCacheError(f"header of {length} bytes")
    text = bytes(_read_exact(fd, length))
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UnusableCacheError("header is not JSON") from None
    if not isinstance(header, dict):
        raise UnusableCacheError("header is not an object")
    return header, bytes(start) + text


def _read_cache(
    path: Path, source_size: int, stakes_size: int, options: Options
) -> tuple[Cybergraph, str]:
    """The graph a cache file holds and the source digest it was made from."""
    fd = _open_regular(path)
    try:
        file_size = os.fstat(fd).st_size
        header, head = _read_header(fd, file_size)
        want = {
            "focusflow": __version__,
            "reader": READER_VERSION,
            "source_size": source_size,
            "options": options.header(),
        }
        for key, value in want.items():
            if header.get(key) != value:
                raise UnusableCacheError(f"made for another {key}")
        digest = header.get("source_sha256")
        if not isinstance(digest, str) or len(digest) != 2 * _DIGEST:
            raise UnusableCacheError("no source digest")
        counts = _check_counts(header.get("counts"), source_size, stakes_size)
        payload = _payload_size(counts)
        whole = len(head) + payload + _DIGEST
        if file_size != whole:
            raise UnusableCacheError(f"{file_size} bytes where the header says {whole}")
        body = _read_exact(fd, payload + _DIGEST)
    finally:
        os.close(fd)
    check = hashlib.sha256(head)
    check.update(memoryview(body)[:payload])
    if check.digest() != bytes(body[payload:]):
        raise UnusableCacheError("checksum does not match")
    return _graph_of(body, counts, options.fmt), digest


def _graph_of(body: bytearray, counts: dict[str, int], fmt: str) -> Cybergraph:
    """The graph the sections hold, through the graph's own checks."""
    columns: dict[str, np.ndarray] = {}
    at = 0
    for name, dtype, n in _sections(counts):
        columns[name] = np.frombuffer(body, dtype=dtype, count=n, offset=at)
        at += dtype.itemsize * n
    # what the format's reader makes, not a flag the file could change
    require_cids = fmt == "bostrom"
    particles = _split_keys(columns["particle_text"], counts["particles"])
    neurons = _split_keys(columns["neuron_text"], counts["neurons"])
    if require_cids:
        _check_cids(columns["particle_text"], particles)
    g = Cybergraph(require_cids=require_cids)
    try:
        g.particles.intern_distinct(particles)
        g.add_neurons(neurons, distinct=True)
        if counts["stakes"]:
            g.set_stakes(columns["stake_ids"], columns["stake_values"])
        named = counts["named"] == 1
        neuron = columns["neuron"] if named else None
        weight = None if named else columns["weight"]
        g.add_link_ids(columns["src"], columns["dst"], neuron, weight)
    except (ValueError, InvalidParameterError) as exc:
        raise UnusableCacheError(f"columns do not form a graph: {exc}") from None
    if g.dropped_self_links:
        raise UnusableCacheError("a self-link among the links")
    g.dropped_self_links = counts["dropped_self_links"]
    g.skipped_invalid = counts["skipped_invalid"]
    return g


# --- writing ----------------------------------------------------------------------


def _stake_batch(g: Cybergraph) -> tuple[bool, StakeBatch | None]:
    """``(whether the log is what a reader leaves, its stake batch if any)``:
    one batch of links, after one of stakes when a stakes file was read."""
    batches = [entry.batch for entry in g.log.since(0)]
    if len(batches) == 1 and isinstance(batches[0], LinkBatch):
        return True, None
    if len(batches) == 2 and isinstance(batches[0], StakeBatch):
        return True, batches[0]
    return False, None


def _encode(
    g: Cybergraph, digest: str, source_size: int, options: Options
) -> list[bytes | memoryview] | None:
    """The cache file's bytes for ``g`` in pieces, or None for a graph of a kind
    this format does not hold (keys that are not text or hold NUL, links both
    named and anonymous, a log other than a reader's)."""
    particles = _join_keys(g.particles.keys())
    neurons = _join_keys(g.neurons.keys())
    readers_log, stake = _stake_batch(g)
    links = g.links()
    named_mask = links.neuron != ANONYMOUS
    if particles is None or neurons is None or not readers_log:
        return None
    if g.require_cids != (options.fmt == "bostrom"):
        return None
    named = bool(named_mask.all()) and len(named_mask) > 0
    if not named and named_mask.any():
        return None
    counts = {
        "particles": g.n_particles,
        "particle_bytes": len(particles),
        "neurons": g.n_neurons,
        "neuron_bytes": len(neurons),
        "links": g.n_links,
        "named": int(named),
        "stakes": 0 if stake is None else len(stake.neuron),
        "dropped_self_links": g.dropped_self_links,
        "skipped_invalid": g.skipped_invalid,
    }
    sections = {
        "particle_text": np.frombuffer(particles, dtype=np.uint8),
        "neuron_text": np.frombuffer(neurons, dtype=np.uint8),
        "src": links.src,
        "dst": links.dst,
        "neuron": links.neuron,
        "weight": links.weight,
        "stake_ids": None if stake is None else stake.neuron,
        "stake_values": None if stake is None else stake.stake,
    }
    header = {
        "focusflow": __version__,
        "reader": READER_VERSION,
        "source_size": source_size,
        "source_sha256": digest,
        "options": options.header(),
        "counts": counts,
    }
    text = json.dumps(header).encode("utf-8")
    head = MAGIC + len(text).to_bytes(4, "little") + text
    pieces: list[bytes | memoryview] = [head]
    check = hashlib.sha256(head)
    for name, dtype, n in _sections(counts):
        if n == 0:
            continue
        column = np.ascontiguousarray(sections[name], dtype=dtype)
        assert len(column) == n, name
        data = column.data.cast("B")
        check.update(data)
        pieces.append(data)
    pieces.append(check.digest())
    return pieces


def _write_atomic(path: Path, pieces: list[bytes | memoryview]) -> None:
    """The file written whole under a temporary name, then renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for piece in pieces:
                fh.write(piece)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- the entry point --------------------------------------------------------------


def load_or_read(
    source: Path,
    options: Options,
    stakes: Path | None,
    read: Callable[[], Cybergraph],
    *,
    enabled: bool | None = None,
) -> Cybergraph:
    """The graph of ``source`` from its cache, else from ``read()`` (then cached).

    ``enabled=None`` follows ``$FOCUSFLOW_GRAPH_CACHE``; a source smaller than
    ``MIN_SOURCE_BYTES`` is always read.
    """
    if enabled is None:
        enabled = enabled_by_env()
    try:
        before = source.stat()
        stakes_size = stakes.stat().st_size if stakes is not None else 0
    except OSError:
        return read()
    if not enabled or before.st_size < MIN_SOURCE_BYTES:
        return read()
    path = cache_path(source)
    hashing = _Digest(source)
    hashing.start()
    try:
        graph, digest = _read_cache(path, before.st_size, stakes_size, options)
    except UnusableCacheError as why:
        log.debug("graph cache %s not used: %s", path, why)
    else:
        if hashing.result() == digest:
            return graph
        log.debug("graph cache %s is of another version of %s", path, source)
    graph = read()
    digest_now = hashing.result()
    try:
        after = source.stat()
    except OSError:
        return graph
    if digest_now is None or (after.st_size, after.st_mtime_ns) != (
        before.st_size,
        before.st_mtime_ns,
    ):
        log.debug("graph cache %s not written: %s changed while read", path, source)
        return graph
    pieces = _encode(graph, digest_now, before.st_size, options)
    if pieces is None:
        log.debug("graph cache %s not written: a graph this format does not hold", path)
        return graph
    try:
        if os.environ.get(ENV_DIR):
            path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, pieces)
    except OSError as exc:
        log.debug("graph cache %s not written: %s", path, exc)
    return graph


def stakes_digest(stakes: Path | None) -> str | None:
    """The stakes file's digest for :class:`Options` (None without one or unreadable)."""
    if stakes is None:
        return None
    try:
        return file_digest(stakes)
    except OSError:
        return None
