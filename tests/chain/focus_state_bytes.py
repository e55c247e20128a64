"""Focus states' byte form taken apart and put together again, for tests that
play a peer (or a disk) lying about a state: every field reachable by name."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

import numpy as np

from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_state_arrays import Expected, plan_state, restore_state
from focusflow.chain.focus_state_format import (
    ALIGN,
    MAGIC,
    BlockIdentity,
    FocusStateHeader,
    encode_header,
    plan,
    read_arrays,
    read_header,
    write,
)


def decode(raw: bytes) -> tuple[FocusStateHeader, dict[str, np.ndarray]]:
    """The header and arrays of a payload (which must be well formed)."""
    f = io.BytesIO(raw)
    header, digest = read_header(f, len(raw))
    return header, read_arrays(f, header, digest)


def encode(header: FocusStateHeader, arrays: dict[str, np.ndarray]) -> bytes:
    """The payload of ``header`` and ``arrays`` (consistent ones)."""
    out = io.BytesIO()
    write(out, plan(header, arrays))
    return out.getvalue()


def changed(raw: bytes, **fields) -> bytes:
    """``raw`` with header fields replaced (``counts`` by a dict of changes)."""
    header, arrays = decode(raw)
    if "counts" in fields:
        fields["counts"] = replace(header.counts, **fields["counts"])
    return encode(replace(header, **fields), arrays)


def with_array(raw: bytes, name: str, change) -> bytes:
    """``raw`` with array ``name`` replaced by ``change(copy of it)`` (its
    shape kept: the header's counts stay as they were)."""
    header, arrays = decode(raw)
    value = arrays[name].copy()
    arrays[name] = change(value) if callable(change) else value * 0 + change
    return encode(header, arrays)


def framed(header_bytes: bytes, body: bytes) -> bytes:
    """A payload of any header bytes and body, framed and hashed as a writer
    would (what a peer that lies about its header itself can send)."""
    lead = MAGIC + len(header_bytes).to_bytes(4, "big") + header_bytes
    lead += bytes(-len(lead) % ALIGN)
    return lead + body + hashlib.sha256(lead + body).digest()


def body_of(raw: bytes) -> bytes:
    """The arrays' bytes of a payload (after its header and padding)."""
    n = int.from_bytes(raw[len(MAGIC) : len(MAGIC) + 4], "big")
    start = len(MAGIC) + 4 + n
    start += -start % ALIGN
    return raw[start:-32]


def identity(state, height: int = 1) -> BlockIdentity:
    """A block identity for a state made without a chain (its own focus root)."""
    return BlockIdentity("focusflow-test", height, bytes(32), bytes(32), state.root)


def of_state(state, height: int = 1) -> bytes:
    """The byte form of a state made without a chain."""
    out = io.BytesIO()
    write(out, plan_state(state, identity(state, height)))
    return out.getvalue()


def restored(raw: bytes, state) -> FocusState:
    """The state ``raw`` holds, checked against ``state`` (made without a
    chain: its own parameters, focus root and particle keys stand for what a
    chain commits)."""
    header, arrays = decode(raw)
    keys = list(state.graph.particles.keys())
    expected = Expected(header.block, state.params, lambda n: keys[:n])
    return restore_state(header, arrays, expected)


__all__ = [
    "body_of",
    "changed",
    "decode",
    "encode",
    "encode_header",
    "framed",
    "identity",
    "of_state",
    "restored",
    "with_array",
]
