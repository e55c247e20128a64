"""The chain's focus state to and from the named arrays of its byte form.

:func:`plan_state` takes what a :class:`~focusflow.chain.focus_commit.FocusState`
holds that no rule recomputes (``Cybergraph.state``, ``FocusEngine.state``)
into the arrays of focus_state_format; :func:`restore_state` builds a state
again from them and checks it before anyone uses it:

1. the header is of the block the caller expects (chain, height, block hash,
   state root, focus root) and ran the chain's focus parameters at that
   height, compared field by field (a release that adds a parameter with a
   default still reads states written before it);
2. every array passes the checks of the structure built from it: ids within
   the tables, no self-link, weights and stakes finite and >= 0, the base
   links within the base's particles, the weight count the base's entries,
   overlay pairs distinct and not in the base, every later link's pair in the
   base or the overlay, vectors of the matrix's length and finite, push's
   candidates distinct; the particles' keys are the committed ones, taken
   from the verified state, not from the bytes;
3. the committed vector, quantised from the focus the bytes carry as the block
   that left it did, hashes to the expected focus root.

What no root can prove is the values the next block reads beside the focus
vector: the patched weights (checked finite and >= 0), the springs iterate,
push's system. A peer that altered them makes the next block with links
compute another focus root, which ``Chain.apply_block`` refuses: the node
stops there rather than commit a wrong root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from focusflow.chain.focus_commit import (
    CHAIN_BACKEND,
    FocusState,
    FocusValueError,
    chain_graph,
    engine_identity,
)
from focusflow.chain.focus_spec import FOCUS_KEY, PARTICLE_CHUNK, particle_chunk_key
from focusflow.chain.focus_state_format import (
    NEURON_KEY,
    BlockIdentity,
    Counts,
    FocusStateError,
    FocusStateHeader,
    FocusStateIncompatibleError,
    FocusStatePlan,
    FocusStateRootError,
    plan,
)
from focusflow.core.encoding import decode_stored
from focusflow.core.errors import DecodeError, InvalidParameterError
from focusflow.focus.engine import EngineState, FocusEngine, PushState
from focusflow.focus.params import FocusParams, make_params
from focusflow.focus.result import Diagnostics
from focusflow.graph.cybergraph import GraphState
from focusflow.graph.snapshot import SnapshotState

#: Reads the first ``n`` committed particle keys (``/graph/particles``), in id order.
Particles = Callable[[int], list[bytes]]


@dataclass(frozen=True)
class Expected:
    """What a restored state must be: of ``block``, running ``params``, over
    the committed ``particles``."""

    block: BlockIdentity
    params: FocusParams
    particles: Particles
    #: The Hebbian factors' root the block's focus record commits
    #: (:func:`committed_hebbian_root`), None where it names none.
    hebbian_root: bytes | None = None


# --- the focus parameters ---------------------------------------------------------


def params_record(params: FocusParams) -> dict[str, Any]:
    """The parameters as the header names them: every field, floats as their
    exact hexadecimal text (the header's CBOR holds no floats)."""
    if isinstance(params.prior, np.ndarray):
        raise ValueError("a chain's focus has no explicit prior vector")
    return {f.name: _plain(getattr(params, f.name)) for f in fields(params)}


def _plain(value: object) -> object:
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _unplain(value: object) -> object:
    if isinstance(value, dict) and set(value) == {"float"} and isinstance(value["float"], str):
        return float.fromhex(value["float"])
    if isinstance(value, list):
        return tuple(_unplain(v) for v in value)
    return value


def params_of(record: dict[str, Any]) -> FocusParams:
    """The parameters a header names; FocusStateIncompatibleError for a field
    this code does not know or a value it does not run."""
    try:
        return make_params(None, **{k: _unplain(v) for k, v in record.items()})
    except (InvalidParameterError, TypeError, ValueError, OverflowError) as exc:
        raise FocusStateIncompatibleError(
            f"focus state runs focus parameters this focusflow does not: {exc}"
        ) from None


# --- the committed particles ------------------------------------------------------


def committed_particles(get: Callable[[bytes], bytes | None]) -> Particles:
    """The first ``n`` particle keys a state commits (``/graph/particles``),
    read through ``get`` (a store reader's, or a snapshot's verified records)."""

    def first(n: int) -> list[bytes]:
        keys: list[bytes] = []
        for chunk in range(-(-n // PARTICLE_CHUNK)):
            raw = get(particle_chunk_key(chunk))
            try:
                part = decode_stored(raw, "particle chunk") if raw is not None else None
            except DecodeError:
                part = None
            if not isinstance(part, list) or not all(isinstance(k, bytes) for k in part):
                raise FocusStateRootError(
                    f"focus state holds {n} particles, the state commits no particle chunk {chunk}"
                )
            keys += part
        if len(keys) < n:
            raise FocusStateRootError(
                f"focus state holds {n} particles, the state commits {len(keys)}"
            )
        return keys[:n]

    return first


def committed_hebbian_root(get: Callable[[bytes], bytes | None]) -> bytes | None:
    """The ``hebbian`` root of the focus record a state commits, None where
    the record names none (a chain without the Hebbian rule) or is unreadable."""
    raw = get(FOCUS_KEY)
    if raw is None:
        return None
    try:
        record = decode_stored(raw)
    except DecodeError:
        return None
    root = record.get("hebbian") if isinstance(record, dict) else None
    return root if isinstance(root, bytes) else None


# --- writing --------------------------------------------------------------------


def plan_state(state: FocusState, block: BlockIdentity) -> FocusStatePlan:
    """The byte form of ``state`` after ``block`` (its numba form: a GPU
    state's vectors are copied back first), ready to be written. Its arrays
    are views of the state: write it before the state changes."""
    host = state.host_form()
    if host.root != block.focus_root:
        raise ValueError("the focus state is not the one the block commits")
    g = host.graph.state()
    engine = host.engine.state()
    keys = [k for k in g.neurons if isinstance(k, bytes) and len(k) == NEURON_KEY]
    if len(keys) != len(g.neurons):
        raise ValueError(f"a chain's neurons are {NEURON_KEY}-byte addresses")
    if len(g.neuron) and g.neuron.min() < 0:
        raise ValueError("a chain's links are all made by neurons")
    neurons = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), NEURON_KEY)
    arrays: dict[str, np.ndarray] = {
        "neurons": neurons,
        "stakes": g.stakes,
        "links.src": g.src,
        "links.dst": g.dst,
        "links.neuron": g.neuron,
    }
    if host.hebbian is not None:
        if g.factor is None:
            raise ValueError("a state running the Hebbian rule has link factors")
        arrays["links.factor"] = g.factor
    counts = Counts(host.graph.n_particles, len(keys), len(g.src))
    version = sell_rows = 0
    push = None
    if engine is not None:
        snap = g.snapshot
        if snap is None:
            raise ValueError("an engine that has solved has a weighted graph")
        push = engine.push
        counts = Counts(
            particles=counts.particles,
            neurons=counts.neurons,
            links=counts.links,
            base_links=snap.base_links,
            base_particles=snap.base_n,
            matrix_particles=snap.n,
            entries=len(snap.entry_weights),
            overlay=len(snap.overlay_src),
            candidates=0 if push is None else len(push.candidates),
        )
        version, sell_rows = snap.version, engine.sell_rows
        arrays.update(
            {
                "matrix.entry_weights": snap.entry_weights,
                "matrix.row_weights": snap.row_weights,
                "overlay.src": snap.overlay_src,
                "overlay.dst": snap.overlay_dst,
                "overlay.weights": snap.overlay_weights,
                "focus": engine.focus,
            }
        )
        if engine.springs is not None:
            arrays["springs"] = engine.springs
        if push is not None:
            arrays.update(
                {
                    "push.x": push.x,
                    "push.r": push.r,
                    "push.rsum": np.array([push.rsum], dtype=np.float64),
                    "push.candidates": push.candidates,
                }
            )
    header = FocusStateHeader(
        block=block,
        params=params_record(host.params),
        counts=counts,
        solved=engine is not None,
        springs=engine is not None and engine.springs is not None,
        push=push is not None,
        version=version,
        sell_rows=sell_rows,
        iterations=host.iterations,
        converged=host.converged,
        unconverged_blocks=host.unconverged_blocks,
    )
    return plan(header, arrays)


# --- reading --------------------------------------------------------------------


def check_block(header: FocusStateHeader, expected: Expected) -> FocusParams:
    """The header is of the expected block and runs the expected parameters;
    returns them."""
    got, want = header.block, expected.block
    if got.chain_id != want.chain_id:
        raise FocusStateIncompatibleError(
            f"focus state of chain {got.chain_id!r}, not {want.chain_id!r}"
        )
    for name in ("height", "block_hash", "state_root", "focus_root"):
        if getattr(got, name) != getattr(want, name):
            raise FocusStateRootError(
                f"focus state names another {name.replace('_', ' ')} than block "
                f"{want.height}'s ({_short(getattr(got, name))}, not {_short(getattr(want, name))})"
            )
    params = params_of(header.params)
    if params != expected.params:
        ran, runs = engine_identity(params), engine_identity(expected.params)
        other = f"{ran}, not {runs}" if ran != runs else f"{ran} with other parameters"
        raise FocusStateIncompatibleError(f"focus state runs {other} at height {want.height}")
    return params


def _short(value: object) -> str:
    return value.hex()[:16] if isinstance(value, bytes) else str(value)


def restore_state(
    header: FocusStateHeader, arrays: dict[str, np.ndarray], expected: Expected
) -> FocusState:
    """The focus state ``header`` and ``arrays`` hold, checked as the module
    docstring says; FocusStateError (or its incompatible and root-mismatch
    kinds) names what is wrong."""
    params = check_block(header, expected)
    c = header.counts
    particles = expected.particles(c.particles)
    raw = arrays["neurons"].tobytes()
    neurons = [raw[i : i + NEURON_KEY] for i in range(0, len(raw), NEURON_KEY)]
    links = arrays["links.src"]
    snapshot = None
    if header.solved:
        snapshot = SnapshotState(
            base_n=c.base_particles,
            base_links=c.base_links,
            n=c.matrix_particles,
            version=header.version,
            entry_weights=arrays["matrix.entry_weights"],
            row_weights=arrays["matrix.row_weights"],
            overlay_src=arrays["overlay.src"],
            overlay_dst=arrays["overlay.dst"],
            overlay_weights=arrays["overlay.weights"],
        )
    graph = chain_graph()
    engine = FocusEngine(graph, params, backend=CHAIN_BACKEND)
    if header.solved:
        _check_weights(arrays)
    try:
        graph.load_state(
            particles,
            GraphState(
                neurons=neurons,
                stakes=arrays["stakes"],
                src=links,
                dst=arrays["links.dst"],
                neuron=arrays["links.neuron"],
                weight=np.zeros(len(links)),
                snapshot=snapshot,
                factor=arrays.get("links.factor"),
            ),
        )
        if header.solved:
            push = None
            if header.push:
                push = PushState(
                    arrays["push.x"],
                    arrays["push.r"],
                    float(arrays["push.rsum"][0]),
                    arrays["push.candidates"],
                )
            engine.load_state(
                EngineState(arrays["focus"], arrays.get("springs"), header.sell_rows, push),
                Diagnostics(iterations=header.iterations, converged=header.converged),
            )
        state = FocusState.restored(
            params,
            graph,
            engine,
            iterations=header.iterations,
            converged=header.converged,
            unconverged_blocks=header.unconverged_blocks,
        )
    except FocusValueError as exc:
        raise FocusStateRootError(f"focus state's focus cannot be committed: {exc}") from None
    except ValueError as exc:  # StructureError, and a repeated key of a table
        raise FocusStateError(f"focus state: {exc}") from None
    if state.root != expected.block.focus_root:
        raise FocusStateRootError(
            f"focus state's focus hashes to {state.root.hex()[:16]}, block "
            f"{expected.block.height} commits {expected.block.focus_root.hex()[:16]}"
        )
    hebbian = state.hebbian_root()
    if hebbian is not None and hebbian != expected.hebbian_root:
        want = "none" if expected.hebbian_root is None else expected.hebbian_root.hex()[:16]
        raise FocusStateRootError(
            f"focus state's link factors hash to {hebbian.hex()[:16]}, block "
            f"{expected.block.height} commits {want}"
        )
    return state


def _check_weights(arrays: dict[str, np.ndarray]) -> None:
    """The weighted graph's weights are finite and >= 0 (the kernels divide by
    out-weights and a patch subtracts entries' old weights)."""
    for name in ("matrix.entry_weights", "matrix.row_weights", "overlay.weights"):
        values = arrays[name]
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if len(bad):
            i = int(bad[0])
            value = float(values[i])
            raise FocusStateError(f"focus state: {name}[{i}] = {value!r} is not finite and >= 0")


__all__ = [
    "Expected",
    "Particles",
    "check_block",
    "committed_hebbian_root",
    "committed_particles",
    "params_of",
    "params_record",
    "plan_state",
    "restore_state",
]
