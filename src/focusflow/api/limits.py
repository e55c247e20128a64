"""Per-client request limits: a rate (token bucket) and a number in flight, per IP.

A public node answers anyone, and some reads cost real work (a block decode,
an old DA square, a hub particle's links). :class:`ClientLimits` is an ASGI
middleware in front of every HTTP route: each client IP has a token bucket
of ``burst`` tokens refilled at ``rate`` per second, and may have at most
``concurrency`` requests in flight. A request over either limit is answered
at once, before any handler runs, with ``429`` and
``{"error": {"code": "rate_limited", ...}}`` and a ``Retry-After`` header
(whole seconds). WebSocket connections have their own caps (``api.ws``).

The state is bounded: at most ``max_clients`` IPs are tracked; when full,
the IPs that have been idle longest (bucket full, nothing in flight) are
forgotten first, and if none is idle a new IP is refused as busy. Loopback
clients (the node's own CLI and tests on the host) are limited too unless
``exempt_loopback`` is set. Defaults are in :class:`LimitSettings`;
docs/api.md, *Limits*, lists them.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from focusflow.api.errors import error_doc
from focusflow.core.asgi import ASGIApp, Receive, Scope, Send
from focusflow.core.errors import InvalidParameterError, require_int

#: The error code of a request refused by a per-client limit (HTTP 429).
RATE_LIMITED = "rate_limited"
#: uvicorn's ``limit_concurrency`` for a node: connections plus requests in
#: flight over all clients, beyond which uvicorn answers 503 at once.
SERVER_LIMIT_CONCURRENCY = 1024
#: uvicorn's ``ws_max_size``: a WebSocket message over this is refused by the
#: protocol layer (close 1009) before it is buffered whole; the endpoint's own
#: cap (``api.ws.WsLimits.max_message_bytes``) is below it.
WS_MAX_FRAME_BYTES = 256 << 10


@dataclass(frozen=True)
class LimitSettings:
    """Per-client limits of the HTTP API (per client IP address)."""

    #: Requests per second a client may sustain.
    rate: float = 100.0
    #: Requests a client may make at once above the rate (bucket size).
    burst: int = 200
    #: Requests of one client in flight at once.
    concurrency: int = 16
    #: Client IPs tracked at once.
    max_clients: int = 4096
    #: Whether 127.0.0.0/8 and ::1 skip the limits.
    exempt_loopback: bool = False

    @classmethod
    def from_json(cls, doc: Mapping[str, object] | None) -> LimitSettings:
        """Settings from a config's ``api_limits`` object (missing keys: defaults)."""
        # Unchecked JSON values: __post_init__ checks them.
        fields: dict[str, Any] = dict(doc or {})
        unknown = set(fields) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise InvalidParameterError(f"unknown api_limits settings: {sorted(unknown)}")
        return cls(**fields)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise InvalidParameterError(f"rate must be > 0, got {self.rate!r}")
        for name in ("burst", "concurrency", "max_clients"):
            require_int(name, getattr(self, name), 1)


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0


class ClientLimiter:
    """The limits' bookkeeping, apart from ASGI (one event loop: no locking needed).

    :meth:`admit` says whether a request may start (and counts it in flight)
    or how many seconds to wait; :meth:`release` ends it.
    """

    def __init__(
        self, settings: LimitSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._clients: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def admit(self, client: str) -> float:
        """0.0 if the request is admitted (now in flight), else seconds to wait."""
        s = self.settings
        now = self.clock()
        bucket = self._clients.get(client)
        if bucket is None:
            if not self._make_room(now):
                return 1.0
            bucket = self._clients[client] = _Bucket(float(s.burst), now)
        else:
            self._clients.move_to_end(client)
            bucket.tokens = min(float(s.burst), bucket.tokens + (now - bucket.stamp) * s.rate)
            bucket.stamp = now
        if bucket.in_flight >= s.concurrency:
            return 1.0
        if bucket.tokens < 1.0:
            return (1.0 - bucket.tokens) / s.rate
        bucket.tokens -= 1.0
        bucket.in_flight += 1
        return 0.0

    def release(self, client: str) -> None:
        bucket = self._clients.get(client)
        if bucket is not None and bucket.in_flight > 0:
            bucket.in_flight -= 1

    def _make_room(self, now: float) -> bool:
        """Forget idle clients, oldest first, until one more fits; False if none can go."""
        s = self.settings
        if len(self._clients) < s.max_clients:
            return True
        for ip in list(self._clients)[: max(1, s.max_clients // 8)]:
            b = self._clients[ip]
            full = b.tokens + (now - b.stamp) * s.rate >= s.burst
            if b.in_flight == 0 and full:
                del self._clients[ip]
        return len(self._clients) < s.max_clients


def _is_loopback(ip: str) -> bool:
    return ip == "::1" or ip.startswith("127.")


class ClientLimits:
    """ASGI middleware applying :class:`ClientLimiter` to every HTTP request."""

    def __init__(self, app: ASGIApp, settings: LimitSettings | None = None) -> None:
        self.app = app
        self.settings = settings or LimitSettings()
        self.limiter = ClientLimiter(self.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ip = (scope.get("client") or ("unknown", 0))[0]
        if self.settings.exempt_loopback and _is_loopback(ip):
            await self.app(scope, receive, send)
            return
        wait = self.limiter.admit(ip)
        if wait > 0.0:
            await _send_429(send, wait)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release(ip)


async def _send_429(send: Send, wait: float) -> None:
    retry = max(1, math.ceil(wait))
    body = json.dumps(
        error_doc(RATE_LIMITED, f"too many requests from this client; retry in {retry} s")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


__all__ = [
    "RATE_LIMITED",
    "SERVER_LIMIT_CONCURRENCY",
    "WS_MAX_FRAME_BYTES",
    "ClientLimiter",
    "ClientLimits",
    "LimitSettings",
]
