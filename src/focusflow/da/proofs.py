"""Share proofs: one share, up to the data root, checkable with the data root alone.

A proof of the share at ``(row, col)`` along an *axis* (its row, or its
column) has two steps:

1. an NMT range proof of the leaf ``ns || share`` (position ``col`` in row
   ``row``'s tree, or ``row`` in column ``col``'s) to that axis's root;
2. a Merkle proof of the axis root to the data root: row ``i`` is leaf ``i``
   and column ``j`` leaf ``2k + j`` of the ``4k`` roots.

The Merkle proof's leaf count gives ``2k`` and hence which quadrant the
share is in, so the verifier knows whether its leaf carries its own
namespace (Q0) or the parity namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from focusflow.core.errors import DecodeError
from focusflow.da import nmt
from focusflow.da.merkle import MerkleProof, merkle_proof, verify_merkle
from focusflow.da.namespace import NAMESPACE_SIZE, PARITY_SHARE_NAMESPACE
from focusflow.da.shares import SHARE_SIZE

if TYPE_CHECKING:
    from focusflow.da.square import ExtendedSquare

ROW = "row"
COL = "col"


@dataclass(frozen=True)
class ShareProof:
    """A share at ``(row, col)`` with its proof along ``axis`` up to the data root."""

    row: int
    col: int
    share: bytes
    axis: str
    nmt_proof: nmt.Proof
    axis_root: bytes
    root_proof: MerkleProof

    @property
    def width(self) -> int:
        """``2k``, the width of the extended square the proof is for."""
        return self.root_proof.total // 2


def prove_share(square: ExtendedSquare, row: int, col: int, axis: str = ROW) -> ShareProof:
    """Proof of one share of ``square`` along its row (default) or column."""
    width = square.width
    if not (0 <= row < width and 0 <= col < width):
        raise IndexError(f"({row}, {col}) is outside a {width} x {width} square")
    index, position = (row, col) if axis == ROW else (col, row)
    leaves = square.axis_leaf_nodes(axis, index)
    roots = square.row_roots() + square.col_roots()
    root_index = index if axis == ROW else width + index
    return ShareProof(
        row=row,
        col=col,
        share=square.share(row, col),
        axis=axis,
        nmt_proof=nmt.prove_range(leaves, position, position + 1),
        axis_root=roots[root_index],
        root_proof=merkle_proof(roots, root_index),
    )


def leaf_data(share: bytes, row: int, col: int, k: int) -> bytes:
    """The NMT leaf of a share: its own namespace in Q0, the parity namespace elsewhere."""
    ns = share[:NAMESPACE_SIZE] if row < k and col < k else PARITY_SHARE_NAMESPACE
    return ns + share


def verify_share_proof(data_root: bytes, proof: ShareProof) -> bool:
    """Whether ``proof.share`` is the share at ``(proof.row, proof.col)`` under ``data_root``."""
    total = proof.root_proof.total
    width = total // 2
    if total % 4 or width & (width - 1) or len(proof.share) != SHARE_SIZE:
        return False
    if not (0 <= proof.row < width and 0 <= proof.col < width):
        return False
    if proof.axis == ROW:
        position, root_index = proof.col, proof.row
    elif proof.axis == COL:
        position, root_index = proof.row, width + proof.col
    else:
        return False
    p = proof.nmt_proof
    if (p.start, p.end, p.total) != (position, position + 1, width) or p.leaf is not None:
        return False
    if proof.root_proof.index != root_index:
        return False
    leaf = leaf_data(proof.share, proof.row, proof.col, width // 2)
    return nmt.verify_range(proof.axis_root, p, [leaf]) and verify_merkle(
        data_root, proof.axis_root, proof.root_proof
    )


def prove_namespace_in_row(
    square: ExtendedSquare, row: int, ns: bytes
) -> tuple[list[bytes], nmt.Proof]:
    """The shares of namespace ``ns`` in a row, with their NMT proof (or proof of absence)."""
    k = square.k
    leaves = [leaf_data(share, row, col, k) for col, share in enumerate(square.row(row))]
    proof = nmt.prove_namespace(leaves, ns)
    if proof.leaf is not None or proof.is_empty:
        return [], proof
    return [leaf[NAMESPACE_SIZE:] for leaf in leaves[proof.start : proof.end]], proof


def verify_namespace_in_row(
    row_root: bytes, ns: bytes, shares: list[bytes], proof: nmt.Proof
) -> bool:
    """Whether ``shares`` are all of a row's shares in ``ns`` (none: absence) under ``row_root``."""
    return nmt.verify_namespace(
        row_root, ns, proof, [share[:NAMESPACE_SIZE] + share for share in shares]
    )


