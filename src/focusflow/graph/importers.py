"""Reading graphs from files: bostrom cyberlink dumps and plain edge lists.

A regular file (one separator, the same field count on every line) is parsed
by Arrow on every core with its keys factorized in C++ (``graph.arrow_csv``),
or in Python when it is small, plain enough to be sure of and pyarrow is not
imported yet (``graph.plain_csv``: importing it would take longer than the
parse); anything else, and every file with an error in it, goes through
pandas' C parser, whose findings name the line. Every problem a user can cause
(missing file, missing column, bad CID, negative stake, non-numeric weight)
raises an :class:`InputFileError` or :class:`InvalidCIDError` that names the
file and line.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from focusflow.core.cid import validate_cid
from focusflow.core.cid_columns import plain_cid_mask
from focusflow.core.errors import InputFileError, InvalidCIDError
from focusflow.graph import arrow_csv, graph_cache, plain_csv
from focusflow.graph.cybergraph import Cybergraph

if TYPE_CHECKING:
    import pandas as pd

BOSTROM_COLUMNS = ("neuron", "particle_from", "particle_to")


def check_input_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, if it names a regular file; else the error that says why."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file")
    if not p.is_file():
        raise InputFileError(f"{p}: not a regular file")
    return p


def _first_data_line(p: Path) -> str:
    with p.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                return stripped
    return ""


def detect_format(path: str | os.PathLike[str]) -> str:
    """``bostrom`` if the file starts with the bostrom header, else ``edges``."""
    p = check_input_file(path)
    head = _first_data_line(p).lower().replace(" ", "")
    return "bostrom" if head.startswith("neuron,particle_from,particle_to") else "edges"


def read_stakes(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(neurons, stakes)`` from a CSV with header ``neuron,stake``."""
    import pandas as pd

    p = check_input_file(path)
    try:
        frame = pd.read_csv(p, dtype={"neuron": str}, comment="#", skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"{p}: cannot parse stakes CSV: {exc}") from None
    if list(frame.columns[:2]) != ["neuron", "stake"]:
        raise InputFileError(f"{p}: stakes CSV needs the header 'neuron,stake'")
    stake = pd.to_numeric(frame["stake"], errors="coerce")
    bad = np.flatnonzero(stake.isna().to_numpy() | ~np.isfinite(stake.to_numpy(dtype=float)))
    if len(bad):
        raise InputFileError(
            f"{p}:{bad[0] + 2}: stake {frame['stake'].iloc[bad[0]]!r} is not a number"
        )
    values = stake.to_numpy(dtype=np.float64)
    neg = np.flatnonzero(values < 0)
    if len(neg):
        raise InputFileError(f"{p}:{neg[0] + 2}: negative stake {values[neg[0]]:g}")
    if frame["neuron"].isna().any():
        row = int(np.flatnonzero(frame["neuron"].isna().to_numpy())[0])
        raise InputFileError(f"{p}:{row + 2}: empty neuron")
    return frame["neuron"].to_numpy(dtype=object), values


