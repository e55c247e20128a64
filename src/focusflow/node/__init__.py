"""The node: the composition root (``wiring``), the devnet, validators, their CLI.

``open_chain`` is resolved on first use: every ``focusflow`` command imports
this package, and only the commands that run a chain should pay for loading
the chain, numba and the focus engine.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_chain"]


def __getattr__(name: str) -> Any:
    if name == "open_chain":
        from focusflow.node.wiring import open_chain

        return open_chain
    raise AttributeError(f"module 'focusflow.node' has no attribute {name!r}")
