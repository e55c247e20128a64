"""Our book in HVM2's binary format against a book HVM2 publishes
(``programs/sort_bitonic.book.hex``, an earlier HVM2's gen-cu output for the
published bitonic sort at depth 18, its three size constants 18 where the
published file has 12): byte for byte in every field but the safe flags.
That HVM2 marked a definition unsafe only when it held a duplicator itself;
today's HVM2, like ours, also marks those that refer to one, so the flags are
checked against both rules, computed here from the nodes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from focusflow.rewrite.book_bytes import book_bytes
from focusflow.rewrite.parse import load_book
from focusflow.rewrite.ports import DUP, FID_MASK, REF

PROGRAMS = Path(__file__).parent / "programs"


def _published() -> bytes:
    lines = (PROGRAMS / "sort_bitonic.book.hex").read_text().splitlines()
    return bytes.fromhex("".join(line for line in lines if not line.startswith("#")))


def _definitions(raw: bytes) -> list[dict]:
    """The definitions of a book buffer, as HVM2's ``book_load`` reads them."""
    (count,) = struct.unpack_from("<I", raw, 0)
    at, out = 4, []
    for _ in range(count):
        (fid,) = struct.unpack_from("<I", raw, at)
        name = raw[at + 4 : at + 260].rstrip(b"\0").decode()
        safe, nrbag, nnode, nvars, root = struct.unpack_from("<5I", raw, at + 260)
        pairs = np.frombuffer(raw, "<u8", nrbag + nnode, at + 280)
        out.append({"fid": fid, "name": name, "safe": safe, "vars": nvars, "root": root,
                    "rbag": pairs[:nrbag].tolist(), "nodes": pairs[nrbag:].tolist()})  # fmt: skip
        at += 280 + 8 * (nrbag + nnode)
    assert at == len(raw)
    return out


def _ports(d: dict) -> list[int]:
    words = [d["root"]]
    for pair in d["rbag"] + d["nodes"]:
        words += [pair & 0xFFFFFFFF, pair >> 32]
    return words


def _bitonic(depth: int) -> str:
    text = (PROGRAMS / "sort_bitonic.hvm").read_text()
    assert text.count(" ~ (12 (") == 3  # @sum, @gen and @sort's depth
    return text.replace(" ~ (12 (", f" ~ ({depth} (")


def test_the_bitonic_book_is_hvm2s_own() -> None:
    ours = _definitions(book_bytes(load_book(_bitonic(18))))
    theirs = _definitions(_published())
    assert [d["name"] for d in ours] == [d["name"] for d in theirs]
    for o, t in zip(ours, theirs, strict=True):
        assert {k: v for k, v in o.items() if k != "safe"} == {
            k: v for k, v in t.items() if k != "safe"
        }, o["name"]
    holds_dup = [any(p & 7 == DUP for p in _ports(d)) for d in ours]
    # that HVM2: unsafe when the definition itself holds a duplicator
    assert [d["safe"] for d in theirs] == [int(not h) for h in holds_dup]
    # ours (and today's HVM2): also when anything it refers to does
    refs = [{(p >> 3) & FID_MASK for p in _ports(d) if p & 7 == REF} for d in ours]
    unsafe = set(np.flatnonzero(holds_dup).tolist())
    while grown := {f for f, r in enumerate(refs) if r & unsafe} - unsafe:
        unsafe |= grown
    assert [d["safe"] for d in ours] == [int(f not in unsafe) for f in range(len(ours))]
    assert 0 < len(unsafe) < len(ours)


def test_the_depth_is_what_differs_at_another_size() -> None:
    """The comparison can fail: at the published depth, 12, the three
    definitions that hold the depth differ from HVM2's depth-18 book."""
    ours = _definitions(book_bytes(load_book(_bitonic(12))))
    differ = [o["name"] for o, t in zip(ours, _definitions(_published()), strict=True)
              if o["nodes"] != t["nodes"]]  # fmt: skip
    assert differ == ["main", "main__C0", "main__C1"]


def test_a_name_too_long_for_the_format_is_refused() -> None:
    book = load_book(f"@main = @{'f' * 256}\n@{'f' * 256} = *")
    with pytest.raises(ValueError, match="too long for HVM2's format"):
        book_bytes(book)
