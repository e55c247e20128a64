"""Structural checks of arrays that come from outside (a peer's focus state).

The focus engine's numba kernels index their arrays without bounds checks: a
row pointer that runs past its index array, or an index past the vector it
gathers from, reads or writes outside the array. A state loaded from a peer
(chain/snapshot.py) is therefore checked structure by structure before any
kernel sees it; each structure's module says what its arrays must satisfy
(``check_structure``), with the helpers here, all vectorised numpy.

A :class:`Check` names the field it looks at by its path from the state's root
(``engine._op.sell.sidx``), so a refusal says exactly what was wrong, and it
remembers every array it validated: the loader then refuses any array of the
state that no check looked at (a structure whose new array nobody checks
fails its tests instead of going unchecked).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn, TypeGuard

import numpy as np

_INT = (np.int32, np.int64)


def _is_number(value: object) -> TypeGuard[float]:
    """A Python float or int, or a numpy float64: exactly these types, so a
    bool (an int subclass) or another float subclass is refused."""
    return type(value) in (float, int, np.float64)


class StructureError(ValueError):
    """A structure's field is not what the code that uses it assumes."""


class Check:
    """Checks the fields of one structure, named by their path from the root."""

    def __init__(
        self,
        path: str = "",
        covered: set[int] | None = None,
        structures: set[int] | None = None,
    ) -> None:
        self.path = path
        #: ids of the arrays validated so far (shared by every sub-check).
        self.covered: set[int] = set() if covered is None else covered
        #: ids of the structures checked so far (see :meth:`once`).
        self.structures: set[int] = set() if structures is None else structures

    def at(self, name: str) -> Check:
        """The check of a field that is itself a structure."""
        return Check(self.name(name), self.covered, self.structures)

    def once(self, obj: object) -> bool:
        """Whether ``obj`` (a structure several fields share) is met here first."""
        if id(obj) in self.structures:
            return False
        self.structures.add(id(obj))
        return True

    def name(self, field: str) -> str:
        if not self.path:
            return field
        return f"{self.path}{field}" if field.startswith("[") else f"{self.path}.{field}"

    def fail(self, field: str, message: str) -> NoReturn:
        raise StructureError(f"{self.name(field)} {message}")

    # --- objects -----------------------------------------------------------
    def fields(
        self,
        obj: object,
        cls: type,
        required: Iterable[str],
        optional: Iterable[str] = (),
    ) -> dict[str, Any]:
        """``obj`` is exactly a ``cls`` with the ``required`` attributes and no
        others than ``optional``: an instance attribute the class does not
        set could shadow a method or constant the engine relies on."""
        if type(obj) is not cls:
            raise StructureError(
                f"{self.path or 'state'} is a {type(obj).__name__}, not a {cls.__name__}"
            )
        attrs = vars(obj)
        required = set(required)
        missing = sorted(required - attrs.keys())
        if missing:
            self.fail(missing[0], "is missing")
        extra = sorted(attrs.keys() - required - set(optional))
        if extra:
            self.fail(extra[0], "is not an attribute this structure has")
        return attrs

    def instance(self, field: str, value: object, cls: type | tuple[type, ...]) -> None:
        if type(value) not in (cls if isinstance(cls, tuple) else (cls,)):
            self.fail(field, f"is a {type(value).__name__}")

    def integer(self, field: str, value: object, lo: int, hi: int | None = None) -> int:
        """A Python int (not a bool) in ``[lo, hi]``."""
        if type(value) is not int:
            self.fail(field, f"is a {type(value).__name__}, not an int")
        if value < lo or (hi is not None and value > hi):
            top = "" if hi is None else f"{hi}"
            self.fail(field, f"= {value} out of range [{lo}, {top}]")
        return value

    def number(self, field: str, value: object, *, nonneg: bool = False) -> float:
        """A finite Python or numpy float (or int)."""
        if not _is_number(value) or not np.isfinite(value):
            self.fail(field, f"= {value!r} is not a finite number")
        if nonneg and value < 0:
            self.fail(field, f"= {value!r} is negative")
        return float(value)

    # --- arrays ------------------------------------------------------------
    def array(
        self,
        field: str,
        value: object,
        dtype: type | tuple[type, ...],
        length: int | None = None,
        *,
        lo: int | None = None,
        hi: int | None = None,
        finite: bool = False,
        nonneg: bool = False,
        shape: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """A C-contiguous numpy array of ``dtype`` (native byte order), 1-D of
        ``length`` (or of ``shape``); integers in ``[lo, hi)``, floats finite
        and >= 0 where asked."""
        if type(value) is not np.ndarray:
            self.fail(field, f"is a {type(value).__name__}, not an array")
        dtypes = dtype if isinstance(dtype, tuple) else (dtype,)
        if not any(value.dtype == np.dtype(d) for d in dtypes):
            want = " or ".join(np.dtype(d).name for d in dtypes)
            self.fail(field, f"has dtype {value.dtype.str}, not {want}")
        if shape is not None:
            if value.shape != shape:
                self.fail(field, f"has shape {value.shape}, not {shape}")
        elif value.ndim != 1:
            self.fail(field, f"has {value.ndim} dimensions, not 1")
        elif length is not None and len(value) != length:
            self.fail(field, f"has length {len(value)}, not {length}")
        if not value.flags.c_contiguous:
            self.fail(field, "is not contiguous")
        self.contents(field, value, lo=lo, hi=hi, finite=finite, nonneg=nonneg)
        self.covered.add(id(value))
        return value

    def contents(
        self,
        field: str,
        value: np.ndarray,
        *,
        lo: int | None = None,
        hi: int | None = None,
        finite: bool = False,
        nonneg: bool = False,
    ) -> None:
        """The entries of an array already checked for type (or a view of
        one): integers in ``[lo, hi)``, floats finite and >= 0 where asked."""
        if lo is not None or hi is not None:
            self.bounds(field, value, lo, hi)
        if finite or nonneg:
            flat = value.ravel()
            bad = ~np.isfinite(flat) if finite else np.zeros(flat.shape, dtype=bool)
            if nonneg:
                bad |= flat < 0
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                want = "finite and >= 0" if finite and nonneg else "finite" if finite else ">= 0"
                self.fail(f"{field}[{i}]", f"= {float(flat[i])!r} is not {want}")

    def stale(self, field: str, value: object) -> None:
        """A left-over numeric array that the code replaces before it reads it
        again (a buffer of a matrix since dropped): of a numeric dtype, any shape."""
        if type(value) is not np.ndarray or value.dtype.kind not in "biuf":
            self.fail(field, f"is a {type(value).__name__} of no numeric dtype")
        self.covered.add(id(value))

    def optional_array(
        self,
        field: str,
        value: object,
        dtype: type | tuple[type, ...],
        length: int | None = None,
        *,
        lo: int | None = None,
        hi: int | None = None,
        finite: bool = False,
        nonneg: bool = False,
        shape: tuple[int, ...] | None = None,
    ) -> np.ndarray | None:
        """As :meth:`array`, or None."""
        if value is None:
            return None
        return self.array(
            field, value, dtype, length, lo=lo, hi=hi, finite=finite, nonneg=nonneg, shape=shape
        )

    def bounds(self, field: str, value: np.ndarray, lo: int | None, hi: int | None) -> None:
        """Every entry of an integer array in ``[lo, hi)``."""
        if not len(value):
            return
        if (lo is not None and value.min() < lo) or (hi is not None and value.max() >= hi):
            low = value < lo if lo is not None else np.zeros(len(value), dtype=bool)
            high = value >= hi if hi is not None else np.zeros(len(value), dtype=bool)
            i = int(np.flatnonzero(low | high)[0])
            low_end = "" if lo is None else lo
            high_end = "" if hi is None else hi
            self.fail(f"{field}[{i}]", f"= {value[i]} out of range [{low_end}, {high_end})")

    def indptr(self, field: str, value: object, rows: int, nnz: int) -> np.ndarray:
        """A row pointer of ``rows`` rows over ``nnz`` entries: int64, ``rows + 1``
        long, starting at 0, non-decreasing, ending at ``nnz``."""
        return self.pointer(field, value, rows, nnz, dtype=np.int64)

    def pointer(
        self, field: str, value: object, rows: int, nnz: int, dtype: type | tuple[type, ...] = _INT
    ) -> np.ndarray:
        """As :meth:`indptr`, of any of the integer ``dtype``."""
        ptr = self.array(field, value, dtype, rows + 1)
        if ptr[0] != 0:
            self.fail(f"{field}[0]", f"= {ptr[0]}, not 0")
        down = np.flatnonzero(ptr[1:] < ptr[:-1])
        if len(down):
            i = int(down[0]) + 1
            self.fail(f"{field}[{i}]", f"= {ptr[i]} is below {field}[{i - 1}] = {ptr[i - 1]}")
        if ptr[-1] != nnz:
            self.fail(f"{field}[{rows}]", f"= {ptr[-1]}, not the {nnz} entries")
        return ptr

    def permutation(
        self, field: str, value: object, n: int, dtype: type | tuple[type, ...] = np.int64
    ) -> np.ndarray:
        """A permutation of ``range(n)``."""
        perm = self.array(field, value, dtype, n, lo=0, hi=n)
        seen = np.bincount(perm, minlength=n)
        twice = np.flatnonzero(seen > 1)
        if len(twice):
            self.fail(
                field, f"is not a permutation: {int(twice[0])} appears {seen[twice[0]]} times"
            )
        return perm

    def inverse(
        self,
        field: str,
        value: object,
        perm: np.ndarray,
        dtype: type | tuple[type, ...] = np.int64,
    ) -> np.ndarray:
        """The inverse of the permutation ``perm``."""
        inv = self.array(field, value, dtype, len(perm), lo=0, hi=len(perm))
        wrong = np.flatnonzero(inv[perm] != np.arange(len(perm)))
        if len(wrong):
            i = int(perm[wrong[0]])
            self.fail(f"{field}[{i}]", f"= {inv[i]} is not the inverse permutation's {wrong[0]}")
        return inv

    def equal(self, field: str, value: np.ndarray, expected: np.ndarray, what: str) -> None:
        """``value`` equals ``expected`` entry for entry (same length)."""
        if len(value) != len(expected):
            self.fail(field, f"has length {len(value)}, not {len(expected)} ({what})")
        wrong = np.flatnonzero(value != expected)
        if len(wrong):
            i = int(wrong[0])
            self.fail(f"{field}[{i}]", f"= {value[i]}, not {expected[i]} ({what})")


def rows_of(indptr: np.ndarray) -> np.ndarray:
    """The row of every entry of a checked row pointer."""
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))


__all__ = ["Check", "StructureError", "rows_of"]
