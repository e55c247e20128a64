"""What a chain's focus is, without the engine that computes it: the focus
parameters a genesis names (over fixed defaults) and the committed layout
(fixed-point scale, chunking, state keys), both described in ``focus_commit``.

Apart from ``focus_commit`` so that reading a genesis and checking a focus
proof need only these definitions, not the focus engine and its numba
kernels: a light client and most CLI commands never compute focus.
"""

from __future__ import annotations

from typing import Any

from focusflow.focus.params import EXACT_V3, FAST, TRI_ANDERSON, FocusParams, make_params

SCALE = 10**15
FOCUS_CHUNK = 1024
PARTICLE_CHUNK = 1024
FOCUS_KEY = b"/graph/focus"
PARTICLES_PREFIX = b"/graph/particles/"

#: The focus algorithm a chain gets for what its genesis leaves out: the
#: choices its blocks were first committed with. A node without a usable focus
#: checkpoint replays every stored block (chain/lifecycle.py), so a later library
#: default must not change what they recompute to; a genesis may name the
#: faster choices (docs/focus.md: ``start``, ``heat_reuse``, ``anderson``,
#: ``finish``).
CHAIN_FOCUS_DEFAULTS = {
    "anderson": 2,
    "start": "uniform",
    "heat_reuse": "exact",
    "finish": "fixed",
    "arithmetic": FAST,
    "springs_method": "cg",
}
#: What a genesis written now names (node.home: devnet, testnet): the library's
#: tri algorithm, every choice spelled out, so that the chain keeps it whatever
#: later defaults become. Against CHAIN_FOCUS_DEFAULTS: a cold tri solve 82
#: -> 50 pair passes, a block of 5,000 links on an R-MAT graph of 10^6 links
#: 78 -> 60 (bench/tri_blocks.py). Its arithmetic is ``exact-v3``: the same
#: bits as ``exact-v2`` gives on every CPU, its blocks as fast on the CPU
#: (0.99-1.06x on a 16-core Xeon at R-MAT 16 and 18) and within 2x of the fast
#: arithmetic on a GPU, where ``exact-v2``'s 64 ordered chunks cost 17x
#: (bench/exact_versions.py, bench/cuda_exact.py; bench/RESULTS.md).
NEW_CHAIN_FOCUS = {
    "mode": "tri",
    "anderson": TRI_ANDERSON,
    "start": "diffusion",
    "heat_reuse": "bounded",
    "finish": "bounded",
    "arithmetic": EXACT_V3,
    "springs_method": "cg",
}


def chain_focus_params(focus: dict[str, Any] | None) -> FocusParams:
    """The focus parameters of a chain whose genesis names ``focus``:
    CHAIN_FOCUS_DEFAULTS under what it names, validated (InvalidParameterError
    names the first bad value, an arithmetic this node does not implement
    included)."""
    return make_params(None, **{**CHAIN_FOCUS_DEFAULTS, **(focus or {})})


def particle_chunk_key(index: int) -> bytes:
    return PARTICLES_PREFIX + index.to_bytes(4, "big")