def read_bostrom(
    path: str | os.PathLike[str],
    stakes: str | os.PathLike[str] | None = None,
    *,
    skip_invalid: bool = False,
    graph: Cybergraph | None = None,
) -> Cybergraph:
    """Load a bostrom cyberlink CSV (``neuron,particle_from,particle_to,...``).

    Without a stakes file every neuron has stake 1. A link repeated by the same
    neuron counts once (go-cyber refuses duplicate cyberlinks). A particle that is
    not a CID stops the import with its line number, unless ``skip_invalid``
    drops those links (their count is left in ``graph.skipped_invalid``).
    """
    p = check_input_file(path)
    try:
        cols = _regular_bostrom_columns(p)
    except arrow_csv.IrregularFileError:
        cols = _bostrom_columns_pandas(p)
    g = graph if graph is not None else Cybergraph(require_cids=True)
    keys = cols.src.keys
    invalid = np.zeros(len(keys), dtype=bool)
    # nearly every key passes the column-wide check; the rest are decided (and
    # their errors worded) one by one
    data, offsets = cols.particle_text
    for i in np.flatnonzero(~plain_cid_mask(data, offsets[:-1], offsets[1:])).tolist():
        cid = keys[i]
        if cid in g.particles:
            continue
        try:
            validate_cid(cid)
        except InvalidCIDError as exc:
            if not skip_invalid:
                row = int(np.flatnonzero((cols.src.ids == i) | (cols.dst.ids == i))[0])
                line = int(cols.rows[row]) + 2
                raise InvalidCIDError(
                    f"{p}:{line}: {exc} (--skip-invalid drops such links)"
                ) from None
            invalid[i] = True
    src, dst, neuron = cols.src, cols.dst, cols.neuron
    skipped = 0
    if invalid.any():
        bad = invalid[src.ids] | invalid[dst.ids]
        skipped = int(bad.sum())
        src, dst = _refactorize(src.ids[~bad], dst.ids[~bad], keys=keys)
        (neuron,) = _refactorize(neuron.ids[~bad], keys=neuron.keys)
    particle_ids = g.particles.intern_distinct(src.keys)
    neuron_ids = g.add_neurons(neuron.keys, distinct=True)
    if stakes is not None:
        names, values = read_stakes(stakes)
        g.add_neurons(names, values)
    g.add_link_ids(particle_ids[src.ids], particle_ids[dst.ids], neuron_ids[neuron.ids])
    g.skipped_invalid = skipped
    return g


def _regular_bostrom_columns(p: Path) -> arrow_csv.BostromColumns:
    """A bostrom file's columns by the plain reader if it is sure of the file,
    else by Arrow (:class:`arrow_csv.IrregularFileError` when Arrow is not)."""
    if plain_csv.chosen_for(p.stat().st_size):
        try:
            return plain_csv.read_bostrom_columns(p, BOSTROM_COLUMNS)
        except plain_csv.NotPlainError:
            pass
    return arrow_csv.read_bostrom_columns(p, BOSTROM_COLUMNS)


def _regular_edges(
    p: Path, delimiter: str, n_fields: int
) -> tuple[arrow_csv.Factorized, arrow_csv.Factorized, np.ndarray | None]:
    """An edge list's columns by the plain reader if it is sure of the file,
    else by Arrow (:class:`arrow_csv.IrregularFileError` when Arrow is not)."""
    if plain_csv.chosen_for(p.stat().st_size):
        try:
            return plain_csv.read_edges(p, delimiter, n_fields)
        except plain_csv.NotPlainError:
            pass
    return arrow_csv.read_edges(p, delimiter, n_fields)


def _refactorize(*ids: np.ndarray, keys: list[str]) -> list[arrow_csv.Factorized]:
    """The key space of what is left after links were dropped, still in first-seen order.

    A key seen only in dropped links is not kept, and one first seen in a dropped
    link takes the place of its first kept use, as if the dropped lines had
    never been in the file.
    """
    whole = np.concatenate(ids)
    used, first = np.unique(whole, return_index=True)
    used = used[np.argsort(first, kind="stable")]
    new_id = np.full(len(keys), -1, dtype=np.int64)
    new_id[used] = np.arange(len(used))
    kept = [keys[i] for i in used.tolist()]
    return [arrow_csv.Factorized(new_id[col], kept) for col in ids]


def _factorize(*columns: np.ndarray) -> list[arrow_csv.Factorized]:
    """pandas' counterpart of ``arrow_csv.factorize``: one key space, first-seen order."""
    import pandas as pd

    codes, uniques = pd.factorize(np.concatenate(columns), sort=False)
    keys = uniques.tolist()
    bounds = np.cumsum([0] + [len(c) for c in columns])
    return [
        arrow_csv.Factorized(codes[lo:hi].astype(np.int64), keys)
        for lo, hi in itertools.pairwise(bounds)
    ]


