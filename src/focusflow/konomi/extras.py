"""The optional packages of Konomi's server back ends, imported only when used.

PostgreSQL (psycopg) and Redis (redis) serve Konomi alone, so they are the
``konomi`` extra of the package, not dependencies of every node. They are
imported when a store or a bus that needs them is made, never at module import,
so that ``focusflow --help`` and the node never load them; without them that
moment fails with the install line instead of a bare ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from focusflow.core.errors import BackendUnavailableError

#: What a user runs to get the extra.
INSTALL = "pip install 'focusflow[konomi]'"


def import_extra(module: str, needed_for: str) -> ModuleType:
    """``module`` imported, or BackendUnavailableError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".", 1)[0]
        raise BackendUnavailableError(
            f"{needed_for} needs the Python package {package!r}, which is not installed"
            f" ({exc}); install Konomi's extra: {INSTALL}"
        ) from exc
