"""The WGSL modules of the wgpu backend and the names of their bindings and slots.

The shader sources are package data (``kernels/*.wgsl``), read by name; this
module is the one place where the Python side names what the shaders declare:
each module's bindings (``@group(0) @binding(b) var ... name``) as an
:class:`~enum.IntEnum` whose members are the variables' names, each uniform
struct's fields as an IntEnum of their 32-bit slots, and the bindings each
entry point uses (``layout="auto"`` keeps only those).
tests/focus/test_shader_bindings.py parses the sources and fails where the two
sides disagree. Four modules: ``matrix`` (SELL-32 rows, long-row chunks and
their ordered sums), ``vector`` (fill, gather, overlay rows, mass and L1
reductions in double-float pairs, finish, Anderson mixing), ``scatter`` (a
patch's new values) and ``tri`` (springs and heat).
"""

from __future__ import annotations

from enum import IntEnum

from focusflow.focus.backends.base import kernel_source

#: Largest Anderson window on the device (FocusParams allows 0..10).
MAX_ANDERSON = 10


class MatrixBinding(IntEnum):
    """Bindings of ``matrix.wgsl``."""

    GPTR = 0
    GLEN = 1
    GROWS = 2
    SIDX = 3
    SVAL = 4
    Z = 5
    OUT = 6
    PARAMS = 7
    CSTART = 8
    CEND = 9
    LIDX = 10
    LVAL = 11
    PARTIAL = 12
    LROW = 13
    LCHUNK = 14


class MatrixParam(IntEnum):
    """32-bit slots of ``matrix.wgsl``'s ``Params``: ``p0`` is the rows the
    matrix has, ``p1`` the rows past them that a product zeroes."""

    NGROUPS = 0
    NCHUNKS = 1
    NLONG = 2
    WIDTH = 3
    SCALE = 4
    P0 = 5
    P1 = 6
    P2 = 7


class VectorBinding(IntEnum):
    """Bindings of ``vector.wgsl``."""

    X = 0
    Y = 1
    Z = 2
    PRIOR = 3
    INV_OUT = 4
    PART = 5
    STATS = 6
    VP = 7
    COUNTER = 8
    OVROW = 9
    OVSTART = 10
    OVEND = 11
    OVIDX = 12
    OVVAL = 13
    HIST = 14
    COEF = 15


class VectorParam(IntEnum):
    """32-bit slots of ``vector.wgsl``'s ``VParams`` (``scale``: alpha)."""

    N = 0
    NPARTS = 1
    NOV = 2
    WIDTH = 3
    INV_PRIOR_SUM = 4
    SCALE = 5
    UNIFORM_PRIOR = 6
    FILL_VALUE = 7
    P0 = 8
    AA_SLOT = 9
    AA_K = 10
    P1 = 11


class ScatterBinding(IntEnum):
    """Bindings of ``scatter.wgsl``."""

    POS = 0
    VAL = 1
    DST = 2
    COUNT = 3


class ScatterParam(IntEnum):
    """32-bit slots of ``scatter.wgsl``'s ``Count``."""

    N = 0
    WIDTH = 1
    P0 = 2
    P1 = 3


class TriBinding(IntEnum):
    """Bindings of ``tri.wgsl`` (``t`` and ``acc`` are the symmetric product's
    input and output, bound to ``matrix.wgsl``'s ``z`` and ``out``)."""

    X = 0
    Y = 1
    LAP = 2
    YCG = 4
    R = 5
    P = 6
    AP = 7
    T = 8
    ACC = 9
    PART = 10
    TS = 11
    TP = 12
    HOUT = 13
    HPHI = 14
    HA = 15
    HB = 16
    HC = 17
    DIMS = 18
    HACC = 19


class TriParam(IntEnum):
    """32-bit slots of ``tri.wgsl``'s ``TParams``."""

    N = 0
    NPARTS = 1
    CG_MAX = 2
    FRESH = 3
    MU = 4
    CG_TOL = 5
    LAM_D = 6
    LAM_S = 7
    LAM_H = 8
    HSCALE = 9
    INCREMENTAL = 10
    P0 = 11


class TriScalar(IntEnum):
    """Slots of ``tri.wgsl``'s scalar buffer ``ts`` (a pair: hi, lo);
    :attr:`COEF0` is the shader's ``const COEF0``, the first Chebyshev
    coefficient (the scalars read back after each CG batch are those before)."""

    ACTIVE = 0
    CG_ITERATIONS = 1
    RZ = 2
    STEP = 3
    BETA = 4
    GOAL = 5
    RR_HI = 6
    RR_LO = 7
    NEXT_TERM = 8
    DELTA_HI = 9
    DELTA_LO = 10
    BASE_HI = 11
    BASE_LO = 12
    COEF0 = 16


M, V, S, T = MatrixBinding, VectorBinding, ScatterBinding, TriBinding

