"""``POST /v1/auth/login``: an operator's password exchanged for a scoped token.

The password is checked once, slowly (Argon2id), behind the login gate
(failures per user and per client address, a few verifications at a time:
``focusflow.services.auth.passwords``); the answer is a short-lived API token
with the user's roles, which the admin endpoints then take like any other.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from focusflow.api.auth import log
from focusflow.api.errors import ERROR_RESPONSES
from focusflow.api.state import app_state
from focusflow.services.auth.credentials import LOGIN_TTL_S, MAX_LOGIN_TTL_S
from focusflow.services.auth.passwords import MAX_PASSWORD, MIN_PASSWORD, USER
from focusflow.services.auth.tokens import UnauthorizedError

router = APIRouter(prefix="/v1/auth", responses=ERROR_RESPONSES)


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=f"^{USER.pattern}$")
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    ttl_s: int = Field(LOGIN_TTL_S, ge=1, le=MAX_LOGIN_TTL_S)


class LoginToken(BaseModel):
    token: str
    id: str
    roles: list[str]
    expires_ms: int


@router.post("/login", response_model=LoginToken)
async def login(request: Request, body: Login) -> JSONResponse:
    """A token with the user's roles, for the right password (401 otherwise;
    429 ``too_many_attempts`` after repeated failures; 503 ``login_busy``)."""
    authorizer = app_state(request).authorizer
    client = request.client.host if request.client is not None else "?"
    try:
        token, record = await run_in_threadpool(
            authorizer.login, body.user, body.password, client, body.ttl_s
        )
    except UnauthorizedError as exc:
        log.info("refused a login from %s: %s", client, exc.reason)
        raise
    doc = {"token": token, "id": record.id, "roles": record.roles, "expires_ms": record.expires_ms}
    return JSONResponse(doc)
