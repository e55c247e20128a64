"""Errors of the interaction-net VM, each with a stable code.

A program text that does not parse, a book that refers to a missing
definition, a net that outgrows its heap: each is the user's input, not a bug,
so each is a ``FocusflowError`` the CLI prints as one line (docs/errors.md).
"""

from __future__ import annotations

from focusflow.core.errors import FocusflowError


class HvmSyntaxError(FocusflowError, ValueError):
    """The program is not in the IR grammar; for a text, the message names line
    and column (a net built in code has neither)."""

    code = "hvm_syntax"

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = "" if line is None else f"line {line}, column {column}: "
        super().__init__(where + message)
        self.line = line
        self.column = column


class HvmUnboundRefError(FocusflowError, ValueError):
    """A ``@name`` refers to a definition the book does not have."""

    code = "hvm_unbound_ref"


class HvmMissingMainError(FocusflowError, ValueError):
    """The book has no ``@main`` definition, so there is nothing to run."""

    code = "hvm_missing_main"


class HvmOutOfMemoryError(FocusflowError):
    """The net needs more node or variable slots (or pending redexes) than the heap has."""

    code = "hvm_out_of_memory"


class HvmUnsafeCloneError(FocusflowError):
    """A reference to a definition containing duplicators met a duplicator.

    Copying it would duplicate a non-affine global; the reference interpreter
    refuses it the same way instead of producing a result that depends on the
    evaluation order."""

    code = "hvm_unsafe_clone"


class HvmReadbackError(FocusflowError):
    """The normal form reached from the root is not a tree (a vicious circle:
    a node or a wire that leads back to itself), so it has no text."""

    code = "hvm_readback"


class HvmBackendUnavailableError(FocusflowError):
    """The requested evaluator does not exist or cannot run on this machine
    (no CuPy or CUDA GPU for ``cuda``, or one that gives a block less than
    96 KiB of shared memory; no WebGPU adapter for ``wgpu``)."""

    code = "hvm_backend_unavailable"


class HvmInteractionLimitError(FocusflowError):
    """The run did not reach normal form within the interactions it was given
    (``--max-interactions``): a net may reduce forever, in constant memory, so
    a service running programs it did not write bounds them by count."""

    code = "hvm_interaction_limit"


class HvmTimeoutError(FocusflowError):
    """The run did not reach normal form within the seconds it was given
    (``--timeout``), counted from the start of the reduction."""

    code = "hvm_timeout"
