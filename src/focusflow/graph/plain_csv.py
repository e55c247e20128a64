"""Small regular edge lists and bostrom dumps, parsed with str methods: no pyarrow.

Importing pyarrow and its compute module costs a fresh process 0.1-0.2 s,
more than Arrow then takes to parse a file of a few thousand lines, and files
under the graph cache's size limit are parsed on every read. Such a file is
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

import math
import re
from pathlib import Path

import numpy as np

from focusflow.graph.arrow_csv import BostromColumns, Factorized, first_of_each_link

#: Files up to this size are read here (the graph cache's lower limit: larger
#: files are read from their cache file after the first read, without pyarrow;
#: at this size a parse in Python takes about as long as Arrow's plus its import).
MAX_BYTES = 1 << 20

#: A weight both Python's ``float`` and Arrow's parser read, to the same double
#: (both round correctly): digits, an optional fraction and exponent.
_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


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


def _split(lines: list[str], delimiter: str, n_fields: int) -> list[list[str]]:
    """Every line's fields, each line holding ``n_fields`` (an empty line holds one)."""
    rows = [line.split(delimiter) for line in lines]
    if any(len(row) != n_fields for row in rows):
        raise NotPlainError("a line of another field count, or an empty line")
    return rows


def _factorize(*columns: list[str]) -> tuple[list[list[int]], list[str]]:
    """Ids of each column in one key space, keys in first-seen order over the
    columns in turn (the order Arrow's unified dictionaries give)."""
    index: dict[str, int] = {}
    ids = [[index.setdefault(key, len(index)) for key in column] for column in columns]
    keys = list(index)
    if any(not key or key[0] == " " for key in keys):
        raise NotPlainError("an empty key or one that starts with a space")
    return ids, keys


def _text_buffers(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(UTF-8 bytes, int64 offsets)`` of the keys, as ``arrow_csv.string_buffers``
    gives them for an Arrow array of these keys."""
    encoded = [key.encode("utf-8") for key in keys]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def read_edges(
    path: Path, delimiter: str, n_fields: int
) -> tuple[Factorized, Factorized, np.ndarray | None]:
    """``arrow_csv.read_edges``' answer for a plain file (its int32 ids, one key
    space, ``None`` weights for two fields), or :class:`NotPlainError`."""
    if n_fields not in (2, 3):
        raise NotPlainError(f"{n_fields} fields")
    rows = _split(_lines(path), delimiter, n_fields)
    (src, dst), keys = _factorize([r[0] for r in rows], [r[1] for r in rows])
    weight = None
    if n_fields == 3:
        texts = [r[2] for r in rows]
        if not all(_PLAIN_NUMBER.fullmatch(t) for t in texts):
            raise NotPlainError("a weight that is not a plain decimal")
        values = [float(t) for t in texts]
        if not all(math.isfinite(v) for v in values):
            raise NotPlainError("a weight beyond a double's range")
        weight = np.array(values, dtype=np.float64)
    return (
        Factorized(np.array(src, dtype=np.int32), keys),
        Factorized(np.array(dst, dtype=np.int32), keys),
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
    rows = _split(lines[1:], ",", len(header))
    neuron_at, src_at, dst_at = (header.index(name) for name in columns)
    (src, dst), particles = _factorize([r[src_at] for r in rows], [r[dst_at] for r in rows])
    (neuron,), neurons = _factorize([r[neuron_at] for r in rows])
    src_ids, dst_ids, neuron_ids = (np.array(x, dtype=np.int64) for x in (src, dst, neuron))
    numbers = np.arange(len(rows), dtype=np.int64)
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
