"""The admin endpoints' one check: the caller's credentials and what they allow.

Each admin route calls :func:`authorize` with the action and the resource it
is about to touch (with the client certificate of a mutual-TLS connection);
:class:`focusflow.services.auth.credentials.Authorizer` decides. A refusal is
logged with its reason (which token, which rule), and the client gets only
``unauthorized`` (401) or ``forbidden`` (403).
"""

from __future__ import annotations

import logging

from fastapi import Request

from focusflow.api.state import app_state
from focusflow.services.auth.credentials import ForbiddenError, Principal
from focusflow.services.auth.tokens import UnauthorizedError

log = logging.getLogger("focusflow.api.auth")


def client_certificate(request: Request) -> str | None:
    """The client certificate the TLS connection verified (PEM), from the ASGI
    TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``, leaf
    first), or None on a plain connection or one without a certificate."""
    tls = request.scope.get("extensions", {}).get("tls")
    if not isinstance(tls, dict):
        return None
    chain = tls.get("client_cert_chain")
    if isinstance(chain, list) and chain and isinstance(chain[0], str):
        return chain[0]
    return None


def authenticate(request: Request, authorization: str | None) -> Principal:
    """The caller, before a route reads a body it must parse to name its resource."""
    authorizer = app_state(request).authorizer
    try:
        return authorizer.authenticate(authorization, client_certificate(request))
    except UnauthorizedError as exc:
        log.info("refused credentials: %s", exc.reason)
        raise


def authorize(request: Request, authorization: str | None, action: str, resource: str) -> Principal:
    """The caller if it may do ``action`` on ``resource``; raises otherwise."""
    authorizer = app_state(request).authorizer
    try:
        return authorizer.authorize(authorization, action, resource, client_certificate(request))
    except (UnauthorizedError, ForbiddenError) as exc:
        log.info("refused %s on %s: %s", action, resource, exc.reason)
        raise
