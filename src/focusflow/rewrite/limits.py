"""Bounds on one run of the VM: interactions and seconds.

An interaction net need not have a normal form, and one without it may reduce
forever in constant memory (``@loop = (a b) & @loop ~ (a b)``), so the heap's
size bounds nothing there. A caller that runs programs it did not write gives
a run a number of interactions or of seconds; each evaluator's host loop calls
``Limits.check`` between its calls of the kernel (a slice of the CPU kernel, a
GPU launch), which is where the run can stop: it may go past a limit by what
one such call does (at most 4 M interactions a thread on the CPU; the one-
thread CPU evaluator stops at the count exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.core.errors import InvalidParameterError
from focusflow.rewrite.errors import HvmInteractionLimitError, HvmTimeoutError


@dataclass(frozen=True)
class Limits:
    """At most ``interactions`` interactions and ``seconds`` seconds of
    reduction (``None``: no bound)."""

    interactions: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.interactions is not None and self.interactions < 1:
            raise InvalidParameterError(
                f"the interaction limit must be at least 1, got {self.interactions}"
            )
        if self.seconds is not None and not self.seconds > 0:
            raise InvalidParameterError(f"the time limit must be above 0 s, got {self.seconds}")

    def left(self, interactions: int) -> int | None:
        """Interactions still allowed after ``interactions`` (``None``: no bound)."""
        return None if self.interactions is None else max(self.interactions - interactions, 0)

    def check(self, interactions: int, seconds: float) -> None:
        """Raise if a run that is not done has used its interactions or its
        time: ``HvmInteractionLimitError`` or ``HvmTimeoutError``."""
        if self.interactions is not None and interactions >= self.interactions:
            raise HvmInteractionLimitError(
                f"no normal form within {self.interactions} interactions "
                f"(stopped after {interactions})"
            )
        if self.seconds is not None and seconds >= self.seconds:
            raise HvmTimeoutError(
                f"no normal form within {self.seconds:g} s "
                f"(stopped after {seconds:.3f} s and {interactions} interactions)"
            )


#: No bound on either.
UNLIMITED = Limits()