def _bostrom_columns_pandas(p: Path) -> arrow_csv.BostromColumns:
    import pandas as pd

    try:
        frame = pd.read_csv(p, dtype=str, usecols=lambda c: c in BOSTROM_COLUMNS)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"{p}: cannot parse bostrom CSV: {exc}") from None
    missing = [c for c in BOSTROM_COLUMNS if c not in frame.columns]
    if missing:
        raise InputFileError(
            f"{p}: not a bostrom cyberlink CSV (missing column {missing[0]!r}; "
            "expected neuron,particle_from,particle_to,height,timestamp)"
        )
    empty = frame[list(BOSTROM_COLUMNS)].isna().any(axis=1).to_numpy()
    if empty.any():
        raise InputFileError(f"{p}:{int(np.flatnonzero(empty)[0]) + 2}: empty field")
    frame = frame.drop_duplicates(subset=list(BOSTROM_COLUMNS), keep="first")
    src, dst = _factorize(
        frame["particle_from"].to_numpy(dtype=object), frame["particle_to"].to_numpy(dtype=object)
    )
    (neuron,) = _factorize(frame["neuron"].to_numpy(dtype=object))
    rows = frame.index.to_numpy(dtype=np.int64)
    text = arrow_csv.string_buffers(arrow_csv.string_array(src.keys))
    return arrow_csv.BostromColumns(src, dst, neuron, rows, text)


def _edge_separator(line: str) -> str:
    """The separator the first data line uses: comma, tab, else whitespace."""
    if "," in line:
        return ","
    if "\t" in line:
        return "\t"
    return r"\s+"


def edge_list_separator(path: str | os.PathLike[str]) -> str:
    """The separator the edge list ``path`` uses (its first data line's)."""
    return _edge_separator(_first_data_line(check_input_file(path)))


def read_edge_list(path: str | os.PathLike[str], *, graph: Cybergraph | None = None) -> Cybergraph:
    """Load ``src dst [weight]`` lines (tab, space or comma separated, ``#`` comments).

    Particle keys are any strings; a missing weight is 1, on any line (a file
    may weight some lines only); duplicate edges add up. A line of another field
    count, a weight that is not a number or negative is refused with its line.
    """
    p = check_input_file(path)
    line = _first_data_line(p)
    sep = _edge_separator(line)
    fast = _regular_delimiter(line, sep)
    if fast is not None:
        try:
            src, dst, weight = _regular_edges(p, *fast)
        except arrow_csv.IrregularFileError:
            pass
        else:
            g = graph if graph is not None else Cybergraph(require_cids=False)
            fresh = g.n_particles == 0
            ids = g.particles.intern_distinct(src.keys)
            if fresh:  # the keys' ids are their positions: no gather of every row
                g.add_link_ids(src.ids, dst.ids, None, weight)
            else:
                g.add_link_ids(ids[src.ids], ids[dst.ids], None, weight)
            return g
    if p.stat().st_size <= SMALL_FILE_BYTES:
        return _read_small_edge_list(p, sep, graph)
    return _read_edge_list_pandas(p, sep, graph)


#: Irregular files up to this size are read line by line in Python: importing
#: pandas alone takes longer (0.3-0.5 s) than reading such a file.
SMALL_FILE_BYTES = 256 * 1024


def _read_small_edge_list(p: Path, sep: str, graph: Cybergraph | None) -> Cybergraph:
    """The general reader's rules for a small file, without pandas: the same
    splitting (``_fields``), a missing weight 1, each error naming its line."""
    src: list[str] = []
    dst: list[str] = []
    weights: list[float] = []
    for number, fields in _data_lines(p, sep):
        weights.append(_line_weight(p, number, fields))
        src.append(fields[0])
        dst.append(fields[1])
    g = graph if graph is not None else Cybergraph(require_cids=False)
    src_ids = g.particles.intern(np.array(src, dtype=object))
    dst_ids = g.particles.intern(np.array(dst, dtype=object))
    g.add_link_ids(src_ids, dst_ids, None, np.array(weights, dtype=np.float64))
    return g


