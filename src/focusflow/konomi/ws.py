"""The Cube WebSocket protocol: one JSON object per message.

Requests: ``{"action": "initialize", "template_id": "t1"}`` (the design's own
example, which makes or attaches to cube ``t1``) or ``{"action": "initialize", "cube_id":
"c1", "template_id"?: "default"}``,
``{"action": "process", "vertex": "NEU", "text": "..."}``,
``{"action": "connect", "source": "NEU", "target": "SWD"}``, ``{"action": "status"}``,
``{"action": "collective_think", "query": "..."}``. Replies have the seed's shapes.
Errors come back as ``{"error": {"code": ..., "message": ...}, "action": ...}`` and
leave the socket open; the server closes a socket only with a close code and a
reason.

Every action is answered by exactly one message, its reply: a client that
sends and then reads once (the design's client) always reads its own answer.
Events (``{"event": ...}``) go to the *other* connections attached to the cube,
in this process and (through Redis) every other one; a connection receives
the events of its own actions only after it opted in with ``{"action":
"subscribe"}`` (answered ``{"status": "subscribed", "cube_id": ...}``).

Each state-changing action (``process``, ``connect``, ``collective_think``) is
then put to the cube's vote (:func:`state_change` is the proposal) and the
decision appended to the cube's ledger; the others receive a ``decided`` event
with the new height and head.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TypedDict

from fastapi import WebSocket, WebSocketDisconnect

from focusflow.core.errors import FocusflowError
from focusflow.konomi.cube import ACTOR, VERTICES, Cube
from focusflow.konomi.errors import (
    MalformedMessageError,
    NotInitializedError,
    StoreError,
    UnknownActionError,
    UnknownCubeError,
)
from focusflow.konomi.events import Event, LocalBus
from focusflow.konomi.system import KonomiSystem

ACTIONS = ("initialize", "process", "connect", "status", "collective_think", "subscribe")
#: Longest cube or template id a message may name: ids are stored and travel in
#: every event of the cube.
MAX_ID_CHARS = 128


class ErrorDetail(TypedDict):
    """What went wrong: the error's code and its message."""

    code: str
    message: str


class ErrorBody(TypedDict):
    """The JSON error object shared by REST and WebSocket replies."""

    error: ErrorDetail


#: A request as a client sent it (any JSON object: each field is checked where used).
Message = Mapping[str, object]
#: A reply: the shape of each action's is the seed's (docs/konomi.md).
Reply = Mapping[str, object]


def error_body(exc: FocusflowError) -> ErrorBody:
    """The JSON error object shared by REST and WebSocket replies."""
    return {"error": {"code": exc.code, "message": str(exc)}}


def _text(msg: Message, key: str) -> str:
    value = msg.get(key)
    if not isinstance(value, str):
        raise MalformedMessageError(f"field {key!r} must be a string")
    return value


def _optional_id(msg: Message, key: str) -> str | None:
    """An id field: absent, or 1 to MAX_ID_CHARS printable characters."""
    value = msg.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS or not value.isprintable():
        raise MalformedMessageError(
            f"field {key!r} must be a string of 1 to {MAX_ID_CHARS} printable characters"
        )
    return value


def initialize(system: KonomiSystem, cube_id: str | None, template_id: str | None) -> Cube:
    """The cube an ``initialize`` names, created when it does not exist yet.

    The design's reference server calls ``create_cube(template_id)``: its
    ``template_id`` is the cube's name, so ``{"action": "initialize", "template_id": "t1"}`` on a
    fresh server makes cube ``t1``. Without ``cube_id`` that is what happens here
    too; the cube takes the weights of the template of that id if there is one,
    else the default template's. With ``cube_id``, ``template_id`` can only mean
    a grid template, so an unknown one is ``unknown_template``. An existing cube
    is attached to rather than replaced: cubes are persisted and shared by every
    socket and server process, and replacing one would wipe the others' state.
    """
    if cube_id is None:
        cube_id = template_id
        if template_id is not None and template_id not in system.templates:
            template_id = None
    elif template_id is not None:
        system.template(template_id)
    if cube_id is not None:
        with contextlib.suppress(UnknownCubeError):
            return system.cube(cube_id)
    return system.create_cube(cube_id, template_id)


