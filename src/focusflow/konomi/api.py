"""The Konomi REST API, its WebSocket route and the live web page.

Endpoints as the seed lists them: ``POST /template/create``, ``POST
/instance/create``, ``GET /value``, ``POST /value``, ``POST /llm/process``, ``POST
/llm/interlock``, WebSocket ``/ws``; plus ``POST /block/attest``, ``GET
/block/consensus`` for the blockchain properties, ``GET /healthz`` and ``GET
/metrics`` (Prometheus). Errors are
``{"error": {"code", "message"}}`` with the HTTP status of the error class;
malformed requests answer 422 with code ``malformed_message``. OpenAPI is at
``/openapi.json`` (and ``/docs``).

``roles`` picks what one process serves, so the compose file can run the same
image as the api (3001), ws (3002) and web (3000) services. ``token`` is the
server's bearer token: every POST and every WebSocket must present it, and
bodies are capped (:mod:`focusflow.konomi.guard`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from focusflow.core.errors import FocusflowError
from focusflow.konomi.errors import (
    KonomiError,
    LedgerError,
    LedgerTooLargeError,
    MalformedMessageError,
)
from focusflow.konomi.events import Event, LocalBus
from focusflow.konomi.guard import MAX_BODY, KonomiGuard, check_token
from focusflow.konomi.ledger import MAX_ENTRIES, MAX_REFS, entries_from_hex, verify_ledger
from focusflow.konomi.metrics import CONTENT_TYPE, KonomiMetrics, MetricsMiddleware
from focusflow.konomi.system import KonomiSystem
from focusflow.konomi.ws import error_body, serve_socket
from focusflow.services.auth.tokens import TokenStore

ROLES = ("api", "ws", "web")
#: A route's JSON reply. FastAPI makes a route's return annotation its response
#: model, so a record type here would validate and filter the replies and
#: rewrite the OpenAPI document; a plain object leaves both as they are.
JsonReply = dict[str, Any]


class TemplateRequest(BaseModel):
    """Body of ``POST /template/create``."""

    dims: tuple[int, int, int] = (1000, 1000, 1000)
    name: str = "template"


class BlockRequest(BaseModel):
    """Body of ``POST /value`` (the seed's BlockRequest, plus an optional instance)."""

    x: int
    y: int
    z: int
    value: float = 1.0
    instance_id: str | None = None


class Coordinate(BaseModel):
    """A block coordinate in an instance."""

    x: int
    y: int
    z: int
    instance_id: str | None = None
    adjacency: int = Field(6, description="6 (faces) or 26 (faces, edges, corners)")


def create_app(
    system: KonomiSystem | None = None,
    bus: LocalBus | None = None,
    roles: tuple[str, ...] = ROLES,
    *,
    token: str,
    max_body: int = MAX_BODY,
    tokens: TokenStore | None = None,
) -> FastAPI:
    """The ASGI app; ``system`` and ``bus`` default to in-memory ones. ``token``
    (required, 32 to 249 characters) guards every state-changing request; with
    ``tokens``, scoped API tokens with a Konomi role are taken too."""
    system = system if system is not None else KonomiSystem()
    bus = bus if bus is not None else LocalBus()

    metrics = KonomiMetrics(system)

    def emit(event: Event) -> None:
        metrics.on_event(event, "local")
        bus.emit(event)

    def apply_remote(event: Event) -> None:
        metrics.on_event(event, "remote")
        system.apply_event(event)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await bus.start()
        system.on_event = emit
        bus.on_remote = apply_remote
        try:
            yield
        finally:
            system.on_event = None
            await bus.close()

    app = FastAPI(
        title="Konomi",
        version="1",
        description="CPU-only agent grid: BlockArray, FemtoLLM, Cube (focusflow.konomi).",
        lifespan=lifespan,
    )
    app.state.system = system
    app.state.bus = bus
    app.state.metrics = metrics
    app.add_middleware(KonomiGuard, token=check_token(token), max_body=max_body, tokens=tokens)
    # Outermost, so that requests and handshakes the guard refuses are counted too.
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)

    @app.exception_handler(FocusflowError)
    async def _focusflow_error(request: Request, exc: FocusflowError) -> JSONResponse:
        status = exc.http_status if isinstance(exc, KonomiError) else 400
        return JSONResponse(error_body(exc), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse(
            {
                "error": {
                    "code": "malformed_message",
                    "message": "invalid request",
                    "details": details,
                }
            },
            status_code=422,
        )

    @app.get("/healthz")
    def healthz() -> JsonReply:
        """Liveness, and what this process serves."""
        return {"status": "ok", "roles": list(roles), "state": system.machine.state.value}

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        """Prometheus text format; open like every read (docs/konomi.md, *Metrics*)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    if "api" in roles:
        _add_rest(app, system)
        _add_ledger(app, system)
    if "ws" in roles:

        @app.websocket("/ws")
        async def websocket_endpoint(websocket: WebSocket) -> None:
            await serve_socket(websocket, system, bus, metrics.on_ws_message)

    if "web" in roles:
        page = resources.files("focusflow.konomi.web").joinpath("index.html").read_text()

        @app.get("/", response_class=HTMLResponse, include_in_schema=False)
        def index() -> str:
            return page

    return app


def _add_rest(app: FastAPI, system: KonomiSystem) -> None:
    @app.post("/template/create")
    def create_template(req: TemplateRequest | None = None) -> JsonReply:
        """Create a template (default 1000³)."""
        req = req or TemplateRequest()
        t = system.create_template(req.dims, name=req.name)
        return {"template_id": t.id, "dimensions": list(t.dims)}

    @app.post("/instance/create")
    def create_instance(template_id: str) -> JsonReply:
        """Instantiate a template as an empty block array."""
        inst = system.instantiate(template_id)
        return {"instance_id": inst.id, "template_id": inst.template_id, "status": "active"}

    @app.get("/value")
    def get_value(x: int, y: int, z: int, instance_id: str | None = None) -> JsonReply:
        """A block's value and the state of the LLM at it."""
        return system.value_info(x, y, z, instance_id)

    @app.post("/value")
    def set_value(req: BlockRequest) -> JsonReply:
        """Set (and activate) a block."""
        block = system.set_block(req.x, req.y, req.z, req.value, req.instance_id)
        return {"status": "set", "coordinate": [req.x, req.y, req.z], "hash": block["hash"]}

    @app.post("/llm/process")
    def process_llm(x: int, y: int, z: int, text: str, instance_id: str | None = None) -> JsonReply:
        """Run the FemtoLLM at a coordinate on ``text``."""
        result, kappa = system.process_text(x, y, z, text, instance_id)
        return {"result": result, "κ": kappa}

    @app.post("/llm/interlock")
    def face_operation(
        plane: str, index: int, operation: str, instance_id: str | None = None
    ) -> JsonReply:
        """Operate on a whole face of the grid (all 10^6 blocks of z=500 in a 1000³ grid)."""
        return dict(system.interlock(plane, index, operation, instance_id))

    @app.post("/block/attest")
    def attest(req: Coordinate) -> JsonReply:
        """Active neighbours attest a block's hash."""
        return {
            "attested": system.attest_block(req.x, req.y, req.z, req.instance_id, req.adjacency)
        }

    @app.get("/block/consensus")
    def consensus(
        x: int, y: int, z: int, instance_id: str | None = None, adjacency: int = 6
    ) -> JsonReply:
        """Whether a block is accepted (valid hash, >= 2/3 of active neighbours attest it)."""
        return system.consensus_block(x, y, z, instance_id, adjacency)


#: Most entries one ``GET /cube/{id}/ledger`` answers.
MAX_LEDGER_PAGE = 1000


class LedgerVerifyRequest(BaseModel):
    """Body of ``POST /ledger/verify``: a ledger's entries (hex of their canonical
    CBOR) from its genesis on, the ledgers of the cubes it cross-references, and
    optionally the head hash it must end at. The server's body cap bounds it first."""

    entries: list[str] = Field(max_length=MAX_ENTRIES)
    peers: dict[str, list[str]] = Field(default_factory=dict, max_length=MAX_REFS)
    head: str | None = None


def _add_ledger(app: FastAPI, system: KonomiSystem) -> None:
    @app.get("/cube/{cube_id}/ledger")
    def cube_ledger(
        cube_id: str,
        start: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=MAX_LEDGER_PAGE),
    ) -> JsonReply:
        """A page of a cube's ledger: entries as hex of their canonical CBOR."""
        entries = system.ledger_entries(cube_id, start, limit)
        ledger = system.cube(cube_id).ledger
        assert ledger is not None
        end = start + len(entries)
        return {
            "cube_id": cube_id,
            "height": ledger.next_height - 1,
            "head": ledger.head.hex(),
            "start": start,
            "entries": [e.data.hex() for e in entries],
            "next": end if end < ledger.next_height else None,
        }

    @app.post("/ledger/verify")
    def ledger_verify(req: LedgerVerifyRequest) -> JsonReply:
        """Verify a ledger from its entries alone: ``{"ok": true, ...}`` or the first
        failing entry's index and error code. Nothing is stored."""
        try:
            entries = entries_from_hex(req.entries)
            peers = {k: entries_from_hex(v) for k, v in req.peers.items()}
            try:
                head = bytes.fromhex(req.head) if req.head is not None else None
            except ValueError:
                raise MalformedMessageError("head must be hex") from None
            return verify_ledger(entries, peers, expected_head=head).to_json()
        except LedgerTooLargeError:
            raise
        except LedgerError as exc:
            return {"ok": False, "index": exc.index, **error_body(exc)}
