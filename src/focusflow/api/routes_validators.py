"""``GET /v1/validators``: the set consensus is using, and each validator's last vote.

Every node of a network runs consensus (the devnet as a set of one) and
answers with the set of the height its state machine is at, the proposer of the
current round, each validator's proposer priority, and the last prevote or
precommit this node saw from each (``focusflow.consensus.votes_seen``): enough
to see at a glance which validator is silent or behind. A runtime without a
consensus engine (a library's or a test's) answers ``unavailable``.
"""

from __future__ import annotations

from typing import TypedDict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from focusflow.api import schemas
from focusflow.api.errors import ERROR_RESPONSES, ApiError
from focusflow.api.state import app_state
from focusflow.consensus.validators import ValidatorSet
from focusflow.consensus.votes_seen import SeenVote
from focusflow.core.keys import encode_address

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


@router.get("/validators", response_model=None, responses={200: {"model": schemas.Validators}})
def validators(request: Request) -> JSONResponse:
    """The validator set of the height being decided, with each validator's last vote."""
    node = app_state(request).node
    state = node.consensus_state
    if state is None:
        raise ApiError(
            "unavailable", "this node runs no consensus: it has no validator set to show"
        )
    height, round_, step, vset = state
    # A private copy: ValidatorSet.proposer caches its picks in place, and the
    # consensus thread may be picking on ``vset`` at this moment.
    proposer = ValidatorSet(vset.validators, vset.priorities).proposer(round_).public_key
    seen = node.votes_seen
    return JSONResponse(
        {
            "height": height,
            "round": round_,
            "step": step,
            "total_power": vset.total_power,
            "validators": [
                {
                    "address": encode_address(v.address),
                    "public_key": v.public_key.hex(),
                    "power": v.power,
                    "proposer_priority": priority,
                    "proposer": v.public_key == proposer,
                    "last_vote": _vote_json(seen.last(v.public_key)),
                }
                for v, priority in zip(vset.validators, vset.priorities, strict=True)
            ],
        }
    )


class VoteJson(TypedDict):
    """A validator's last vote seen, as ``last_vote`` shows it."""

    height: int
    round: int
    type: str
    value_id: str | None
    time_ms: int


def _vote_json(vote: SeenVote | None) -> VoteJson | None:
    if vote is None:
        return None
    return {
        "height": vote.height,
        "round": vote.round,
        "type": vote.step.name.lower(),
        "value_id": None if vote.value_id is None else vote.value_id.hex(),
        "time_ms": vote.time_ms,
    }
