"""Names: short human names for particles.

Messages
    ``name.register`` ``{"name": str, "cid": bytes}``
    ``name.update``   ``{"name": str, "cid": bytes}`` (owner only)
    ``name.transfer`` ``{"name": str, "to": address}`` (owner only)

Rules: 3 to 32 characters of ``a-z``, ``0-9`` and ``-``, starting with a
letter, not ending with ``-`` and without ``--`` (no look-alike spellings, and
every name is a valid DNS label). Registering burns ``name_fee``, ten times
that for names of 3 or 4 characters (short names are scarce). A name is owned
forever by its registrant until transferred. State: ``/kv/name/<name>`` holds
``[cid, owner]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from focusflow.chain.errors import InvalidNameError, NameTakenError, NotOwnerError, UnknownNameError
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, TxContext
from focusflow.chain.state import PendingState, Readable
from focusflow.core.cid import check_cid_bytes
from focusflow.core.encoding import decode, encode
from focusflow.modules.accounts import address_field, debit, field, only_fields

NAME_PREFIX = b"/kv/name/"
_NAME = re.compile(r"[a-z][a-z0-9-]{1,30}[a-z0-9]")


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or "--" in name:
        raise InvalidNameError(
            f"invalid name {name!r}: 3-32 of a-z 0-9 -, starting with a letter, "
            "not ending with '-', no '--'"
        )


def name_fee(name: str, base: int) -> int:
    return base * 10 if len(name) <= 4 else base


def resolve(state: Readable, name: str) -> tuple[bytes, bytes] | None:
    """``(cid, owner)`` of a registered name, None if unknown."""
    raw = state.get(NAME_PREFIX + name.encode())
    if raw is None:
        return None
    cid, owner = decode(raw, "name record")
    return cid, owner


class Names:
    name = "names"

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "name.register": self.register,
            "name.update": self.update,
            "name.transfer": self.transfer,
        }

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        return None

    def end_block(self, ctx: BlockContext) -> None:
        return None

    def register(self, ctx: TxContext, body: dict) -> None:
        only_fields(body, "name", "cid")
        name = field(body, "name", str)
        cid = field(body, "cid", bytes)
        check_name(name)
        check_cid_bytes(cid)
        if resolve(ctx.state, name) is not None:
            raise NameTakenError(f"name {name!r} is already registered")
        debit(ctx.state, ctx.sender, name_fee(name, ctx.params.name_fee), f"name {name!r}")
        ctx.state.put(NAME_PREFIX + name.encode(), encode([cid, ctx.sender]))
        ctx.emit("name.register", name=name, cid=cid, owner=ctx.sender)

    def update(self, ctx: TxContext, body: dict) -> None:
        only_fields(body, "name", "cid")
        name = field(body, "name", str)
        cid = field(body, "cid", bytes)
        check_cid_bytes(cid)
        self._owned(ctx, name)
        ctx.state.put(NAME_PREFIX + name.encode(), encode([cid, ctx.sender]))
        ctx.emit("name.update", name=name, cid=cid)

    def transfer(self, ctx: TxContext, body: dict) -> None:
        only_fields(body, "name", "to")
        name = field(body, "name", str)
        to = address_field(body, "to")
        cid, _ = self._owned(ctx, name)
        ctx.state.put(NAME_PREFIX + name.encode(), encode([cid, to]))
        ctx.emit("name.transfer", name=name, to=to)

    def _owned(self, ctx: TxContext, name: str) -> tuple[bytes, bytes]:
        record = resolve(ctx.state, name) if _NAME.fullmatch(name) else None
        if record is None:
            raise UnknownNameError(f"name {name!r} is not registered")
        if record[1] != ctx.sender:
            raise NotOwnerError(f"name {name!r} belongs to someone else")
        return record
