"""The documentation held to the source: the error codes, the chain parameters' defaults,
the README's layout of the packages, and the architecture's layers and messages."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from dataclasses import MISSING, fields
from pathlib import Path

import focusflow
from focusflow.chain.params import ChainParams
from focusflow.core.errors import FocusflowError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "focusflow"
DOCS = ROOT / "docs"

#: Calls that carry an error code chosen where they are made: the API's
#: ``ApiError("unknown_tx", ...)`` and error answers, the ASGI guards' answers, and the
#: transport's ``Error(code, message)`` message.
CODE_CALLS = {"ApiError", "error_response", "error_doc", "_error", "Error"}
CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def _package(module_path: Path) -> str:
    """``chain`` for ``src/focusflow/chain/x.py``; the module's name for a top-level module."""
    parts = module_path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else module_path.stem


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """A module's top-level ``NAME = "text"`` constants."""
    return {
        stmt.targets[0].id: stmt.value.value
        for stmt in tree.body
        if isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    }


def _codes_in(tree: ast.Module, constants: dict[str, str]) -> list[str]:
    """The error codes one module's source defines: a class's ``code = "..."``, a code
    given to a call of ``CODE_CALLS`` (as text, or as a constant of ``constants``), and
    ``{"code": "..."}``."""

    def text(node: ast.expr | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) else None
                if isinstance(stmt, ast.AnnAssign):
                    target = stmt.target
                value = getattr(stmt, "value", None)
                if isinstance(target, ast.Name) and target.id == "code" and text(value):
                    found.append(text(value))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in CODE_CALLS:
                found += [code for code in map(text, node.args) if code and CODE.fullmatch(code)]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code" and text(value):
                    found.append(text(value))
    return found


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def defined_codes() -> dict[str, set[str]]:
    """Every error code in ``src/focusflow``, with the packages that define it: every
    ``FocusflowError`` subclass that sets ``code`` (every module imported), and every
    code the source text defines (``_codes_in``; modules that cannot be imported here
    included)."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in sorted(SRC.rglob("*.py"))}
    constants = {}
    for tree in trees.values():
        constants.update(_string_constants(tree))
    codes: dict[str, set[str]] = {}
    for path, tree in trees.items():
        for code in _codes_in(tree, constants):
            codes.setdefault(code, set()).add(_package(path))
    for info in pkgutil.walk_packages(focusflow.__path__, "focusflow."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # runs the CLI
        try:
            importlib.import_module(info.name)
        except ImportError:
            continue  # an optional dependency: the source scan above saw its codes
    for cls in [FocusflowError, *_subclasses(FocusflowError)]:
        if "code" in vars(cls) and isinstance(cls.code, str):
            codes.setdefault(cls.code, set()).add(cls.__module__.split(".")[1])
    return codes


def _table(text: str, header: str, start: int | None = None) -> list[list[str]]:
    """The body rows (cells stripped) of the Markdown table whose header row is
    ``header``: the first, or the one at line ``start``."""
    lines = text.splitlines()
    start = lines.index(header) if start is None else start
    assert lines[start] == header
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def _ticked(cell: str) -> list[str]:
    return [word for word in re.findall(r"`([^`]+)`", cell) if CODE.fullmatch(word)]


def documented_codes() -> dict[str, set[str]]:
    """docs/errors.md's table: code -> the packages its row names."""
    rows = _table((DOCS / "errors.md").read_text(), "| code | defined in | meaning |")
    table: dict[str, set[str]] = {}
    for row in rows:
        (code,) = _ticked(row[0])
        assert code not in table, f"docs/errors.md lists {code} twice"
        table[code] = set(_ticked(row[1]))
    return table


def test_every_error_code_is_in_the_docs_table_and_every_row_exists():
    defined, documented = defined_codes(), documented_codes()
    missing = sorted(set(defined) - set(documented))
    stale = sorted(set(documented) - set(defined))
    assert not missing, f"codes the source defines that docs/errors.md lacks: {missing}"
    assert not stale, f"codes docs/errors.md lists that the source no longer defines: {stale}"
    wrong = {
        code: (sorted(documented[code]), sorted(where))
        for code, where in defined.items()
        if documented[code] != where
    }
    assert not wrong, f"docs/errors.md names other packages (documented, defined): {wrong}"


