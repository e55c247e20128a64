"""The chain's focus state as data: named arrays under a versioned CBOR header.

A block's focus depends on the engine's state before it (the warm start, the
springs solve's iterate, push's system, the patch history of the weighted
graph), not on the graph alone, so a restarted node loads that state from its
focus checkpoint and a joining node from a peer's snapshot. This module is
the one byte form of that state, for both: what it holds, how it is laid
out, and how bytes from a peer are bounded and checked before anything is
built from them (chain/focus_state_arrays.py then builds the state and checks
the roots it must reproduce).

What it holds is what a block commits or what the next block reads and no
rule can recompute (docs/state.md, "The focus state"): neurons with their
stakes, the links as id columns, the patched weights and out-weights of the
weighted graph, its overlay's pairs, the focus vector the next solve starts
from, the springs iterate and push's system. The particles' keys are not in
it (the state commits them under ``/graph/particles``), and neither is any
structure that follows from the links (the CSR and its transpose, the maps
between entries and links, the operator's storage): the reader builds those
again, by the same code that built them the first time.

Layout, all integers little-endian::

    MAGIC                       b"focusflow focus state\\n"
    header length               4 bytes, big-endian, at most MAX_HEADER_BYTES
    header                      canonical CBOR (core.encoding), see FocusStateHeader
    zero bytes to a multiple of 8
    each array of the layout    in order, its bytes, zero bytes to a multiple of 8
    SHA-256 of all of the above 32 bytes

The header names the schema version (SCHEMA), the block the state is of
(chain id, height, block hash, state root, focus root), the focus parameters
it ran (and so the algorithm and arithmetic), the counts every array's
shape follows from, a few numbers (the matrix's version, the in-link
storage's rows, the last solve's iterations) and the list of arrays with
their dtypes and shapes, which must be exactly what :func:`layout` derives
from the counts. A reader therefore knows the whole payload's size from the
header alone, refuses any other size before it allocates an array, and
reads each array straight into its own buffer; no pickle, no code named by
the bytes. The same bytes are a node's checkpoint file and the focus section
of the snapshots it serves.

Why this container: it is safetensors' layout with a CBOR header, whose bounds
and dtypes this module checks itself in a few lines before it reads an array.
Loaded back into arrays of their own, the arrays of a 10^7-link state (222 MB)
took 0.115 s read into place, as long as Arrow IPC (0.108 s, with a pyarrow
reader of the flatbuffers a peer wrote) and half as long as ``np.load`` of an
uncompressed npz (0.20 s: a zip directory and a CRC per member), on the 2-vCPU
dev VM (``bench/checkpoint.py --containers``, bench/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError, FocusflowError

if TYPE_CHECKING:
    from focusflow.chain.block import Header

MAGIC = b"focusflow focus state\n"
#: The schema this code writes and reads. A new schema is a new number; a
#: reader of a later release keeps reading the earlier ones it lists here.
SCHEMA = 1
SCHEMAS = (1,)
#: The header's size at most: a few counts, parameters and the array list.
MAX_HEADER_BYTES = 1 << 16
#: Particle, neuron and link ids are int32 (the graph's columns).
MAX_COUNT = 2**31 - 1
#: Bytes of a neuron's key (a 20-byte address).
NEURON_KEY = 20
ALIGN = 8
DIGEST = 32
T = TypeVar("T")


class FocusStateError(FocusflowError):
    """A focus state's bytes are malformed: nothing of them is used."""

    code = "focus_state_invalid"


class FocusStateIncompatibleError(FocusStateError):
    """A focus state of another schema, chain or focus algorithm."""

    code = "focus_state_incompatible"


class FocusStateRootError(FocusStateError):
    """A focus state that is not of the block it must be, or does not reproduce its roots."""

    code = "focus_state_root_mismatch"


