"""Light-client endpoints: headers with the certificate and set that sign them, and
state answers with the proofs that tie them to a header's roots.

Nothing here is trusted by the client that reads it: a header is checked against
its hash and its commit certificate against the listed validators (whose hash
the header names), and every value against the header's ``state_root`` or
``focus_root`` (focusflow.light verifies all of it; docs/light.md).

Proofs are served against the state root of a stored block. The store keeps the
tree nodes of earlier roots (docs/state.md, *Updates*) but only the current value
of each key, so a proof at an older height is served when the key's value did
not change since (the current value verifies against the old root); otherwise
the answer is ``stale_height`` (409) and the client asks again at a newer
height. Focus answers exist only at the height of the node's published focus
view (the vector of older blocks is not kept).
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from focusflow.api.errors import ERROR_RESPONSES, ApiError, error_doc, error_response
from focusflow.api.params import INT64_MAX, AddressPath, CidPath, Direction, StateKey, state_key
from focusflow.api.render import cid_text, parse_cid
from focusflow.api.state import app_state
from focusflow.chain.block import BlockRecord, Header
from focusflow.chain.focus_spec import FOCUS_CHUNK, FOCUS_KEY, particle_chunk_key
from focusflow.chain.valsets import valset_key
from focusflow.consensus.certificate import encode_certificate
from focusflow.core.encoding import encode
from focusflow.core.errors import InvalidParameterError
from focusflow.core.hashing import merkle_proof
from focusflow.core.keys import encode_address, parse_account
from focusflow.da import ShareUnavailableError, proof_to_json
from focusflow.da.wire import MAX_WIDTH
from focusflow.state_schema.accounts import account_key
from focusflow.state_schema.links import links_key
from focusflow.state_schema.names import NAME_PREFIX
from focusflow.store import smt

if TYPE_CHECKING:
    from focusflow.chain.chain import Chain
    from focusflow.chain.focus_view import FocusView

router = APIRouter(prefix="/v1/light", responses=ERROR_RESPONSES)

#: Heights are unsigned 63-bit, like the consensus messages'.
MAX_HEIGHT = INT64_MAX
#: Most links one ``links`` answer proves (each carries its message's proof).
MAX_LINKS = 100
#: A ``links`` page stops early once its proven messages pass this many bytes
#: (one message may hold 10,000 links, some 700 KB).
MAX_LINK_PAGE_BYTES = 4 << 20
#: HTTP status of ``stale_height``: the value asked for changed after that height.
STALE_STATUS = 409

HeightQ = Annotated[
    int | None,
    Query(ge=0, le=MAX_HEIGHT, description="Block height to prove against (default: latest)"),
]


class StaleHeightError(ApiError):
    """The key's value changed after the asked height: its old value is not kept."""

    def __init__(self, message: str) -> None:
        super().__init__("stale_height", message)


def _stale(exc: StaleHeightError) -> JSONResponse:
    return error_response(exc.code, exc.message, STALE_STATUS)


# --- headers -----------------------------------------------------------------


class HeaderJson(TypedDict):
    """A header's twelve fields, as :func:`header_json` spells them."""

    chain_id: str
    height: int
    time_ms: int
    parent: str
    txs_root: str
    state_root: str
    focus_root: str
    data_root: str
    evidence_root: str
    validators_hash: str
    proposer: str
    last_commit: str


class ValidatorPower(TypedDict):
    public_key: str
    power: int


class HeaderDoc(TypedDict):
    """A ``/v1/light/header`` answer: the header, its certificate and signing set."""

    height: int
    hash: str
    chain_id: str
    header_cbor: str
    header: HeaderJson
    certificate_cbor: str | None
    validators: list[ValidatorPower]


class KeyPart(TypedDict):
    """A state key with its value and proof (hex; ``value`` None: absent)."""

    key: str
    value: str | None
    proof: str


class KeyProof(KeyPart):
    """What :func:`prove_at` answers: the key's part and the block it is proven at."""

    height: int
    block_hash: str
    state_root: str