def handle(system: KonomiSystem, cube: Cube | None, msg: Message) -> tuple[Cube | None, Reply]:
    """Apply one request message; returns the connection's cube and the reply (sans-io)."""
    action = msg.get("action")
    if action not in ACTIONS:
        raise UnknownActionError(f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")
    if action == "initialize":
        cube = initialize(system, _optional_id(msg, "cube_id"), _optional_id(msg, "template_id"))
        return cube, {"status": "initialized", "cube_id": cube.id, "vertices": list(VERTICES)}
    if cube is None:
        raise NotInitializedError(f"send an 'initialize' action before {action!r}")
    cube = system.cube(cube.id)
    if action == "status":
        return cube, cube.status()
    if action == "subscribe":
        return cube, {"status": "subscribed", "cube_id": cube.id}
    reply: Reply
    if action == "process":
        vertex, text = _text(msg, "vertex"), _text(msg, "text")
        result = cube.process_vertex_sync(vertex, text)
        reply = {"vertex": vertex, "result": result, "κ": cube.agent(vertex).kappa}
    elif action == "connect":
        source, target = _text(msg, "source"), _text(msg, "target")
        cube.connect(source, target)
        reply = {"status": "connected", "edge": f"{source}↔{target}"}
    else:
        reply = cube.collective_think_sync(_text(msg, "query"))
    try:
        system.save_cube(cube)
    except StoreError:
        # The change stays in no process: the next use loads the stored state.
        system.forget_unsaved(cube.id)
        raise
    system.decide(cube.id, state_change(str(action), reply, cube))
    return cube, reply


def state_change(action: str, reply: Reply, cube: Cube) -> bytes:
    """The proposal a state-changing action puts to the cube's vote: the action, and
    SHA-256 of its reply and of the cube's new state (each as sorted-key JSON)."""

    def digest(obj: object) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()

    change = {"action": action, "reply": digest(reply), "state": digest(cube.to_state())}
    return json.dumps(change, sort_keys=True).encode()


#: Told of each handled message: its action (as sent), ``ok`` or the error code,
#: and the seconds it took.
MessageObserver = Callable[[object, str, float], None]


class Session:
    """One connection's state: its cube, its id as the actor of the events its
    actions cause, and whether it opted in to those events (``subscribe``)."""

    def __init__(self, system: KonomiSystem) -> None:
        self.system = system
        self.cube: Cube | None = None
        self.own_events = False
        self.id = uuid.uuid4().hex

    def wants(self, event: Event) -> bool:
        """Whether an event goes to this connection: its cube's, and not its own
        unless it subscribed to those."""
        if self.cube is None or event.get("cube_id") != self.cube.id:
            return False
        return self.own_events or event.get("actor") != self.id

    def answer(self, raw: str) -> tuple[object, str, Reply]:
        """The one reply to a message as received: (action as sent, ``ok`` or the
        error code, the reply)."""
        action = None
        try:
            try:
                msg = json.loads(raw)
            except ValueError:
                raise MalformedMessageError("message is not valid JSON") from None
            if not isinstance(msg, dict):
                raise MalformedMessageError("message must be a JSON object")
            action = msg.get("action")
            token = ACTOR.set(self.id)
            try:
                self.cube, reply = handle(self.system, self.cube, msg)
            finally:
                ACTOR.reset(token)
        except FocusflowError as exc:
            return action, exc.code, {**error_body(exc), "action": action}
        if action == "subscribe":
            self.own_events = True
        return action, "ok", reply


async def serve_socket(
    websocket: WebSocket,
    system: KonomiSystem,
    bus: LocalBus,
    observe: MessageObserver | None = None,
) -> None:
    """Run one WebSocket connection until the client leaves."""
    await websocket.accept()
    session = Session(system)
    send_lock = asyncio.Lock()
    queue = bus.subscribe()

    async def send(obj: Reply) -> None:
        async with send_lock:
            await websocket.send_text(json.dumps(obj))

    async def forward() -> None:
        while True:
            event = await queue.get()
            if session.wants(event):
                await send(event)

    forwarder = asyncio.create_task(forward())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            started = time.perf_counter()
            action, outcome, reply = session.answer(raw)
            if observe is not None:
                observe(action, outcome, time.perf_counter() - started)
            await send(reply)
    except WebSocketDisconnect:
        pass
    except Exception as exc:
        with contextlib.suppress(Exception):
            await websocket.close(code=1011, reason=f"internal error: {type(exc).__name__}"[:120])
        raise
    finally:
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await forwarder
        bus.unsubscribe(queue)
