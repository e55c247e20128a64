"""The node's HTTP face: REST under /v1, the WebSocket, metrics and the web page.

``create_app(node, admin_token)`` builds a FastAPI app over anything that
provides :class:`~focusflow.api.service.NodeService`; the node wires it and
runs it with uvicorn. What the app holds is one typed
:class:`~focusflow.api.state.AppState` (``build_state``), made here with the
app. docs/api.md is the contract.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from focusflow import __version__
from focusflow.api import (
    errors,
    evm_ws,
    openapi,
    routes_auth,
    routes_blobs,
    routes_ca,
    routes_chain,
    routes_da,
    routes_dex,
    routes_evm,
    routes_focus,
    routes_graph,
    routes_ibc,
    routes_infer,
    routes_interchain,
    routes_light,
    routes_query,
    routes_texts,
    routes_validators,
    routes_wasm,
    ws,
)
from focusflow.api.block_cache import RenderedBlocks
from focusflow.api.hot_paths import HotPaths
from focusflow.api.limits import ClientLimits, LimitSettings
from focusflow.api.metrics import NodeMetrics
from focusflow.api.render import key_texts
from focusflow.api.routes_focus import TopCache
from focusflow.api.service import NodeService
from focusflow.api.state import AppState, set_app_state
from focusflow.query.service import QueryService
from focusflow.services.auth.credentials import Authorizer
from focusflow.services.storage.chunk_store import ChunkStore
from focusflow.services.storage.fetch import BlobFetcher
from focusflow.store.particle_texts import ParticleTexts

STATIC = Path(__file__).parent / "static"


def build_state(
    node: NodeService,
    admin_token: str = "",
    *,
    ws_limits: ws.WsLimits | None = None,
    particle_texts: ParticleTexts | None = None,
    authorizer: Authorizer | None = None,
    blobs: ChunkStore | None = None,
    blob_fetcher: BlobFetcher | None = None,
) -> AppState:
    """Everything an app over ``node`` holds (see :func:`create_app` for the
    arguments); an app of a few routers (tests) sets it with ``set_app_state``."""
    hub = ws.Hub(node, ws_limits)
    queries = QueryService(
        node,
        head_relations=routes_query.HEAD_RELATIONS,
        texts=particle_texts.items if particle_texts is not None else None,
    )
    texts = key_texts()
    return AppState(
        node=node,
        authorizer=authorizer if authorizer is not None else Authorizer(admin_token),
        particle_texts=particle_texts,
        blobs=blobs,
        blob_fetcher=blob_fetcher,
        hub=hub,
        evm_subscriptions=evm_ws.EvmSubscriptions(node, hub),
        metrics=NodeMetrics(node),
        queries=queries,
        query_subscriptions=routes_query.Subscriptions(queries),
        top_cache=TopCache(particle_texts),
        key_texts=texts,
        inference=routes_infer.NodeInference(texts[1]),
        rendered_blocks=RenderedBlocks(),
        ct_log=routes_ca.LogCopy(),
        light_chunks=routes_light.ChunkLeaves(),
        light_link_sources=routes_light.LinkSources(),
        wasm_query_slots=threading.BoundedSemaphore(routes_wasm.QUERY_SLOTS),
    )


def create_app(
    node: NodeService,
    admin_token: str = "",
    limits: LimitSettings | None = None,
    ws_limits: ws.WsLimits | None = None,
    particle_texts: ParticleTexts | None = None,
    authorizer: Authorizer | None = None,
    blobs: ChunkStore | None = None,
    blob_fetcher: BlobFetcher | None = None,
) -> FastAPI:
    """The node's app; ``limits`` and ``ws_limits`` cap clients (defaults if None);
    ``particle_texts`` is the node's text store (None: it keeps no texts);
    ``authorizer`` decides the admin endpoints (None: the admin token alone);
    ``blobs`` is the node's chunk store (None: it keeps no blobs);
    ``blob_fetcher`` fetches blobs from other nodes (None: a node without peers)."""
    state = build_state(
        node,
        admin_token,
        ws_limits=ws_limits,
        particle_texts=particle_texts,
        authorizer=authorizer,
        blobs=blobs,
        blob_fetcher=blob_fetcher,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        state.hub.attach(loop)
        state.evm_subscriptions.attach(loop)
        state.query_subscriptions.loop = loop
        listeners = (
            state.hub.on_block,
            state.metrics.on_block,
            state.queries.on_block,
            state.evm_subscriptions.on_block,
        )
        node.listeners.extend(listeners)
        try:
            yield
        finally:
            await state.hub.detach()
            await state.evm_subscriptions.detach()
            for listener in listeners:
                if listener in node.listeners:
                    node.listeners.remove(listener)
            state.queries.close()

    app = FastAPI(
        title="focusflow node",
        version=__version__,
        description="REST and WebSocket API of a focusflow node; see docs/api.md.",
        lifespan=lifespan,
        # /docs is served from vendored files (openapi.install_docs); no ReDoc page,
        # whose default also loads from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    set_app_state(app, state)
    # The hot endpoints skip the framework (see hot_paths); the body cap that
    # errors.install adds is outside it.
    app.add_middleware(HotPaths, state=state)
    errors.install(app)
    openapi.install(app)
    # Outermost: a client over its limits is refused before any other work.
    app.add_middleware(ClientLimits, settings=limits or LimitSettings())
    for module in (
        routes_chain, routes_focus, routes_infer, routes_graph, routes_validators, ws,
        routes_da, routes_light, routes_query, routes_texts, routes_evm, evm_ws, routes_wasm,
        routes_auth, routes_blobs, routes_ca, routes_dex, routes_interchain, routes_ibc,
    ):  # fmt: skip
        app.include_router(module.router)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
        openapi.install_docs(app)
    if (STATIC / "index.html").exists():

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(STATIC / "index.html")
    else:

        @app.get("/", include_in_schema=False)
        def index_missing(request: Request) -> JSONResponse:
            return JSONResponse({"api": "/v1/status", "docs": "/docs", "openapi": "/openapi.json"})

    return app
