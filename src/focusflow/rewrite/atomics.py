"""Atomic read-modify-write on numpy array elements inside numba kernels.

numba offers atomics only on the GPU; the CPU evaluator's threads share the
substitution map and the heap's bump pointer, so it needs LLVM's ``atomicrmw``
directly. Each function here compiles to one sequentially consistent
instruction (``xchg`` / ``lock xadd`` on x86-64), which also orders the plain
stores before it: a node written and then published through an exchange is
seen whole by the thread that takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: numba's ``cgutils`` carries no annotations; its LLVM values are untyped here
#: like every other (``Any``), so this says no more than that it is callable.
_get_item_pointer = cast(Callable[..., Any], cgutils.get_item_pointer)


def _element_pointer(context: Any, builder: Any, aryty: Any, ary: Any, idx: Any) -> Any:
    """The address of ``ary[idx]`` (a 1-d array, an int64 index, no bounds check)."""
    arr = context.make_array(aryty)(context, builder, ary)
    return _get_item_pointer(context, builder, aryty, arr, [idx], wraparound=False)


@intrinsic
def _exchange(typingctx: Any, ary: Any, idx: Any, val: Any) -> Any:
    """``old = ary[idx]; ary[idx] = val; return old`` as one atomic step."""
    dtype = ary.dtype
    sig = dtype(ary, types.int64, dtype)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty, _, _ = signature.args
        ptr = _element_pointer(context, builder, aryty, args[0], args[1])
        return builder.atomic_rmw("xchg", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def _fetch_add(typingctx: Any, ary: Any, idx: Any, val: Any) -> Any:
    """``old = ary[idx]; ary[idx] += val; return old`` as one atomic step."""
    dtype = ary.dtype
    sig = dtype(ary, types.int64, dtype)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty, _, _ = signature.args
        ptr = _element_pointer(context, builder, aryty, args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def _load(typingctx: Any, ary: Any, idx: Any) -> Any:
    """``ary[idx]`` read atomically: a plain load on x86-64 that the compiler may
    neither hoist out of a loop nor tear, and that writes nothing (a flag polled
    this way costs its other readers no cache misses)."""
    dtype = ary.dtype
    sig = dtype(ary, types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty, _ = signature.args
        ptr = _element_pointer(context, builder, aryty, args[0], args[1])
        return builder.load_atomic(ptr, "seq_cst", context.get_abi_alignment(ptr.type.pointee))

    return sig, codegen


# numba calls an intrinsic with the arguments after ``typingctx``; to the type
# checker these are plain functions of them.
exchange: Any = _exchange
fetch_add: Any = _fetch_add
load: Any = _load
