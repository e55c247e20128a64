"""``/v1/ibc``: what a relayer reads of a chain besides headers and proofs.

The relayer (``node.relay``) trusts none of it: every packet, acknowledgement
and handshake step it carries is proven on the other chain against a header,
with a state proof from ``/v1/light/proofs/key``. These routes only tell it
what there is to carry: the light clients, connections and channels, the
packets a channel has sent and not settled, the acknowledgements it wrote, its
next sequences, and a header in the form ``ibc.update_client`` takes. Pages
are bounded (:data:`MAX_PAGE`). The state is read through ``state_schema.ibc``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from focusflow.api.errors import ERROR_RESPONSES, ApiError
from focusflow.api.params import INT64_MAX
from focusflow.api.state import app_state
from focusflow.chain.header_verify import LightBlock
from focusflow.core.encoding import encode
from focusflow.state_schema.ibc import (
    CHANNEL_PREFIX,
    CLIENT_PREFIX,
    CONNECTION_PREFIX,
    IDENTIFIER,
    ChannelEnd,
    ClientState,
    ConnectionEnd,
    ack_data_key,
    ack_data_prefix,
    next_sequences,
    packet_key,
    packet_prefix,
    sequence_of,
)

router = APIRouter(prefix="/v1/ibc", responses=ERROR_RESPONSES)

#: Most rows of one page (packets, acknowledgements, clients, connections, channels).
MAX_PAGE = 256

Ident = Annotated[str, Path(min_length=1, max_length=64, pattern=IDENTIFIER.pattern)]
Start = Annotated[int, Query(ge=0, le=INT64_MAX, description="First sequence (or row) to list")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _rows(
    request: Request, prefix: bytes, start: bytes | None, limit: int
) -> list[tuple[bytes, bytes]]:
    chain = app_state(request).node.chain
    out = []
    with chain.reader() as r:
        for key, value in r.items(prefix, start):
            out.append((key, value))
            if len(out) >= limit:
                break
    return out


@router.get("/clients", response_model=None)
def clients(request: Request) -> JSONResponse:
    """This chain's light clients of other chains."""
    rows = _rows(request, CLIENT_PREFIX, None, MAX_PAGE)
    out = []
    for key, value in rows:
        cs = ClientState.decode(value)
        out.append(
            {
                "client": key[len(CLIENT_PREFIX) :].decode(),
                "chain_id": cs.chain_id,
                "latest_height": cs.latest_height,
                "frozen_height": cs.frozen_height,
                "trusting_period_ms": cs.trusting_period_ms,
            }
        )
    return JSONResponse({"clients": out})


@router.get("/connections", response_model=None)
def connections(request: Request) -> JSONResponse:
    """Every connection end of this chain (at most :data:`MAX_PAGE`)."""
    rows = _rows(request, CONNECTION_PREFIX, None, MAX_PAGE)
    return JSONResponse(
        {
            "connections": [
                {"id": k[len(CONNECTION_PREFIX) :].decode(), **ConnectionEnd.decode(v).to_json()}
                for k, v in rows
            ]
        }
    )


@router.get("/channels", response_model=None)
def channels(request: Request, start: Start = 0, limit: Limit = MAX_PAGE) -> JSONResponse:
    """Channel ends with their next sequences, ``start`` rows skipped."""
    rows = _rows(request, CHANNEL_PREFIX, None, start + limit)[start:]
    out: list[dict[str, Any]] = []
    with app_state(request).node.chain.reader() as r:
        for key, value in rows:
            port, _, channel = key[len(CHANNEL_PREFIX) :].decode().partition("/")
            out.append(
                {
                    "port": port,
                    "channel": channel,
                    **ChannelEnd.decode(value).to_json(),
                    "next_sequences": next_sequences(r, port, channel),
                }
            )
    return JSONResponse({"channels": out})


@router.get("/channels/{port}/{channel}/sequences", response_model=None)
def sequences(request: Request, port: Ident, channel: Ident) -> JSONResponse:
    """The channel's next ``send``, ``recv`` and ``ack`` sequences."""
    with app_state(request).node.chain.reader() as r:
        return JSONResponse(next_sequences(r, port, channel))


@router.get("/channels/{port}/{channel}/packets", response_model=None)
def packets(
    request: Request, port: Ident, channel: Ident, start: Start = 1, limit: Limit = MAX_PAGE
) -> JSONResponse:
    """Packets sent on the channel and not yet acknowledged or timed out, from
    sequence ``start``; ``packet_cbor`` is what ``ibc.recv_packet`` carries."""
    rows = _rows(request, packet_prefix(port, channel), packet_key(port, channel, start), limit)
    return JSONResponse({"packets": [{"packet_cbor": v.hex()} for _, v in rows]})


@router.get("/channels/{port}/{channel}/acks", response_model=None)
def acks(
    request: Request, port: Ident, channel: Ident, start: Start = 1, limit: Limit = MAX_PAGE
) -> JSONResponse:
    """Acknowledgements this chain wrote for the channel's packets, from ``start``."""
    rows = _rows(request, ack_data_prefix(port, channel), ack_data_key(port, channel, start), limit)
    return JSONResponse({"acks": [{"sequence": sequence_of(k), "ack": v.hex()} for k, v in rows]})


@router.get("/light_block/{height}", response_model=None)
def light_block(request: Request, height: Annotated[int, Path(ge=1, le=INT64_MAX)]) -> JSONResponse:
    """The header of ``height`` with its certificate and signing set, as the
    bytes ``ibc.update_client`` carries (hex)."""
    chain = app_state(request).node.chain
    record = chain.block_record(height)
    if record is None or record.commit is None:
        raise ApiError("unknown_block", f"no certified block at height {height}")
    header = record.block.header
    block = LightBlock(
        header, header.hash, encode(header.to_cbor()), record.commit, chain.validators_at(height)
    )
    return JSONResponse(
        {"height": height, "time_ms": header.time_ms, "light_block": encode(block.to_cbor()).hex()}
    )


__all__ = ["MAX_PAGE", "router"]
