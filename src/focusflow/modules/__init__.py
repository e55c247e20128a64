"""The chain's state machines: bank, graph links, names and blobs."""

from focusflow.modules.bank import Bank, ante
from focusflow.modules.blobs import Blobs
from focusflow.modules.links import Links
from focusflow.modules.names import Names


def default_modules() -> list:
    """The modules every focusflow chain runs, in execution order."""
    return [Bank(), Links(), Names(), Blobs()]


__all__ = ["Bank", "Blobs", "Links", "Names", "ante", "default_modules"]
