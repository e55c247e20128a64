"""The optional packages of Konomi's server back ends, imported only when used.

PostgreSQL (psycopg) and Redis (redis) serve Konomi alone, so they are the
``konomi`` extra of the package, not dependencies of every node. They are
imported when a store or a bus that needs them is made, never at module import,
so that ``focusflow --help`` and the node never load them; without them that
moment fails with the install line instead of a bare ImportError.
"""

from __future__ import annotations

from types import ModuleType

from focusflow.core import extras

#: What a user runs to get the extra.
INSTALL = extras.install_line("konomi")


def import_extra(module: str, needed_for: str) -> ModuleType:
    """``module`` imported, or MissingExtraError (``missing_extra``) naming the
    extra to install."""
    return extras.import_extra(module, "konomi", needed_for)
