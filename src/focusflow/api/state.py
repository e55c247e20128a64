"""What one node's app holds, typed, and the one way routes reach it.

Starlette's ``app.state`` takes any attribute and types none, so a route that
reads ``request.app.state.x`` names nothing a type checker or a reader can
follow, and one that probes ``getattr(app.state, "x", None)`` hides a missing
part until a request needs it. The app holds one :class:`AppState` instead:
every service, store and cache the routes share, each a typed field, all made
when the app is (``focusflow.api.app.build_state``). Routes reach it through
:func:`app_state` and the node only through its ``node`` field, a
:class:`~focusflow.api.service.NodeService`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import HTTPConnection

    from focusflow.api.block_cache import RenderedBlocks
    from focusflow.api.evm_ws import EvmSubscriptions
    from focusflow.api.metrics import NodeMetrics
    from focusflow.api.render import TextCache
    from focusflow.api.routes_ca import LogCopy
    from focusflow.api.routes_focus import TopCache
    from focusflow.api.routes_infer import NodeInference
    from focusflow.api.routes_light import ChunkLeaves, LinkSources
    from focusflow.api.routes_query import Subscriptions
    from focusflow.api.service import NodeService
    from focusflow.api.ws import Hub
    from focusflow.query.service import QueryService
    from focusflow.services.auth.credentials import Authorizer
    from focusflow.services.storage.chunk_store import ChunkStore
    from focusflow.services.storage.fetch import BlobFetcher
    from focusflow.store.particle_texts import ParticleTexts


@dataclass
class AppState:
    """Everything one app shares between its requests (see the module docstring)."""

    #: The running node: everything the routes read of it or ask of it.
    node: NodeService
    #: Decides the admin endpoints (the admin token, scoped tokens, ACLs).
    authorizer: Authorizer
    #: The node's particle texts; None for a node without a home (tests).
    particle_texts: ParticleTexts | None
    #: The node's chunk store; None for a node that keeps no blobs.
    blobs: ChunkStore | None
    #: Fetches blobs from other nodes; None for a node without peers.
    blob_fetcher: BlobFetcher | None
    #: The ``/v1/ws`` clients and their per-block fan-out.
    hub: Hub
    #: The ``/evm`` WebSocket subscriptions.
    evm_subscriptions: EvmSubscriptions
    #: This app's Prometheus registry.
    metrics: NodeMetrics
    #: Datalog queries and views over the node's committed state.
    queries: QueryService
    #: The views' WebSocket subscribers.
    query_subscriptions: Subscriptions
    #: Rendered ``/v1/focus/top`` bodies of the current view.
    top_cache: TopCache
    #: Spelled particle CIDs and neuron addresses, by index.
    key_texts: tuple[TextCache, TextCache]
    #: The inference graph of the current view and the solver slots.
    inference: NodeInference
    #: Committed blocks rendered as JSON once.
    rendered_blocks: RenderedBlocks
    #: The CA's transparency log as read so far.
    ct_log: LogCopy
    #: Focus chunks of the current view, the leaves of the light client's proofs.
    light_chunks: ChunkLeaves
    #: Which message made each link, for proofs of links.
    light_link_sources: LinkSources
    #: WASM queries running at once.
    wasm_query_slots: threading.BoundedSemaphore


def set_app_state(app: Starlette, state: AppState) -> None:
    """Give ``app`` its state (once, as it is built)."""
    app.state.api = state


def state_of(app: Starlette) -> AppState:
    """The state of an app built with :func:`set_app_state`."""
    state: AppState = app.state.api
    return state


def app_state(connection: HTTPConnection) -> AppState:
    """The state of the app serving ``connection`` (a request or a WebSocket)."""
    return state_of(connection.app)


__all__ = ["AppState", "app_state", "set_app_state", "state_of"]
