"""Data-availability endpoints: a block's row and column roots, and shares with proofs.

``GET /v1/da/{height}`` answers the block's data availability header (the
``2k`` row and ``2k`` column NMT roots whose RFC 6962 root is the header's
``data_root``); ``GET /v1/da/{height}/shares/{row}/{col}`` one share of the
``2k x 2k`` extended square with its proof up to the data root, in the form
``focusflow.da.proof_from_json`` reads. A light client takes the data root
from the block header (``GET /v1/blocks/{height}``), never from here.

The node's square cache (``focusflow.node.da_store.DAStore``) is ``node.da``
(``focusflow.api.service.SquareServer``). Errors:
``unknown_block`` (404), ``malformed`` (400) for a coordinate that is not an
integer from 0 to ``MAX_WIDTH - 1`` (the widest square the protocol takes),
``unknown_share`` (404) for one outside this block's smaller square: the
coordinate is well formed, that block has no such share, as a height past the
head has no block. ``share_unavailable`` (404) for a share the node does not
serve (the withholding fault injection).
``GET /v1/da/{height}/fraud`` answers a bad-encoding fraud proof the node
verified against that block (``unknown_fraud_proof``, 404, when it holds none).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from focusflow.api.errors import ERROR_RESPONSES, ApiError, error_response
from focusflow.api.params import HeightPath
from focusflow.api.service import SquareServer
from focusflow.api.state import app_state
from focusflow.core.errors import InvalidParameterError
from focusflow.da import ShareUnavailableError, proof_to_json
from focusflow.da.wire import MAX_WIDTH

router = APIRouter(prefix="/v1/da", tags=["data availability"], responses=ERROR_RESPONSES)

Height = HeightPath
Coord = Annotated[
    int, Path(ge=0, le=MAX_WIDTH - 1, description="0 <= row, col < 2k of the block's square")
]


class DAHeaderOut(BaseModel):
    height: int
    data_root: str
    k: int
    row_roots: list[str]
    col_roots: list[str]


class NmtProofOut(BaseModel):
    start: int
    end: int
    total: int
    nodes: list[str]


class RootProofOut(BaseModel):
    index: int
    total: int
    aunts: list[str]


class ShareProofOut(BaseModel):
    axis: str
    nmt_proof: NmtProofOut
    axis_root: str
    root_proof: RootProofOut


class ShareOut(BaseModel):
    height: int
    row: int
    col: int
    share: str
    proof: ShareProofOut


def _da(request: Request) -> SquareServer:
    da = app_state(request).node.da
    if da is None:
        raise ApiError("unavailable", "this node does not serve data availability")
    return da


@router.get("/{height}", response_model=None, responses={200: {"model": DAHeaderOut}})
def da_header(request: Request, height: Height) -> JSONResponse:
    """Row and column roots of a block's extended data square."""
    square = _da(request).square(height)
    return JSONResponse(
        {
            "height": height,
            "data_root": square.data_root().hex(),
            "k": square.k,
            "row_roots": [root.hex() for root in square.row_roots()],
            "col_roots": [root.hex() for root in square.col_roots()],
        }
    )


@router.get(
    "/{height}/shares/{row}/{col}", response_model=None, responses={200: {"model": ShareOut}}
)
def da_share(request: Request, height: Height, row: Coord, col: Coord) -> JSONResponse:
    """One share of the extended square with its proof to the header's data root."""
    try:
        proof = _da(request).share_proof(height, row, col)
    except InvalidParameterError as exc:
        return error_response("unknown_share", exc.message, 404)
    except ShareUnavailableError as exc:
        return error_response(exc.code, exc.message, 404)
    return JSONResponse(
        {
            "height": height,
            "row": row,
            "col": col,
            "share": proof.share.hex(),
            "proof": proof_to_json(proof),
        }
    )


class FraudOut(BaseModel):
    height: int
    block_hash: str
    data_root: str
    proof: dict[str, object]


@router.get("/{height}/fraud", response_model=None, responses={200: {"model": FraudOut}})
def da_fraud(request: Request, height: Height) -> JSONResponse:
    """The bad-encoding fraud proof this node verified against block ``height``:
    ``{height, block_hash, data_root, proof}`` (``focusflow.da.befp_from_json``
    reads ``proof``; a light client checks it against the data root of a header
    it verified itself). ``unknown_fraud_proof`` (404) when it holds none."""
    record = _da(request).fraud(height)
    if record is None:
        return error_response(
            "unknown_fraud_proof", f"no fraud proof against block {height} is held here", 404
        )
    return JSONResponse(record.to_json())
