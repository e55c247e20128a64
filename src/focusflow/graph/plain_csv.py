"""Small regular edge lists and bostrom dumps, parsed with str methods: no pyarrow.

Importing pyarrow costs a fresh process 0.1-0.2 s, more than Arrow then takes
to parse a file of a few thousand lines, and files under the graph cache's
size limit are parsed on every read. While pyarrow is not imported, such a
file is read here (:func:`chosen_for`). Such a file is
split here in Python into exactly what ``graph.arrow_csv`` would return: the
same key spaces in the same first-seen order, the same id types, rows and
weights (the tests compare the two on every input they hold).

This reader only takes a file it is sure Arrow reads the same way: UTF-8
text without quotes, carriage returns, ``#``, a byte-order mark or empty
lines, every line with the same field count, no empty key and no key that
starts with a space, weights written as plain decimals. Anything else raises
:class:`NotPlainError` and the caller reads the file as before (Arrow first,
the general reader after it), so every error a user can cause is still the
one those readers give, with its line.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from focusflow.graph.arrow_csv import BostromColumns, Factorized, first_of_each_link

#: Files up to this size are read here: the graph cache's lower limit, so a file
#: this reader leaves to Arrow is read from its cache file (without pyarrow)
#: after its first read. At this size a parse here takes 8-10 ms, Arrow's 3-4 ms
#: after its import of 0.1-0.2 s.
MAX_BYTES = 1 << 20

#: A weight both Python's ``float`` and Arrow's parser read, to the same double
#: (both round correctly): digits, an optional fraction and exponent.
_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def chosen_for(size: int) -> bool:
    """Whether a file of ``size`` bytes is read here first: a small one, while
    pyarrow is not imported. Its import is all this reader saves; once a
    process holds it, Arrow parses a file of any size faster (the sample's
    1,280 lines in 1.0 ms against 1.4 ms here), to the same columns."""
    return size <= MAX_BYTES and "pyarrow.csv" not in sys.modules


class NotPlainError(Exception):
    """The file is not one this reader is sure of; read it with Arrow."""


def _lines(path: Path) -> list[str]:
    """The file's lines (without the final newline), if it is small plain UTF-8 text."""
    with path.open("rb") as fh:
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise NotPlainError("larger than the plain reader's limit")
    if any(mark in data for mark in (b'"', b"\r", b"#")) or data.startswith(b"\xef\xbb\xbf"):
        raise NotPlainError("quotes, carriage returns, comments or a byte-order mark")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotPlainError("not UTF-8") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _columns(lines: list[str], delimiter: str, n_fields: int) -> list[list[str]]:
    """The lines' fields as columns, each line holding ``n_fields`` (an empty
    line holds one). Counted and split a whole file at a time: a list of
    fields per line costs a small file more than the rest of its read."""
    if lines and set(map(str.count, lines, itertools.repeat(delimiter))) != {n_fields - 1}:
        raise NotPlainError("a line of another field count, or an empty line")
    flat = delimiter.join(lines).split(delimiter) if lines else []
    return [flat[i::n_fields] for i in range(n_fields)]


def _factorize(*columns: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """int64 ids of each column in one key space, keys in first-seen order over
    the columns in turn (the order Arrow's unified dictionaries give)."""
    index: dict[str, int] = {}
    for column in columns:
        index.update(dict.fromkeys(column, 0))
    keys = list(index)
    index.update(zip(keys, range(len(keys)), strict=True))
    if "" in index or any(key[0] == " " for key in keys):
        raise NotPlainError("an empty key or one that starts with a space")
    ids = [
        np.fromiter(map(index.__getitem__, column), dtype=np.int64, count=len(column))
        for column in columns
    ]
    return ids, keys


def _text_buffers(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(UTF-8 bytes, int64 offsets)`` of the keys, as ``arrow_csv.string_buffers``
    gives them for an Arrow array of these keys."""
    data = "".join(keys).encode("utf-8")
    lengths: Iterable[int] = map(len, keys)
    if len(data) != sum(map(len, keys)):  # not all ASCII: lengths in bytes
        lengths = (len(key.encode("utf-8")) for key in keys)
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(lengths, dtype=np.int64, count=len(keys)), out=offsets[1:])
    return np.frombuffer(data, dtype=np.uint8), offsets


def read_edges(
    path: Path, delimiter: str, n_fields: int
) -> tuple[Factorized, Factorized, np.ndarray | None]:
    """``arrow_csv.read_edges``' answer for a plain file (its int32 ids, one key
    space, ``None`` weights for two fields), or :class:`NotPlainError`."""
    if n_fields not in (2, 3):
        raise NotPlainError(f"{n_fields} fields")
    columns = _columns(_lines(path), delimiter, n_fields)
    (src, dst), keys = _factorize(columns[0], columns[1])
    weight = None
    if n_fields == 3:
        texts = columns[2]
        if not all(_PLAIN_NUMBER.fullmatch(t) for t in texts):
            raise NotPlainError("a weight that is not a plain decimal")
        values = [float(t) for t in texts]
        if not all(math.isfinite(v) for v in values):
            raise NotPlainError("a weight beyond a double's range")
        weight = np.array(values, dtype=np.float64)
    return (
        Factorized(src.astype(np.int32), keys),
        Factorized(dst.astype(np.int32), keys),
        weight,
    )


def read_bostrom_columns(path: Path, columns: tuple[str, ...]) -> BostromColumns:
    """``arrow_csv.read_bostrom_columns``' answer for a plain file, or
    :class:`NotPlainError` (a missing or repeated column name too)."""
    lines = _lines(path)
    if not lines:
        raise NotPlainError("no header")
    header = lines[0].split(",")
    if any(header.count(name) != 1 for name in columns):
        raise NotPlainError("a column missing or named twice")
    fields = _columns(lines[1:], ",", len(header))
    neuron_at, src_at, dst_at = (header.index(name) for name in columns)
    (src_ids, dst_ids), particles = _factorize(fields[src_at], fields[dst_at])
    (neuron_ids,), neurons = _factorize(fields[neuron_at])
    numbers = np.arange(len(lines) - 1, dtype=np.int64)
    keep = first_of_each_link(src_ids, dst_ids, neuron_ids, len(particles), len(neurons))
    if keep is not None:
        numbers, src_ids, dst_ids, neuron_ids = (
            x[keep] for x in (numbers, src_ids, dst_ids, neuron_ids)
        )
    return BostromColumns(
        Factorized(src_ids, particles),
        Factorized(dst_ids, particles),
        Factorized(neuron_ids, neurons),
        numbers,
        _text_buffers(particles),
    )
