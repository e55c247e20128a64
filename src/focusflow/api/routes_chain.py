"""Chain endpoints: status, transactions, blocks, accounts, names, proofs, faucet."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from focusflow import __version__
from focusflow.api import schemas
from focusflow.api.auth import authorize
from focusflow.api.bodies import json_body
from focusflow.api.errors import ERROR_RESPONSES, ApiError, error_doc, error_response
from focusflow.api.jsonbody import parse_json
from focusflow.api.params import HEX64, INT64_MAX, AddressPath, HeightPath, StateKey, state_key
from focusflow.api.render import jsonable, record_json
from focusflow.api.state import AppState, app_state
from focusflow.chain.block import BlockRecord
from focusflow.chain.committer import BLOCK_EVENTS_PREFIX
from focusflow.chain.errors import AdmissionBusyError, WrongChainIdError
from focusflow.chain.tx import Tx, decode_tx
from focusflow.core.cid import cid_from_bytes
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.core.keys import encode_address, parse_account
from focusflow.state_schema.accounts import get_account, get_neudeg
from focusflow.state_schema.names import address_of, join_host_port, resolve
from focusflow.state_schema.proofs import pin_request
from focusflow.store import height_key

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

_TX_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": schemas.TxSubmit.model_json_schema()},
            "application/cbor": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.get("/status", response_model=None, responses={200: {"model": schemas.Status}})
def status(request: Request) -> JSONResponse:
    node = app_state(request).node
    head = node.chain.head
    view = node.view
    key = node.chain.validator_key
    return JSONResponse(
        {
            "chain_id": node.chain.chain_id,
            "height": head.height,
            "latest_block_hash": head.hash.hex(),
            "latest_block_time_ms": head.time_ms,
            "state_root": head.state_root.hex(),
            "focus_root": head.focus_root.hex(),
            "data_root": head.data_root.hex(),
            "validator": key.address if key is not None else None,
            "role": "full" if node.follow_only else "validator",
            "base": node.chain.base,
            "halted": node.halted,
            "focus": {
                "iterations": view.iterations,
                "seconds": view.seconds,
                "particles": view.n_particles,
                "links": view.n_links,
                "neurons": view.n_neurons,
            },
            "mempool": {"txs": len(node.mempool), "bytes": node.mempool.size_bytes},
            "dag": node.dag_status(),
            "version": __version__,
        }
    )


@router.get("/params", response_model=None, responses={200: {"model": schemas.Params}})
def params(request: Request) -> JSONResponse:
    """The chain's parameters (fees, limits, focus settings): the genesis's, with
    the economy changes the validators voted (``economy.vote``), and the fee
    per byte the next block charges.

    Wallets need them to price a transaction: the minimum fee is
    ``fee_base + fee_per_byte * size`` (under the economy ``fee_per_byte``
    is the base fee, which moves block by block: docs/economics.md).
    """
    node = app_state(request).node
    return JSONResponse(
        {
            "chain_id": node.chain.chain_id,
            "params": node.chain.params_now().to_dict(),
            "fee_per_byte": node.fee_per_byte(),
        }
    )


@router.post(
    "/txs",
    status_code=202,
    response_model=None,
    responses={202: {"model": schemas.TxAccepted}},
    openapi_extra=_TX_BODY,
)
async def submit_tx(request: Request) -> JSONResponse:
    """Admit a signed transaction into the mempool; 202 with its hash.

    In a network of rollups, a transaction signed for another chain of the
    network is sent on to that chain's API (once: a forwarded request is
    never forwarded again) and its answer returned, so a client may submit
    to any node of the network."""
    body = await request.body()
    ctype = request.headers.get("content-type", "")
    try:
        tx = await admit(app_state(request), body, ctype)
    except AdmissionBusyError as exc:
        return busy_response(exc)
    except WrongChainIdError:
        if request.headers.get(FORWARDED_HEADER):
            raise
        forwarded = await forward_to_owner(app_state(request), body, ctype)
        if forwarded is None:
            raise
        status, doc, target = forwarded
        return JSONResponse(doc, status_code=status, headers={"x-forwarded-to": target})
    return JSONResponse({"hash": tx.hash.hex()}, status_code=202)


#: Marks a transaction one node sent on to another chain's node.
FORWARDED_HEADER = "x-focusflow-forwarded"


async def forward_to_owner(
    state: AppState, body: bytes, content_type: str
) -> tuple[int, Any, str] | None:
    """Send a transaction for another chain of this node's network to that chain's
    API: its answer's status and JSON and the API it went to; None when its
    chain is none this node knows an API of."""
    ctype = content_type.split(";")[0].strip().lower()
    raw = body if ctype == "application/cbor" else _tx_from_json(body)
    chain_id = decode_tx(raw).chain_id
    apis = state.node.interchain_apis.get(chain_id)
    if not apis:
        return None
    try:
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S) as http:
            answer = await http.post(
                f"{apis[0].rstrip('/')}/v1/txs",
                content=body,
                headers={"content-type": ctype or "application/json", FORWARDED_HEADER: "1"},
            )
        return answer.status_code, answer.json(), apis[0]
    except (httpx.HTTPError, ValueError) as exc:
        message = f"chain {chain_id}'s node at {apis[0]} did not answer: {exc}"[:300]
        return 502, error_doc("forward_failed", message), apis[0]


#: Seconds a forwarded transaction's owner has to answer.
FORWARD_TIMEOUT_S = 10.0


def busy_response(exc: AdmissionBusyError) -> JSONResponse:
    """``admission_busy``: 503 with the seconds to wait in ``Retry-After``."""
    response = error_response(exc.code, exc.message)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def admit(state: AppState, body: bytes, content_type: str) -> Tx:
    """One submitted transaction into the node's mempool: the whole of ``POST /v1/txs``
    but the HTTP (shared by the route and the hot path in ``hot_paths``). The
    decoding and signature check run in the node's admission workers, off the
    event loop; AdmissionBusyError when their queue is full."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/cbor":
        raw = body
    elif ctype in ("application/json", ""):
        raw = _tx_from_json(body)
    else:
        raise ApiError(
            "unsupported_media_type", f"send application/json or application/cbor, not {ctype}"
        )
    try:
        tx = await state.node.admit(raw)
    except FocusflowError as exc:
        state.metrics.rejected.labels(exc.code).inc()
        raise
    state.metrics.submitted.inc()
    return tx