def header_json(header: Header) -> HeaderJson:
    """The twelve header fields as JSON (bytes as hex), named as in chain/block.py."""
    return {
        "chain_id": header.chain_id,
        "height": header.height,
        "time_ms": header.time_ms,
        "parent": header.parent.hex(),
        "txs_root": header.txs_root.hex(),
        "state_root": header.state_root.hex(),
        "focus_root": header.focus_root.hex(),
        "data_root": header.data_root.hex(),
        "evidence_root": header.evidence_root.hex(),
        "validators_hash": header.validators_hash.hex(),
        "proposer": header.proposer.hex(),
        "last_commit": header.last_commit.hex(),
    }


def _record(request: Request, height: int) -> BlockRecord:
    record = app_state(request).node.chain.block_record(height)
    if record is None:
        raise ApiError("unknown_block", f"no block at height {height}")
    return record


def _header_doc(request: Request, height: int) -> HeaderDoc:
    chain = app_state(request).node.chain
    record = _record(request, height)
    header = record.block.header
    vset = chain.validators_at(max(height, 1))
    return {
        "height": header.height,
        "hash": header.hash.hex(),
        "chain_id": header.chain_id,
        "header_cbor": encode(header.to_cbor()).hex(),
        "header": header_json(header),
        "certificate_cbor": None
        if record.commit is None
        else encode_certificate(record.commit).hex(),
        "validators": [
            {"public_key": v.public_key.hex(), "power": v.power} for v in vset.validators
        ],
    }


#: Headers are public and signed: any web page may read them, so that a browser
#: light client served by one node can compare another node's headers with its
#: own (a witness, docs/web.md). Only these answers carry it, for simple GETs,
#: never with credentials: a page of another origin reads no other route.
PUBLIC_READ = {"Access-Control-Allow-Origin": "*"}


def _public_header(request: Request, height: int) -> JSONResponse:
    """The header answer, or its ``unknown_block`` refusal, readable from any origin
    (a witness that has not reached a height says so instead of looking down)."""
    try:
        doc = _header_doc(request, height)
    except ApiError as exc:
        refusal = error_response(exc.code, exc.message)
        refusal.headers.update(PUBLIC_READ)
        return refusal
    return JSONResponse(doc, headers=PUBLIC_READ)


@router.get("/header/latest", response_model=None)
def header_latest(request: Request) -> JSONResponse:
    """The newest stored header with its commit certificate and signing set."""
    return _public_header(request, app_state(request).node.chain.height)


@router.get("/header/{height}", response_model=None)
def header_at(request: Request, height: Annotated[int, Path(ge=0, le=MAX_HEIGHT)]) -> JSONResponse:
    """The header at ``height`` with its commit certificate and signing set."""
    return _public_header(request, height)


# --- state proofs -------------------------------------------------------------


def prove_at(request: Request, key: bytes, height: int | None, store: Any = None) -> KeyProof:
    """``{height, block_hash, state_root, key, value, proof}`` of one state key.

    The proof is against the state root of the block at ``height`` (default:
    the newest). ``store``, a store reader as of ``height`` (the query
    service's snapshot), serves the value as it was then. Otherwise, for an
    older height the current value is served only if it verifies against that
    root (present or absent then as now), else :class:`StaleHeightError`.
    """
    chain = app_state(request).node.chain
    with contextlib.ExitStack() as stack:
        r = store if store is not None else stack.enter_context(chain.reader())
        head = r.height
        at = head if height is None else height
        if at > head:
            raise ApiError("unknown_block", f"no block at height {at} (the head is {head})")
        raw = r.block(at)
        if raw is None:
            raise ApiError("unknown_block", f"no block at height {at}")
        header = BlockRecord.decode(raw).block.header
        value = r.get(key)
        proof = smt.prove(r.node, header.state_root, key)
    if at != head and not smt.verify_proof(header.state_root, key, value, proof):
        if value is None or not smt.verify_proof(header.state_root, key, None, proof):
            raise StaleHeightError(
                f"the value of this key changed after height {at}; ask at height {head}"
            )
        value = None
    return {
        "height": at,
        "block_hash": header.hash.hex(),
        "state_root": header.state_root.hex(),
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "proof": proof.encode().hex(),
    }


