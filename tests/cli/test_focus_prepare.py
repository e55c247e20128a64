"""``focusflow focus prepare``: the kernels compiled once, unavailable backends skipped."""

from __future__ import annotations

import json

import pytest

from focusflow.core.errors import BackendUnavailableError
from focusflow.focus.backends import get_backend
from focusflow.focus.prepare import prepare
from tests.cli.helpers import run_cli


def _cuda_runs() -> bool:
    try:
        return get_backend("cuda").available()[0]
    except BackendUnavailableError:
        return False


def test_prepare_compiles_the_cpu_kernels_and_reports_each_backend(capsys) -> None:
    got = run_cli(capsys, "focus", "prepare", "--backend", "numba", "--backend", "cuda", "--json")
    assert got.code == 0, got.err
    rows = [json.loads(line) for line in got.out.splitlines()]
    assert [r["backend"] for r in rows] == ["numba", "cuda"]
    assert rows[0]["available"] is True and rows[0]["seconds"] > 0
    assert rows[1]["available"] is _cuda_runs()
    if not rows[1]["available"]:
        assert "cannot run here" in rows[1]["reason"]


def test_an_unknown_backend_is_refused_with_its_code(capsys) -> None:
    got = run_cli(capsys, "focus", "prepare", "--backend", "numbaa")
    assert got.code == 2
    assert "unknown backend 'numbaa'" in got.err and "[invalid_parameter]" in got.err


@pytest.mark.skipif(_cuda_runs(), reason="checks the report of a machine without the cuda backend")
def test_an_unavailable_backend_is_reported_not_raised() -> None:
    seen = []
    out = prepare(["cuda"], seen.append)
    assert out == seen and not out[0].available and out[0].seconds == 0.0
