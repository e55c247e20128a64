"""The package's optional parts (its extras), imported only where they are used.

A node needs the base install alone. Konomi's server back ends, the compiled
transformer and the interaction-net VM's WebGPU evaluator are separate
capabilities with dependencies of their own, installed as extras
(``pip install 'focusflow[konomi]'``, ``[compile]``, ``[hvm]``). Their
packages are never imported at a module's top (an import contract in
pyproject.toml holds the package to it); the command that needs one imports it
through :func:`import_extra`, which turns its absence into a
:class:`~focusflow.core.errors.MissingExtraError` (``missing_extra``) naming the
line that installs it, instead of a bare ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from focusflow.core.errors import MissingExtraError

#: Each extra and the packages (import names) it provides that the code imports.
EXTRAS: dict[str, tuple[str, ...]] = {
    "konomi": ("psycopg", "redis"),
    "compile": ("onnx", "onnxruntime"),
    "hvm": ("wgpu",),
    "cluster": ("ray",),
}


def install_line(extra: str) -> str:
    """What a user runs to add ``extra``."""
    return f"pip install 'focusflow[{extra}]'"


def import_extra(module: str, extra: str, needed_for: str) -> ModuleType:
    """``module`` imported, or MissingExtraError naming ``extra`` and its install line."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".", 1)[0]
        raise MissingExtraError(
            f"{needed_for} needs the Python package {package!r}, which is not installed"
            f" ({exc}); install the {extra!r} extra: {install_line(extra)}"
        ) from exc


def require_extra(extra: str, needed_for: str) -> None:
    """Every package of ``extra`` importable, or MissingExtraError for the first that is not."""
    for module in EXTRAS[extra]:
        import_extra(module, extra, needed_for)


__all__ = ["EXTRAS", "import_extra", "install_line", "require_extra"]
