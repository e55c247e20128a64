"""Running the ``focusflow`` command in-process, as a user would from a shell.

In-process (``main(argv)``) rather than a subprocess: the package takes seconds
to import, and these tests run dozens of commands. ``main`` is the real entry
point, so exit statuses and the one ``error:`` line are exactly what users get.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from focusflow.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> Result:
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_user_error(result: Result, code: str) -> None:
    """Exit status 2 and exactly one ``error: ... [code]`` line on stderr."""
    lines = result.err.strip().splitlines()
    assert result.code == 2, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert lines[0].endswith(f"[{code}]"), result.err
