"""Prometheus metrics of a Konomi server (``GET /metrics``).

Each app gets its own registry, as a node's does, so several servers in one
process (tests) keep their own counts. HTTP requests and WebSocket sessions are
counted by an ASGI middleware outside the token guard, so refused requests and
handshakes are counted too. Labels come from closed sets only: the route
template a request matched (or ``unmatched``), a known HTTP method (or
``other``), a WebSocket action (or ``unknown``), an error code, an event kind.
Nothing a client chooses (paths, cube ids, text) becomes a label, so a client
cannot grow the number of series. Grid sizes are read when Prometheus scrapes.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.routing import BaseRoute, Match

from focusflow.core.asgi import ASGIApp, Message, Receive, Scope, Send
from focusflow.konomi.events import Event
from focusflow.konomi.packml import State
from focusflow.konomi.system import KonomiSystem
from focusflow.konomi.ws import ACTIONS

#: Content type of the Prometheus text format, as the node's /metrics answers.
CONTENT_TYPE = "text/plain; version=0.0.4"
#: Request and WebSocket action latencies: a FemtoLLM call takes milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Face operations: a 10^6-block activation takes seconds.
FACE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
#: Events the grid and its cubes emit (a remote process may send others).
EVENTS = frozenset(
    {
        "template",
        "instance",
        "blocks",
        "interlock",
        "processed",
        "connected",
        "collective_think",
        "field",
        "decided",
        "conflicting_vote",
    }
)
UNMATCHED = "unmatched"


class KonomiMetrics:
    """The counters, gauges and histograms of one Konomi app."""

    def __init__(self, system: KonomiSystem) -> None:
        self.system = system
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "konomi_http_requests",
            "HTTP requests answered, by matched route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "konomi_http_request_seconds",
            "Time to answer an HTTP request, by matched route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ws_open = Gauge("konomi_ws_sessions", "WebSocket sessions open now", registry=r)
        self.ws_opened = Counter(
            "konomi_ws_sessions_opened", "WebSocket sessions accepted", registry=r
        )
        self.ws_refused = Counter(
            "konomi_ws_sessions_refused",
            "WebSocket handshakes refused (no or a wrong token, unknown path)",
            registry=r,
        )
        self.ws_messages = Counter(
            "konomi_ws_messages",
            "WebSocket messages handled, by action and outcome (ok or the error code)",
            ["action", "outcome"],
            registry=r,
        )
        self.ws_seconds = Histogram(
            "konomi_ws_action_seconds",
            "Time to handle a WebSocket message, by action",
            ["action"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "konomi_events",
            "Grid and cube events, made here (local) or by another process (remote)",
            ["event", "origin"],
            registry=r,
        )
        self.face_blocks = Counter(
            "konomi_face_blocks",
            "Blocks processed by face operations, by operation",
            ["operation"],
            registry=r,
        )
        self.face_seconds = Histogram(
            "konomi_face_operation_seconds",
            "Time of a face operation, by operation",
            ["operation"],
            buckets=FACE_BUCKETS,
            registry=r,
        )
        self.packml = Enum(
            "konomi_packml_state",
            "State of the PackML machine that runs face operations",
            states=[s.value for s in State],
            registry=r,
        )
        for name, doc, read in (
            ("konomi_cubes", "Cubes held by this process", lambda: len(system.cubes)),
            ("konomi_templates", "Templates", lambda: len(system.templates)),
            ("konomi_instances", "Block array instances", lambda: len(system.instances)),
            ("konomi_active_blocks", "Active blocks in all instances", self._active_blocks),
        ):
            Gauge(name, doc, registry=r).set_function(read)

    def _active_blocks(self) -> int:
        return sum(inst.array.size for inst in list(self.system.instances.values()))

    def on_event(self, event: Event, origin: str) -> None:
        """Count an event; a local face operation also adds its blocks and time."""
        kind = event.get("event")
        known = isinstance(kind, str) and kind in EVENTS
        self.events.labels(kind if known else "other", origin).inc()
        if kind == "interlock" and origin == "local":
            op = str(event.get("operation"))
            self.face_blocks.labels(op).inc(int(event.get("processed") or 0))
            self.face_seconds.labels(op).observe(float(event.get("seconds") or 0.0))

    def on_ws_message(self, action: object, outcome: str, seconds: float) -> None:
        """Count one handled WebSocket message (``outcome``: ok or an error code)."""
        label = action if isinstance(action, str) and action in ACTIONS else "unknown"
        self.ws_messages.labels(label, outcome).inc()
        self.ws_seconds.labels(label).observe(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        self.packml.state(self.system.machine.state.value)
        return generate_latest(self.registry)


def route_label(routes: list[BaseRoute], scope: Scope) -> str:
    """The path template of the route a request matches (also when only its method
    does not), else ``unmatched``: never the raw path."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return getattr(route, "path", UNMATCHED)
    return UNMATCHED


class MetricsMiddleware:
    """ASGI middleware counting HTTP requests and WebSocket sessions."""

    def __init__(self, app: ASGIApp, metrics: KonomiMetrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_label(self.routes, scope)
        method = scope["method"] if scope["method"] in METHODS else "other"
        status = 500
        started = time.perf_counter()

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            m = self.metrics
            m.http_requests.labels(route, method, str(status)).inc()
            m.http_seconds.labels(route).observe(time.perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False
        m = self.metrics

        async def observed(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                m.ws_opened.inc()
                m.ws_open.inc()
            elif message["type"] == "websocket.close" and not accepted:
                m.ws_refused.inc()
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            if accepted:
                m.ws_open.dec()