def _answer(request: Request, key: bytes, height: int | None, **extra: str) -> JSONResponse:
    """One key's proof; at one of the heights the query service keeps a store
    snapshot of (the last four), with its value as of that height."""
    try:
        with app_state(request).queries.store_at(height) as store:
            doc = prove_at(request, key, height, store)
    except StaleHeightError as exc:
        return _stale(exc)
    return JSONResponse({**doc, **extra})


@router.get("/proofs/key", response_model=None)
def proof_key(
    request: Request,
    key: StateKey,
    height: HeightQ = None,
) -> JSONResponse:
    """Any state key's value (or absence) with its proof."""
    return _answer(request, state_key(key), height)


@router.get("/proofs/account/{address}", response_model=None)
def proof_account(request: Request, address: AddressPath, height: HeightQ = None) -> JSONResponse:
    """An account's record ``[balance, nonce, bonded]`` (absent: all zero) with its proof."""
    raw = parse_account(address)
    return _answer(request, account_key(raw), height, address=encode_address(raw))


@router.get("/proofs/name/{name}", response_model=None)
def proof_name(
    request: Request,
    name: Annotated[str, Path(min_length=1, max_length=64)],
    height: HeightQ = None,
) -> JSONResponse:
    """A name's record ``[cid, owner]`` with its proof, or the proof it is not registered."""
    return _answer(request, NAME_PREFIX + name.encode("utf-8"), height, name=name)


@router.get("/proofs/validators/{first_height}", response_model=None)
def proof_valset(
    request: Request,
    first_height: Annotated[int, Path(ge=1, le=MAX_HEIGHT)],
    height: HeightQ = None,
) -> JSONResponse:
    """The validator-set record that begins at ``first_height`` (or its absence).

    Block ``h`` writes the set of ``h + 1`` when it changes, so this key proven
    against block ``h``'s state root tells a light client the next set.
    """
    return _answer(request, valset_key(first_height), height)


# --- focus --------------------------------------------------------------------


