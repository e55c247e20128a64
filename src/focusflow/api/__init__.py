"""The node's REST + WebSocket API and web page (FastAPI); see docs/api.md."""

from focusflow.api.app import create_app

__all__ = ["create_app"]
