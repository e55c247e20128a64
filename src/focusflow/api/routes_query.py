"""Query endpoints: ``POST /v1/query`` (Datalog over the committed state) and views.

A query names its program, the relation to return and optionally a row
limit, a height the node still keeps and a time limit; the answer names the
height and state root it was computed at. Queries run in worker threads, a
few at a time and one per client (``focusflow.query.slots``; the client is the
subject of a credential the request carries, else its address: :func:`query_client`),
under the service's bounds (``focusflow.query.service``), so the node keeps
serving blocks and other requests while they run.

Views are registered by the operator (admin token: each costs the node work
at every block), read by anyone, and streamed over a WebSocket: one message
per block that added rows to the view.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

from fastapi import APIRouter, Header, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from focusflow.api.auth import authenticate, authorize, client_certificate
from focusflow.api.bodies import StrictBody, json_body
from focusflow.api.errors import ERROR_RESPONSES, error_doc, error_response
from focusflow.api.jsonbody import (
    flag_field,
    integer_field,
    number_field,
    parse_json,
    text_field,
)
from focusflow.api.params import INT64_MAX
from focusflow.api.query_proofs import prove_answer
from focusflow.api.render import cid_text
from focusflow.api.state import app_state
from focusflow.core.encoding import decode
from focusflow.core.errors import InvalidParameterError
from focusflow.core.keys import encode_address
from focusflow.query.node_source import HeadRelation
from focusflow.query.service import NODE_LIMITS, QueryService
from focusflow.query.slots import QueryBusyError
from focusflow.query.views import VIEW_NAME
from focusflow.services.auth.tokens import UnauthorizedError
from focusflow.state_schema.accounts import ACCOUNT_PREFIX
from focusflow.state_schema.names import NAME_PREFIX

router = APIRouter(prefix="/v1/query", responses=ERROR_RESPONSES)

#: Longest program text a request may carry.
MAX_PROGRAM_CHARS = 256 << 10
#: View subscribers at once, and messages one may have waiting before it is dropped.
MAX_SUBSCRIBERS = 64
SUBSCRIBER_QUEUE = 64
#: WebSocket close codes: unknown view, too many subscribers.
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013
_FIELDS = {"program", "output", "limit", "height", "timeout_s", "prove"}
#: A view's name, as the registry checks it.
VIEW_NAME_PATTERN = f"^{VIEW_NAME.pattern}$"


class QueryBody(StrictBody):
    """``POST /v1/query`` (:func:`parse_query` reads it)."""

    program: str = Field(min_length=1, max_length=MAX_PROGRAM_CHARS, description="Datalog")
    output: str = Field(min_length=1, max_length=128, description="the relation to return")
    limit: int | None = Field(None, ge=0, le=NODE_LIMITS.max_output, description="rows at most")
    height: int | None = Field(
        None, ge=0, le=INT64_MAX, description="a kept height; default newest"
    )
    timeout_s: float | None = Field(None, ge=1e-3, le=3600.0)
    prove: bool = False


class ViewBody(StrictBody):
    """``POST /v1/query/views`` (:func:`register_view` reads it)."""

    name: str = Field(pattern=VIEW_NAME_PATTERN)
    program: str = Field(min_length=1, max_length=MAX_PROGRAM_CHARS)
    output: str = Field(min_length=1, max_length=128)
    integrity: bool = False


ViewName = Annotated[str, Path(pattern=VIEW_NAME_PATTERN)]


def _names(reader: Any) -> Iterator[tuple[str, str]]:
    for key, raw in reader.items(NAME_PREFIX):
        cid, _owner = decode(raw, "name")
        yield key[len(NAME_PREFIX) :].decode("utf-8"), cid_text(cid)


def _balances(reader: Any) -> Iterator[tuple[str, int]]:
    for key, raw in reader.items(ACCOUNT_PREFIX):
        yield encode_address(key[len(ACCOUNT_PREFIX) :]), int(decode(raw, "account")[0])


#: The relations read from the store (current values only), for QueryService.
HEAD_RELATIONS: dict[str, HeadRelation] = {"name": _names, "balance": _balances}


def _service(connection: HTTPConnection) -> QueryService:
    return app_state(connection).queries


def parse_query(doc: Any, max_output: int) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidParameterError("the body must be a JSON object")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise InvalidParameterError(f"unknown field {unknown[0]!r}")
    return {
        "program": text_field(doc, "program", MAX_PROGRAM_CHARS),
        "output": text_field(doc, "output", 128),
        "limit": integer_field(doc, "limit", None, 0, max_output),
        "height": integer_field(doc, "height", None, 0, 2**63 - 1),
        "timeout_s": number_field(doc, "timeout_s", None, 1e-3, 3600.0),
        "prove": flag_field(doc, "prove"),
    }


def query_client(request: Request) -> str:
    """Who a query's slot is counted against (``query.slots``): the subject of the
    credential the request carries (a bearer token, or a client certificate the
    TLS layer verified), else its address, an IPv6 one by its /64 (what one host
    is usually given). A bearer credential that does not verify is refused
    (``unauthorized``): one taken unchecked would let a client be someone new
    for each query."""
    authorization = request.headers.get("authorization")
    if authorization is not None or client_certificate(request) is not None:
        try:
            return "id:" + authenticate(request, authorization).subject
        except UnauthorizedError:
            if authorization is not None:
                raise
    return "ip:" + _network_of(request.client.host if request.client is not None else "")


def _network_of(host: str) -> str:
    """The address a client is known by: an IPv4 address as it is (an IPv4-mapped
    IPv6 one too), an IPv6 address by its /64."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _run(request: Request, doc: Any, client: str) -> dict[str, Any]:
    service = _service(request)
    req = parse_query(doc, service.limits.max_output)
    answer, view = service.query_with_view(
        req["program"],
        req["output"],
        limit=req["limit"],
        height=req["height"],
        timeout_s=req["timeout_s"],
        prove=req["prove"],
        client=client,
    )
    out = answer.to_json()
    out["seconds"] = round(answer.elapsed_s, 6)
    if req["prove"]:
        out["program"] = req["program"]
        out["proofs"] = prove_answer(request, view, answer)
    return out