#: Bindings each entry point uses (``layout="auto"`` keeps only those).
BINDINGS: dict[str, tuple[IntEnum, ...]] = {
    "scatter": (S.POS, S.VAL, S.DST, S.COUNT),
    "sell_pull": (M.GPTR, M.GLEN, M.GROWS, M.SIDX, M.SVAL, M.Z, M.OUT, M.PARAMS),
    "chunk_sum": (M.Z, M.PARAMS, M.CSTART, M.CEND, M.LIDX, M.LVAL, M.PARTIAL),
    "long_finish": (M.OUT, M.PARAMS, M.PARTIAL, M.LROW, M.LCHUNK),
    "fill": (V.Y, V.VP),
    "prep": (V.X, V.Z, V.INV_OUT, V.VP),
    "ov_add": (V.Y, V.Z, V.VP, V.OVROW, V.OVSTART, V.OVEND, V.OVIDX, V.OVVAL),
    "sum_partial": (V.Y, V.PART, V.VP),
    "mass_final": (V.PART, V.STATS, V.VP),
    "blend_final": (V.PART, V.STATS, V.VP),
    "finish": (V.X, V.Y, V.Z, V.PRIOR, V.INV_OUT, V.PART, V.STATS, V.VP),
    "l1_final": (V.PART, V.STATS, V.VP, V.COUNTER),
    "finish_aa": (V.X, V.Y, V.Z, V.PRIOR, V.INV_OUT, V.PART, V.STATS, V.VP, V.HIST),
    "aa_final": (V.PART, V.STATS, V.VP),
    "aa_mix": (V.Y, V.Z, V.INV_OUT, V.VP, V.HIST, V.COEF),
    "cg_init_a": (T.X, T.LAP, T.YCG, T.T, T.TP),
    "cg_init_b": (T.X, T.LAP, T.YCG, T.R, T.P, T.T, T.ACC, T.PART, T.TP),
    "cg_init_final": (T.PART, T.TS, T.TP, T.DIMS),
    "cg_ap": (T.LAP, T.P, T.AP, T.ACC, T.PART, T.TS, T.TP),
    "cg_step": (T.PART, T.TS, T.TP),
    "cg_update": (T.LAP, T.YCG, T.R, T.P, T.AP, T.PART, T.TS, T.TP),
    "cg_final": (T.PART, T.TS, T.TP, T.DIMS),
    "cg_dir": (T.LAP, T.R, T.P, T.T, T.TS, T.TP),
    "heat_norms": (T.X, T.LAP, T.PART, T.TP, T.HPHI),
    "heat_norms_final": (T.PART, T.TS, T.TP),
    "heat_init": (T.X, T.LAP, T.T, T.TS, T.TP, T.HPHI, T.HA, T.HACC),
    "heat_first": (T.LAP, T.T, T.ACC, T.TS, T.TP, T.HA, T.HB, T.HACC),
    "heat_term": (T.LAP, T.T, T.ACC, T.TS, T.TP, T.HA, T.HB, T.HC, T.HACC),
    "heat_tick": (T.TS,),
    "tri_blend": (T.X, T.Y, T.LAP, T.YCG, T.TP, T.HOUT, T.HPHI, T.HACC),
}

#: Each module's source file, binding enum, uniform struct and its slots, and
#: entry points (the vector module's Anderson ones are compiled per window).
MODULES: dict[str, tuple[str, type[IntEnum], str, type[IntEnum]]] = {
    "matrix": ("matrix.wgsl", MatrixBinding, "Params", MatrixParam),
    "vector": ("vector.wgsl", VectorBinding, "VParams", VectorParam),
    "scatter": ("scatter.wgsl", ScatterBinding, "Count", ScatterParam),
    "tri": ("tri.wgsl", TriBinding, "TParams", TriParam),
}
AA_KERNELS = ("finish_aa", "aa_final", "aa_mix")
MATRIX_KERNELS = ("sell_pull", "chunk_sum", "long_finish")
VECTOR_KERNELS = (
    "fill",
    "prep",
    "ov_add",
    "sum_partial",
    "mass_final",
    "blend_final",
    "finish",
    "l1_final",
)
TRI_KERNELS = tuple(name for name in BINDINGS if name.startswith(("cg_", "heat_", "tri_")))
KERNELS: dict[str, tuple[str, ...]] = {
    "matrix": MATRIX_KERNELS,
    "vector": VECTOR_KERNELS + AA_KERNELS,
    "scatter": ("scatter",),
    "tri": TRI_KERNELS,
}


#: Files put before a module's own source: the double-float sums that the
#: vector and tri modules share.
PRELUDES: dict[str, tuple[str, ...]] = {"vector": ("ddsum.wgsl",), "tri": ("ddsum.wgsl",)}


def _source(module: str) -> str:
    """``module``'s WGSL file with its preludes before it."""
    names = (*PRELUDES.get(module, ()), MODULES[module][0])
    return "".join(kernel_source(name) for name in names)


def vector_shader(m: int) -> str:
    """The vector module with an Anderson window of ``m`` (0: no mixing)."""
    if not 0 <= m <= MAX_ANDERSON:
        raise ValueError(f"the wgpu backend mixes at most {MAX_ANDERSON} steps")
    source = _source("vector")
    return source.replace("AA_M_VALUE", str(m)).replace("AA_VALUES_N", str(1 + 2 * m))


def shader(module: str) -> str:
    """The WGSL of ``module`` (the vector module without Anderson mixing)."""
    return vector_shader(0) if module == "vector" else _source(module)
