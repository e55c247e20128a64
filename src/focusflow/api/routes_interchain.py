"""A network of rollups as a node sees it: ``GET /v1/rollup``.

Every node answers with its chain's role and bucket, the bucketing rule, and
every chain of the network with the APIs this node knows for it, so a client
can compute which rollup owns a link and send it there itself (the CLI does).
A chain on its own answers ``{"role": "single", "bucket": 0, "buckets": 1}``:
it is the one bucket of a network of one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from focusflow.api.errors import ERROR_RESPONSES
from focusflow.api.state import app_state

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