def _line_weight(p: Path, number: int, fields: list[str]) -> float:
    """The weight of a data line (1 without one), or its line's ``InputFileError``."""
    bad = _line_error(p, number, fields)
    if bad is not None:
        raise bad
    if len(fields) == 2:
        return 1.0
    try:
        weight = float(fields[2])
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight):
        raise InputFileError(f"{p}:{number}: weight {fields[2]!r} is not a number")
    if weight < 0:
        raise InputFileError(f"{p}:{number}: negative weight {weight:g}")
    return weight


def range_error(path: str | os.PathLike[str], sep: str, start: int, end: int) -> InputFileError:
    """The error of the first bad line in bytes ``start:end`` of an edge list, named
    by its line in the whole file (a reader of that range found one; this scan
    runs on the error path only)."""
    p = Path(path)
    before = 0
    with p.open("rb") as fh:
        left = start
        while left > 0:
            chunk = fh.read(min(left, 1 << 24))
            if not chunk:
                break
            before += chunk.count(b"\n")
            left -= len(chunk)
        data = fh.read(max(end - start, 0))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return InputFileError(f"{p}: cannot parse edge list: not UTF-8 text")
    for number, line in enumerate(text.split("\n"), start=before + 1):
        fields = _fields(line, sep)
        if fields:
            try:
                _line_weight(p, number, fields)
            except InputFileError as exc:
                return exc
    return InputFileError(f"{p}: cannot parse edge list (quoting?)")


def _regular_delimiter(line: str, sep: str) -> tuple[str, int] | None:
    """``(delimiter, fields)`` for Arrow if the first data line is regular, else None.

    Runs of spaces need the general reader's whitespace splitting; one space
    between fields is an ordinary delimiter.
    """
    if sep == r"\s+":
        if "  " in line:
            return None
        sep = " "
    return sep, len(next(csv.reader([line], delimiter=sep)))


def _fields(line: str, sep: str) -> list[str]:
    """A line's fields as the general reader splits them: cut at ``#``, spaces
    before a field dropped, empty lines none."""
    text = line.split("#", 1)[0].rstrip("\r\n")
    if not text.strip():
        return []
    if sep == r"\s+":
        return text.split()
    return [field.lstrip(" ") for field in text.split(sep)]


