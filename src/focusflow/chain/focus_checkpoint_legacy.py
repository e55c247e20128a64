"""Focus checkpoints of the release before the named-array format, read once.

That release kept its focus checkpoint as a pickle of the engine's objects
(format 3): ``MAGIC``, a 4-byte big-endian header length, a canonical CBOR
header (``format``, ``height``, ``block_hash``, ``focus_root``, ``code``), the
pickle, then its length (8 bytes) and the HMAC-SHA256 of header and pickle
under the home's secret (``focus.ckpt.key``, 32 bytes, 0600). A node upgraded
from it would otherwise replay every block from genesis; this module lets it
start from its checkpoint instead, and focus_checkpoint.py rewrites the state
in the new format as soon as it is loaded.

Only this node's own files are read here, and only once their HMAC checks
under the home's secret (a file someone without the secret wrote is refused
before any byte of the pickle is read). Even so the pickle builds none of
today's classes: every class it names is mapped to an inert record of its
pickled attributes (the old classes' layouts are history, and this module's
knowledge of them ends with :func:`convert`), and only numpy's array, dtype
and scalar reconstruction and builtin containers are looked up as
themselves. :func:`convert` takes from the records the named arrays of
focus_state_format, which then pass every check a peer's state passes, the
focus root included. A peer's pickle is never read: state sync refuses
snapshots of that release (chain/snapshot.py).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from focusflow.chain.focus_state_arrays import params_record
from focusflow.chain.focus_state_format import (
    NEURON_KEY,
    BlockIdentity,
    Counts,
    FocusStateError,
    FocusStateHeader,
    conform,
)
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError
from focusflow.focus.params import make_params

MAGIC = b"focusflow focus checkpoint\n"
FORMAT = 3
#: After the pickle: its length (8 bytes, big-endian) and the HMAC.
TRAILER = 8 + 32
#: The home's secret that the release keyed its checkpoints' HMAC with.
KEY_FILE = "focus.ckpt.key"
KEY_SIZE = 32
#: Globals the pickle may name as themselves: numpy's array, dtype and
#: scalar reconstruction, numpy's scalar types, builtin containers.
_REAL = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "bytearray"),
        ("builtins", "frozenset"),
        ("builtins", "set"),
        ("builtins", "slice"),
        ("builtins", "range"),
        ("collections", "OrderedDict"),
        ("collections", "deque"),
    }
)
#: The packages whose classes the pickle may name (mapped to records).
_RECORDED = ("focusflow.",)


class LegacyError(FocusStateError):
    """A checkpoint of the release before this format cannot be used (the
    code of any focus state that is malformed, ``focus_state_invalid``)."""


class Record:
    """An object of the old release, as its pickled attributes (``state``)."""

    origin: tuple[str, str] = ("", "")
    #: What the pickle set (None: nothing).
    state: Any = None

    def __setstate__(self, state: object) -> None:
        self.state = state

    def attrs(self) -> dict[str, Any]:
        """The attributes (a dataclass's, an object's, or ``__getstate__``'s)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            return merged
        if not isinstance(state, dict):
            raise LegacyError(f"legacy checkpoint: a {self.origin[1]} without attributes")
        return state

    def __getitem__(self, name: str) -> Any:
        attrs = self.attrs()
        if name not in attrs:
            raise LegacyError(f"legacy checkpoint: {self.origin[1]} has no {name!r}")
        return attrs[name]


_records: dict[tuple[str, str], type[Record]] = {}


def _record_class(module: str, name: str) -> type[Record]:
    """A record type standing for the class ``module.name`` (made once)."""
    kind = _records.get((module, name))
    if kind is None:
        kind = type(name, (Record,), {"origin": (module, name)})
        _records[(module, name)] = kind
    return kind


class _RecordUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _REAL:
            return super().find_class(module, name)
        if module in ("numpy", "numpy.dtypes"):
            # Scalar and dtype types only (numpy.float64, numpy.dtypes.Float64DType).
            found = super().find_class(module, name)
            if isinstance(found, type) and issubclass(found, np.generic | np.dtype):
                return found
        if module.startswith(_RECORDED):
            return _record_class(module, name)
        raise LegacyError(f"legacy checkpoint names {module}.{name}")


@dataclass
class LegacyCheckpoint:
    """A format-3 checkpoint whose HMAC checked: its block and its records."""

    height: int
    block_hash: bytes
    focus_root: bytes
    state: Record


def read_legacy(f: io.BufferedIOBase, size: int, directory: Path) -> LegacyCheckpoint:
    """The checkpoint at ``f`` (``size`` bytes), once its HMAC checks under the
    home's secret in ``directory``; LegacyError says why not."""
    key = _key(directory)
    lead = f.read(len(MAGIC) + 4)
    if not lead.startswith(MAGIC) or len(lead) < len(MAGIC) + 4:
        raise LegacyError("not a focus checkpoint")
    n = int.from_bytes(lead[len(MAGIC) :], "big")
    if len(lead) + n + TRAILER > size:
        raise LegacyError("legacy checkpoint: truncated header")
    raw_header = f.read(n)
    try:
        header = decode(raw_header, "checkpoint header")
    except DecodeError as exc:
        raise LegacyError(f"legacy checkpoint: corrupt header: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise LegacyError("unknown checkpoint format")
    height, block_hash = header.get("height"), header.get("block_hash")
    focus_root = header.get("focus_root")
    if not (
        type(height) is int
        and isinstance(block_hash, bytes)
        and isinstance(focus_root, bytes)
        and len(block_hash) == len(focus_root) == 32
    ):
        raise LegacyError("legacy checkpoint: corrupt header (height, block hash, focus root)")
    start = len(lead) + n
    payload = size - start - TRAILER
    digest = hmac.new(key, raw_header, hashlib.sha256)
    left = payload
    while left:
        chunk = f.read(min(left, 1 << 22))
        if not chunk:
            raise LegacyError("legacy checkpoint: truncated")
        digest.update(chunk)
        left -= len(chunk)
    trailer = f.read(TRAILER)
    if int.from_bytes(trailer[:8], "big") != payload:
        raise LegacyError("legacy checkpoint: its length differs")
    if not hmac.compare_digest(trailer[8:], digest.digest()):
        raise LegacyError(
            "legacy checkpoint not written by this home (its HMAC does not check under "
            "the home's key)"
        )
    f.seek(start)
    try:
        state = _RecordUnpickler(io.BufferedReader(_Bounded(f, payload))).load()
    except LegacyError:
        raise
    except Exception as exc:  # noqa: BLE001 - a pickle error can be of any type
        raise LegacyError(f"legacy checkpoint does not load: {exc}") from None
    if not isinstance(state, Record) or state.origin[1] != "FocusState":
        raise LegacyError("legacy checkpoint is not a focus state")
    return LegacyCheckpoint(height, block_hash, focus_root, state)


def _key(directory: Path) -> bytes:
    path = Path(directory) / KEY_FILE
    try:
        mode = os.stat(path).st_mode
        key = path.read_bytes()
    except OSError as exc:
        raise LegacyError(f"legacy checkpoint without its home's key: {exc}") from None
    if len(key) != KEY_SIZE or mode & 0o077:
        raise LegacyError(f"legacy checkpoint key {path} is not {KEY_SIZE} bytes, owner-only")
    return key


class _Bounded(io.RawIOBase):
    """At most ``size`` bytes of ``f``."""

    def __init__(self, f: io.BufferedIOBase, size: int) -> None:
        self._f = f
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        n = self._f.readinto(view)
        self._left -= n
        return n


# --- the old layout to the named arrays -----------------------------------------


def _column(record: Record) -> np.ndarray:
    """A ``graph.column.Column``'s filled part (its ``__getstate__``)."""
    data, length = record["_data"], record["_len"]
    if not isinstance(data, np.ndarray) or type(length) is not int or length > len(data):
        raise LegacyError("legacy checkpoint: a column is malformed")
    return data[:length]


def convert(
    old: LegacyCheckpoint, block: BlockIdentity
) -> tuple[FocusStateHeader, dict[str, np.ndarray]]:
    """The named arrays of the focus state ``old`` holds, after ``block`` (whose
    height, hash and focus root the checkpoint's header must name)."""
    if (old.height, old.block_hash, old.focus_root) != (
        block.height,
        block.block_hash,
        block.focus_root,
    ):
        raise LegacyError(f"legacy checkpoint is not of block {block.height}")
    try:
        return _convert(old.state, block)
    except LegacyError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise LegacyError(f"legacy checkpoint: {type(exc).__name__}: {exc}") from None


def _convert(focus: Record, block: BlockIdentity) -> tuple[FocusStateHeader, dict[str, np.ndarray]]:
    params = make_params(None, **focus["params"].attrs())
    graph, engine = focus["graph"], focus["engine"]
    neuron_keys = graph["neurons"]["_keys"]
    if any(not isinstance(k, bytes) or len(k) != NEURON_KEY for k in neuron_keys):
        raise LegacyError("legacy checkpoint: a neuron is not a 20-byte address")
    arrays: dict[str, np.ndarray] = {
        "neurons": np.frombuffer(b"".join(neuron_keys), dtype=np.uint8).reshape(
            len(neuron_keys), NEURON_KEY
        ),
        "stakes": _column(graph["_stake"]),
        "links.src": _column(graph["_src"]),
        "links.dst": _column(graph["_dst"]),
        "links.neuron": _column(graph["_neuron"]),
    }
    counts = Counts(len(graph["particles"]["_keys"]), len(neuron_keys), len(arrays["links.src"]))
    phi = engine["_phi"]
    solved = phi is not None
    springs = push = False
    version = sell_rows = 0
    if solved:
        snap, op = graph["_snapshot"], engine["_op"]
        ov_src, ov_dst, ov_w = (_column(c) for c in snap["_ov_cols"])
        arrays.update(
            {
                "matrix.entry_weights": snap["out_w"],
                "matrix.row_weights": snap["out_weight"],
                "overlay.src": ov_src,
                "overlay.dst": ov_dst,
                "overlay.weights": ov_w,
                "focus": phi,
            }
        )
        y = engine["_springs"]["y"]
        springs = isinstance(y, np.ndarray) and len(y) == snap["n"]
        if springs:
            arrays["springs"] = y
        candidates: np.ndarray = np.empty(0, dtype=np.int64)
        push = engine["_xhat"] is not None
        if push:
            ncand = engine.attrs().get("_ncand", 0)
            candidates = engine.attrs().get("_cand", candidates)[:ncand]
            arrays.update(
                {
                    "push.x": engine["_xhat"],
                    "push.r": engine["_r"],
                    "push.rsum": np.array([engine["_rsum"]], dtype=np.float64),
                    "push.candidates": candidates,
                }
            )
        counts = Counts(
            particles=counts.particles,
            neurons=counts.neurons,
            links=counts.links,
            base_links=snap["base_links"],
            base_particles=snap["base_n"],
            matrix_particles=snap["n"],
            entries=len(snap["out_w"]),
            overlay=len(ov_src),
            candidates=len(candidates),
        )
        version, sell_rows = snap["version"], op["sell_rows"]
    header = FocusStateHeader(
        block=block,
        params=params_record(params),
        counts=counts,
        solved=solved,
        springs=springs,
        push=push,
        version=version,
        sell_rows=sell_rows,
        iterations=focus["iterations"],
        converged=focus["converged"],
        unconverged_blocks=focus["unconverged_blocks"],
    )
    return header, conform(header, arrays)


__all__ = ["MAGIC", "LegacyCheckpoint", "LegacyError", "convert", "read_legacy"]
