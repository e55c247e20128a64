"""Inference endpoints: ``POST /v1/infer`` (next particles) and ``/v1/infer/walk``.

The node answers from its committed view: the links, stakes and particles of
the last block, as :class:`focusflow.infer.InferGraph`, built once per view
that changed the graph and shared by every request until the next such block.
A query's context names particles as CIDs, as text (hashed to its CID) or as
``{"name": ...}`` (a name registered with the names module).

Each solve costs real CPU (tens to hundreds of milliseconds on a large graph),
so at most ``SOLVERS`` run at once; a request that cannot get a solver within
``WAIT_S`` seconds is answered ``503 inference_busy``, and contexts, answers
and walks are bounded (``MAX_CONTEXT``, ``MAX_TOP``, ``MAX_STEPS``) before any
work. The walk stream is a WebSocket: the client sends one JSON request, the
node sends one message per step and a last ``{"done": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, TypedDict

import numpy as np
from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from focusflow.api.bodies import StrictBody, json_body
from focusflow.api.errors import ERROR_RESPONSES, ApiError, error_doc
from focusflow.api.jsonbody import integer_field, number_field, parse_json
from focusflow.api.params import INT64_MAX
from focusflow.api.render import TextCache, cid_text, parse_cid
from focusflow.api.service import NodeService
from focusflow.api.state import AppState, app_state
from focusflow.chain.focus_view import FocusView
from focusflow.core.cid import particle_cid
from focusflow.core.errors import DecodeError, FocusflowError, InvalidParameterError
from focusflow.core.keys import encode_address
from focusflow.infer import Inference, InferGraph, InferParams, Sampling, WalkStep
from focusflow.infer.errors import UnknownParticleError
from focusflow.state_schema.names import resolve as resolve_name

log = logging.getLogger("focusflow.api")

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

#: Solves running at once on one node.
SOLVERS = 2
#: Seconds a request waits for a solver before ``inference_busy``.
WAIT_S = 10.0
#: Particles in one context, particles in one answer, steps of one walk.
MAX_CONTEXT = 64
MAX_TOP = 1000
MAX_STEPS = 64
#: Semcons one request may weigh.
MAX_SEMCONS = 16
#: Bytes of one walk request over the WebSocket.
MAX_WALK_MESSAGE = 16 << 10
#: WebSocket close codes: a bad request, too many walks at once.
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013
#: Walk streams open at once on one node.
MAX_WALKS = 16

_FIELDS = {
    "context",
    "top",
    "mode",
    "tol",
    "semcons",
    "other_semcons",
    "context_weight",
    "steps",
    "seed",
    "temperature",
    "top_k",
    "top_p",
}


class NamedParticle(StrictBody):
    name: str = Field(description="a registered name")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class InferBody(StrictBody):
    """``POST /v1/infer`` and a walk request (:func:`parse_request` reads both)."""

    context: list[Annotated[str, Field(min_length=1, max_length=1024)] | NamedParticle] = Field(
        min_length=1, max_length=MAX_CONTEXT, description="CIDs, texts or registered names"
    )
    top: int = Field(10, ge=1, le=MAX_TOP)
    mode: Literal["tri", "diffusion"] = "tri"
    tol: float = Field(1e-3, ge=1e-8, le=0.1)
    context_weight: float = Field(0.0, ge=0.0, le=1.0)
    semcons: dict[Annotated[str, Field(max_length=128)], Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, max_length=MAX_SEMCONS
    )
    # None: not given (the engine's default); an explicit null is still refused.
    other_semcons: float = Field(  # type: ignore[assignment]
        None,
        ge=0.0,
        le=1e6,
        description="default 0.1 when semcons names any, else 1",
        json_schema_extra=_no_default,
    )
    steps: int = Field(8, ge=1, le=MAX_STEPS)
    seed: int = Field(0, ge=0, le=INT64_MAX)
    temperature: float = Field(1.0, ge=1e-3, le=1e3)
    top_k: int = Field(0, ge=0, le=1 << 30)
    top_p: float = Field(1.0, ge=1e-9, le=1.0)


class InferRequest(TypedDict):
    """A checked inference or walk request, as :func:`parse_request` returns it."""

    context: list[object]
    top: int
    params: InferParams
    semcons: dict[str, float]
    other_semcons: float | None
    steps: int
    seed: int
    sampling: Sampling


#: What sets one engine apart from another on the same graph (see ``_param_key``).
_ParamKey = tuple[str, float, float, float, str]
#: What tells one view's graph from another's (see ``NodeInference.engine``).
_GraphKey = tuple[int, int, int, bytes, bytes]


class BusyError(FocusflowError):
    """Every solver is taken: try again later."""

    code = "inference_busy"


class _Keys(Sequence[str]):
    """Particle keys (CID text) of a view, spelled on demand: a view of 10^6
    particles is not turned into 10^6 strings for a query that shows ten."""

    def __init__(self, particles: list[bytes], n: int) -> None:
        self._particles = particles
        self._n = n

    def __len__(self) -> int:
        return self._n

    # Integer indexes only (the engine never slices its keys), hence the ignore.
    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return cid_text(self._particles[i])


class NodeInference:
    """The inference graph of the node's current view, and the solver slots."""

    def __init__(self, addresses: TextCache | None = None) -> None:
        #: Neuron addresses spelled once per node (they name the semcons), not
        #: once per rebuilt graph: a graph is rebuilt on every block with new
        #: links, and bech32 costs some 10 microseconds an address.
        self._addresses = addresses or TextCache(encode_address)
        self._lock = threading.Lock()
        self._key: _GraphKey | None = None
        self._graph: InferGraph | None = None
        self._engines: dict[_ParamKey, Inference] = {}
        self._slots = threading.BoundedSemaphore(SOLVERS)
        self.walks = 0

    def engine(self, view: FocusView, params: InferParams) -> Inference:
        key: _GraphKey = (
            view.n_particles,
            view.n_links,
            view.n_neurons,
            view.stakes.tobytes(),
            view.neudeg.tobytes(),
        )
        with self._lock:
            if key != self._key:
                self._graph = _graph_of(view, self._addresses)
                self._key = key
                self._engines = {}
            engine = self._engines.get(_param_key(params))
            if engine is None:
                assert self._graph is not None  # built above for the first key
                engine = Inference(self._graph, params)
                self._engines[_param_key(params)] = engine
            return engine

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a solver slot; BusyError when none frees up within ``WAIT_S``."""
        if not self._slots.acquire(timeout=WAIT_S):
            raise BusyError(f"all {SOLVERS} inference solvers are busy; retry later")
        try:
            yield
        finally:
            self._slots.release()


def _param_key(p: InferParams) -> _ParamKey:
    return (p.mode, p.alpha, p.tol, p.context_weight, p.backend)


def _graph_of(view: FocusView, addresses: TextCache) -> InferGraph:
    n_links = view.n_links
    weight = view.link_weights(np.arange(n_links)) if n_links else np.empty(0)
    return InferGraph.from_arrays(
        view.n_particles,
        view.src[:n_links],
        view.dst[:n_links],
        weight,
        view.neuron[:n_links],
        addresses.texts(view.neuron_table, view.neurons, 0, view.n_neurons),
        _Keys(view.particles, view.n_particles),
    )


def parse_request(doc: object) -> InferRequest:
    """A checked inference request; InvalidParameterError names the first bad field."""
    if not isinstance(doc, dict):
        raise InvalidParameterError("the request body must be a JSON object")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise InvalidParameterError(f"unknown field {unknown[0]!r}")
    context = doc.get("context")
    if not isinstance(context, list) or not context:
        raise InvalidParameterError("context must be a non-empty list of particles")
    if len(context) > MAX_CONTEXT:
        raise InvalidParameterError(f"a context holds at most {MAX_CONTEXT} particles")
    semcons = doc.get("semcons", {})
    if not isinstance(semcons, dict) or len(semcons) > MAX_SEMCONS:
        raise InvalidParameterError(
            f"semcons must be an object of at most {MAX_SEMCONS} name: weight"
        )
    for name, w in semcons.items():
        if len(name) > 128:
            raise InvalidParameterError("a semcon name is at most 128 characters")
        if isinstance(w, bool) or not isinstance(w, int | float) or not (0 <= w < math.inf):
            raise InvalidParameterError(f"semcon {name!r}: weight must be a number >= 0")
    mode = doc.get("mode", "tri")
    if mode not in ("tri", "diffusion"):
        raise InvalidParameterError(f"mode must be tri or diffusion, got {mode!r}")
    return {
        "context": context,
        "top": integer_field(doc, "top", 10, 1, MAX_TOP),
        "params": InferParams(
            mode=mode,
            tol=number_field(doc, "tol", 1e-3, 1e-8, 0.1),
            context_weight=number_field(doc, "context_weight", 0.0, 0.0, 1.0),
        ),
        "semcons": {str(k): float(v) for k, v in semcons.items()},
        "other_semcons": (
            number_field(doc, "other_semcons", 1.0, 0.0, 1e6) if "other_semcons" in doc else None
        ),
        "steps": integer_field(doc, "steps", 8, 1, MAX_STEPS),
        "seed": integer_field(doc, "seed", 0, 0, 2**63 - 1),
        "sampling": Sampling(
            temperature=number_field(doc, "temperature", 1.0, 1e-3, 1e3),
            top_k=integer_field(doc, "top_k", 0, 0, 1 << 30),
            top_p=number_field(doc, "top_p", 1.0, 1e-9, 1.0),
        ),
    }


def resolve_context(node: NodeService, view: FocusView, items: list[object]) -> list[int]:
    """Particle ids of context items: a CID or text, or ``{"name": ...}``."""
    ids = []
    for item in items:
        if isinstance(item, dict):
            if set(item) != {"name"} or not isinstance(item["name"], str):
                raise InvalidParameterError('a context object must be {"name": "<name>"}')
            with node.chain.reader() as r:
                found = resolve_name(r, item["name"][:64])
            if found is None:
                raise ApiError("unknown_name", f"name {item['name']!r} is not registered")
            raw = found[0]
        elif isinstance(item, str) and 0 < len(item) <= 1024:
            raw = parse_cid(particle_cid(item))
        else:
            raise InvalidParameterError(
                'a context particle is a CID, text (1..1024 characters) or {"name": ...}'
            )
        i = view.particle_index(raw)
        if i < 0:
            raise UnknownParticleError(f"particle {cid_text(raw)} is not in the graph")
        ids.append(int(i))
    return ids


def _particle(graph: InferGraph, i: int, **extra: Any) -> dict[str, Any]:
    return {"cid": graph.key(i), **extra}


def predict(state: AppState, doc: Any) -> dict[str, Any]:
    """The whole of ``POST /v1/infer`` but the HTTP (runs in a worker thread)."""
    req = parse_request(doc)
    node = state.node
    view = node.view
    ids = resolve_context(node, view, req["context"])
    engine = state.inference.engine(view, req["params"])
    with state.inference.slot():
        pred = engine.predict(ids, semcons=req["semcons"], other_semcons=req["other_semcons"])
    top, probs = pred.top(req["top"])
    graph = engine.graph
    return {
        "height": view.height,
        "context": [graph.key(i) for i in ids],
        "particles": [
            _particle(graph, int(i), rank=r + 1, probability=float(p))
            for r, (i, p) in enumerate(zip(top, probs, strict=True))
        ],
        "seconds": pred.seconds,
        "path": pred.path,
        "error_bound": pred.error_bound,
    }


@router.post("/infer", response_model=None, openapi_extra=json_body(InferBody))
async def infer(request: Request) -> JSONResponse:
    """The most likely next particles after a context (focus-flow inference)."""
    body = await request.body()
    doc = parse_json(body)
    return JSONResponse(await run_in_threadpool(predict, app_state(request), doc))


@router.websocket("/infer/walk")
async def walk(socket: WebSocket) -> None:
    """A walk: one JSON request in, one message per sampled step out, then ``done``."""
    state = app_state(socket)
    await socket.accept()
    if state.inference.walks >= MAX_WALKS:
        await socket.close(code=CLOSE_TRY_LATER, reason="too many walks at once")
        return
    state.inference.walks += 1
    try:
        text = await asyncio.wait_for(socket.receive_text(), 30.0)
        if len(text) > MAX_WALK_MESSAGE:
            raise DecodeError(f"a walk request is at most {MAX_WALK_MESSAGE} bytes")
        req = parse_request(parse_json(text))
        node = state.node
        view = node.view
        ids = await run_in_threadpool(resolve_context, node, view, req["context"])
        engine = state.inference.engine(view, req["params"])
        steps = engine.walk(
            ids,
            req["steps"],
            seed=req["seed"],
            sampling=req["sampling"],
            semcons=req["semcons"],
            other_semcons=req["other_semcons"],
        )
        count = 0
        while True:
            step = await run_in_threadpool(_next_step, state.inference, steps)
            if step is None:
                break
            count += 1
            await socket.send_json(
                _particle(
                    engine.graph,
                    step.particle,
                    step=step.step,
                    probability=step.probability,
                    seconds=step.seconds,
                )
            )
        await socket.send_json({"done": True, "steps": count, "height": view.height})
        await socket.close()
    except FocusflowError as exc:
        with contextlib.suppress(Exception):
            await socket.send_json(error_doc(exc.code, str(exc)))
            await socket.close(code=CLOSE_POLICY)
    except (TimeoutError, ValueError):
        with contextlib.suppress(Exception):
            await socket.close(code=CLOSE_POLICY, reason="send one JSON walk request")
    except Exception:
        # Not a refusal: a bug or the client gone mid-send. Logged with its
        # traceback, the socket closed; the walk's slot is freed below.
        log.exception("inference walk stream failed")
        with contextlib.suppress(Exception):
            await socket.close()
    finally:
        state.inference.walks -= 1


def _next_step(inference: NodeInference, steps: Iterator[WalkStep]) -> WalkStep | None:
    with inference.slot():
        return next(steps, None)