#: Most transactions one batch request may carry.
MAX_BATCH = 1000

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": schemas.TxBatch.model_json_schema()},
            "application/cbor": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/txs/batch",
    response_model=None,
    responses={200: {"model": schemas.TxBatchResult}},
    openapi_extra=_BATCH_BODY,
)
async def submit_batch(request: Request) -> JSONResponse:
    """Admit up to 1000 signed transactions; each is accepted or refused on its own.

    For bulk loaders: one request instead of a thousand. The answer lists, in
    order, ``{"hash"}`` for each accepted transaction and ``{"error"}`` for each
    refused one; a refused transaction changes nothing, as on ``POST /v1/txs``.
    The transactions are checked in the node's admission workers; when their
    queue cannot take the whole batch, none is looked at and the answer is
    ``admission_busy`` (503, ``Retry-After``).
    """
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/cbor":
        txs = decode(body, "transaction batch")
        if not isinstance(txs, list) or not all(isinstance(t, bytes) for t in txs):
            raise DecodeError("a CBOR batch is an array of byte strings")
    elif ctype in ("application/json", ""):
        txs = _batch_from_json(body)
    else:
        raise ApiError("unsupported_media_type", f"send JSON or CBOR, not {ctype}")
    if len(txs) > MAX_BATCH:
        raise ApiError("over_limit", f"{len(txs)} transactions in one batch; at most {MAX_BATCH}")
    metrics = app_state(request).metrics
    try:
        admitted = await app_state(request).node.admit_many(txs)
    except AdmissionBusyError as exc:
        metrics.rejected.labels(exc.code).inc()
        return busy_response(exc)
    results: list[Mapping[str, object]] = []
    for result in admitted:
        if isinstance(result, FocusflowError):
            metrics.rejected.labels(result.code).inc()
            results.append(error_doc(result.code, result.message))
        else:
            metrics.submitted.inc()
            results.append({"hash": result.hash.hex()})
    return JSONResponse({"results": results})


def _batch_from_json(body: bytes) -> list[bytes]:
    doc = parse_json(body)
    txs = doc.get("txs") if isinstance(doc, dict) and set(doc) == {"txs"} else None
    if not isinstance(txs, list) or not all(isinstance(t, str) for t in txs):
        raise DecodeError('request body must be {"txs": ["<hex>", ...]}')
    try:
        return [bytes.fromhex(t) for t in txs]
    except ValueError:
        raise DecodeError("a transaction is not hex") from None


