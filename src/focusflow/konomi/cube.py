"""Cube: nine FemtoLLM agents, the eight corners of a cube and a central hub.

Topology: the 12 cube edges between corners that differ in one
direction (N/S, E/W, U/D), a spoke from every corner to CENTRAL, and any custom
edges (face or body diagonals, or a link to an agent of another cube).

``process_vertex`` runs one agent and hands its output to every neighbour,
which answers in one batched generation. ``collective_think`` asks all eight
corners the same query and lets the centre pick the consensus: for each
corner v, its agreement ``a_v = Σ_u κ_u cos(e_v, e_u) / Σ_u κ_u`` with the
others (e = the model's embedding of an output), the consensus is the output of
highest agreement, its score is that agreement. Because ``Σ_v κ_v a_v / Σ κ``
equals the squared norm of the κ-weighted mean embedding, the top score is never
negative. ``update_field`` is the seed's κ diffusion between neighbouring cubes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, NotRequired, TypedDict

import numpy as np

from focusflow.konomi.errors import InvalidOperationError, UnknownVertexError
from focusflow.konomi.events import Event
from focusflow.konomi.femtollm import (
    KAPPA_STAR,
    FemtoLLM,
    FemtoModel,
    default_model,
    process_many,
    seed_of,
)

VERTICES: tuple[str, ...] = ("NEU", "NED", "NWU", "NWD", "SEU", "SED", "SWU", "SWD")
CENTRAL = "CENTRAL"
NODES: tuple[str, ...] = (*VERTICES, CENTRAL)
STANDARD_EDGES: tuple[tuple[str, str], ...] = tuple(
    (a, b)
    for i, a in enumerate(VERTICES)
    for b in VERTICES[i + 1 :]
    if sum(x != y for x, y in zip(a, b, strict=True)) == 1
) + tuple((v, CENTRAL) for v in VERTICES)

if TYPE_CHECKING:
    from focusflow.konomi.ledger import Entry, Ledger
    from focusflow.konomi.votes import Evidence, Vote

EventSink = Callable[[Event], None]

#: Who asked for the change being made: a connection's id while the WebSocket
#: server handles one of its messages, else None. Every cube event carries it
#: as ``actor``, so that the server can keep a connection's own events from it:
#: the protocol is one reply per action, and an echo would be read as the next
#: reply by a client that reads once per action.
ACTOR: ContextVar[str | None] = ContextVar("konomi_actor", default=None)


class NodeStatus(TypedDict):
    """One node of a cube's status message: its κ and its edge count."""

    κ: float
    connections: int


class Thought(TypedDict):
    """The answer of :meth:`Cube.collective_think`: every corner's answer, the
    one the others agree with most, its score, and CENTRAL's integration."""

    vertices: dict[str, str]
    consensus: str
    consensus_vertex: str
    score: float
    agreement: dict[str, float]
    central: str
    κ_field: float


class AgentState(TypedDict):
    """A node's saved state."""

    kappa: float
    calls: int


class CubeState(TypedDict):
    """A cube as the store keeps it (:meth:`Cube.to_state`); a state saved by an
    earlier version may lack all but ``id``, and defaults fill in."""

    id: str
    position: NotRequired[list[int]]
    kappa_local: NotRequired[float]
    energy: NotRequired[int]
    agents: NotRequired[dict[str, AgentState]]
    custom_edges: NotRequired[list[list[str]]]