class ChunkLeaves:
    """The focus vector's chunks of the last view asked for (one view at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._height = -1
        self._q: np.ndarray | None = None
        self._chunks: list[bytes] = []

    def chunks(self, height: int, q: np.ndarray) -> list[bytes]:
        with self._lock:
            if self._height != height or self._q is not q:
                raw = np.ascontiguousarray(q, dtype="<u8").tobytes()
                step = FOCUS_CHUNK * 8
                self._chunks = [raw[i : i + step] for i in range(0, len(raw), step)]
                self._height, self._q = height, q
            return self._chunks


def _view_height(request: Request, height: int | None) -> FocusView:
    view = app_state(request).node.view
    if height is not None and height != view.height:
        raise StaleHeightError(
            f"focus is served at the node's focus height {view.height} only, not {height}"
        )
    return view


@router.get("/proofs/particle/{cid}", response_model=None)
def proof_particle(request: Request, cid: CidPath, height: HeightQ = None) -> JSONResponse:
    """A particle's committed focus with everything that proves it.

    ``index_proof``: the state key ``/graph/particles/<index div 1024>`` (the
    particle order) with its proof; ``focus_record``: ``/graph/focus`` (its
    ``root`` is the header's focus root, ``particles`` the vector's length);
    ``chunk``: the 8-byte little-endian values of the particle's focus chunk and
    ``path`` its RFC 6962 audit path to the focus root.
    """
    raw = parse_cid(cid)
    try:
        view = _view_height(request, height)
        i = view.particle_index(raw)
        if i < 0:
            raise ApiError("unknown_particle", f"particle {cid} is not in the graph")
        chunks = app_state(request).light_chunks.chunks(view.height, view.q)
        c = i // FOCUS_CHUNK
        index_doc = prove_at(request, particle_chunk_key(i // FOCUS_CHUNK), view.height)
        focus_doc = prove_at(request, FOCUS_KEY, view.height)
    except StaleHeightError as exc:
        return _stale(exc)
    qi = int(view.q[i])
    return JSONResponse(
        {
            "height": view.height,
            "block_hash": focus_doc["block_hash"],
            "state_root": focus_doc["state_root"],
            "particle": cid_text(raw),
            "index": i,
            "focus_q": qi,
            "focus": qi / view.scale,
            "index_proof": _key_part(index_doc),
            "focus_record": _key_part(focus_doc),
            "chunk_index": c,
            "chunks": len(chunks),
            "chunk": chunks[c].hex(),
            "path": [h.hex() for h in merkle_proof(chunks, c)],
        }
    )


def _key_part(doc: KeyProof) -> KeyPart:
    return {"key": doc["key"], "value": doc["value"], "proof": doc["proof"]}


# --- links --------------------------------------------------------------------


class LinkSources:
    """Which link message each graph link came from: link id -> ``/graph/links`` key.

    Links enter the graph in block order, message by message (chain/focus_commit.py),
    so the ids of one message's links are consecutive. The table is built from
    the stored blocks' edge deltas on first use and extended block by block;
    links with no message (given in a genesis) map to None.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._height = -1
        self._starts: list[int] = []
        self._keys: list[bytes | None] = []
        self._count = 0

    def upto(self, chain: Chain, height: int) -> None:
        """Scan the stored blocks after the last scanned one up to ``height``."""
        with self._lock:
            for h in range(self._height + 1, height + 1):
                record = chain.block_record(h)
                if record is None:
                    raise ApiError("unknown_block", f"block {h} is missing from the store")
                self._add(h, record)
                self._height = h

    def _add(self, height: int, record: BlockRecord) -> None:
        raw_groups = record.deltas[0] if isinstance(record.deltas, list) else None
        resolved = record.edge_deltas().links
        for j, (_, pairs, source) in enumerate(resolved):
            ref = source
            if raw_groups is not None:
                first, second = raw_groups[j]
                ref = (first, second) if isinstance(first, int) else None
            self._starts.append(self._count)
            self._keys.append(None if ref is None else links_key(height, ref[0], ref[1]))
            self._count += len(pairs)

    def key_of(self, link_id: int) -> bytes | None:
        i = bisect.bisect_right(self._starts, link_id) - 1
        return self._keys[i] if i >= 0 else None


def link_sources(request: Request) -> LinkSources:
    """The app's record of which message made each link."""
    return app_state(request).light_link_sources


@router.get("/proofs/links/{cid}", response_model=None)
def proof_links(
    request: Request,
    cid: CidPath,
    direction: Direction = "out",
    offset: Annotated[int, Query(ge=0, le=MAX_HEIGHT)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LINKS)] = 20,
    height: HeightQ = None,
) -> JSONResponse:
    """A page of a particle's links, each with the proof of the message that made it.

    ``links``: ``[{from, to, message}]`` in link order; ``message`` indexes
    ``messages`` (``{key, value, proof}``: the ``/graph/links`` entry holding the
    link), or is null for a link no message made (a genesis link), which cannot
    be proven. ``total`` is the node's count of the particle's links in that
    direction: that the page is complete cannot be proven (docs/light.md). A page
    ends early once its messages pass MAX_LINK_PAGE_BYTES.
    """
    raw = parse_cid(cid)
    try:
        view = _view_height(request, height)
        i = view.particle_index(raw)
        if i < 0:
            raise ApiError("unknown_particle", f"particle {cid} is not in the graph")
        ids = view.link_index.links(i, direction)
        page = ids[offset : offset + limit]
        sources = link_sources(request)
        sources.upto(app_state(request).node.chain, view.height)
        links: list[dict[str, Any]] = []
        messages: list[KeyPart] = []
        where: dict[bytes, int] = {}
        block = None
        size = 0
        for link_id in page.tolist():
            key = sources.key_of(link_id)
            if key is not None and key not in where:
                if size > MAX_LINK_PAGE_BYTES:
                    break
                doc = prove_at(request, key, view.height)
                block = doc
                where[key] = len(messages)
                messages.append(_key_part(doc))
                size += len(doc["value"] or "") // 2
            links.append(
                {
                    "from": cid_text(view.particles[int(view.src[link_id])]),
                    "to": cid_text(view.particles[int(view.dst[link_id])]),
                    "message": None if key is None else where[key],
                }
            )
        if block is None:
            block = prove_at(request, FOCUS_KEY, view.height)
    except StaleHeightError as exc:
        return _stale(exc)
    return JSONResponse(
        {
            "height": view.height,
            "block_hash": block["block_hash"],
            "state_root": block["state_root"],
            "particle": cid_text(raw),
            "direction": direction,
            "total": len(ids),
            "offset": offset,
            "links": links,
            "messages": messages,
        }
    )


