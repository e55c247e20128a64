"""Blobs in the state: ``/kv/blob/<CID>`` holds the data whose raw CID it is
(``modules.blobs`` holds the rules and the fee)."""

from __future__ import annotations

BLOB_PREFIX = b"/kv/blob/"


def blob_key(cid: bytes) -> bytes:
    return BLOB_PREFIX + cid
