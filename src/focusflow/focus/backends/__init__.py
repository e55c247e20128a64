"""Compute backends for the focus engine, chosen by name or by ``auto``.

``numpy`` is the float64 reference, ``numba`` the fast CPU path, ``cuda`` the
NVIDIA GPU path (CuPy, optional extra ``gpu``), ``wgpu`` the portable WebGPU
path (optional extra ``webgpu``). ``auto`` takes the first of cuda, wgpu on a
real GPU, numba, numpy that can run here; asking for a backend that cannot run
is a clear error naming what is missing.
"""

from __future__ import annotations

from focusflow.core.errors import BackendUnavailableError, InvalidParameterError
from focusflow.focus.backends.base import Backend, GraphOperator
from focusflow.focus.backends.cuda import CudaBackend
from focusflow.focus.backends.numba_cpu import NumbaBackend
from focusflow.focus.backends.numpy_ref import NumpyBackend
from focusflow.focus.backends.webgpu import WgpuBackend

_BACKENDS: dict[str, Backend] = {
    "numpy": NumpyBackend(),
    "numba": NumbaBackend(),
    "cuda": CudaBackend(),
    "wgpu": WgpuBackend(),
}
AUTO_ORDER = ("cuda", "wgpu", "numba", "numpy")


def backend_names() -> list[str]:
    return ["auto", *_BACKENDS]


def get_backend(name: str = "auto") -> Backend:
    """The backend called ``name``; ``auto`` takes the first available in AUTO_ORDER."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            backend = _BACKENDS[candidate]
            probe = getattr(backend, "auto_available", backend.available)
            if probe()[0]:
                return backend
        raise BackendUnavailableError("no focus backend can run on this machine")
    backend = _BACKENDS.get(name)
    if backend is None:
        raise InvalidParameterError(
            f"unknown backend {name!r}: choose one of {', '.join(backend_names())}"
        )
    ok, why = backend.available()
    if not ok:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {why}")
    return backend


__all__ = ["Backend", "GraphOperator", "backend_names", "get_backend"]
