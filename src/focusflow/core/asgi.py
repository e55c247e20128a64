"""The ASGI interface's types, for middleware written against the raw protocol.

The node's hot paths, its JSON depth check and Konomi's guard and metrics
wrap ASGI apps directly (no framework in between, so a refused request costs
nothing more); they share these names, and the replay of a body a middleware
read whole, instead of each spelling them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands an app ``body`` (already read whole by a middleware)
    as one message, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
