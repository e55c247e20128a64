"""The grid the API serves when its blocks live on shards.

:class:`ShardedSystem` is a :class:`KonomiSystem` whose templates, instances
and cubes stay in the API process (and its store), while every block operation
goes through a :class:`Coordinator` to the shards that own the blocks. The API
process holds no block: its instances' arrays stay empty and only give their
shape, it loads no block rows at start, and block events that other processes
publish are not applied here (the owning shard has them already).
"""

from __future__ import annotations

from typing import Any

from focusflow.konomi.block_array import BlockArray, BlockRecord
from focusflow.konomi.errors import InvalidOperationError
from focusflow.konomi.events import Event
from focusflow.konomi.femtollm import FemtoLLM
from focusflow.konomi.shards.coordinator import Coordinator
from focusflow.konomi.system import (
    BlockProcessed,
    CellLLM,
    FaceOperation,
    Instance,
    KonomiSystem,
    Template,
    check_dims,
    check_operation,
)

Dims = tuple[int, int, int]


class ShardedSystem(KonomiSystem):
    """A KonomiSystem that routes block operations to shards."""

    def __init__(self, coordinator: Coordinator, **kwargs: Any) -> None:
        self.coordinator = coordinator
        super().__init__(**kwargs)
        coordinator.on_event = self._emit

    def _load(self) -> None:
        """Templates and instances only: the shards load their own blocks."""
        assert self.store is not None
        for tid, name, dims, created in self.store.templates():
            self.templates[tid] = Template(tid, name, dims, self.model, created)
        for iid, tid, created in self.store.instances():
            if tid in self.templates:
                shape = BlockArray(self.templates[tid].dims, capacity=1)
                self.instances[iid] = Instance(iid, tid, shape, created)

    def _where(self, instance_id: str | None) -> tuple[str, Dims]:
        inst = self.instance(instance_id)
        return inst.id, inst.array.dim

    def apply_event(self, event: Event) -> None:
        """Templates and instances of other processes; block events are the shards'."""
        if event.get("event") != "blocks":
            super().apply_event(event)

    def get_block(self, x: int, y: int, z: int, instance_id: str | None = None) -> float:
        iid, dims = self._where(instance_id)
        return self.coordinator.get(iid, dims, x, y, z)[0]

    def set_block(
        self, x: int, y: int, z: int, v: float, instance_id: str | None = None
    ) -> BlockRecord:
        iid, dims = self._where(instance_id)
        rec = self.coordinator.set(iid, dims, x, y, z, v)
        return {
            "value": float(rec["value"]),
            "timestamp": float(rec["timestamp"]),
            "connections": [tuple(c) for c in rec["connections"]],
            "hash": str(rec["hash"]),
        }

    def value_info(self, x: int, y: int, z: int, instance_id: str | None = None) -> dict[str, Any]:
        iid, dims = self._where(instance_id)
        return self.coordinator.value_info(iid, dims, x, y, z)

    def llm_at(self, x: int, y: int, z: int, instance_id: str | None = None) -> CellLLM | FemtoLLM:
        raise InvalidOperationError(
            "the agent at a block lives on its shard: use process_text or value_info"
        )

    def process_text(
        self, x: int, y: int, z: int, text: str, instance_id: str | None = None
    ) -> tuple[str, float]:
        iid, dims = self._where(instance_id)
        return self.coordinator.process_text(iid, dims, x, y, z, text)

    def attest_block(
        self,
        x: int,
        y: int,
        z: int,
        instance_id: str | None = None,
        adjacency: int = 6,
        neighbours: list[tuple[int, int, int]] | None = None,
    ) -> int:
        iid, dims = self._where(instance_id)
        return self.coordinator.attest(iid, dims, x, y, z, adjacency)

    def consensus_block(
        self,
        x: int,
        y: int,
        z: int,
        instance_id: str | None = None,
        adjacency: int = 6,
        neighbours: list[tuple[int, int, int]] | None = None,
    ) -> dict[str, Any]:
        iid, dims = self._where(instance_id)
        return self.coordinator.consensus(iid, dims, x, y, z, adjacency)

    def process_block(
        self, x: int, y: int, z: int, operation: str, instance_id: str | None = None
    ) -> BlockProcessed:
        raise InvalidOperationError("one block's face operation is not served by a sharded grid")

    def interlock(
        self, plane: str, index: int, operation: str, instance_id: str | None = None
    ) -> FaceOperation:
        """The face operation fanned out to every shard and gathered (same answer as
        one process's)."""
        check_operation(operation)
        iid, dims = self._where(instance_id)
        check_dims(dims)
        return self._face_run(
            plane,
            index,
            operation,
            [operation],
            lambda op: self.coordinator.face(iid, dims, plane, index, op)[:2],
        )

    def close(self) -> None:
        """Stop the shards, then release what the base class holds."""
        self.coordinator.close()
        super().close()
