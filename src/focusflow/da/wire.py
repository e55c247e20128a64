"""Byte and JSON forms of share proofs and bad-encoding fraud proofs, decoded within bounds.

Share proofs travel between nodes over QUIC (requests ``da_shares``) and fraud
proofs as gossip (``da_fraud``) and over REST (``GET /v1/da/{height}/fraud``).
Everything received is hostile, so decoding checks the shape and every size
before anything is built: a square at most ``MAX_WIDTH`` wide, proofs with at
most ``MAX_PROOF_NODES`` nodes, shares of exactly ``SHARE_SIZE`` bytes, NMT
nodes of 90 and digests of 32 bytes, a fraud proof with at most ``MAX_WIDTH / 2``
shares. A malformed value raises ``DecodeError`` (code ``malformed``); whether
a well-formed proof holds is ``verify_share_proof`` / ``verify_bad_encoding_proof``'s
question.

CBOR forms (canonical, via ``focusflow.core.encoding``):

* share proof: ``[row, col, share, axis, start, end, total, [node...],
  axis_root, root_index, root_total, [aunt...]]``;
* bad-encoding proof: ``[axis, index, axis_root, root_index, root_total,
  [aunt...], [share proof...]]``.
"""

from __future__ import annotations

from typing import Any

from focusflow.core.errors import DecodeError
from focusflow.da.fraud import BadEncodingProof
from focusflow.da.merkle import MerkleProof
from focusflow.da.nmt import Proof
from focusflow.da.proofs import COL, ROW, ShareProof, proof_from_json, proof_to_json
from focusflow.da.shares import SHARE_SIZE

#: Widest extended square (2k) accepted from a peer: k = 512, above the
#: 16 MiB block limit's k = 256.
MAX_WIDTH = 1024
#: Nodes a proof of one leaf may carry: log2 of the widest tree (4k roots) is 11.
MAX_PROOF_NODES = 16
NMT_NODE_SIZE = 90
DIGEST_SIZE = 32
_SHARE_PROOF_FIELDS = 12


def share_proof_to_cbor(proof: ShareProof) -> list[object]:
    """The CBOR form of one share proof (share and coordinates included)."""
    p, r = proof.nmt_proof, proof.root_proof
    return [
        proof.row,
        proof.col,
        proof.share,
        proof.axis,
        p.start,
        p.end,
        p.total,
        list(p.nodes),
        proof.axis_root,
        r.index,
        r.total,
        list(r.aunts),
    ]


def share_proof_from_cbor(value: Any) -> ShareProof:
    """Parse :func:`share_proof_to_cbor`'s form; DecodeError unless every field is in bounds."""
    if not isinstance(value, list) or len(value) != _SHARE_PROOF_FIELDS:
        raise DecodeError(f"malformed share proof: expected a {_SHARE_PROOF_FIELDS}-item array")
    row, col, share, axis, start, end, total, nodes, axis_root, index, root_total, aunts = value
    for name, n, top in (
        ("row", row, MAX_WIDTH),
        ("col", col, MAX_WIDTH),
        ("start", start, MAX_WIDTH),
        ("end", end, MAX_WIDTH),
        ("total", total, MAX_WIDTH),
        ("root index", index, 2 * MAX_WIDTH),
        ("root total", root_total, 2 * MAX_WIDTH),
    ):
        _bounded_int(n, top, f"share proof {name}")
    if axis not in (ROW, COL):
        raise DecodeError(f"malformed share proof: axis must be {ROW!r} or {COL!r}")
    return ShareProof(
        row=row,
        col=col,
        share=_sized(share, SHARE_SIZE, "share"),
        axis=axis,
        nmt_proof=Proof(start, end, total, _sized_list(nodes, NMT_NODE_SIZE, "NMT nodes")),
        axis_root=_sized(axis_root, NMT_NODE_SIZE, "axis root"),
        root_proof=MerkleProof(index, root_total, _sized_list(aunts, DIGEST_SIZE, "aunts")),
    )


def befp_to_cbor(proof: BadEncodingProof) -> list[object]:
    """The CBOR form of a bad-encoding fraud proof."""
    r = proof.axis_root_proof
    return [
        proof.axis,
        proof.index,
        proof.axis_root,
        r.index,
        r.total,
        list(r.aunts),
        [share_proof_to_cbor(sp) for sp in proof.shares],
    ]


