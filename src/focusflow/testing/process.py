"""What every node process a test starts shares: where its focusflow comes from
and its environment."""

from __future__ import annotations

import os
from pathlib import Path

#: The directory that holds this ``focusflow`` package (``src`` in a checkout,
#: ``site-packages`` in an install): node processes import focusflow from it.
SOURCE = Path(__file__).resolve().parents[2]


def node_env(source: Path = SOURCE) -> dict[str, str]:
    """The environment of a node process running the focusflow package under
    ``source``: this one's, unbuffered, without a ``FOCUSFLOW_HOME`` (each
    harness names its node's home)."""
    env = dict(os.environ, PYTHONPATH=str(source), PYTHONUNBUFFERED="1")
    env.pop("FOCUSFLOW_HOME", None)
    return env


__all__ = ["SOURCE", "node_env"]