# --- JSON form (REST API and light client) -------------------------------------
#
# A share proof travels as ``{"axis", "nmt_proof": {"start", "end", "total",
# "nodes"}, "axis_root", "root_proof": {"index", "total", "aunts"}}`` with every
# byte string in lowercase hex; the share and its coordinates travel beside it.

_MAX_WIDTH = 1 << 16
_MAX_NODES = 64


def proof_to_json(proof: ShareProof) -> dict[str, Any]:
    """The JSON form of ``proof`` without its share and coordinates."""
    p = proof.nmt_proof
    return {
        "axis": proof.axis,
        "nmt_proof": {
            "start": p.start,
            "end": p.end,
            "total": p.total,
            "nodes": [node.hex() for node in p.nodes],
        },
        "axis_root": proof.axis_root.hex(),
        "root_proof": {
            "index": proof.root_proof.index,
            "total": proof.root_proof.total,
            "aunts": [aunt.hex() for aunt in proof.root_proof.aunts],
        },
    }


def proof_from_json(row: object, col: object, share: object, value: Any) -> ShareProof:
    """Parse what :func:`proof_to_json` wrote (``share`` in hex); DecodeError if malformed.

    Only the shape is checked; whether the proof holds is
    :func:`verify_share_proof`'s question.
    """
    if not isinstance(value, dict):
        raise DecodeError("malformed share proof: expected an object")
    nmt_v, root_v = value.get("nmt_proof"), value.get("root_proof")
    if not isinstance(nmt_v, dict) or not isinstance(root_v, dict):
        raise DecodeError("malformed share proof: nmt_proof and root_proof must be objects")
    axis = value.get("axis")
    if axis not in (ROW, COL):
        raise DecodeError(f"malformed share proof: axis must be {ROW!r} or {COL!r}")
    nodes = _hex_list(nmt_v.get("nodes"), "nmt_proof.nodes")
    aunts = _hex_list(root_v.get("aunts"), "root_proof.aunts")
    return ShareProof(
        row=_count(row, "row"),
        col=_count(col, "col"),
        share=_hex(share, "share"),
        axis=axis,
        nmt_proof=nmt.Proof(
            _count(nmt_v.get("start"), "nmt_proof.start"),
            _count(nmt_v.get("end"), "nmt_proof.end"),
            _count(nmt_v.get("total"), "nmt_proof.total"),
            nodes,
        ),
        axis_root=_hex(value.get("axis_root"), "axis_root"),
        root_proof=MerkleProof(
            _count(root_v.get("index"), "root_proof.index"),
            _count(root_v.get("total"), "root_proof.total"),
            aunts,
        ),
    )


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 4 * _MAX_WIDTH:
        raise DecodeError(f"malformed share proof: {what} must be a small non-negative integer")
    return value


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * (SHARE_SIZE + 2 * NAMESPACE_SIZE):
        raise DecodeError(f"malformed share proof: {what} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise DecodeError(f"malformed share proof: {what} is not hex") from None


def _hex_list(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > _MAX_NODES:
        raise DecodeError(f"malformed share proof: {what} must be a list of hex strings")
    return tuple(_hex(v, what) for v in value)


def axis_root_of(shares: list[bytes], axis: str, index: int) -> bytes:
    """The NMT root of a whole row or column (``2k`` shares, in order), to check
    one received from a peer against its committed root."""
    width = len(shares)
    k = width // 2
    leaves = []
    for position, share in enumerate(shares):
        row, col = (index, position) if axis == ROW else (position, index)
        leaves.append(nmt.leaf_node(leaf_data(share, row, col, k)))
    return nmt.root_of_leaf_nodes(leaves)
