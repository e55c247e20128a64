"""Which node a command asks, and how it proves who it is talking to.

The client itself (``focusflow.client``) takes a URL and TLS settings; what
the command line adds is where they come from: ``--node URL``, else the
``api`` the running devnet wrote to ``<home>/node.json``, else the devnet's
default address; and the node's own CA and the operator's client certificate
from the environment (docs/trust.md, *The API over TLS*).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from focusflow.client import DEFAULT_NODE, check_url
from focusflow.core.errors import InvalidParameterError

if TYPE_CHECKING:
    import ssl

#: A node whose API speaks TLS with its own CA: the CA bundle to verify it
#: with, and the operator's client certificate and key for mutual TLS.
ENV_TLS_CA = "FOCUSFLOW_TLS_CA"
ENV_TLS_CERT = "FOCUSFLOW_TLS_CERT"
ENV_TLS_KEY = "FOCUSFLOW_TLS_KEY"

#: What the message of an unreachable node suggests.
UNREACHABLE_HINT = "is `focusflow devnet` running? pick another with --node URL"


def node_url(node: str | None, home: Path) -> tuple[str, str]:
    """``(url, where it came from)``: the flag, ``<home>/node.json``, or the default."""
    if node:
        return check_url(node), "given by --node"
    info = home / "node.json"
    try:
        api = json.loads(info.read_text()).get("api")
    except (OSError, ValueError, AttributeError):
        api = None
    if isinstance(api, str) and api:
        try:
            return check_url(api), f"from {info}"
        except InvalidParameterError:
            pass
    return DEFAULT_NODE, f"the default; no node in {info}"


def tls_verify() -> ssl.SSLContext | bool:
    """httpx's ``verify`` from the environment: the system's CAs unless
    ``$FOCUSFLOW_TLS_CA`` names a bundle, with the client certificate that
    ``$FOCUSFLOW_TLS_CERT`` and ``$FOCUSFLOW_TLS_KEY`` name (both, or neither)."""
    import ssl

    ca = os.environ.get(ENV_TLS_CA)
    cert, key = os.environ.get(ENV_TLS_CERT), os.environ.get(ENV_TLS_KEY)
    if bool(cert) != bool(key):
        raise InvalidParameterError(f"set both ${ENV_TLS_CERT} and ${ENV_TLS_KEY}, or neither")
    for name, path in ((ENV_TLS_CA, ca), (ENV_TLS_CERT, cert), (ENV_TLS_KEY, key)):
        if path and not Path(path).is_file():
            raise InvalidParameterError(f"${name}: no file {path}")
    if not ca and not cert:
        return True
    context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


__all__ = [
    "ENV_TLS_CA",
    "ENV_TLS_CERT",
    "ENV_TLS_KEY",
    "UNREACHABLE_HINT",
    "node_url",
    "tls_verify",
]