def _tx_from_json(body: bytes) -> bytes:
    doc = parse_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("tx"), str) or set(doc) != {"tx"}:
        raise DecodeError('request body must be {"tx": "<hex>"}')
    try:
        return bytes.fromhex(doc["tx"])
    except ValueError:
        raise DecodeError("tx is not hex") from None


@router.get("/txs/{hash}", response_model=None, responses={200: {"model": schemas.TxStatus}})
def tx_status(request: Request, hash: Annotated[str, Path(pattern=HEX64)]) -> JSONResponse:
    node = app_state(request).node
    tx_hash = bytes.fromhex(hash)
    with node.chain.reader() as r:
        raw = r.index(b"t" + tx_hash)
    if raw is not None:
        height, index, code, log, events = decode(raw, "receipt")
    # A block is stored a moment before the node publishes its focus; until
    # then the transaction counts as pending, so that "committed" always means
    # every read endpoint (focus, links, karma) already reflects it.
    if raw is not None and height <= node.view.height:
        return JSONResponse(
            {
                "hash": hash.lower(),
                "status": "committed",
                "height": height,
                "index": index,
                "code": code,
                "log": log,
                "events": jsonable(events),
            }
        )
    if raw is not None or node.is_pending(tx_hash):
        return JSONResponse(
            {
                "hash": hash.lower(),
                "status": "pending",
                "height": None,
                "index": None,
                "code": None,
                "log": None,
                "events": [],
            }
        )
    raise ApiError("unknown_tx", f"transaction {hash.lower()} is neither pending nor committed")


def _record_at(request: Request, height: int) -> BlockRecord:
    with app_state(request).node.chain.reader() as r:
        raw = r.block(height)
    if raw is None:
        raise ApiError("unknown_block", f"no block at height {height}")
    return BlockRecord.decode(raw)


def _block_out(request: Request, height: int) -> dict[str, Any]:
    """A stored block as the API shows it, with the events its execution stored."""
    record = _record_at(request, height)
    with app_state(request).node.chain.reader() as r:
        raw = r.index(BLOCK_EVENTS_PREFIX + height_key(height))
    return record_json(record, [] if raw is None else decode(raw, "block events"))


#: Most blocks one ``GET /v1/blocks`` lists.
MAX_BLOCKS_LISTED = 100
#: Bytes of JSON one ``GET /v1/blocks`` lists at most (plus the block that
#: crosses it): a full block lists some 10^5 transaction hashes, so a hundred
#: of them would be a response of hundreds of MiB.
MAX_BLOCKS_BYTES = 1 << 20
#: Blocks one ``GET /v1/blocks`` decodes at most (those not rendered already):
#: a page asked below the cached heights costs at most this many decodes.
MAX_BLOCKS_DECODED = 20


def _block_bytes(request: Request, height: int) -> bytes:
    """The compact JSON of a stored block, rendered once per height (it never changes)."""
    blocks = app_state(request).rendered_blocks
    return blocks.get(height, lambda h: _compact(_block_out(request, h)))


def _compact(doc: Mapping[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@router.get("/blocks", response_model=None, responses={200: {"model": schemas.BlockList}})
def blocks(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_BLOCKS_LISTED)] = 20,
    before: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
) -> Response:
    """Recent blocks, newest first (``before``: start below this height).

    The list stops early once its JSON passes ``MAX_BLOCKS_BYTES`` or before
    a block that would be the ``MAX_BLOCKS_DECODED + 1``-th to decode;
    ``next_before`` is where the next page starts (``null`` after block 0).
    """
    top = app_state(request).node.chain.height
    start = top if before is None else min(top, before - 1)
    cache = app_state(request).rendered_blocks
    parts, size, decoded, height = [], 0, 0, start
    while height > max(-1, start - limit) and size <= MAX_BLOCKS_BYTES:
        body = cache.cached(height)
        if body is None:
            if decoded >= MAX_BLOCKS_DECODED:
                break
            body = _block_bytes(request, height)
            decoded += 1
        parts.append(body)
        size += len(body)
        height -= 1
    next_before = str(height + 1).encode() if height >= 0 else b"null"
    body = b'{"blocks":[' + b",".join(parts) + b'],"next_before":' + next_before + b"}"
    return Response(body, media_type="application/json")


@router.get("/blocks/latest", response_model=None, responses={200: {"model": schemas.BlockOut}})
def block_latest(request: Request) -> Response:
    return _json_bytes(_block_bytes(request, app_state(request).node.chain.height))


