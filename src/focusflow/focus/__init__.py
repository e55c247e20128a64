"""The focus engine (FFCM): the tri-kernel over the cybergraph, and its measures.

``compute(graph, **params)`` returns a :class:`FocusResult`; :class:`FocusEngine`
keeps state between blocks and updates focus incrementally from edge deltas.

The names below load on first use (PEP 562), so that reading a genesis's focus
parameters (``focusflow.focus.params``) does not compile or load the numba
backends: a light client and most CLI commands never run the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from focusflow.core.lazy import lazy_names

_WHERE = {
    "backend_names": "backends",
    "get_backend": "backends",
    "FreeEnergy": "energy",
    "FreeEnergyModel": "energy",
    "free_energy": "energy",
    "entropy": "measures",
    "entropy_bits": "measures",
    "karma": "measures",
    "syntropy": "measures",
    "FocusParams": "params",
    "make_params": "params",
    "Diagnostics": "result",
    "FocusResult": "result",
    "compute": "solver",
}

if TYPE_CHECKING:
    from focusflow.focus.backends import backend_names, get_backend
    from focusflow.focus.energy import FreeEnergy, FreeEnergyModel, free_energy
    from focusflow.focus.measures import entropy, entropy_bits, karma, syntropy
    from focusflow.focus.params import FocusParams, make_params
    from focusflow.focus.result import Diagnostics, FocusResult
    from focusflow.focus.solver import compute


__getattr__ = lazy_names(__name__, _WHERE)


__all__ = [
    "Diagnostics",
    "FocusParams",
    "FocusResult",
    "FreeEnergy",
    "FreeEnergyModel",
    "backend_names",
    "compute",
    "entropy",
    "entropy_bits",
    "free_energy",
    "get_backend",
    "karma",
    "make_params",
    "syntropy",
]
