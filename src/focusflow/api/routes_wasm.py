"""WASM contracts over REST: what a contract is, and read-only queries.

``GET /v1/wasm/{address}`` names an instance's code, creator and label;
``POST /v1/wasm/{address}/query`` with ``{"msg": <JSON>}`` runs its ``query``
entry point at the node's head with ``wasm_max_gas`` and answers with what it
returned (the bytes in hex, and the JSON they hold when they are JSON). A
query changes nothing: a contract that tries to write traps. Contracts are
uploaded, instantiated and executed by transactions (docs/wasm.md).

Queries are free to whoever asks, and each may hold a call's worth of memory
(16 MiB and a table) and CPU (``wasm_max_gas``): at most ``QUERY_SLOTS`` run
at once, and one over that is answered at once with 503
``wasm_query_busy`` and ``Retry-After`` rather than queued.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from focusflow.api.bodies import StrictBody, json_body
from focusflow.api.errors import ERROR_RESPONSES, error_response
from focusflow.api.jsonbody import parse_json
from focusflow.api.params import AddressPath
from focusflow.api.state import app_state
from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.core.keys import encode_address, parse_account
from focusflow.modules import WasmParams
from focusflow.vm import wasm

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
#: Queries a node runs at once, and the seconds a refused one is told to wait.
QUERY_SLOTS = 4
RETRY_AFTER_S = 1


class WasmQueryBusyError(FocusflowError):
    """Every query slot is taken: try again after ``Retry-After`` seconds."""

    code = "wasm_query_busy"


class WasmQueryBody(StrictBody):
    #: The message handed to the contract's ``query``: any JSON value.
    msg: Any


class WasmContract(BaseModel):
    address: str
    code: str
    creator: str
    label: str


class WasmAnswer(BaseModel):
    answer_hex: str
    #: The answer parsed as JSON, or null when it is not JSON.
    answer: Any = None
    gas_used: int
    height: int


@router.get("/wasm/{address}", response_model=None, responses={200: {"model": WasmContract}})
def contract(request: Request, address: AddressPath) -> JSONResponse:
    """An instance's code hash, creator and label."""
    raw = parse_account(address)
    with app_state(request).node.chain.reader() as r:
        found = r.get(wasm.contract_key(raw))
    if found is None:
        raise wasm.UnknownContractError(f"no contract at {encode_address(raw)}")
    code_hash, creator, label = decode(found, "wasm contract")
    return JSONResponse(
        {
            "address": encode_address(raw),
            "code": code_hash.hex(),
            "creator": encode_address(creator),
            "label": label,
        }
    )


@router.post(
    "/wasm/{address}/query",
    response_model=None,
    responses={200: {"model": WasmAnswer}},
    openapi_extra=json_body(WasmQueryBody),
)
async def query(request: Request, address: AddressPath) -> JSONResponse:
    """Run the contract's ``query`` with ``msg`` at the head; nothing changes."""
    raw = parse_account(address)
    doc = parse_json(await request.body())
    if not isinstance(doc, dict) or set(doc) != {"msg"}:
        raise DecodeError('request body must be {"msg": <JSON>}')
    slots = app_state(request).wasm_query_slots
    if not slots.acquire(blocking=False):
        return _busy()
    try:
        return JSONResponse(await run_in_threadpool(_query, request, raw, doc["msg"]))
    finally:
        slots.release()


def _busy() -> JSONResponse:
    """``wasm_query_busy``: 503 with the seconds to wait in ``Retry-After``."""
    exc = WasmQueryBusyError(f"{QUERY_SLOTS} WASM queries are running; retry in {RETRY_AFTER_S} s")
    response = error_response(exc.code, exc.message)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def _query(request: Request, address: bytes, msg: Any) -> dict[str, Any]:
    node = app_state(request).node
    view = node.view
    env = wasm.WasmEnv(node.chain.chain_id, view.height, int(node.chain.head.time_ms))

    def focus_of(cid: bytes) -> int:
        i = view.particle_index(cid)
        return int(view.q[i]) if 0 <= i < len(view.q) else 0

    with node.chain.reader() as r:
        state = PendingState(r.get, r.items)
        result = wasm.call(
            state,
            env,
            address,
            "query",
            None,
            msg,
            WasmParams.of(node.chain.params).wasm_max_gas,
            focus_of,
            view.karma_fixed_of,
        )
    try:
        parsed = parse_json(result.answer) if result.answer else None
    except DecodeError:
        parsed = None
    return {
        "answer_hex": result.answer.hex(),
        "answer": parsed,
        "gas_used": result.gas_used,
        "height": view.height,
    }
