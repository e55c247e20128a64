"""The chain's state machines: bank, graph links, names, blobs and validators."""

from focusflow.modules.bank import Bank, ante
from focusflow.modules.blobs import Blobs
from focusflow.modules.links import Links
from focusflow.modules.names import Names
from focusflow.modules.validators import Validators


def default_modules() -> list:
    """The modules every focusflow chain runs, in execution order (the bank's
    end of block slashes before the validators' picks a set from the stakes)."""
    return [Bank(), Links(), Names(), Blobs(), Validators()]


__all__ = ["Bank", "Blobs", "Links", "Names", "Validators", "ante", "default_modules"]