@dataclass(frozen=True)
class BlockIdentity:
    """The block a focus state is the state after, and the roots its header commits."""

    chain_id: str
    height: int
    block_hash: bytes
    state_root: bytes
    focus_root: bytes

    @classmethod
    def of(cls, chain_id: str, header: Header) -> BlockIdentity:
        return cls(chain_id, header.height, header.hash, header.state_root, header.focus_root)


@dataclass(frozen=True)
class Counts:
    """The sizes every array's shape follows from (0 where a part is absent)."""

    particles: int
    neurons: int
    links: int
    #: The weighted graph's: links and particles it was last built from, the
    #: particles it has grown to, its base entries, its overlay's entries.
    base_links: int = 0
    base_particles: int = 0
    matrix_particles: int = 0
    entries: int = 0
    overlay: int = 0
    #: Push's candidate list.
    candidates: int = 0


@dataclass(frozen=True)
class FocusStateHeader:
    """What the CBOR header says besides the array list (derived: :func:`layout`)."""

    block: BlockIdentity
    #: ``focus_params_record`` of the parameters the state ran.
    params: dict[str, object]
    counts: Counts
    #: Whether the engine has solved (the weighted graph and the focus vector
    #: are present), the springs iterate is, and push's system is.
    solved: bool
    springs: bool
    push: bool
    #: The weighted graph's version (patches since its build) and the rows the
    #: operator's in-link storage was built over.
    version: int
    sell_rows: int
    #: The last block's solve: its iterations, whether it converged, and how
    #: many blocks' solves did not.
    iterations: int
    converged: bool
    unconverged_blocks: int

    @property
    def hebbian(self) -> bool:
        """Whether the state runs the Hebbian rule, and so holds each link's
        factor (``links.factor``): read from the parameters, so that a state
        written before the rule existed lays out as it did."""
        every = self.params.get("hebbian_every", 0)
        return type(every) is int and every > 0


def layout(header: FocusStateHeader) -> list[tuple[str, str, tuple[int, ...]]]:
    """Every array's name, dtype and shape, in payload order (docs/state.md)."""
    c = header.counts
    out = [
        ("neurons", "|u1", (c.neurons, NEURON_KEY)),
        ("stakes", "<f8", (c.neurons,)),
        ("links.src", "<i4", (c.links,)),
        ("links.dst", "<i4", (c.links,)),
        ("links.neuron", "<i4", (c.links,)),
    ]
    if header.hebbian:
        out.append(("links.factor", "<f8", (c.links,)))
    if header.solved:
        n = c.matrix_particles
        out += [
            ("matrix.entry_weights", "<f8", (c.entries,)),
            ("matrix.row_weights", "<f8", (n,)),
            ("overlay.src", "<i4", (c.overlay,)),
            ("overlay.dst", "<i4", (c.overlay,)),
            ("overlay.weights", "<f8", (c.overlay,)),
            ("focus", "<f8", (n,)),
        ]
        if header.springs:
            out.append(("springs", "<f8", (n,)))
        if header.push:
            out += [
                ("push.x", "<f8", (n,)),
                ("push.r", "<f8", (n,)),
                ("push.rsum", "<f8", (1,)),
                ("push.candidates", "<i8", (c.candidates,)),
            ]
    return out


