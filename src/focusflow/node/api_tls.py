"""The node's API over TLS, with operators' client certificates (mutual TLS).

``"api_tls"`` in a node's config.json (paths relative to its home)::

    {"cert": "tls/cert.pem", "key": "tls/key.pem",
     "client_ca": "tls/clients.pem", "client_crl": "tls/crl.pem",
     "client_roles": {"alice": ["admin"]}, "require_client_cert": false}

``cert`` and ``key`` are the server's certificate (its chain after it) and key;
the API then answers on ``https://``. With ``client_ca`` the handshake asks for
a client certificate and verifies it against those CAs (chain and validity, by
OpenSSL); a connection that offers none is still served, and its requests need
a bearer credential as before, unless ``require_client_cert`` is true, which
refuses it at the handshake. A verified certificate authenticates requests
that carry no ``Authorization`` header: its common name gets the roles
``client_roles`` lists, and its revocation is checked against ``client_crl``
on every request (``services.auth.certificates``). ``focusflow ca init`` /
``ca issue`` / ``ca crl`` make all of these files for a private deployment.

uvicorn verifies the certificate but does not hand it to the application; the
protocol classes here put it in the request's scope as the ASGI TLS extension
says (``scope["extensions"]["tls"]["client_cert_chain"]``), which the API reads
(``api.auth.client_certificate``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from focusflow.core.errors import InvalidParameterError
from focusflow.services.auth.certificates import ClientCertificates

_KEYS = {"cert", "key", "client_ca", "client_crl", "client_roles", "require_client_cert"}
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class ApiTls:
    """The API's TLS settings (module docstring)."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    client_crl: Path | None = None
    client_roles: dict[str, list[str]] = field(default_factory=dict)
    require_client_cert: bool = False

    @classmethod
    def from_json(cls, doc: Any, home: Path) -> ApiTls | None:
        """The settings of a config's ``"api_tls"`` (None: plain HTTP);
        InvalidParameterError for anything malformed or a file that is missing."""
        if doc is None:
            return None
        if not isinstance(doc, dict) or not {"cert", "key"} <= set(doc) or set(doc) - _KEYS:
            raise InvalidParameterError(
                f'config.json: "api_tls" has "cert" and "key", and may have {sorted(_KEYS)}'
            )

        def path(name: str) -> Path | None:
            value = doc.get(name)
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                raise InvalidParameterError(f"config.json: api_tls.{name} is a file path")
            where = home / value
            if not where.is_file():
                raise InvalidParameterError(f"config.json: api_tls.{name}: no file {where}")
            return where

        roles = doc.get("client_roles", {})
        if not isinstance(roles, dict):
            raise InvalidParameterError("config.json: api_tls.client_roles maps names to roles")
        require = doc.get("require_client_cert", False)
        if not isinstance(require, bool):
            raise InvalidParameterError("config.json: api_tls.require_client_cert is true/false")
        client_ca = path("client_ca")
        if (require or roles or doc.get("client_crl")) and client_ca is None:
            raise InvalidParameterError(
                "config.json: api_tls takes client certificates only with a client_ca"
            )
        cert, key = path("cert"), path("key")
        assert cert is not None and key is not None
        return cls(cert, key, client_ca, path("client_crl"), roles, require)

    def certificates(self) -> ClientCertificates | None:
        """Who the client certificates are (None: the API takes none)."""
        if self.client_ca is None:
            return None
        return ClientCertificates(self.client_roles, self.client_ca, self.client_crl)

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn.Config's TLS arguments, with the protocol that passes the
        client certificate on."""
        options: dict[str, Any] = {
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
            "http": TlsHttpToolsProtocol,
        }
        if self.client_ca is not None:
            options["ssl_ca_certs"] = str(self.client_ca)
            options["ssl_cert_reqs"] = (
                ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
            )
        return options


def tls_scope(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection (None if it is not TLS)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


def with_tls_scope(app: ASGIApp, transport: asyncio.BaseTransport) -> ASGIApp:
    """``app`` with every request of this connection carrying its TLS extension."""
    extension = tls_scope(transport)
    if extension is None:
        return app

    async def app_with_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": extension}}
        await app(scope, receive, send)

    return app_with_tls


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, passing the TLS extension to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = with_tls_scope(self.app, transport)


__all__ = ["ApiTls", "TlsHttpToolsProtocol", "tls_scope", "with_tls_scope"]
