"""Block data to the original ``k x k`` square of shares.

The square lists, in order (Celestia's layout, celestia-app ``specs/src/specs/
data_square_layout.md``):

1. the transactions, as compact shares of the transaction namespace;
2. reserved padding up to the first blob's start;
3. the blobs, sorted by namespace (stable, so the caller's order is kept
   within a namespace), each starting at an index that is a multiple of its
   subtree width, with namespace padding (the previous blob's namespace) in
   the gaps;
4. tail padding up to ``k²`` shares, ``k`` the smallest power of two that fits.

Shares are thus ordered by namespace along the row-major order, which the
namespaced Merkle trees require.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from focusflow.da.namespace import TX_NAMESPACE, check_blob_namespace
from focusflow.da.shares import (
    compact_shares,
    padding_share,
    reserved_padding_shares,
    sparse_share_count,
    sparse_shares,
    tail_padding_shares,
)

# Celestia's SubtreeRootThreshold: a blob's share commitment has at most this
# many subtree roots, which fixes how its start index is aligned.
SUBTREE_ROOT_THRESHOLD = 64


def round_up_power_of_two(n: int) -> int:
    """The smallest power of two ``>= n`` (1 for ``n <= 1``)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def subtree_width(share_count: int, threshold: int = SUBTREE_ROOT_THRESHOLD) -> int:
    """Alignment of a blob of ``share_count`` shares (ADR-013 non-interactive defaults)."""
    by_threshold = round_up_power_of_two(-(-share_count // threshold))
    min_square = round_up_power_of_two(math.isqrt(share_count - 1) + 1 if share_count else 0)
    return min(by_threshold, min_square)


def square_from_block(txs: list[bytes], blobs: Iterable[tuple[bytes, bytes]] = ()) -> list[bytes]:
    """The original square of a block's data, row-major, ``k²`` shares."""
    shares = compact_shares(TX_NAMESPACE, list(txs))
    ordered = sorted(
        ((check_blob_namespace(bytes(ns)), bytes(data)) for ns, data in blobs),
        key=lambda blob: blob[0],
    )
    for i, (ns, data) in enumerate(ordered):
        count = sparse_share_count(len(data))
        width = subtree_width(count)
        start = -(-len(shares) // width) * width
        gap = start - len(shares)
        if i == 0:
            shares += reserved_padding_shares(gap)
        else:
            shares += [padding_share(ordered[i - 1][0])] * gap
        shares += sparse_shares(ns, data)
    k = round_up_power_of_two(math.isqrt(max(len(shares), 1) - 1) + 1)
    return shares + tail_padding_shares(k * k - len(shares))
