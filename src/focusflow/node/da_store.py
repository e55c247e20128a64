"""The squares a node serves: shares and proofs of committed blocks, and of proposals.

:class:`DAStore` is the node's serving cache for data availability (``node.da``,
read by ``GET /v1/da/...`` and by the QUIC share server of ``node.da_net``): an
LRU of the last ``cache_size`` squares used (recent blocks arrive through the
chain's square listeners; an older height is rebuilt from the stored block,
checked against its header and kept in the LRU too, since a light client asks
for some 25 shares in a row). Requests for one old height that arrive while it
is being rebuilt wait for that rebuild (single flight), and at most
``max_rebuilds`` heights are rebuilt at once: a flood of requests for old
blocks costs one rebuild per height and never more cores than that.
A test may hand it a fault plan (``node.faults.FaultPlan``): the node then
refuses to serve a part of every square (the roots are still served, as a
withholding producer would publish its header), or every share of a proposal.

It also serves the squares of proposals this node made or validated
(``chain.da_commit.recent_squares``), so the proposer of a block can answer
the validators that sample it before they vote (:meth:`DAStore.square_for`),
and it keeps the bad-encoding fraud proofs this node verified
(:meth:`DAStore.record_fraud`) for peers and light clients.

It lives with the node, not the chain: the chain only computes a block's square
and hands it to its listeners; caching, rebuilding and withholding are serving
policy.
"""

from __future__ import annotations

import math
import random
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from focusflow.chain.da_commit import FraudRecord, block_square, recent_squares, square_size
from focusflow.chain.errors import UnknownBlockError
from focusflow.core.errors import InvalidParameterError, StoreError, require_int
from focusflow.da import ExtendedSquare, ShareProof, ShareUnavailableError

if TYPE_CHECKING:
    from focusflow.chain.chain import Chain
    from focusflow.node.faults import FaultPlan

#: Squares a :class:`DAStore` keeps at most, by default.
DEFAULT_CACHE_SIZE = 16
#: Old squares a :class:`DAStore` rebuilds at once, by default: each takes a
#: core and up to ``square_size`` bytes while it is built, and the block
#: producer needs a core too.
DEFAULT_MAX_REBUILDS = 1
#: Memory the kept squares may take, by default (the newest square is always
#: kept). A square of ``k x k`` original shares holds ``(2k)² · 602`` bytes
#: (shares and NMT leaf nodes): 150 KiB for 100 small transactions (k = 8),
#: 9.4 MiB for a block of 10,000 links (k = 64), 150 MiB at the 16 MiB block
#: limit (k = 256).
DEFAULT_CACHE_BYTES = 256 << 20


