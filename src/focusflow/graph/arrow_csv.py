"""Well-formed edge lists and bostrom dumps, read by Arrow's multithreaded CSV reader.

A user's file is mostly one regular table: tab, comma or single-space
separated, two or three fields a line. Arrow parses such a file on every core
and factorizes its string keys in C++ (``unique`` keeps first-seen order,
``index_in`` gives each row its id), so no Python code runs per line and
pandas is not even imported. Anything irregular (a ragged line, a weight
that is not a number, runs of spaces, a ``#`` after the start of a line) raises
:class:`IrregularFileError`, and the caller reads the file with the general pandas reader,
whose errors name the line; the fast path never guesses.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    # pyarrow ships no types, so to mypy these names are Any: they say what a
    # value is where the checker cannot.
    from pyarrow import Array, ChunkedArray, DataType, Table
    from pyarrow.csv import InvalidRow

#: Bytes Arrow hands each parsing thread, within these bounds: about two blocks
#: per core, so every core parses; no more, since every block dictionary-encodes
#: its keys on its own and the block dictionaries are then merged in one pass
#: whose cost grows with their number.
MIN_BLOCK_BYTES = 4 << 20
MAX_BLOCK_BYTES = 64 << 20


class IrregularFileError(Exception):
    """The file is not one regular table; read it with the general reader."""


@dataclass(frozen=True)
class Factorized:
    """Dense ids of string keys, in first-seen order: ``keys[ids[i]]`` is row ``i``'s key.

    ``ids`` are int32 (Arrow's dictionary indices) from the Arrow reader and int64
    from the general one; either indexes.
    """

    ids: np.ndarray
    keys: list[str]


def _arrow() -> tuple[ModuleType, ModuleType]:
    """``(pyarrow, pyarrow.csv)``, imported on first use, not with the module."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    return pa, pcsv


def _compute() -> ModuleType:
    """``pyarrow.compute``, for an edge list with comment lines only: its import
    costs a process more (0.09 s) than pyarrow's own, and the checks every
    file needs read the keys' buffers with numpy instead."""
    return importlib.import_module("pyarrow.compute")


def _key_type() -> DataType:
    """Arrow's type for key columns: strings dictionary-encoded while parsed."""
    pa, _ = _arrow()
    return pa.dictionary(pa.int32(), pa.string())


def _unique(*columns: ChunkedArray) -> tuple[Array, list[np.ndarray]]:
    """``(distinct keys as an Arrow array, ids of each column)``, first-seen order.

    The columns are dictionary-encoded as read (``_read`` with ``_key_type()``:
    each block's keys are hashed by the thread that parses it) and share their
    keys (a link's source and target are both particles), so their block
    dictionaries are unified at once: the merged dictionary extends the first
    block's by each later block's new keys in that block's order, which is the
    keys' first-seen order over the columns, and each chunk's indices become
    ids into it.
    """
    pa, _ = _arrow()
    counts = [col.num_chunks for col in columns]
    chunks = [c for col in columns for c in col.chunks]
    if not chunks:
        return pa.array([], type=pa.string()), [np.empty(0, np.int32) for _ in columns]
    unified = pa.chunked_array(chunks, type=_key_type()).unify_dictionaries()
    keys = unified.chunks[0].dictionary
    ids: list[np.ndarray] = []
    at = 0
    for n in counts:
        part = pa.chunked_array([c.indices for c in unified.chunks[at : at + n]], type=pa.int32())
        ids.append(_numpy(part, np.int32, np.int32))
        at += n
    return keys, ids


def _starts_with(column: ChunkedArray, prefix: str) -> ChunkedArray:
    """Per row, whether a dictionary-encoded key starts with ``prefix`` (tested
    once per distinct key of each chunk)."""
    pa, _ = _arrow()
    pc = _compute()
    return pa.chunked_array(
        [pc.take(pc.starts_with(c.dictionary, prefix), c.indices) for c in column.chunks],
        type=pa.bool_(),
    )


def _numpy(chunked: ChunkedArray, stored: npt.DTypeLike, dtype: npt.DTypeLike) -> np.ndarray:
    """A chunked Arrow column of fixed-width values (numpy type ``stored``) as one array.

    Read straight from the value buffers: pyarrow's own ``to_numpy`` imports
    pandas, which alone costs a small file's whole run. A null (an empty
    weight) is irregular.
    """
    parts = []
    for chunk in chunked.chunks:
        if chunk.null_count:
            raise IrregularFileError("an empty value")
        values = np.frombuffer(chunk.buffers()[1], dtype=stored)
        parts.append(values[chunk.offset : chunk.offset + len(chunk)])
    if not parts:
        return np.empty(0, dtype=dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


def string_array(keys: list[str]) -> Array:
    """An Arrow string array of Python strings, built from its buffers.

    ``pyarrow.array`` on a list imports pandas to look for pandas types; at a
    small file that import costs more than the whole computation.
    """
    pa, _ = _arrow()
    encoded = [k.encode("utf-8") for k in keys]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    data = b"".join(encoded)
    return pa.Array.from_buffers(
        pa.large_string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def string_buffers(strings: Array) -> tuple[np.ndarray, np.ndarray]:
    """``(UTF-8 bytes, int64 offsets)`` of an Arrow string array without nulls:
    string ``i`` is ``data[offsets[i]:offsets[i + 1]]``, read from its buffers
    (the text is not copied)."""
    pa, _ = _arrow()
    wide = pa.types.is_large_string(strings.type)
    _, offset_buffer, data_buffer = strings.buffers()
    if offset_buffer is None:
        return np.empty(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)
    offsets = np.frombuffer(offset_buffer, dtype=np.int64 if wide else np.int32)
    offsets = offsets[strings.offset : strings.offset + len(strings) + 1].astype(np.int64)
    if data_buffer is None:
        return np.empty(0, dtype=np.uint8), offsets
    return np.frombuffer(data_buffer, dtype=np.uint8), offsets


def numeric_array(values: np.ndarray) -> Array:
    """An Arrow array over a contiguous numpy array of numbers, sharing its memory."""
    pa, _ = _arrow()
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(
        pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)]
    )


def _read(
    path: Path,
    names: list[str],
    types: dict[str, DataType],
    *,
    delimiter: str,
    header: bool,
    comments: bool,
) -> Table:
    pa, pcsv = _arrow()

    def comment_or_error(row: InvalidRow) -> str:
        # A comment line with another field count than the data is dropped; a
        # comment that parses like data is found by its key (``_odd_keys``).
        if comments and row.text is not None and row.text.lstrip().startswith("#"):
            return "skip"
        return "error"

    size = path.stat().st_size
    block = min(MAX_BLOCK_BYTES, max(MIN_BLOCK_BYTES, size // (2 * pa.cpu_count())))
    try:
        return pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(
                column_names=None if header else names,
                block_size=block,
                use_threads=True,
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter,
                invalid_row_handler=comment_or_error,
                newlines_in_values=False,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                include_columns=names,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, UnicodeDecodeError) as exc:
        raise IrregularFileError(str(exc)) from None


def _has_empty(keys: Array) -> bool:
    """Whether a key is the empty string (two equal offsets)."""
    offsets = string_buffers(keys)[1]
    return bool(np.any(offsets[1:] == offsets[:-1]))


def _odd_keys(keys: Array) -> tuple[bool, bool]:
    """``(comments, irregular)`` among distinct keys (an Arrow array).

    A key starting with ``#`` is a whole-line comment that parsed like data.
    The general reader cuts a line at ``#`` and strips spaces before a field,
    so a key holding ``#`` elsewhere, starting with a space or empty would be
    read differently there: such a file is left to it. Checked on the distinct
    keys' UTF-8 bytes, not on every row: neither ``#`` nor a space is ever a
    byte of another character's encoding.
    """
    data, offsets = string_buffers(keys)
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    first = data[starts[filled]]
    comments = bool(np.any(first == ord("#")))
    text = data[offsets[0] : offsets[-1]]
    hashes = np.flatnonzero(text == ord("#")) + offsets[0]
    owner = np.searchsorted(ends, hashes, side="right")
    irregular = (
        bool(np.any(hashes > starts[owner]))
        or bool(np.any(first == ord(" ")))
        or not bool(filled.all())
    )
    return comments, irregular


def read_edges(
    path: Path, delimiter: str, n_fields: int
) -> tuple[Factorized, Factorized, np.ndarray | None]:
    """``(src, dst, weight or None)`` of a regular edge list; ids share one key space.

    ``weight`` is ``None`` for two-field files. Raises :class:`IrregularFileError` for
    anything the general reader must judge.
    """
    pa, _ = _arrow()
    if n_fields not in (2, 3):
        raise IrregularFileError(f"{n_fields} fields")
    names = ["src", "dst", "weight"][:n_fields]
    types = {"src": _key_type(), "dst": _key_type(), "weight": pa.float64()}
    table = _read(
        path, names, {k: types[k] for k in names}, delimiter=delimiter, header=False, comments=True
    )
    keys, (src, dst) = _unique(table["src"], table["dst"])
    comments, irregular = _odd_keys(keys)
    if comments:
        table = table.filter(_compute().invert(_starts_with(table["src"], "#")))
        # the filtered columns keep their dictionaries, comment keys included:
        # encoded again, the keys are those of the rows left
        src_col, dst_col = (table[c].cast(pa.string()).dictionary_encode() for c in ("src", "dst"))
        keys, (src, dst) = _unique(src_col, dst_col)
        comments, irregular = _odd_keys(keys)
    if comments or irregular:
        raise IrregularFileError("a key holds '#', starts with a space or is empty")
    weight = None
    if n_fields == 3:
        weight = _numpy(table["weight"], np.float64, np.float64)
        if not np.all(np.isfinite(weight)) or np.any(weight < 0):
            raise IrregularFileError("a weight that is negative or not finite")
    names = keys.to_pylist()
    return Factorized(src, names), Factorized(dst, names), weight


@dataclass(frozen=True)
class BostromColumns:
    """A bostrom dump's links as ids: particles share one key space, neurons another."""

    src: Factorized
    dst: Factorized
    neuron: Factorized
    #: 0-based data row of each link, for error messages that name a file line.
    rows: np.ndarray
    #: The particles' keys as ``(UTF-8 bytes, offsets)`` (``string_buffers``),
    #: for checks that read a whole column at once.
    particle_text: tuple[np.ndarray, np.ndarray]


def read_bostrom_columns(path: Path, columns: tuple[str, ...]) -> BostromColumns:
    """The ``neuron, particle_from, particle_to`` columns of a bostrom CSV with its header.

    Links repeated by the same neuron count once (first kept), as go-cyber
    refuses duplicate cyberlinks.
    """
    types = dict.fromkeys(columns, _key_type())
    table = _read(path, list(columns), types, delimiter=",", header=True, comments=False)
    neuron_col, src_col, dst_col = (table[c] for c in columns)
    particles, ids = _unique(src_col, dst_col)
    neurons, (neuron_ids,) = _unique(neuron_col)
    # int64: the duplicate check below keys a link by src * particles + dst
    src_ids, dst_ids, neuron_ids = (x.astype(np.int64) for x in (*ids, neuron_ids))
    for keys in (particles, neurons):
        if _has_empty(keys):
            raise IrregularFileError("an empty field")
    names = particles.to_pylist()
    text = string_buffers(particles)
    src, dst = Factorized(src_ids, names), Factorized(dst_ids, names)
    neuron = Factorized(neuron_ids, neurons.to_pylist())
    rows = np.arange(table.num_rows, dtype=np.int64)
    keep = first_of_each_link(src.ids, dst.ids, neuron.ids, len(src.keys), len(neuron.keys))
    if keep is not None:
        rows = rows[keep]
        src = Factorized(src.ids[keep], src.keys)
        dst = Factorized(dst.ids[keep], dst.keys)
        neuron = Factorized(neuron.ids[keep], neuron.keys)
    return BostromColumns(src, dst, neuron, rows, text)


def first_of_each_link(
    src: np.ndarray, dst: np.ndarray, neuron: np.ndarray, n_particles: int, n_neurons: int
) -> np.ndarray | None:
    """The rows to keep, in order, when a neuron repeats a link (its first
    kept), or None when none repeats.

    A link is one int64 ``(neuron, src, dst)`` key where that fits (it does
    for any real dump): one unstable sort answers whether any key repeats,
    and only then a stable one finds the first of each; three keys through
    ``lexsort`` cost about three stable sorts every time.
    """
    if len(src) == 0:
        return None
    p, q = max(n_particles, 1), max(n_neurons, 1)
    if q * p * p < 1 << 62:
        key = (neuron * p + src) * p + dst
        ordered = np.sort(key)
        if not np.any(ordered[1:] == ordered[:-1]):
            return None
        order = np.argsort(key, kind="stable")
        same = key[order][1:] == key[order][:-1]
    else:
        pair = src * p + dst
        order = np.lexsort((np.arange(len(src)), pair, neuron))
        same = (np.diff(neuron[order]) == 0) & (np.diff(pair[order]) == 0)
        if not same.any():
            return None
    keep: np.ndarray = np.sort(order[np.concatenate(([True], ~same))])
    return keep
