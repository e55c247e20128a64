"""Konomi: the CPU-only agent grid (eVGPU, FemtoLLM, BlockArray, Cube); docs/konomi.md.

Public surface: :class:`KonomiSystem` (templates, instances, cubes, face
operations), :class:`BlockArray` (sparse Morton-keyed 3D grid with hashes and
neighbour attestation), :class:`FemtoLLM`/:class:`FemtoModel` (a 16-d byte-level
transformer trained on the CPU), :class:`Cube` (nine agents and their consensus),
:class:`EVGPU` (CPU tensor ops with a bounded pool), :class:`PackML`, the stores
and :func:`create_app` (REST + WebSocket). ``docs/konomi.md`` explains the design.
"""

from focusflow.konomi.block_array import KAPPA_STAR, Attestation, BlockArray, hash_block
from focusflow.konomi.cube import CENTRAL, VERTICES, Cube, field_cycles
from focusflow.konomi.errors import (
    CoordinateOutOfRangeError,
    DimensionsTooLargeError,
    InvalidOperationError,
    KonomiError,
    MalformedMessageError,
    NotInitializedError,
    StoreError,
    UnknownActionError,
    UnknownCubeError,
    UnknownInstanceError,
    UnknownTemplateError,
    UnknownVertexError,
)
from focusflow.konomi.evgpu import EVGPU
from focusflow.konomi.femtollm import FemtoLLM, FemtoModel, default_model
from focusflow.konomi.packml import PackML, State
from focusflow.konomi.store import PostgresStore, SQLiteStore, Store, open_store
from focusflow.konomi.system import CellLLM, KonomiSystem

__all__ = [
    "CENTRAL",
    "EVGPU",
    "KAPPA_STAR",
    "VERTICES",
    "Attestation",
    "BlockArray",
    "CellLLM",
    "CoordinateOutOfRangeError",
    "Cube",
    "DimensionsTooLargeError",
    "FemtoLLM",
    "FemtoModel",
    "InvalidOperationError",
    "KonomiError",
    "KonomiSystem",
    "MalformedMessageError",
    "NotInitializedError",
    "PackML",
    "PostgresStore",
    "SQLiteStore",
    "State",
    "Store",
    "StoreError",
    "UnknownActionError",
    "UnknownCubeError",
    "UnknownInstanceError",
    "UnknownTemplateError",
    "UnknownVertexError",
    "default_model",
    "field_cycles",
    "hash_block",
    "open_store",
]
