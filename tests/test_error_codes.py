"""One class per error code: a code string is set (``code = "..."``) in one class body.

A second class that sets the same code is the same concept spelled twice, and
the two drift apart (one grows a status or an exit code the other lacks). Where
two places need their own class (an exit status, an HTTP status, a base class
callers catch), the second subclasses the first and inherits the code. Read
from the source, so modules whose optional dependencies are missing count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "focusflow"


def _code_classes(tree: ast.Module, module: str) -> list[tuple[str, str]]:
    """``(code, "module.Class")`` for each class body of ``tree`` that sets ``code``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else None
            if isinstance(stmt, ast.AnnAssign):
                target = stmt.target
            value = getattr(stmt, "value", None)
            if (
                isinstance(target, ast.Name)
                and target.id == "code"
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                found.append((value.value, f"{module}.{node.name}"))
    return found


def code_classes() -> dict[str, list[str]]:
    """Every code a class body sets, with the classes that set it."""
    out: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(("focusflow", *path.relative_to(SRC).with_suffix("").parts))
        for code, where in _code_classes(ast.parse(path.read_text(), str(path)), module):
            out.setdefault(code, []).append(where)
    return out


def test_every_error_code_is_set_by_one_class():
    twice = {code: where for code, where in code_classes().items() if len(where) > 1}
    assert not twice, f"codes set by more than one class (subclass the first instead): {twice}"


def test_the_scan_sees_the_codes():
    found = code_classes()
    assert found["focusflow_error"] == ["focusflow.core.errors.FocusflowError"]
    assert found["node_request_failed"] == ["focusflow.client.errors.NodeRequestError"]
    assert len(found) > 150
