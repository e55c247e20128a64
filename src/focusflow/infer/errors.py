"""Errors of inference, each with the code the CLI, the API and docs/infer.md name."""

from __future__ import annotations

from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.graph.semcons import UnknownSemconError

__all__ = ["EmptyContextError", "UnknownParticleError", "UnknownSemconError"]


class UnknownParticleError(FocusflowError, LookupError):
    """A context names a particle the graph does not hold."""

    code = "unknown_particle"


class EmptyContextError(InvalidParameterError):
    """A context with no particle: nothing to start the flow from."""

    code = "empty_context"