class Cube:
    """Eight corner agents plus CENTRAL, their edges, and the cube's κ field."""

    V: tuple[str, ...] = VERTICES

    def __init__(
        self,
        cube_id: str,
        position: Sequence[int] = (0, 0, 0),
        model: FemtoModel | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.id = cube_id
        self.pos = tuple(position)
        self.model = model or default_model()
        self.verts = {v: FemtoLLM(self.model, name=f"{cube_id}/{v}") for v in VERTICES}
        self.central = FemtoLLM(self.model, name=f"{cube_id}/{CENTRAL}")
        self.edges: dict[str, list[str]] = {n: [] for n in NODES}
        self.custom_edges: list[tuple[str, str]] = []
        self.external: dict[str, list[FemtoLLM]] = {n: [] for n in NODES}
        self.kappa_local = KAPPA_STAR
        self.energy = 100
        self.outputs: dict[str, str] = {}
        self.on_event = on_event
        self.rng = np.random.default_rng(seed_of(f"cube/{cube_id}"))
        #: The cube's ledger as a validator (konomi/ledger.py), attached by whoever
        #: holds the cube's secret (the system, from its store).
        self.ledger: Ledger | None = None
        #: Conflicting votes caught while deciding.
        self.evidence: list[Evidence] = []
        for a, b in STANDARD_EDGES:
            self._link(a, b)

    @property
    def κ_local(self) -> float:
        """The seed's spelling of :attr:`kappa_local`."""
        return self.kappa_local

    def agent(self, name: str) -> FemtoLLM:
        """The agent at a vertex name (or CENTRAL)."""
        if name == CENTRAL:
            return self.central
        try:
            return self.verts[name]
        except KeyError:
            raise UnknownVertexError(
                f"unknown vertex {name!r}; vertices are {', '.join(NODES)}"
            ) from None

    def _link(self, a: str, b: str) -> bool:
        if b in self.edges[a] or a == b:
            return False
        self.edges[a].append(b)
        self.edges[b].append(a)
        return True

    def connect(self, v1: str, v2: str | FemtoLLM) -> None:
        """Bidirectional edge between two of this cube's nodes, or from one of them to
        any agent (for example ``other.verts['NWU']``, linking two cubes)."""
        self.agent(v1)
        if isinstance(v2, FemtoLLM):
            if v2 not in self.external[v1]:
                self.external[v1].append(v2)
                v2.connections.append(f"{self.id}/{v1}")
            return
        self.agent(v2)
        if self._link(v1, v2):
            self.custom_edges.append((v1, v2))
        self._emit({"event": "connected", "edge": f"{v1}↔{v2}"})

    def neighbours(self, vertex: str) -> list[str]:
        """Names of the nodes joined to ``vertex`` inside this cube."""
        self.agent(vertex)
        return list(self.edges[vertex])

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event({"cube_id": self.id, "actor": ACTOR.get(), **event})

    def process_vertex_sync(self, vertex: str, text: str, propagate: bool = True) -> str:
        """Run one agent on ``text``; its neighbours then answer its output (batched)."""
        llm = self.agent(vertex)
        result = llm.process(text)
        self.outputs[vertex] = result
        if propagate:
            names = self.edges[vertex]
            agents = [self.agent(n) for n in names] + self.external[vertex]
            replies = process_many(agents, result, self.rng)
            for n, r in zip(names, replies, strict=False):
                self.outputs[n] = r
        self._emit({"event": "processed", "vertex": vertex, "result": result, "κ": llm.kappa})
        return result

    async def process_vertex(self, vertex: str, text: str, propagate: bool = True) -> str:
        """The seed's async ``process_vertex``."""
        return self.process_vertex_sync(vertex, text, propagate)

    def collective_think_sync(self, query: str) -> Thought:
        """All corners answer ``query`` together; CENTRAL integrates (see the module doc)."""
        agents = [self.verts[v] for v in VERTICES]
        results = process_many(agents, query, self.rng)
        weights = np.array([a.kappa for a in agents], dtype=np.float64)
        emb = np.stack([self.model.embed(r) for r in results]).astype(np.float64)
        sims = emb @ emb.T
        agreement = sims @ weights / weights.sum()
        best = int(np.argmax(agreement))
        consensus = results[best]
        central = self.central.process(consensus)
        self.outputs.update(zip(VERTICES, results, strict=True))
        self.outputs[CENTRAL] = central
        out: Thought = {
            "vertices": dict(zip(VERTICES, results, strict=True)),
            "consensus": consensus,
            "consensus_vertex": VERTICES[best],
            "score": float(agreement[best]),
            "agreement": {v: float(a) for v, a in zip(VERTICES, agreement, strict=True)},
            "central": central,
            "κ_field": self.kappa_local,
        }
        self._emit(
            {
                "event": "collective_think",
                "consensus": consensus,
                "score": out["score"],
                "κ_field": self.kappa_local,
            }
        )
        return out

    async def collective_think(self, query: str) -> Thought:
        """The seed's async ``collective_think``."""
        return self.collective_think_sync(query)

    def update_field(self, neighbor_cubes: Sequence[Cube]) -> float:
        """The seed's κ diffusion: 10% toward the neighbours' mean, then 5% toward 0.6;
        every agent of the cube takes the new κ."""
        ks = [c.kappa_local for c in neighbor_cubes]
        if ks:
            avg = sum(ks) / len(ks)
            self.kappa_local += (avg - self.kappa_local) * 0.1
            self.kappa_local += (KAPPA_STAR - self.kappa_local) * 0.05
        for llm in self.verts.values():
            llm.kappa = self.kappa_local
        self.central.kappa = self.kappa_local
        self._emit({"event": "field", "κ_field": self.kappa_local})
        return self.kappa_local

    def decide(
        self, payload: bytes, peers: Sequence[Cube] = (), votes: Sequence[Vote] | None = None
    ) -> Entry:
        """The cube as a validator: its eight vertices vote on ``payload``, CENTRAL
        tallies (6 of 8) and appends the decision to the ledger, cross-referencing
        the ledger heads of the connected ``peers``. Conflicting votes are kept in
        :attr:`evidence` and announced as a ``conflicting_vote`` event."""
        if self.ledger is None:
            raise InvalidOperationError(f"cube {self.id!r} has no ledger attached")
        refs = {p.id: p.ledger.head for p in peers if p.ledger is not None}
        entry, evidence = self.ledger.decide(payload, refs, votes)
        self.evidence.extend(evidence)
        for e in evidence:
            self._emit({"event": "conflicting_vote", "evidence": e.to_json()})
        self._emit({"event": "decided", "height": entry.height, "head": entry.hash.hex()})
        return entry

    def status(self) -> dict[str, NodeStatus]:
        """The seed's status message: κ and edge count of every node."""
        out: dict[str, NodeStatus] = {
            v: {"κ": self.verts[v].kappa, "connections": len(self.edges[v])} for v in VERTICES
        }
        out[CENTRAL] = {"κ": self.central.kappa, "connections": len(self.edges[CENTRAL])}
        return out

    def to_state(self) -> CubeState:
        """JSON-ready state for persistence (weights are the template's, not stored here)."""
        return {
            "id": self.id,
            "position": list(self.pos),
            "kappa_local": self.kappa_local,
            "energy": self.energy,
            "agents": {
                n: {"kappa": self.agent(n).kappa, "calls": self.agent(n).calls} for n in NODES
            },
            "custom_edges": [list(e) for e in self.custom_edges],
        }

    @classmethod
    def from_state(
        cls, state: CubeState, model: FemtoModel | None = None, on_event: EventSink | None = None
    ) -> Cube:
        """Rebuild a cube saved by :meth:`to_state`."""
        cube = cls(state["id"], tuple(state.get("position", (0, 0, 0))), model)
        cube.kappa_local = float(state.get("kappa_local", KAPPA_STAR))
        cube.energy = state.get("energy", 100)
        for n, a in state.get("agents", {}).items():
            cube.agent(n).kappa = float(a["kappa"])
            cube.agent(n).calls = int(a["calls"])
        for v1, v2 in state.get("custom_edges", []):
            cube.connect(v1, v2)
        cube.on_event = on_event
        return cube


def field_cycles(
    cubes: Sequence[Cube], neighbours: Iterable[Sequence[int]], tol: float = 0.05, limit: int = 1000
) -> int:
    """Run :meth:`Cube.update_field` over a constellation until every κ is within
    ``tol`` of 0.6; returns the number of cycles (``limit`` if never)."""
    nb = [list(n) for n in neighbours]
    for cycle in range(limit + 1):
        if all(abs(c.kappa_local - KAPPA_STAR) <= tol for c in cubes):
            return cycle
        for c, idx in zip(cubes, nb, strict=True):
            c.update_field([cubes[i] for i in idx])
    return limit


def lattice_neighbours(shape: tuple[int, int, int]) -> list[list[int]]:
    """Face-neighbour indices of cubes laid out on a grid of ``shape`` (C order), the
    constellation that :func:`field_cycles` runs on in the tests and the benchmark."""
    grid = np.arange(int(np.prod(shape))).reshape(shape)
    out = []
    for idx in np.ndindex(*shape):
        row = []
        for axis in range(3):
            for step in (-1, 1):
                j = list(idx)
                j[axis] += step
                if 0 <= j[axis] < shape[axis]:
                    row.append(int(grid[tuple(j)]))
        out.append(row)
    return out