@router.post("", response_model=None, openapi_extra=json_body(QueryBody))
async def query(request: Request) -> JSONResponse:
    """Evaluate a Datalog program over the committed state; one relation back."""
    client = query_client(request)
    doc = parse_json(await request.body())
    try:
        return JSONResponse(await run_in_threadpool(_run, request, doc, client))
    except QueryBusyError as exc:
        response = error_response(exc.code, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response


@router.get("/views", response_model=None)
def list_views(request: Request) -> JSONResponse:
    """The registered views and the state of their last update."""
    return JSONResponse({"views": _service(request).view_status()})


@router.post("/views", status_code=201, response_model=None, openapi_extra=json_body(ViewBody))
async def register_view(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Register a view (``admin`` on ``node/views/NAME``: the admin token, or an
    API token with the ``views`` role): ``{name, program, output, integrity?}``."""
    authenticate(request, authorization)  # no body is parsed for an anonymous caller
    doc = parse_json(await request.body())
    if not isinstance(doc, dict) or sorted(set(doc) - {"name", "program", "output", "integrity"}):
        raise InvalidParameterError("a view is {name, program, output, integrity?}")
    integrity = flag_field(doc, "integrity")
    name = text_field(doc, "name", 48)
    program = text_field(doc, "program", MAX_PROGRAM_CHARS)
    output = text_field(doc, "output", 128)
    authorize(request, authorization, "admin", f"node/views/{name}")
    service = _service(request)
    view = await run_in_threadpool(
        lambda: service.register(name, program, output, integrity=integrity)
    )
    return JSONResponse(view.status(), status_code=201)


@router.get("/views/{name}", response_model=None)
def read_view(
    request: Request,
    name: ViewName,
    limit: Annotated[int | None, Query(ge=0, le=NODE_LIMITS.max_output)] = None,
) -> JSONResponse:
    """A view's rows as of the last block it was updated at."""
    answer, status = _service(request).read_view(name, limit)
    return JSONResponse({**answer.to_json(), "view": status})


@router.delete("/views/{name}", response_model=None)
def drop_view(
    request: Request, name: ViewName, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Drop a view (``admin`` on ``node/views/NAME``)."""
    authorize(request, authorization, "admin", f"node/views/{name}")
    _service(request).drop(name)
    return JSONResponse({"dropped": name})


class ViewChange(TypedDict):
    """A subscribed view's new rows, as its WebSocket clients receive them."""

    view: str
    height: int
    added: list[list[Any]]


class _Subscriber:
    """One WebSocket's waiting messages; ``dropped`` once it fell too far behind."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[ViewChange] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.dropped = False


class Subscriptions:
    """View changes from the worker thread to WebSocket clients on the loop."""

    def __init__(self, service: QueryService) -> None:
        self.service = service
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscribers: dict[str, set[_Subscriber]] = {}
        service.listeners.append(self.on_change)

    def count(self) -> int:
        return sum(len(s) for s in self.subscribers.values())

    def on_change(self, name: str, height: int, rows: list[list[Any]]) -> None:
        loop = self.loop
        if loop is None or not rows or name not in self.subscribers:
            return
        message: ViewChange = {"view": name, "height": height, "added": rows}
        loop.call_soon_threadsafe(self._deliver, name, message)

    def _deliver(self, name: str, message: ViewChange) -> None:
        for sub in list(self.subscribers.get(name, ())):
            if sub.queue.full():
                sub.dropped = True
            else:
                sub.queue.put_nowait(message)


@router.websocket("/views/{name}/ws")
async def subscribe(socket: WebSocket, name: str) -> None:
    """One JSON message per block that added rows to view ``name``."""
    subs = app_state(socket).query_subscriptions
    await socket.accept()
    if subs.count() >= MAX_SUBSCRIBERS:
        await socket.close(code=CLOSE_TRY_LATER, reason="too many view subscribers")
        return
    known = {v["name"] for v in subs.service.view_status()}
    if name not in known:
        with contextlib.suppress(Exception):
            await socket.send_json(error_doc("unknown_view", f"no view named {name}"))
            await socket.close(code=CLOSE_POLICY)
        return
    subs.loop = asyncio.get_running_loop()
    sub = _Subscriber()
    subs.subscribers.setdefault(name, set()).add(sub)
    try:
        while True:
            await socket.send_json(await sub.queue.get())
            if sub.dropped:
                await socket.close(code=CLOSE_TRY_LATER, reason="too slow: changes were dropped")
                return
    except (WebSocketDisconnect, RuntimeError):
        # The client went away mid-send (starlette raises WebSocketDisconnect,
        # or RuntimeError once the socket is closed): nothing left to tell it.
        return
    finally:
        subs.subscribers.get(name, set()).discard(sub)
