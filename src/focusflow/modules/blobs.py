"""Blobs: content stored on chain by its CID.

Message ``blob.put`` ``{"data": bytes}`` stores ``data`` at
``/kv/blob/<binary CIDv1 raw sha2-256 of data>``. Blobs pay for their
bytes: the sender burns ``blob_credit_per_byte`` per byte of the gas
token; blobs over ``max_blob_bytes`` are refused (``over_limit``). Storing the
same content twice costs twice and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from focusflow.chain.errors import OverLimitError
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.state import PendingState
from focusflow.core.cid import raw_cid_bytes
from focusflow.modules.accounts import debit, field, only_fields
from focusflow.state_schema.blobs import blob_key


def blob_cid(data: bytes) -> bytes:
    return raw_cid_bytes(data)


class Blobs:
    name = "blobs"

    def handlers(self) -> Mapping[str, Handler]:
        return {"blob.put": self.put}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        return None

    def end_block(self, ctx: BlockContext) -> None:
        return None

    def put(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "data")
        data = field(body, "data", bytes)
        limit = ctx.params.max_blob_bytes
        if len(data) > limit:
            raise OverLimitError(f"blob of {len(data)} bytes exceeds max_blob_bytes={limit}")
        cost = len(data) * ctx.params.blob_credit_per_byte
        debit(ctx.state, ctx.sender, cost, f"a blob of {len(data)} bytes")
        cid = blob_cid(data)
        ctx.state.put(blob_key(cid), data)
        ctx.emit("blob.put", cid=cid, size=len(data))
