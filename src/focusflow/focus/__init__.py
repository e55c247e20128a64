"""The focus engine (FFCM): the tri-kernel over the cybergraph, and its measures.

``compute(graph, **params)`` returns a :class:`FocusResult`; :class:`FocusEngine`
keeps state between blocks and updates focus incrementally from edge deltas.
"""

from focusflow.focus.backends import backend_names, get_backend
from focusflow.focus.measures import entropy, entropy_bits, karma, syntropy
from focusflow.focus.params import FocusParams, make_params
from focusflow.focus.result import Diagnostics, FocusResult
from focusflow.focus.solver import compute

__all__ = [
    "Diagnostics",
    "FocusParams",
    "FocusResult",
    "backend_names",
    "compute",
    "entropy",
    "entropy_bits",
    "get_backend",
    "karma",
    "make_params",
    "syntropy",
]