def _data_lines(p: Path, sep: str) -> Iterator[tuple[int, list[str]]]:
    """``(file line number, fields)`` of each data line, in order (for error messages)."""
    with p.open("r", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            fields = _fields(line, sep)
            if fields:
                yield number, fields


def _line_of_row(p: Path, sep: str, row: int) -> int:
    """The file line that holds data row ``row`` (0-based; comments and blank lines skipped)."""
    for at, (number, _) in enumerate(_data_lines(p, sep)):
        if at == row:
            return number
    return row + 1


def _line_error(p: Path, number: int, fields: list[str]) -> InputFileError | None:
    """What is wrong with a data line's fields (count, an empty id), if anything."""
    if len(fields) not in (2, 3):
        count = f"{len(fields)} field{'s' if len(fields) != 1 else ''}"
        fewer = " (fewer than 2)" if len(fields) < 2 else ""
        return InputFileError(
            f"{p}:{number}: {count}{fewer}; an edge list line has 2 or 3 columns (src dst [weight])"
        )
    if not fields[0] or not fields[1]:
        return InputFileError(f"{p}:{number}: an empty particle id (src dst [weight])")
    return None


def _bad_line(p: Path, sep: str) -> InputFileError:
    """The error for the first line that is not ``src dst [weight]`` (the general
    reader's error paths only: it reads the file again)."""
    for number, fields in _data_lines(p, sep):
        bad = _line_error(p, number, fields)
        if bad is not None:
            return bad
    return InputFileError(f"{p}: cannot parse edge list (quoting?)")


def edge_frame(source: Path | IO[bytes], sep: str) -> pd.DataFrame:
    """The general reader's parse of an edge list (a file, or a byte range of
    one read by a shard): four string columns, the fourth empty on a good line."""
    import pandas as pd

    return pd.read_csv(
        source,
        sep=sep,
        header=None,
        # a fourth column catches lines of four fields (more are a
        # ParserError): pandas would take a field beyond the names as an index
        names=[0, 1, 2, 3],
        comment="#",
        dtype=str,
        skipinitialspace=True,
        engine="c",
        skip_blank_lines=True,
        # "NA", "nan", "null" are ids or bad weights here, not missing values
        keep_default_na=False,
    )


def _read_edge_list_pandas(p: Path, sep: str, graph: Cybergraph | None) -> Cybergraph:
    """The general reader: any mix of ``src dst`` and ``src dst weight`` lines
    (a missing weight is 1), runs of spaces, ``#`` comments; every error names
    the file line."""
    import pandas as pd

    try:
        frame = edge_frame(p, sep)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=[0, 1, 2, 3])
    except UnicodeDecodeError:
        raise InputFileError(f"{p}: cannot parse edge list: not UTF-8 text") from None
    except pd.errors.ParserError:
        # pandas names the line in its own words; the scan (on this error
        # path only) finds it in ours.
        raise _bad_line(p, sep) from None
    blank = frame.isna() | (frame == "")  # a field the line does not have
    if not blank[3].all() or blank[[0, 1]].any(axis=None):  # a fourth field, a missing id
        raise _bad_line(p, sep)
    w = pd.to_numeric(frame[2], errors="coerce").to_numpy(dtype=np.float64, copy=True)
    w[blank[2].to_numpy()] = 1.0
    bad_rows = np.flatnonzero(~np.isfinite(w))
    if len(bad_rows):
        row = int(bad_rows[0])
        raise InputFileError(
            f"{p}:{_line_of_row(p, sep, row)}: weight {frame[2].iloc[row]!r} is not a number"
        )
    neg = np.flatnonzero(w < 0)
    if len(neg):
        row = int(neg[0])
        raise InputFileError(f"{p}:{_line_of_row(p, sep, row)}: negative weight {w[row]:g}")
    g = graph if graph is not None else Cybergraph(require_cids=False)
    src_ids = g.particles.intern(frame[0].to_numpy(dtype=object))
    dst_ids = g.particles.intern(frame[1].to_numpy(dtype=object))
    g.add_link_ids(src_ids, dst_ids, None, w)
    return g


def read_graph(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    stakes: str | os.PathLike[str] | None = None,
    *,
    skip_invalid: bool = False,
    cache: bool | None = None,
) -> Cybergraph:
    """Load any supported file; ``fmt`` is ``auto``, ``bostrom`` or ``edges``.

    The loaded graph is kept in a cache file beside the source and read from
    there while the source's bytes stay the same (``graph.graph_cache``);
    ``cache=False`` neither reads nor writes it, ``None`` follows
    ``$FOCUSFLOW_GRAPH_CACHE``.
    """
    p = check_input_file(path)
    if fmt == "auto":
        fmt = detect_format(p)
    if fmt not in ("bostrom", "edges"):
        raise InputFileError(f"unknown format {fmt!r}: use auto, bostrom or edges")
    if fmt == "edges" and stakes is not None:
        raise InputFileError("--stakes applies to bostrom files only")
    stakes_path = None if stakes is None else check_input_file(stakes)

    def read() -> Cybergraph:
        if fmt == "bostrom":
            return read_bostrom(p, stakes_path, skip_invalid=skip_invalid)
        return read_edge_list(p)

    if cache is False or (cache is None and not graph_cache.enabled_by_env()):
        return read()
    stakes_key = graph_cache.stakes_digest(stakes_path)
    if stakes_path is not None and stakes_key is None:
        return read()  # an unreadable stakes file: its reader says why
    options = graph_cache.Options(fmt, skip_invalid, stakes_key)
    return graph_cache.load_or_read(p, options, stakes_path, read, enabled=True)
