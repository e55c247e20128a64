"""docs/client.md's example, run as written against a real devnet: only its
node address and home are the test's devnet's."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_example_runs_against_a_devnet(devnet):
    text = DOC.read_text()
    (code,) = _blocks(text, "python")
    (shown,) = _blocks(text, "text")
    node_line = 'NODE = "http://127.0.0.1:26657"'
    home_line = 'HOME = Path.home() / ".local/share/focusflow/devnet"'
    assert node_line in code and home_line in code
    code = code.replace(node_line, f"NODE = {devnet.api!r}")
    code = code.replace(home_line, f"HOME = Path({str(devnet.home)!r})")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_client_example"})
    lines = out.getvalue().splitlines()
    expected = shown.splitlines()
    assert len(lines) == len(expected) == 3, lines
    assert lines[0] == expected[0] == "committed: ok"
    # 0.4021... on a fresh devnet; other tests' links may share this one
    assert lines[1].startswith("focus of hello: 0.") and 0 < float(lines[1].split()[-1]) < 1
    assert lines[2] == expected[2] == "refused: unknown_particle 404"