class _Flight:
    """One rebuild in progress: its result (or error) for everyone who asked meanwhile."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._square: ExtendedSquare | None = None
        self._error: BaseException | None = None

    def land(self, square: ExtendedSquare) -> None:
        self._square = square
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def wait(self) -> ExtendedSquare:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._square is not None
        return self._square


class DAStore:
    """The squares of a chain's blocks, for serving shares and proofs.

    ``DAStore(chain, cache_size=16, cache_bytes=256 << 20, faults=None)``:

    * ``cache_size``, ``cache_bytes``: at most this many squares, taking at
      most this much memory (:func:`square_size`), stay in memory; the least
      recently used go first, the last one used always stays;
    * ``max_rebuilds``: at most this many old squares are rebuilt at once
      (others wait); concurrent requests for one height share its rebuild;
    * ``faults``: fault injection for tests (``node.faults.FaultPlan``; None on
      an honest node). Its ``da_withhold_proposals`` refuses every share of a
      square not committed yet; its ``da_withhold`` is the fraction in
      ``[0, 1]`` of every committed square this node refuses to serve
      (``ShareUnavailableError``). It withholds the shares at ``R x C``, ``R``
      and ``C`` each ``s = ceil(sqrt(withhold) · 2k)`` rows and columns drawn
      by ``random.Random(f"{da_withhold_seed}:{height}")`` (so ``s² >=
      withhold · (2k)²`` shares). This is the cheapest way to make a square
      unrecoverable: once ``s > k`` (``withhold > 1/4`` or so) no withheld row
      or column has ``k`` known shares, and nothing can be repaired. Shares
      withheld at random instead would mostly be rebuilt by the crossword
      repair, even at 60 %.

    Safe to use from several threads (the API's handlers) while the chain
    commits blocks.
    """

    def __init__(
        self,
        chain: Chain,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        *,
        max_rebuilds: int = DEFAULT_MAX_REBUILDS,
        faults: FaultPlan | None = None,
    ) -> None:
        require_int("cache_size", cache_size, 1)
        require_int("cache_bytes", cache_bytes, 0)
        require_int("max_rebuilds", max_rebuilds, 1)
        self.chain = chain
        self.cache_size = cache_size
        self.cache_bytes = cache_bytes
        #: Fault injection for tests (None: serve everything).
        self.faults = faults
        #: Verified bad-encoding fraud proofs, by height (see FraudRecord).
        self._fraud: dict[int, FraudRecord] = {}
        self._squares: OrderedDict[int, ExtendedSquare] = OrderedDict()
        self._withheld: dict[int, frozenset[tuple[int, int]]] = {}
        self._lock = threading.Lock()
        self._rebuilds = threading.BoundedSemaphore(max_rebuilds)
        #: Rebuilds in progress: later askers for the same height wait on them.
        self._flights: dict[int, _Flight] = {}
        #: Squares rebuilt from stored blocks (cache misses), for tests and metrics.
        self.rebuilt = 0
        chain.square_listeners.append(self.remember)

    # --- the cache -----------------------------------------------------------
    def remember(self, height: int, square: ExtendedSquare) -> None:
        """Keep the square of a committed block (the chain calls this)."""
        with self._lock:
            self._squares[height] = square
            self._squares.move_to_end(height)
            size = sum(square_size(sq) for sq in self._squares.values())
            while len(self._squares) > 1 and (
                len(self._squares) > self.cache_size or size > self.cache_bytes
            ):
                old, dropped = self._squares.popitem(last=False)
                size -= square_size(dropped)
                self._withheld.pop(old, None)

    def cached_heights(self) -> list[int]:
        """Heights whose squares are in memory, least recently used first."""
        with self._lock:
            return list(self._squares)

    def square(self, height: int) -> ExtendedSquare:
        """The extended square of the block at ``height``; UnknownBlockError if none."""
        if not isinstance(height, int) or isinstance(height, bool) or height < 0:
            raise UnknownBlockError(f"no block at height {height!r}")
        with self._lock:
            square = self._squares.get(height)
            if square is not None:
                self._squares.move_to_end(height)
                return square
        return self._rebuild_once(height)

    def _rebuild_once(self, height: int) -> ExtendedSquare:
        """Rebuild ``height``'s square, or wait for the rebuild already under way."""
        with self._lock:
            square = self._squares.get(height)
            if square is not None:
                return square
            under_way = self._flights.get(height)
            if under_way is None:
                flight = self._flights[height] = _Flight()
        if under_way is not None:
            return under_way.wait()
        try:
            with self._rebuilds:
                square = self._rebuild(height)
            self.remember(height, square)
        except BaseException as exc:
            flight.fail(exc)
            raise
        else:
            flight.land(square)
            return square
        finally:
            with self._lock:
                self._flights.pop(height, None)

    def _rebuild(self, height: int) -> ExtendedSquare:
        record = self.chain.block_record(height)
        if record is None:
            raise UnknownBlockError(
                f"no block at height {height} (the chain is at {self.chain.height})"
            )
        square = block_square(record.block.txs, keep=False)
        if square.data_root() != record.block.header.data_root:
            raise StoreError(f"stored block {height} does not hash to its header's data root")
        with self._lock:
            self.rebuilt += 1
        return square

    def square_for(self, height: int, data_root: bytes) -> tuple[ExtendedSquare, bool]:
        """The square under ``data_root`` at ``height`` and whether it is a committed
        block's: the committed block's square if its root is that, else one built
        here lately (a proposal); UnknownBlockError if neither."""
        committed = isinstance(height, int) and not isinstance(height, bool)
        if committed and 1 <= height <= self.chain.height:
            square = self.square(height)
            if square.data_root() == data_root:
                return square, True
        recent = recent_squares.get(data_root)
        if recent is None:
            raise UnknownBlockError(f"no square with data root {data_root.hex()[:16]} here")
        return recent, False

    def servable(self, height: int, data_root: bytes) -> ExtendedSquare:
        """:meth:`square_for`, refused (ShareUnavailableError) where this node
        withholds it (the fault ``da_withhold_proposals`` and not committed)."""
        square, committed = self.square_for(height, data_root)
        faults = self.faults
        if faults is not None and faults.da_withhold_proposals and not committed:
            raise ShareUnavailableError(f"the square of proposal {height} is not served")
        return square

    # --- fraud proofs ------------------------------------------------------------
    def record_fraud(self, record: FraudRecord) -> None:
        """Keep a verified fraud proof (the first one per height)."""
        with self._lock:
            self._fraud.setdefault(record.header.height, record)

    def fraud(self, height: int) -> FraudRecord | None:
        """The verified fraud proof this node holds against block ``height``, if any."""
        with self._lock:
            return self._fraud.get(height)

    # --- serving ---------------------------------------------------------------
    def withheld(self, height: int, width: int) -> frozenset[tuple[int, int]]:
        """Coordinates this node refuses to serve at ``height`` (empty when honest)."""
        faults = self.faults
        if faults is None or faults.da_withhold <= 0.0:
            return frozenset()
        with self._lock:
            known = self._withheld.get(height)
        if known is None:
            rng = random.Random(f"{faults.da_withhold_seed}:{height}")
            side = min(width, math.ceil(math.sqrt(faults.da_withhold) * width - 1e-9))
            rows = rng.sample(range(width), side)
            cols = rng.sample(range(width), side)
            known = frozenset((r, c) for r in rows for c in cols)
            with self._lock:
                self._withheld[height] = known
        return known

    def share_proof(self, height: int, row: int, col: int) -> ShareProof:
        """The share at ``(row, col)`` of block ``height`` with its proof to the data root.

        UnknownBlockError for a height without a block, InvalidParameterError
        for coordinates outside the ``2k x 2k`` square, ShareUnavailableError
        for a share this node withholds.
        """
        square = self.square(height)
        width = square.width
        for name, value in (("row", row), ("col", col)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < width:
                raise InvalidParameterError(
                    f"{name} {value!r} is outside the {width} x {width} square of block {height}"
                )
        if (row, col) in self.withheld(height, width):
            raise ShareUnavailableError(f"share ({row}, {col}) of block {height} is not served")
        return square.proof(row, col)


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_MAX_REBUILDS",
    "DAStore",
]
