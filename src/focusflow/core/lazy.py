"""Package names that load their module on first use (PEP 562).

A package whose ``__init__`` re-exports from heavy submodules (the focus
engine pulls in numba) makes every import of any of its light submodules pay
for the heavy ones. Such a package lists where each name lives and sets its
module ``__getattr__`` to :func:`lazy_names`; ``from package import Name``
then imports only the submodule that holds ``Name``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module


def lazy_names(package: str, where: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``where`` maps each exported
    name to the submodule (relative name) that defines it; the value found is
    kept in the package, so the lookup runs once per name."""

    def load(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return load
