"""Compute backends for the focus engine, chosen by name or by ``auto``.

``numpy`` is the float64 reference, ``numba`` the fast CPU path, ``cuda`` the
NVIDIA GPU path (CuPy, optional extra ``gpu``), ``wgpu`` the portable WebGPU
path (optional extra ``webgpu``). ``auto`` takes the first of cuda, wgpu on a
real GPU, numba, numpy that can run here; asking for a backend that cannot run
is a clear error naming what is missing.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from importlib import import_module

from focusflow.core.errors import BackendUnavailableError, InvalidParameterError
from focusflow.focus.backends.base import Backend, GraphOperator


def gpu_device_node() -> bool:
    """A cheap hint that a real GPU is present (DRM render node or NVIDIA device)."""
    return bool(glob.glob("/dev/dri/renderD*") or glob.glob("/dev/nvidia[0-9]*"))


def _always() -> bool:
    return True


#: Each backend's module and class, and a cheap test that must pass before
#: ``auto`` imports its module: a backend's module is imported when first
#: asked for, so a command that solves on numba does not import the WebGPU
#: path's kernels and shaders (a tenth of a second of a small file's run).
_REGISTRY: dict[str, tuple[str, str, Callable[[], bool]]] = {
    "numpy": ("numpy_ref", "NumpyBackend", _always),
    "numba": ("numba_cpu", "NumbaBackend", _always),
    "cuda": ("cuda", "CudaBackend", _always),
    "wgpu": ("webgpu", "WgpuBackend", gpu_device_node),
}
_LOADED: dict[str, Backend] = {}
AUTO_ORDER = ("cuda", "wgpu", "numba", "numpy")


def backend_names() -> list[str]:
    return ["auto", *_REGISTRY]


def _load(name: str) -> Backend:
    backend = _LOADED.get(name)
    if backend is None:
        module, cls, _ = _REGISTRY[name]
        backend = getattr(import_module(f"{__name__}.{module}"), cls)()
        _LOADED[name] = backend
    return backend


def get_backend(name: str = "auto") -> Backend:
    """The backend called ``name``; ``auto`` takes the first available in AUTO_ORDER."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            if not _REGISTRY[candidate][2]():
                continue
            backend = _load(candidate)
            probe = getattr(backend, "auto_available", backend.available)
            if probe()[0]:
                return backend
        raise BackendUnavailableError("no focus backend can run on this machine")
    if name not in _REGISTRY:
        raise InvalidParameterError(
            f"unknown backend {name!r}: choose one of {', '.join(backend_names())}"
        )
    backend = _load(name)
    ok, why = backend.available()
    if not ok:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {why}")
    return backend


__all__ = ["Backend", "GraphOperator", "backend_names", "get_backend"]
