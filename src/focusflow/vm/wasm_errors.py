"""Why a WASM contract call or module fails, each with a stable code.

Apart from ``wasm`` so that the module check (``wasm_scan``), which ``wasm``
imports, raises the same :class:`InvalidWasmError` a call does: one class
for the code ``invalid_wasm``, whichever of the two finds the module bad.
"""

from __future__ import annotations

from focusflow.core.errors import FocusflowError


class WasmError(FocusflowError):
    """A contract's call failed: ``code`` says how (see the subclasses)."""

    code = "wasm_error"


class WasmTrapError(WasmError):
    """The module trapped: unreachable, out of bounds, a stack overflow, memory over the cap."""

    code = "wasm_trap"


class WasmOutOfGasError(WasmError):
    """The call used all the gas it was given."""

    code = "wasm_out_of_gas"


class WasmAbortError(WasmError):
    """The contract ended the call with its own error (``env.abort``)."""

    code = "wasm_abort"


class UnknownContractError(WasmError):
    """No contract instance at the address."""

    code = "unknown_contract"


class InvalidWasmError(WasmError):
    """Bytes that are no valid module, or a module off the contract interface or
    past a bound (``wasm_scan``)."""

    code = "invalid_wasm"


__all__ = [
    "InvalidWasmError",
    "UnknownContractError",
    "WasmAbortError",
    "WasmError",
    "WasmOutOfGasError",
    "WasmTrapError",
]