@router.get(
    "/blocks/hash/{hash}", response_model=None, responses={200: {"model": schemas.BlockOut}}
)
def block_by_hash(request: Request, hash: Annotated[str, Path(pattern=HEX64)]) -> Response:
    with app_state(request).node.chain.reader() as r:
        key = r.index(b"b" + bytes.fromhex(hash))
    if key is None:
        raise ApiError("unknown_block", f"no block with hash {hash.lower()}")
    return _json_bytes(_block_bytes(request, int.from_bytes(key, "big")))


@router.get("/blocks/{height}", response_model=None, responses={200: {"model": schemas.BlockOut}})
def block_by_height(request: Request, height: HeightPath) -> Response:
    return _json_bytes(_block_bytes(request, height))


def _json_bytes(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get("/accounts/{address}", response_model=None, responses={200: {"model": schemas.Account}})
def account(request: Request, address: AddressPath) -> JSONResponse:
    raw = parse_account(address)
    node = app_state(request).node
    with node.chain.reader() as r:
        acct = get_account(r, raw)
        neudeg = get_neudeg(r, raw)
    return JSONResponse(
        {
            "address": encode_address(raw),
            "balance": acct.balance,
            "nonce": acct.nonce,
            "pending_nonce": node.mempool.next_nonce(raw, acct.nonce),
            "bonded": acct.bonded,
            "neudeg": neudeg,
        }
    )


@router.get("/names/{name}", response_model=None, responses={200: {"model": schemas.NameOut}})
def name(request: Request, name: Annotated[str, Path(max_length=64)]) -> JSONResponse:
    with app_state(request).node.chain.reader() as r:
        found = resolve(r, name)
        where = address_of(r, name) if found is not None else None
    if found is None:
        raise ApiError("unknown_name", f"name {name!r} is not registered")
    cid, owner = found
    address = None if where is None else join_host_port(*where)
    doc = {"name": name, "cid": cid_from_bytes(cid), "owner": encode_address(owner)}
    return JSONResponse({**doc, "address": address})


@router.get(
    "/pins/{request}", response_model=None, responses={200: {"model": schemas.PinRequestOut}}
)
def pin(
    request: Request,
    request_id: Annotated[
        str,
        Path(alias="request", pattern="^[0-9a-f]{32}$", description="a pin request's id, hex"),
    ],
) -> JSONResponse:
    """A pin request (``modules.proofs``): the blob, its reward and what is left."""
    with app_state(request).node.chain.reader() as r:
        doc = pin_request(r, bytes.fromhex(request_id))
    if doc is None:
        raise ApiError("unknown_pin", f"no pin request {request_id}")
    cid, size, owner, reward, escrow, expires = doc
    return JSONResponse(
        {
            "request": request_id,
            "cid": cid_from_bytes(cid),
            "size": size,
            "owner": encode_address(owner),
            "reward": reward,
            "escrow": escrow,
            "expires": expires,
        }
    )


@router.get("/proofs", response_model=None, responses={200: {"model": schemas.ProofOut}})
def proof(
    request: Request,
    key: StateKey,
) -> JSONResponse:
    """The value of a state key with its sparse-Merkle proof against the state root."""
    raw_key = state_key(key)
    with app_state(request).node.chain.reader() as r:
        value, proof = r.prove(raw_key)
        height, root = r.height, r.root
    return JSONResponse(
        {
            "key": key,
            "height": height,
            "root": root.hex(),
            "value": None if value is None else value.hex(),
            "proof": proof.encode().hex(),
        }
    )


@router.post(
    "/admin/faucet",
    status_code=202,
    response_model=None,
    responses={202: {"model": schemas.TxAccepted}},
    openapi_extra=json_body(schemas.Faucet),
)
async def faucet(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Send tokens from the node's dev key (``write`` on ``node/faucet``: the
    admin token, or an API token with the ``faucet`` role). The caller is
    authorized before its body is read: without a credential the answer is
    401 whatever the body holds."""
    await run_in_threadpool(authorize, request, authorization, "write", "node/faucet")
    body = _faucet_body(await request.body())
    node = app_state(request).node
    if node.faucet_key is None:
        raise ApiError("not_found", "this node has no faucet key")
    tx = await run_in_threadpool(node.faucet, parse_account(body.address), body.amount)
    return JSONResponse({"hash": tx.hash.hex()}, status_code=202)


def _faucet_body(raw: bytes) -> schemas.Faucet:
    """The faucet's body, or ``malformed`` saying which fields are wrong."""
    try:
        return schemas.Faucet.model_validate(parse_json(raw))
    except ValidationError as exc:
        parts = [
            f"body.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:3]
        ]
        raise DecodeError("; ".join(parts)) from None
