"""What loads on first use: package names (PEP 562) and numba kernels.

A package whose ``__init__`` re-exports from heavy submodules (the focus
engine pulls in numba) makes every import of any of its light submodules pay
for the heavy ones. Such a package lists where each name lives and sets its
module ``__getattr__`` to :func:`lazy_names`; ``from package import Name``
then imports only the submodule that holds ``Name``.

A module of numba kernels decorates them with :func:`lazy_njit`, so that
importing it does not import numba: a reader that only parses a file starts
0.15 s sooner.
"""

from __future__ import annotations

import functools
import sys
import threading
import types
from collections.abc import Callable
from importlib import import_module
from typing import Any, TypeVar, cast

_F = TypeVar("_F", bound=Callable[..., Any])


def lazy_names(package: str, where: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``where`` maps each exported
    name to the submodule (relative name) that defines it; the value found is
    kept in the package, so the lookup runs once per name."""

    def load(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return load


#: The name a lazily compiled kernel's module gives numba (``nb.prange``):
#: bound in that module when its first kernel compiles.
NUMBA_NAME = "nb"

_compiling = threading.RLock()


class LazyKernel:
    """A numba kernel that imports numba and builds its dispatcher on its first call.

    Importing numba costs a fresh process about 0.15 s, and a module that
    decorates its kernels at import pays it even where nothing compiles (a
    reader that only parses a file). The kernel's code is numba's, unchanged:
    this changes only when ``numba.njit`` is applied to it. Before that, the
    kernels it names (other lazy kernels of any module) are resolved to their
    dispatchers in its module's globals, so numba sees dispatchers where it
    types a call; the module's own name for the kernel is then the dispatcher
    itself, and numba's attributes (``signatures``, ``py_func``...) are the
    dispatcher's.
    """

    _dispatcher: Any = None

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = func
        self.options = options
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        dispatcher = self._dispatcher
        if dispatcher is None:
            dispatcher = self.dispatcher()
        return dispatcher(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dispatcher(), name)

    def dispatcher(self) -> Any:
        """numba's dispatcher of this kernel, made on the first call (once, under a lock)."""
        with _compiling:
            if self._dispatcher is None:
                import numba

                scope = self.py_func.__globals__
                for name in _names(self.py_func.__code__):
                    value = scope.get(name)
                    if name == NUMBA_NAME and value is None:
                        scope[name] = numba
                    elif isinstance(value, LazyKernel) and value is not self:
                        scope[name] = value.dispatcher()
                self._dispatcher = numba.njit(**self.options)(self.py_func)
                if scope.get(self.py_func.__name__) is self:
                    scope[self.py_func.__name__] = self._dispatcher
        return self._dispatcher


def _names(code: types.CodeType) -> set[str]:
    """The global names a function's code (and any code nested in it) loads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def lazy_njit(**options: Any) -> Callable[[_F], _F]:
    """``numba.njit(**options)``, applied on the kernel's first call (:class:`LazyKernel`)."""

    def wrap(func: _F) -> _F:
        return cast("_F", LazyKernel(func, options))

    return wrap
