"""Blobs on the node: put a file's bytes, get them back, fetch single blocks.

``POST /v1/blobs`` (``write`` on ``node/blobs``: the admin token or an API
token with the ``blobs`` role) takes the blob as the raw request body, up to
``errors.MAX_BLOB_BYTES``; a worker thread cuts, stores and pins it
(``services.storage.chunk_store``) while it arrives, and an upload cut short
pins nothing. ``GET /v1/blobs/{cid}`` streams a pinned blob, each chunk
checked against its CID as it is read; ``GET /v1/chunks/{cid}`` answers one
block (a chunk or a DAG node) for a client that checks and assembles it itself
(``focusflow blob get``). ``POST /v1/blobs/{cid}/fetch`` (the put's credential)
fetches a blob this node lacks from the nodes that hold it and pins it
(``node.blob_net``). ``DELETE /v1/blobs/{cid}`` unpins. docs/storage.md has the
formats.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import queue
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, BinaryIO, cast

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from focusflow.api import schemas
from focusflow.api.auth import authorize
from focusflow.api.errors import ERROR_RESPONSES, MAX_BLOB_BYTES, ApiError
from focusflow.api.params import INT64_MAX, CidPath
from focusflow.api.state import app_state
from focusflow.core.cid import cid_from_bytes, cid_to_bytes
from focusflow.services.storage.chunk_store import ChunkStore, PutResult
from focusflow.services.storage.dag import BlobError, codec_of
from focusflow.services.storage.proofs import prove_retrievability

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

#: Pieces of a put's body in flight between the event loop and the worker, and
#: the bytes gathered into one piece (the socket gives 64 KiB at a time; fewer
#: hand-overs between the threads made a put over loopback faster).
PIPE_PIECES = 16
PIPE_PIECE_BYTES = 1 << 20
_OCTETS = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


#: The end of a body whose client went away: the put fails, nothing is pinned.
_CUT_SHORT = object()


class _BodyPipe(io.RawIOBase):
    """A request body as a file the chunker reads in a worker thread, fed piece
    by piece from the event loop through a bounded queue (the upload and the
    cutting overlap; a slow store holds the client back, not memory)."""

    def __init__(self) -> None:
        super().__init__()
        self._pieces: queue.Queue[object] = queue.Queue(PIPE_PIECES)
        self._head = b""
        self._ended = False

    def offer(self, piece: bytes) -> bool:
        try:
            self._pieces.put_nowait(piece)
        except queue.Full:
            return False
        return True

    def put(self, piece: object) -> None:
        """Block until the worker has room (None ends the body)."""
        self._pieces.put(piece)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._head and not self._ended:
            piece = self._pieces.get()
            if piece is None or piece is _CUT_SHORT:
                self._ended = True
                if piece is _CUT_SHORT:
                    raise BlobError("the upload was cut short")
            else:
                self._head = cast(bytes, piece)
        # Released on return: the caller may resize its buffer to what was read.
        with memoryview(buffer) as out:
            n = min(len(out), len(self._head))
            out[:n] = self._head[:n]
        self._head = self._head[n:]
        return n

    def run(self, put: Callable[[BinaryIO, int], PutResult], limit: int) -> PutResult:
        """``put(self, limit)``; whatever it leaves unread is drained, so that the
        event loop's last pieces and the end always find room."""
        try:
            return put(cast(BinaryIO, self), limit)
        finally:
            while not self._ended:
                last = self._pieces.get()
                self._ended = last is None or last is _CUT_SHORT


async def _hand_over(body: _BodyPipe, piece: bytes) -> None:
    if not body.offer(piece):
        await asyncio.to_thread(body.put, piece)


def _store(request: Request) -> ChunkStore:
    store = app_state(request).blobs
    if store is None:
        raise ApiError("not_found", "this node keeps no blobs")
    return store


def _stored(put: PutResult) -> dict[str, object]:
    """What a put or a fetch stored, as the API answers it."""
    return {
        "cid": cid_from_bytes(put.cid),
        "size": put.size,
        "chunks": put.chunks,
        "new_chunks": put.new_chunks,
        "new_bytes": put.new_bytes,
    }


def _root(cid: str) -> bytes:
    raw = cid_to_bytes(cid)
    try:
        codec_of(raw)
    except BlobError:
        raise ApiError("not_found", f"{cid} is not a block this node stores") from None
    return raw


