"""The exchange and the economy over REST: pools, balances of every token, the economy's state.

Every answer reads one committed version of the state (the node's head), and
names its ``height``; prices and TWAPs are taken at the head's block time, as
the next block's first swap would see them before it moves them. Tokens,
pools, fees and rewards are the modules' (``modules.tokens``, ``modules.dex``,
``modules.economy``, ``modules.rewards``); docs/api.md is the contract.

A pool's pair is named by two base denoms in the path (``/v1/pools/cyb/h``,
either order). A denom of pool shares (``lp/<a>/<b>``) holds slashes, which a
path segment cannot carry: pools of shares are listed by ``GET /v1/pools``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from focusflow.api import schemas
from focusflow.api.errors import ERROR_RESPONSES
from focusflow.api.params import AddressPath
from focusflow.api.state import app_state
from focusflow.chain.block import BlockRecord
from focusflow.chain.errors import UnknownPoolError
from focusflow.chain.fees import current_fee_per_byte
from focusflow.chain.state import PendingState
from focusflow.core.keys import encode_address, parse_account
from focusflow.modules import buyback_bps, pool_json, premium_bps
from focusflow.state_schema.dex import dealer_reserve, get_pool
from focusflow.state_schema.dex import pools as all_pools
from focusflow.state_schema.rewards import read_totals
from focusflow.state_schema.tokens import H, balances_of, supply_of
from focusflow.store import Reader

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

#: A base denom (``modules.tokens.BASE_DENOM``: a lowercase letter, then up to 15
#: lowercase letters or digits), ``lp`` excepted, in a pattern without lookahead.
BASE_DENOM_PATTERN = r"^([a-km-z][a-z0-9]{0,15}|l([a-oq-z0-9][a-z0-9]{0,14})?|lp[a-z0-9]{1,14})$"

DenomPath = Annotated[
    str,
    Path(
        pattern=BASE_DENOM_PATTERN,
        max_length=16,
        description="a base denom (cyb, h, ...); pools of pool shares: GET /v1/pools",
    ),
]


def _head_time(request: Request, r: Reader) -> int:
    """The block time of the version ``r`` reads: the head's, or (when a block was
    committed between the two reads) that of the block at ``r``'s height."""
    head = app_state(request).node.chain.head
    if head.height == r.height:
        return int(head.time_ms)
    raw = r.block(r.height)
    return int(head.time_ms) if raw is None else int(BlockRecord.decode(raw).block.header.time_ms)


@router.get("/pools", response_model=None, responses={200: {"model": schemas.PoolList}})
def pools(request: Request) -> JSONResponse:
    """Every pool, in key order (its pair's byte order), with its price and TWAP."""
    chain = app_state(request).node.chain
    params = chain.params
    with chain.reader() as r:
        now_ms = _head_time(request, r)
        found = [pool_json(p, now_ms, params) for p in all_pools(PendingState(r.get, r.items))]
        height = r.height
    return JSONResponse({"height": height, "time_ms": now_ms, "pools": found})


@router.get("/pools/{a}/{b}", response_model=None, responses={200: {"model": schemas.PoolAnswer}})
def pool(request: Request, a: DenomPath, b: DenomPath) -> JSONResponse:
    """The pool of two base denoms, named in either order; 404 ``unknown_pool``."""
    chain = app_state(request).node.chain
    params = chain.params
    with chain.reader() as r:
        found = get_pool(r, a, b)
        if found is None:
            raise UnknownPoolError(f"no pool for {a} and {b}")
        now_ms = _head_time(request, r)
        doc: dict[str, Any] = pool_json(found, now_ms, params)
        height = r.height
    return JSONResponse({**doc, "height": height, "time_ms": now_ms})


@router.get(
    "/balances/{address}", response_model=None, responses={200: {"model": schemas.Balances}}
)
def balances(request: Request, address: AddressPath) -> JSONResponse:
    """Every token an address holds, liquid: ``cyb`` first, then by denom."""
    raw = parse_account(address)
    with app_state(request).node.chain.reader() as r:
        held = balances_of(PendingState(r.get, r.items), raw)
        height = r.height
    return JSONResponse({"address": encode_address(raw), "height": height, "balances": held})


@router.get("/economy", response_model=None, responses={200: {"model": schemas.EconomyOut}})
def economy(request: Request) -> JSONResponse:
    """The economy at the head: whether it is on, the base fee, the premium signal and
    the buyback share it sets, the reward pool, H's supply and the dealer reserve."""
    chain = app_state(request).node.chain
    params = chain.params
    with chain.reader() as r:
        now_ms = _head_time(request, r)
        totals = read_totals(r)
        doc = {
            "height": r.height,
            "time_ms": now_ms,
            "economics": params.economics,
            "fee_per_byte": current_fee_per_byte(r, params),
            "premium_bps": premium_bps(r, params, now_ms),
            "buyback_bps": buyback_bps(r, params, now_ms),
            "rewards": None
            if totals is None
            else {"index": totals.index, "total_bonded": totals.total_bonded, "held": totals.held},
            "h_supply": supply_of(r, H),
            "dealer_reserve": dealer_reserve(r),
        }
    return JSONResponse(doc)
