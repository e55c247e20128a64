"""KeyTable: ids in first-seen order, the same through the dict path (small
batches) and the pandas path (large ones), and no pandas import for a small batch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from focusflow.graph import tables
from focusflow.graph.tables import KeyTable


def _keys(rng: np.random.Generator, n: int, kind: str) -> list:
    picks = rng.integers(0, max(1, n // 3), n)
    if kind == "bytes":
        return [int(i).to_bytes(8, "big") for i in picks]
    return [f"k{i}" for i in picks]


@pytest.mark.parametrize("kind", ["str", "bytes"])
@pytest.mark.parametrize("n", [0, 1, 7, 500])
def test_the_dict_path_gives_the_pandas_paths_ids(monkeypatch, kind: str, n: int) -> None:
    rng = np.random.default_rng(n)
    first, second = _keys(rng, 300, kind), _keys(rng, n, kind)
    small, large = KeyTable(), KeyTable()
    small.intern(first)
    monkeypatch.setattr(tables, "DICT_BATCH", -1)
    large.intern(first)
    want = large.intern(second)
    monkeypatch.setattr(tables, "DICT_BATCH", 4096)
    got = small.intern(second)
    assert got.dtype == np.int64 and got.tolist() == want.tolist()
    assert small.keys() == large.keys() and len(small) == len(large)
    # first-seen order: the first new key gets the next id
    fresh = [k for k in dict.fromkeys(second) if k not in set(first)]
    if fresh:
        assert small.id_of(fresh[0]) == len(set(first))


def test_a_numpy_array_of_text_is_stored_as_python_strings() -> None:
    table = KeyTable()
    ids = table.intern(np.array(["b", "a", "b"]))
    assert ids.tolist() == [0, 1, 0]
    keys = table.keys()
    assert [type(k) for k in keys] == [str, str]


def test_a_small_batch_does_not_import_pandas() -> None:
    code = (
        "import sys\n"
        "from focusflow.graph.tables import KeyTable\n"
        "KeyTable().intern(['a', 'b', 'a'])\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