# --- data-availability samples -------------------------------------------------

#: Most shares one ``shares`` request asks: a light client draws 16 per block
#: (celestia-node's light nodes); 64 leave room for a larger round.
MAX_SAMPLE_SHARES = 64
#: A coordinate of the widest square (0 to MAX_WIDTH - 1 = 1023, no leading zero).
_COORD = "(?:0|[1-9][0-9]{0,2}|10[01][0-9]|102[0-3])"
#: ``at``: 1 to MAX_SAMPLE_SHARES ``row,col`` pairs, ``;``-separated. The schema
#: states it whole, so that whatever it allows is answered.
AT_PATTERN = rf"^{_COORD},{_COORD}(?:;{_COORD},{_COORD}){{0,{MAX_SAMPLE_SHARES - 1}}}$"
MAX_AT_CHARS = MAX_SAMPLE_SHARES * 10
if MAX_WIDTH != 1024:  # pragma: no cover - a change of the protocol's widest square
    raise RuntimeError("AT_PATTERN spells the coordinates of a 1024-wide square")


@router.get("/shares/{height}", response_model=None)
def sample_shares(
    request: Request,
    height: Annotated[int, Path(ge=0, le=MAX_HEIGHT)],
    at: Annotated[
        str,
        Query(
            min_length=3,
            max_length=MAX_AT_CHARS,
            pattern=AT_PATTERN,
            description=f"1 to {MAX_SAMPLE_SHARES} 'row,col' pairs, ';'-separated, "
            f"each coordinate below {MAX_WIDTH}",
        ),
    ],
) -> JSONResponse:
    """Several shares of block ``height``'s extended square with their proofs to
    the data root, in one answer: a light client's sampling round in one request
    instead of one per share (``GET /v1/da/{height}/shares/{row}/{col}`` each).

    ``{height, shares: [...]}`` in the asked order (a pair asked twice is
    answered twice); each item is that route's answer without ``height``, or
    ``{row, col, error: {code, message}}`` for a share this node does not serve
    (``share_unavailable``) or that is outside this block's square
    (``unknown_share``). ``unknown_block`` (404) and ``malformed`` (400: more
    than MAX_SAMPLE_SHARES pairs, a coordinate that is not an integer below the
    widest square, anything else than pairs) refuse it all.
    """
    pairs = [(int(r), int(c)) for r, c in (p.split(",") for p in at.split(";"))]
    da = app_state(request).node.da
    if da is None:
        raise ApiError("unavailable", "this node does not serve data availability")
    da.square(height)  # unknown_block for a height without a block
    items: list[dict[str, Any]] = []
    for row, col in pairs:
        item: dict[str, Any] = {"row": row, "col": col}
        try:
            proof = da.share_proof(height, row, col)
        except ShareUnavailableError as exc:
            item["error"] = error_doc(exc.code, exc.message)["error"]
        except InvalidParameterError as exc:
            item["error"] = error_doc("unknown_share", exc.message)["error"]
        else:
            item.update(share=proof.share.hex(), proof=proof_to_json(proof))
        items.append(item)
    return JSONResponse({"height": height, "shares": items})


__all__ = ["LinkSources", "StaleHeightError", "header_json", "link_sources", "prove_at", "router"]
