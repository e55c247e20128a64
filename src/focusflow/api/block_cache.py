"""Committed blocks as the API renders them, kept in memory by height.

A committed block never changes (BFT finality), nor do the events its
execution stored, so its JSON is rendered once: a decode of the stored block
(Brotli, CBOR, a hash per transaction) costs up to milliseconds per
transaction-laden block, and ``GET /v1/blocks?limit=100`` asks for a hundred
at once. :class:`RenderedBlocks` keeps the compact JSON bytes of the blocks
last asked for, least recently used out first, within ``max_bytes``; a page
of blocks is then a join of cached bytes. It is shared by the API's worker
threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

#: Memory the rendered blocks may take, by default.
DEFAULT_MAX_BYTES = 32 << 20
#: Rendered blocks kept at most, by default.
DEFAULT_MAX_BLOCKS = 4096


class RenderedBlocks:
    """An LRU of rendered block JSON by height, bounded in bytes and count."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_blocks: int = DEFAULT_MAX_BLOCKS):
        self.max_bytes = max_bytes
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: Blocks rendered (cache misses), for tests and metrics.
        self.rendered = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def cached(self, height: int) -> bytes | None:
        with self._lock:
            body = self._blocks.get(height)
            if body is not None:
                self._blocks.move_to_end(height)
            return body

    def get(self, height: int, render: Callable[[int], bytes]) -> bytes:
        """The rendered block at ``height``, rendered by ``render`` if not held."""
        body = self.cached(height)
        if body is not None:
            return body
        body = render(height)
        with self._lock:
            self.rendered += 1
            if height not in self._blocks and len(body) <= self.max_bytes:
                self._blocks[height] = body
                self._bytes += len(body)
                while self._bytes > self.max_bytes or len(self._blocks) > self.max_blocks:
                    _, old = self._blocks.popitem(last=False)
                    self._bytes -= len(old)
        return body


__all__ = ["DEFAULT_MAX_BLOCKS", "DEFAULT_MAX_BYTES", "RenderedBlocks"]