@router.post(
    "/blobs",
    response_model=None,
    responses={200: {"model": schemas.BlobPut}},
    openapi_extra={"requestBody": {"content": _OCTETS, "required": True}},
)
async def put_blob(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Store a blob (the raw body) and pin it; what was new to this node."""
    authorize(request, authorization, "write", "node/blobs")
    store = _store(request)
    body = _BodyPipe()
    worker = asyncio.ensure_future(asyncio.to_thread(body.run, store.put, MAX_BLOB_BYTES))
    end: object = _CUT_SHORT
    try:
        gathered = bytearray()
        async for piece in request.stream():
            gathered += piece
            if len(gathered) >= PIPE_PIECE_BYTES:
                await _hand_over(body, bytes(gathered))
                gathered.clear()
        if gathered:
            await _hand_over(body, bytes(gathered))
        end = None
    finally:
        await asyncio.to_thread(body.put, end)
        if end is not None:  # the client went away: the worker's error is no one's
            with contextlib.suppress(Exception):
                await worker
    return JSONResponse(_stored(await worker))


@router.get(
    "/blobs/{cid}",
    response_model=None,
    responses={200: {"content": _OCTETS}},
)
def get_blob(request: Request, cid: CidPath) -> StreamingResponse:
    """A pinned blob's bytes, each chunk checked against its CID as it streams."""
    store = _store(request)
    root = _root(cid)
    size = store.pinned(root)
    if size is None:
        raise ApiError("not_found", f"blob {cid} is not pinned on this node")

    def chunks() -> Iterator[bytes]:
        yield from store.read(root)

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={"Content-Length": str(size)},
    )


@router.get(
    "/chunks/{cid}",
    response_model=None,
    responses={200: {"content": _OCTETS}},
)
def get_block(request: Request, cid: CidPath) -> Response:
    """One block of a blob's DAG (a chunk or a node), as stored: its CID is its hash."""
    data = _store(request).block(_root(cid))
    if data is None:
        raise ApiError("not_found", f"block {cid} is not on this node")
    return Response(data, media_type="application/octet-stream")


@router.post(
    "/blobs/{cid}/fetch",
    response_model=None,
    responses={200: {"model": schemas.BlobFetched}},
)
async def fetch_blob(
    request: Request, cid: CidPath, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Fetch a blob from the nodes that hold it (found through the DHT), every
    block checked against its CID, and pin it here (same credential as a put:
    the node keeps what it was asked to)."""
    authorize(request, authorization, "write", "node/blobs")
    _store(request)
    root = _root(cid)
    fetcher = app_state(request).blob_fetcher
    if fetcher is None:
        raise ApiError("blob_unavailable", "this node has no peers to fetch blobs from")
    result = await fetcher.fetch(root)
    return JSONResponse(
        {
            **_stored(result.put),
            "peers": {peer.hex(): n for peer, n in result.by_peer.items()},
            "dropped": {peer.hex(): why for peer, why in result.dropped.items()},
        }
    )


@router.get(
    "/blobs/{cid}/proof",
    response_model=None,
    responses={200: {"model": schemas.BlobProof}},
)
def blob_proof(
    request: Request,
    cid: CidPath,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX, description="a byte of the blob")],
) -> JSONResponse:
    """A proof of retrievability (``services.storage.proofs``): the chunk holding
    byte ``offset`` of a blob held here, and the DAG nodes from the root down to
    it, each hex; what a ``pin.prove`` message carries."""
    store = _store(request)
    root = _root(cid)
    size = store.pinned(root)
    if size is None:
        raise ApiError("not_found", f"blob {cid} is not pinned on this node")
    if offset >= size:
        raise ApiError("not_found", f"blob {cid} has {size} bytes, no byte {offset}")
    path = prove_retrievability(store, root, offset)
    doc = {"cid": cid, "size": size, "offset": offset}
    return JSONResponse({**doc, "path": [b.hex() for b in path]})


@router.delete(
    "/blobs/{cid}",
    response_model=None,
    responses={200: {"model": schemas.BlobUnpinned}},
)
def unpin_blob(
    request: Request, cid: CidPath, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Unpin a blob; its blocks no other pin reaches are deleted."""
    authorize(request, authorization, "write", "node/blobs")
    store = _store(request)
    root = _root(cid)
    if store.pinned(root) is None:
        raise ApiError("not_found", f"blob {cid} is not pinned on this node")
    return JSONResponse({"cid": cid, "freed_bytes": store.unpin(root)})