def test_the_error_table_is_in_alphabetical_order():
    codes = list(documented_codes())
    assert codes == sorted(codes)


def test_codes_listed_elsewhere_in_the_docs_exist():
    """Every code in another page's code table, and in the API's list of codes."""
    defined = defined_codes()
    unknown = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        for number, line in enumerate(text.splitlines()):
            if page.name != "errors.md" and line.startswith("| code |"):
                for row in _table(text, line, number):
                    unknown += [(page.name, c) for c in _ticked(row[0]) if c not in defined]
    api = (DOCS / "api.md").read_text()
    codes = api.split("  Codes: ", 1)[1].split("every transaction code", 1)[0]
    unknown += [("api.md", c) for c in _ticked(codes) if c not in defined]
    assert not unknown, f"documented codes the source does not define: {unknown}"


def _defaults(kind: type) -> dict[str, object]:
    return {
        spec.name: spec.default if spec.default_factory is MISSING else spec.default_factory()
        for spec in fields(kind)
        if spec.name != "sections"
    }


def test_chain_parameters_table_matches_the_dataclass():
    rows = _table((DOCS / "chain.md").read_text(), "| parameter | default | meaning |")
    documented = {}
    for row in rows:
        (name,) = re.findall(r"`([^`]+)`", row[0])
        default = re.match(r"`([^`]+)`", row[1]).group(1)
        documented[name] = ast.literal_eval(default)
    defaults = _defaults(ChainParams)
    assert list(documented) == list(defaults), "the table's parameters, in the dataclass order"
    assert documented == defaults


def test_module_parameters_table_matches_the_sections():
    """The modules' table: each declared section, its fields in order, its defaults."""
    from focusflow.chain.module_params import sections
    from focusflow.modules import default_modules

    default_modules()  # every module imported: every section declared
    rows = _table((DOCS / "chain.md").read_text(), "| section | parameter | default | meaning |")
    documented: dict[str, dict[str, object]] = {}
    for row in rows:
        section = re.match(r"`([^`]+)`", row[0]).group(1)
        (name,) = re.findall(r"`([^`]+)`", row[1])
        default = re.match(r"`([^`]+)`", row[2]).group(1)
        documented.setdefault(section, {})[name] = ast.literal_eval(default)
    declared = {kind.SECTION: _defaults(kind) for kind in sections()}
    assert sorted(documented) == sorted(declared)
    for section, defaults in declared.items():
        assert list(documented[section]) == list(defaults), f"{section}, in the dataclass order"
        assert documented[section] == defaults


def test_readme_layout_names_every_package_once():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^- `(\w+)`", section, re.M)
    packages = sorted(p.parent.name for p in SRC.glob("*/__init__.py"))
    assert sorted(named) == packages
    assert len(named) == len(set(named))


def _layers_contract() -> list[list[str]]:
    """The packages of each layer of pyproject's ``layers`` contract, top first."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [re.findall(r"\w+", layer) for layer in contract["layers"]]


def test_the_architecture_layer_table_is_the_import_contract():
    text = (DOCS / "architecture.md").read_text()
    rows = _table(text, "| layer (top first) | packages under `src/focusflow/` | holds |")
    documented = [re.findall(r"`(\w+)`", row[1]) for row in rows]
    assert documented == _layers_contract()
    named = {p for layer in documented for p in layer}
    assert named == {p.parent.name for p in SRC.glob("*/__init__.py")}


def test_the_architecture_lists_every_message_type():
    from focusflow.modules import default_modules

    text = (DOCS / "architecture.md").read_text()
    section = text.split("- Messages, by the module that owns them", 1)[1]
    section = section.split("A transaction whose messages fail", 1)[0]
    listed = re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", section)
    handled = [t for m in default_modules() for t in m.handlers()]
    assert sorted(listed) == sorted(handled)
