"""Bad-encoding fraud proofs: a row or column whose shares are not a codeword.

A producer could commit roots over a square whose rows or columns are not
Reed–Solomon codewords; then rebuilding from some shares yields data that
differs from other shares, and sampling alone would not notice. A node that
holds the square finds such an axis and proves it with only the data root as
trust anchor (as Celestia's BEFP):

* the axis root, with its Merkle proof to the data root;
* ``k`` shares of the axis, each with its proof along the *orthogonal* axis
  (share ``(i, j)`` of row ``i`` is proven by column ``j``'s tree), so each is
  known to be committed even though the axis's own root is the one in doubt.

The verifier decodes the whole axis from those ``k`` shares and recomputes its
NMT root; the proof holds if that root differs from the committed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focusflow.da import leopard, nmt
from focusflow.da.errors import RepairError
from focusflow.da.merkle import MerkleProof, merkle_proof, merkle_root, verify_merkle
from focusflow.da.nmt import leaf_node, root_of_leaf_nodes
from focusflow.da.proofs import COL, ROW, ShareProof, leaf_data, prove_share, verify_share_proof
from focusflow.da.shares import SHARE_SIZE
from focusflow.da.square import ExtendedSquare


@dataclass(frozen=True)
class BadEncodingProof:
    """Proof that ``axis`` number ``index`` of the square under a data root is badly encoded."""

    axis: str
    index: int
    axis_root: bytes
    axis_root_proof: MerkleProof
    shares: tuple[ShareProof, ...]


def _is_codeword(line: np.ndarray) -> bool:
    k = line.shape[0] // 2
    return bool(np.array_equal(leopard.encode(line[:k]), line[k:]))


def find_bad_encoding(square: ExtendedSquare) -> BadEncodingProof | None:
    """A proof for the first row, then column, that is not a codeword; ``None`` if all are."""
    k, width = square.k, square.width
    roots = square.row_roots() + square.col_roots()
    for axis in (ROW, COL):
        for index in range(width):
            line = square.data[index] if axis == ROW else square.data[:, index]
            if _is_codeword(line):
                continue
            other = COL if axis == ROW else ROW
            coords = [(index, j) if axis == ROW else (j, index) for j in range(k)]
            root_index = index if axis == ROW else width + index
            return BadEncodingProof(
                axis=axis,
                index=index,
                axis_root=roots[root_index],
                axis_root_proof=merkle_proof(roots, root_index),
                shares=tuple(prove_share(square, r, c, axis=other) for r, c in coords),
            )
    return None


def verify_bad_encoding_proof(data_root: bytes, proof: BadEncodingProof) -> bool:
    """Whether ``proof`` shows that the square under ``data_root`` is badly encoded."""
    width = proof.axis_root_proof.total // 2
    k = width // 2
    # A square's width is a power of two (no share proof of another verifies,
    # and the codec takes no other).
    if proof.axis not in (ROW, COL) or not 0 <= proof.index < width or k < 1 or width & (width - 1):
        return False
    root_index = proof.index if proof.axis == ROW else width + proof.index
    if proof.axis_root_proof.index != root_index:
        return False
    if not verify_merkle(data_root, proof.axis_root, proof.axis_root_proof):
        return False
    other = COL if proof.axis == ROW else ROW
    line = np.zeros((width, SHARE_SIZE), dtype=np.uint8)
    present = np.zeros(width, dtype=bool)
    for sp in proof.shares:
        on_axis = sp.row == proof.index if proof.axis == ROW else sp.col == proof.index
        position = sp.col if proof.axis == ROW else sp.row
        # A share beyond the square is refused before it indexes anything.
        if not on_axis or sp.axis != other or not 0 <= position < width or present[position]:
            return False
        if sp.width != width or not verify_share_proof(data_root, sp):
            return False
        line[position] = np.frombuffer(sp.share, dtype=np.uint8)
        present[position] = True
    try:
        full = leopard.decode(line, present)
    except RepairError:
        return False
    leaves = []
    for position in range(width):
        row, col = (proof.index, position) if proof.axis == ROW else (position, proof.index)
        leaves.append(leaf_node(leaf_data(full[position].tobytes(), row, col, k)))
    return root_of_leaf_nodes(leaves) != proof.axis_root


def prove_bad_axis(
    square: ExtendedSquare, roots: list[bytes], axis: str, index: int, positions: list[int]
) -> BadEncodingProof:
    """A proof that ``axis`` ``index`` is badly encoded, from its shares at
    ``positions``, each proven along the orthogonal axis against the committed
    ``roots`` (``2k`` row roots then ``2k`` column roots), which need not be
    ``square``'s own: only the orthogonal axes used must hash to theirs."""
    width = square.width
    other = COL if axis == ROW else ROW
    proofs = []
    for position in positions:
        row, col = (index, position) if axis == ROW else (position, index)
        line, at = (col, row) if other == COL else (row, col)
        root_index = line if other == ROW else width + line
        proofs.append(
            ShareProof(
                row=row,
                col=col,
                share=square.share(row, col),
                axis=other,
                nmt_proof=nmt.prove_range(square.axis_leaf_nodes(other, line), at, at + 1),
                axis_root=roots[root_index],
                root_proof=merkle_proof(roots, root_index),
            )
        )
    root_index = index if axis == ROW else width + index
    return BadEncodingProof(
        axis, index, roots[root_index], merkle_proof(roots, root_index), tuple(proofs)
    )


def find_bad_encoding_committed(
    square: ExtendedSquare, row_roots: list[bytes], col_roots: list[bytes]
) -> BadEncodingProof | None:
    """A verified proof against the data root of ``row_roots + col_roots`` for a
    square fetched row by row (each row checked against its committed root), or
    ``None`` when the committed square is a valid encoding.

    A producer may commit column roots that do not match the columns of its
    rows; such a column is proven bad with shares proven along the rows (whose
    roots did match). Otherwise the square is exactly the committed one and
    :func:`find_bad_encoding` looks at every row and column.
    """
    roots = list(row_roots) + list(col_roots)
    data_root = merkle_root(roots)
    k, width = square.k, square.width
    for j, (mine, committed) in enumerate(zip(square.col_roots(), col_roots, strict=True)):
        if mine == committed:
            continue
        for positions in (list(range(k)), list(range(k, width))):
            proof = prove_bad_axis(square, roots, COL, j, positions)
            if verify_bad_encoding_proof(data_root, proof):
                return proof
    if square.data_root() != data_root:
        return None
    found = find_bad_encoding(square)
    if found is None or not verify_bad_encoding_proof(data_root, found):
        return None
    return found
