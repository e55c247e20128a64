"""A network of rollups as a node sees it: ``GET /v1/rollup``, and on the hub
the global focus (``/v1/global/status``, ``/v1/global/top``,
``/v1/global/particles/{cid}`` with its proofs).

Every node answers with its chain's role and bucket, the bucketing rule, and
every chain of the network with the APIs this node knows for it, so a client
can compute which rollup owns a link and send it there itself (the CLI does).
A chain on its own answers ``{"role": "single", "bucket": 0, "buckets": 1}``:
it is the one bucket of a network of one.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from focusflow.api.errors import ERROR_RESPONSES, ApiError
from focusflow.api.params import CidPath
from focusflow.api.render import cid_text, parse_cid
from focusflow.api.routes_light import prove_at
from focusflow.api.state import app_state
from focusflow.chain.state import Readable
from focusflow.core.hashing import MerkleTree
from focusflow.core.snapshot_tree import snapshot_leaf
from focusflow.state_schema.ibc import get_client, get_consensus
from focusflow.state_schema.rank import (
    SNAPSHOT_KEY,
    UNIT,
    SnapshotRecord,
    last_seen,
    snapshot_entries,
    snapshot_record,
)

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


@router.get("/rollup", response_model=None)
def rollup(request: Request) -> JSONResponse:
    """This chain's place in its network of rollups, and the other chains' APIs."""
    node = app_state(request).node
    chain = node.chain
    ic = chain.genesis.interchain
    if ic is None:
        return JSONResponse(
            {"role": "single", "bucket": 0, "buckets": 1, "chain_id": chain.chain_id}
        )
    apis = node.interchain_apis

    def entry(chain_id: str, bucket: int | None) -> dict[str, Any]:
        doc: dict[str, Any] = {"chain_id": chain_id, "apis": list(apis.get(chain_id, []))}
        return doc if bucket is None else {"bucket": bucket, **doc}

    return JSONResponse(
        {
            "role": ic.role,
            "bucket": ic.bucket if ic.role == "rollup" else None,
            "buckets": ic.buckets,
            "rule": ic.rule,
            "chain_id": chain.chain_id,
            "merge_interval_ms": ic.merge_interval_ms,
            "hub": entry(ic.hub.chain_id, None),
            "rollups": [entry(r.chain_id, r.bucket) for r in ic.rollups],
        }
    )


# --- the hub's global focus ---------------------------------------------------------


def _hub_only(request: Request) -> None:
    ic = app_state(request).node.chain.genesis.interchain
    if ic is None or ic.role != "hub":
        where = app_state(request).node.interchain_apis.get(ic.hub.chain_id) if ic else None
        hint = f"; ask the hub at {where[0]}" if where else ""
        raise ApiError("not_found", f"global focus is the hub's: this node's chain is no hub{hint}")


@dataclass(frozen=True)
class _Read:
    """One snapshot as the routes serve it: read from the state and hashed into
    its tree once per snapshot, not once per request (a proof would otherwise
    hash every particle's leaf for each request)."""

    root: bytes
    entries: list[tuple[bytes, int]]
    particles: list[bytes]
    ranked: list[tuple[bytes, int]]
    tree: MerkleTree


_last: list[_Read] = []
_last_lock = threading.Lock()


def _snapshot(r: Readable) -> tuple[SnapshotRecord, _Read]:
    record = snapshot_record(r)
    if record is None:
        raise ApiError("not_found", "the hub has merged no global snapshot yet")
    with _last_lock:
        if _last and _last[0].root == record.root:
            return record, _last[0]
    entries = snapshot_entries(r, record)
    read = _Read(
        record.root,
        entries,
        [c for c, _ in entries],
        sorted(entries, key=lambda e: (-e[1], e[0])),
        MerkleTree([snapshot_leaf(c, v) for c, v in entries]),
    )
    with _last_lock:
        _last[:] = [read]
    return record, read


def _record_json(record: SnapshotRecord) -> dict[str, Any]:
    return {
        "round": record.round,
        "height": record.height,
        "time_ms": record.time_ms,
        "root": record.root.hex(),
        "particles": record.particles,
        "stale": list(record.stale),
    }


@router.get("/global/status", response_model=None)
def global_status(request: Request) -> JSONResponse:
    """The network as the hub sees it: its last global snapshot and its age,
    and each rollup's height as the hub's light client of it last verified,
    the last rank it accepted from it, and whether it is held stale."""
    _hub_only(request)
    node = app_state(request).node
    ic = node.chain.genesis.interchain
    assert ic is not None
    now = int(time.time() * 1000)
    with node.chain.reader() as r:
        record = snapshot_record(r)
        rollups = []
        for ref in ic.rollups:
            client = get_client(r, ref.chain_id)
            cons = (
                get_consensus(r, ref.chain_id, client.latest_height) if client is not None else None
            )
            seen = last_seen(r, ref.bucket)
            rollups.append(
                {
                    "bucket": ref.bucket,
                    "chain_id": ref.chain_id,
                    "height": client.latest_height if client is not None else 0,
                    "time_ms": cons.time_ms if cons is not None else None,
                    "frozen": bool(client.frozen_height) if client is not None else False,
                    "last_rank": None
                    if seen is None
                    else {"height": seen.height, "time_ms": seen.time_ms, "round": seen.round},
                    "stale": record is not None and ref.bucket in record.stale,
                    "apis": list(node.interchain_apis.get(ref.chain_id, [])),
                }
            )
    return JSONResponse(
        {
            "height": node.chain.height,
            "snapshot": None if record is None else _record_json(record),
            "age_ms": None if record is None else max(0, now - record.time_ms),
            "rollups": rollups,
        }
    )


@router.get("/global/top", response_model=None)
def global_top(request: Request, k: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSONResponse:
    """The k particles with the most global focus in the hub's last snapshot."""
    _hub_only(request)
    with app_state(request).node.chain.reader() as r:
        record, read = _snapshot(r)
    best = read.ranked[:k]
    return JSONResponse(
        {
            "snapshot": record.round,
            "height": record.height,
            "root": record.root.hex(),
            "stale": list(record.stale),
            "rows": [{"particle": cid_text(c), "focus": v / UNIT} for c, v in best],
        }
    )


@router.get("/global/particles/{cid}", response_model=None)
def global_particle(request: Request, cid: CidPath) -> JSONResponse:
    """One particle's global focus with what a light client checks it by: the
    snapshot record's proof against the hub's state root at the block named,
    and the particle's path to the snapshot's root."""
    _hub_only(request)
    raw = parse_cid(cid)
    with app_state(request).node.chain.reader() as store:
        # One reader: the record, its entries and its proof as of one block.
        record, read = _snapshot(store)
        anchor = prove_at(request, SNAPSHOT_KEY, None, store)
    i = bisect.bisect_left(read.particles, raw)
    if i == len(read.particles) or read.particles[i] != raw:
        raise ApiError("unknown_particle", f"particle {cid} is not in the global snapshot")
    value = read.entries[i][1]
    return JSONResponse(
        {
            "height": anchor["height"],
            "block_hash": anchor["block_hash"],
            "state_root": anchor["state_root"],
            "particle": cid_text(raw),
            "focus": value / UNIT,
            "focus_q": value,
            "snapshot": _record_json(record),
            "record": {"key": anchor["key"], "value": anchor["value"], "proof": anchor["proof"]},
            "path": {
                "index": i,
                "size": read.tree.size,
                "hashes": [h.hex() for h in read.tree.proof(i)],
            },
        }
    )
