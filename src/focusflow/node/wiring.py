"""The composition root: wires the store, the modules and the chain into a node.

Everything above the kernel meets here and nowhere else: ``chain`` defines the
module interface, ``modules`` implement it, and this file decides which
modules a focusflow node runs.
"""

from __future__ import annotations

from pathlib import Path

from focusflow.chain.chain import Chain
from focusflow.chain.genesis import Genesis
from focusflow.core.keys import KeyPair
from focusflow.modules import ante, default_modules
from focusflow.store import Store


def open_chain(
    path: Path | str | Store, genesis: Genesis, validator_key: KeyPair | None = None
) -> Chain:
    """The chain over the store at ``path`` (created with ``genesis`` if new)."""
    store = path if isinstance(path, Store) else Store(path)
    return Chain(store, genesis, default_modules(), ante, validator_key=validator_key)
