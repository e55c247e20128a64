"""The ASGI interface's types, for middleware written against the raw protocol.

The node's hot paths and Konomi's guard and metrics wrap ASGI apps directly
(no framework in between, so a refused request costs nothing more); they share
these names instead of each spelling them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
