"""A book in HVM2's binary format: what its C and CUDA runtimes load
(``book_load``) and what ``hvm gen-c`` / ``hvm gen-cu`` compile in as
``BOOK_BUF``.

Little-endian 32-bit words: the number of definitions, then per definition
its id, its name in 256 bytes (NUL-padded), its safe flag, its redex, node and
variable counts, its root port, its redex pairs and its node pairs (64 bits
each, first port in the low word). Our parser numbers definitions, nodes and
variables as HVM2's does, so the bytes are HVM2's own (a test compares them
with the three books HVM2 publishes in its source). ``bench/hvm.py`` uses it to run
HVM2's CUDA runtime on the programs ours runs.
"""

from __future__ import annotations

import struct

from focusflow.rewrite.parse import Book

#: Bytes of a definition's name field; a name must leave room for its NUL.
NAME_BYTES = 256


def book_bytes(book: Book) -> bytes:
    """``book`` in HVM2's binary format; ValueError for a name of 256 bytes or more."""
    out = bytearray(struct.pack("<I", len(book.names)))
    for fid, name in enumerate(book.names):
        raw = name.encode()
        if len(raw) >= NAME_BYTES:
            raise ValueError(f"definition name too long for HVM2's format: {name!r}")
        rbag = book.rbag[book.rbag_start[fid] : book.rbag_start[fid + 1]]
        nodes = book.nodes[book.node_start[fid] : book.node_start[fid + 1]]
        out += struct.pack("<I", fid) + raw.ljust(NAME_BYTES, b"\0")
        out += struct.pack("<5I", int(book.safe[fid]), len(rbag), len(nodes),
                           int(book.vars[fid]), int(book.roots[fid]))  # fmt: skip
        out += rbag.astype("<u8").tobytes() + nodes.astype("<u8").tobytes()
    return bytes(out)