def _padded(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def _nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def payload_size(header_bytes: int, header: FocusStateHeader) -> int:
    """The whole payload's bytes for a header of ``header_bytes`` bytes."""
    size = _padded(len(MAGIC) + 4 + header_bytes)
    size += sum(_padded(_nbytes(dt, shape)) for _, dt, shape in layout(header))
    return size + DIGEST


# --- the header ---------------------------------------------------------------


def encode_header(header: FocusStateHeader) -> bytes:
    b, c = header.block, header.counts
    return encode(
        {
            "schema": SCHEMA,
            "chain_id": b.chain_id,
            "height": b.height,
            "block_hash": b.block_hash,
            "state_root": b.state_root,
            "focus_root": b.focus_root,
            "focus": header.params,
            "counts": {
                "particles": c.particles,
                "neurons": c.neurons,
                "links": c.links,
                "base_links": c.base_links,
                "base_particles": c.base_particles,
                "matrix_particles": c.matrix_particles,
                "entries": c.entries,
                "overlay": c.overlay,
                "candidates": c.candidates,
            },
            "engine": {
                "solved": header.solved,
                "springs": header.springs,
                "push": header.push,
                "version": header.version,
                "sell_rows": header.sell_rows,
            },
            "result": {
                "iterations": header.iterations,
                "converged": header.converged,
                "unconverged_blocks": header.unconverged_blocks,
            },
            "arrays": [[name, dt, list(shape)] for name, dt, shape in layout(header)],
        }
    )


def decode_header(raw: bytes) -> FocusStateHeader:
    """The header of ``raw`` bytes; FocusStateError names the first field that
    is missing, of another type or out of its range, the schema if it is not
    one this code reads, an array list other than the counts give."""
    try:
        value = decode(raw, "focus state header")
    except DecodeError as exc:
        raise FocusStateError(f"focus state header: {exc}") from None
    h = _Fields(value, "header")
    schema = h.integer("schema", 0)
    if schema not in SCHEMAS:
        raise FocusStateIncompatibleError(
            f"focus state of schema {schema}: this focusflow reads schema "
            f"{', '.join(map(str, SCHEMAS))}"
        )
    chain_id = h.get("chain_id", str)
    block = BlockIdentity(
        chain_id,
        h.integer("height", 0),
        h.digest("block_hash"),
        h.digest("state_root"),
        h.digest("focus_root"),
    )
    params = h.get("focus", dict)
    c = _Fields(h.get("counts", dict), "counts")
    counts = Counts(
        particles=c.integer("particles", 0, MAX_COUNT),
        neurons=c.integer("neurons", 0, MAX_COUNT),
        links=c.integer("links", 0, MAX_COUNT),
        base_links=c.integer("base_links", 0, MAX_COUNT),
        base_particles=c.integer("base_particles", 0, MAX_COUNT),
        matrix_particles=c.integer("matrix_particles", 0, MAX_COUNT),
        entries=c.integer("entries", 0, MAX_COUNT),
        overlay=c.integer("overlay", 0, MAX_COUNT),
        candidates=c.integer("candidates", 0, MAX_COUNT),
    )
    e = _Fields(h.get("engine", dict), "engine")
    r = _Fields(h.get("result", dict), "result")
    header = FocusStateHeader(
        block=block,
        params=params,
        counts=counts,
        solved=e.get("solved", bool),
        springs=e.get("springs", bool),
        push=e.get("push", bool),
        version=e.integer("version", 0),
        sell_rows=e.integer("sell_rows", 0, MAX_COUNT),
        iterations=r.integer("iterations", 0),
        converged=r.get("converged", bool),
        unconverged_blocks=r.integer("unconverged_blocks", 0),
    )
    _check_counts(header)
    arrays = h.get("arrays", list)
    want = [[name, dt, list(shape)] for name, dt, shape in layout(header)]
    for i, (got, expected) in enumerate(zip(arrays, want, strict=False)):
        if got != expected:
            raise FocusStateError(
                f"focus state header: array {i} is {got!r}, the counts give {expected!r}"
            )
    if len(arrays) != len(want):
        raise FocusStateError(
            f"focus state header lists {len(arrays)} arrays, the counts give {len(want)}"
        )
    return header


def _check_counts(header: FocusStateHeader) -> None:
    """The counts describe one state: parts present together, sizes in order."""
    c = header.counts
    bad = None
    if header.solved != (c.links > 0):
        bad = "an engine that has solved holds links, and one with links has solved"
    elif not header.solved and (
        header.springs
        or header.push
        or c.base_links
        or c.base_particles
        or c.matrix_particles
        or c.entries
        or c.overlay
        or c.candidates
        or header.version
        or header.sell_rows
    ):
        bad = "a state with no links holds no weighted graph"
    elif header.solved and not (
        c.base_links <= c.links
        and c.base_particles <= header.sell_rows <= c.matrix_particles == c.particles
        and c.entries <= c.base_links
        and c.overlay <= c.links - c.base_links
        and c.candidates <= c.matrix_particles
    ):
        bad = (
            "the weighted graph's counts are not in order (base links <= links, base "
            "particles <= in-link rows <= its particles = the graph's, entries <= base "
            "links, overlay <= later links, candidates <= particles)"
        )
    elif not header.push and c.candidates:
        bad = "push candidates without push"
    if bad is not None:
        raise FocusStateError(f"focus state header: {bad}: {c}")


class _Fields:
    """Typed access to a decoded CBOR map, naming a missing or wrong field."""

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise FocusStateError(f"focus state {where} is not a map")
        self.value = value
        self.where = where

    def get(self, name: str, kind: type[T]) -> T:
        if name not in self.value:
            raise FocusStateError(f"focus state {self.where} lacks {name!r}")
        got = self.value[name]
        if type(got) is not kind:
            raise FocusStateError(
                f"focus state {self.where}.{name} is a {type(got).__name__}, not a {kind.__name__}"
            )
        return got

    def integer(self, name: str, lo: int, hi: int | None = None) -> int:
        got = self.get(name, int)
        if got < lo or (hi is not None and got > hi):
            top = "" if hi is None else hi
            raise FocusStateError(
                f"focus state {self.where}.{name} = {got} is outside [{lo}, {top}]"
            )
        return got

    def digest(self, name: str) -> bytes:
        got = self.get(name, bytes)
        if len(got) != 32:
            raise FocusStateError(f"focus state {self.where}.{name} is not 32 bytes")
        return got


# --- writing --------------------------------------------------------------------


class Writer(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


@dataclass
class FocusStatePlan:
    """A payload ready to be written: the header's bytes, the arrays (views of
    the state; valid while it does not change) and a SHA-256 already made.

    A checkpoint's forked child (chain/checkpoint_writer.py) gets the plan
    from the node's process and only writes bytes and feeds the hash: no
    import, no lock of the parent's threads, no numba kernel."""

    header: bytes
    arrays: list[np.ndarray]
    digest: hashlib._Hash
    size: int


def conform(header: FocusStateHeader, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` as :func:`layout` lists them for ``header``: each of its
    dtype (native byte order; a view where it has it already) and shape.
    FocusStateError names an array that is missing or of another shape."""
    out = {}
    for name, dt, shape in layout(header):
        if name not in arrays:
            raise FocusStateError(f"focus state lacks {name}")
        native = np.dtype(dt).newbyteorder("=")
        array = np.ascontiguousarray(arrays[name], dtype=native)
        if array.shape != shape:
            raise FocusStateError(f"focus state's {name} has shape {array.shape}, not {shape}")
        out[name] = array
    return out


def plan(header: FocusStateHeader, arrays: dict[str, np.ndarray]) -> FocusStatePlan:
    """The plan of a payload of ``arrays`` (by name, as :func:`layout` lists
    them; each converted to its dtype, a view where it already has it)."""
    raw = encode_header(header)
    ordered = [
        array.astype(np.dtype(dt), copy=False)
        for (_, dt, _), array in zip(layout(header), conform(header, arrays).values(), strict=True)
    ]
    return FocusStatePlan(raw, ordered, hashlib.sha256(), payload_size(len(raw), header))


def write(out: Writer, plan: FocusStatePlan) -> int:
    """Write the planned payload to ``out`` (consumes the plan's hash); its bytes."""
    digest = plan.digest
    written = 0

    def put(data: bytes | memoryview) -> None:
        nonlocal written
        digest.update(data)
        out.write(data)
        written += len(data)

    put(MAGIC + len(plan.header).to_bytes(4, "big") + plan.header)
    put(bytes(_padded(written) - written))
    for array in plan.arrays:
        view = array.data.cast("B") if array.size else memoryview(b"")
        put(view)
        put(bytes(_padded(len(view)) - len(view)))
    out.write(digest.digest())
    written += DIGEST
    if written != plan.size:  # pragma: no cover - layout and payload_size agree
        raise AssertionError(f"wrote {written} bytes, planned {plan.size}")
    return written


# --- reading --------------------------------------------------------------------


def read_header(f: io.BufferedIOBase, size: int) -> tuple[FocusStateHeader, hashlib._Hash]:
    """The header of a payload of ``size`` bytes at ``f``'s position, checked
    against the size before anything else is read; with the hash of what was
    read, for :func:`read_arrays` to go on with."""
    lead = len(MAGIC) + 4
    if size < lead + DIGEST:
        raise FocusStateError(f"focus state of {size} bytes is shorter than its frame")
    head = _exactly(f, lead, "its magic")
    if head[: len(MAGIC)] != MAGIC:
        raise FocusStateError("focus state has no magic: not a focus state")
    n = int.from_bytes(head[len(MAGIC) :], "big")
    if n > MAX_HEADER_BYTES or lead + n + DIGEST > size:
        raise FocusStateError(
            f"focus state header of {n} bytes (at most {MAX_HEADER_BYTES}, and within "
            f"the payload's {size})"
        )
    raw = _exactly(f, n, "its header")
    header = decode_header(raw)
    want = payload_size(n, header)
    if want != size:
        raise FocusStateError(
            f"focus state is {size} bytes, its header's arrays make {want}"
            f"{' (truncated)' if size < want else ''}"
        )
    digest = hashlib.sha256(head)
    digest.update(raw)
    pad = _exactly(f, _padded(lead + n) - lead - n, "its padding")
    _zero(pad, "header")
    digest.update(pad)
    return header, digest


def read_arrays(
    f: io.BufferedIOBase, header: FocusStateHeader, digest: hashlib._Hash
) -> dict[str, np.ndarray]:
    """Every array of the layout, read into arrays of its own (native byte
    order), and the trailing SHA-256 checked; after :func:`read_header`."""
    out = {}
    for name, dt, shape in layout(header):
        array = np.empty(shape, dtype=np.dtype(dt))
        view = array.data.cast("B") if array.size else memoryview(bytearray())
        if len(view) and f.readinto(view) != len(view):
            raise FocusStateError(f"focus state ends inside {name}")
        digest.update(view)
        pad = _exactly(f, _padded(len(view)) - len(view), f"{name}'s padding")
        _zero(pad, name)
        digest.update(pad)
        native = array.dtype.newbyteorder("=")
        out[name] = array if array.dtype == native else array.astype(native)
    if _exactly(f, DIGEST, "its digest") != digest.digest():
        raise FocusStateError("focus state does not hash to its trailing SHA-256")
    return out


def _exactly(f: io.BufferedIOBase, n: int, what: str) -> bytes:
    got = f.read(n) if n else b""
    if len(got) != n:
        raise FocusStateError(f"focus state ends inside {what}")
    return got


def _zero(pad: bytes, after: str) -> None:
    if pad.strip(b"\0"):
        raise FocusStateError(f"focus state's padding after {after} is not zero")


__all__ = [
    "MAGIC",
    "MAX_HEADER_BYTES",
    "SCHEMA",
    "BlockIdentity",
    "Counts",
    "FocusStateError",
    "FocusStateHeader",
    "FocusStateIncompatibleError",
    "FocusStatePlan",
    "FocusStateRootError",
    "conform",
    "decode_header",
    "encode_header",
    "layout",
    "payload_size",
    "plan",
    "read_arrays",
    "read_header",
    "write",
]
