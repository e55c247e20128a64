"""Edge lists as the README writes them, ``src dst [weight]``: a weight on some
lines only is read as documented (a missing weight is 1), and a line that is
not an edge is refused in our words with its file line, never pandas' own
tokenizer message. Run as the user does, ``focusflow focus compute`` in a
subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def compute(path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "focusflow", "focus", "compute", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "body",
    [
        "a b\nb c 2\nc a\n",  # the first line unweighted: pandas' tokenizer refused line 2
        "a b 2\nb c\nc a 0.5\n",
        "a,b\nb,c,2\nc,a\n",
        "a\tb\n# a comment\n\nb\tc\t2\nc\ta\n",
    ],
)
def test_weights_on_some_lines_only_are_read_with_the_rest_one(tmp_path, body):
    f = tmp_path / "edges.txt"
    f.write_text(body)
    proc = compute(f, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["particles"] == 3 and summary["links"] == 3


def test_a_missing_weight_counts_one_as_an_explicit_one(tmp_path):
    partial, explicit = tmp_path / "partial.txt", tmp_path / "explicit.txt"
    partial.write_text("a b\nb c 3\nc a\nc b\n")
    explicit.write_text("a b 1\nb c 3\nc a 1\nc b 1\n")
    ranks = [compute(f, "--out", tmp_path / f"{f.stem}.tsv") for f in (partial, explicit)]
    assert all(p.returncode == 0 for p in ranks), [p.stderr for p in ranks]
    assert (tmp_path / "partial.tsv").read_text() == (tmp_path / "explicit.tsv").read_text()


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        ("a b\nb c 1 2 3\n", ":2: 5 fields", "2 or 3 columns"),
        ("a b 1\nb c 2 4\n", ":2:", "2 or 3 columns"),
        ("# header\na b\nc\n", ":3:", "fewer than 2"),
        ("a b\n\nb c 2\nc a heavy\n", ":4:", "weight 'heavy' is not a number"),
        ("a b\nb c -2\n", ":2:", "negative weight -2"),
    ],
)
def test_a_bad_line_is_named_in_our_words(tmp_path, body, where, what):
    f = tmp_path / "edges.txt"
    f.write_text(body)
    proc = compute(f)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("[bad_input_file]"), proc.stderr
    assert f"{f}{where}" in lines[0] and what in lines[0], lines[0]
    assert "tokenizing" not in lines[0] and "C error" not in lines[0]