def befp_from_cbor(value: Any) -> BadEncodingProof:
    """Parse :func:`befp_to_cbor`'s form; DecodeError unless every field is in bounds."""
    if not isinstance(value, list) or len(value) != 7:
        raise DecodeError("malformed fraud proof: expected a 7-item array")
    axis, index, axis_root, root_index, root_total, aunts, shares = value
    if axis not in (ROW, COL):
        raise DecodeError(f"malformed fraud proof: axis must be {ROW!r} or {COL!r}")
    _bounded_int(index, MAX_WIDTH, "fraud proof index")
    _bounded_int(root_index, 2 * MAX_WIDTH, "fraud proof root index")
    _bounded_int(root_total, 2 * MAX_WIDTH, "fraud proof root total")
    if not isinstance(shares, list) or len(shares) > MAX_WIDTH // 2:
        raise DecodeError(f"malformed fraud proof: at most {MAX_WIDTH // 2} share proofs")
    return BadEncodingProof(
        axis=axis,
        index=index,
        axis_root=_sized(axis_root, NMT_NODE_SIZE, "axis root"),
        axis_root_proof=MerkleProof(
            root_index, root_total, _sized_list(aunts, DIGEST_SIZE, "aunts")
        ),
        shares=tuple(share_proof_from_cbor(sp) for sp in shares),
    )


def befp_to_json(proof: BadEncodingProof) -> dict[str, Any]:
    """The JSON form (REST, light clients): byte strings in lowercase hex."""
    r = proof.axis_root_proof
    return {
        "axis": proof.axis,
        "index": proof.index,
        "axis_root": proof.axis_root.hex(),
        "axis_root_proof": {
            "index": r.index,
            "total": r.total,
            "aunts": [a.hex() for a in r.aunts],
        },
        "shares": [
            {"row": sp.row, "col": sp.col, "share": sp.share.hex(), "proof": proof_to_json(sp)}
            for sp in proof.shares
        ],
    }


def befp_from_json(value: Any) -> BadEncodingProof:
    """Parse :func:`befp_to_json`'s form; DecodeError if malformed or out of bounds."""
    if not isinstance(value, dict):
        raise DecodeError("malformed fraud proof: expected an object")
    shares, root = value.get("shares"), value.get("axis_root_proof")
    if not isinstance(shares, list) or len(shares) > MAX_WIDTH // 2:
        raise DecodeError(f"malformed fraud proof: at most {MAX_WIDTH // 2} shares in a list")
    if not isinstance(root, dict):
        raise DecodeError("malformed fraud proof: axis_root_proof must be an object")
    aunts = root.get("aunts")
    if not isinstance(aunts, list) or len(aunts) > MAX_PROOF_NODES:
        raise DecodeError("malformed fraud proof: aunts must be a short list")
    parsed = []
    for item in shares:
        if not isinstance(item, dict):
            raise DecodeError("malformed fraud proof: each share is an object")
        sp = proof_from_json(item.get("row"), item.get("col"), item.get("share"), item.get("proof"))
        parsed.append(share_proof_from_cbor(share_proof_to_cbor(sp)))  # the same bounds
    return befp_from_cbor(
        [
            value.get("axis"),
            value.get("index"),
            _unhex(value.get("axis_root"), "axis_root"),
            root.get("index"),
            root.get("total"),
            [_unhex(a, "aunt") for a in aunts],
            [share_proof_to_cbor(sp) for sp in parsed],
        ]
    )


def _bounded_int(value: Any, top: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise DecodeError(f"malformed {what}: an integer from 0 to {top} expected")


def _sized(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise DecodeError(f"malformed {what}: {size} bytes expected")
    return value


def _sized_list(value: Any, size: int, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_NODES:
        raise DecodeError(f"malformed {what}: a list of at most {MAX_PROOF_NODES} expected")
    return tuple(_sized(v, size, what) for v in value)


def _unhex(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * NMT_NODE_SIZE:
        raise DecodeError(f"malformed fraud proof: {what} must be a short hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise DecodeError(f"malformed fraud proof: {what} is not hex") from None


__all__ = [
    "MAX_PROOF_NODES",
    "MAX_WIDTH",
    "befp_from_cbor",
    "befp_from_json",
    "befp_to_cbor",
    "befp_to_json",
    "share_proof_from_cbor",
    "share_proof_to_cbor",
]
