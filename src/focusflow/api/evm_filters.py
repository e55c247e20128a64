"""Polled filters: ``eth_newFilter``, ``eth_newBlockFilter``, ``eth_getFilterChanges``,
``eth_getFilterLogs``, ``eth_uninstallFilter``, what ethers and web3.py poll when
no WebSocket is open.

A filter is a cursor the node keeps for a client: the next block (and, for a
log filter, how many of that block's matching logs were already returned) and
the filter itself. Everything about them is bounded, as a client is hostile:

* a client (IP address) holds at most ``MAX_FILTERS_PER_CLIENT`` filters and the
  node ``MAX_FILTERS`` in all (``-32005`` ``rpc_limit`` beyond);
* a filter not polled for ``FILTER_IDLE_S`` seconds is dropped (geth's five
  minutes), and asking for it answers ``filter not found``;
* one ``eth_getFilterChanges`` returns at most ``MAX_FILTER_CHANGES`` logs or block
  hashes and stops when the request's time budget runs out; the cursor then
  stands where the answer stopped, and the next poll goes on from there.

A filter id is 16 random bytes, so one client cannot guess another's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from focusflow.api.evm_budget import RpcLimitError

#: Filters one client may hold, and the node in all.
MAX_FILTERS_PER_CLIENT = 32
MAX_FILTERS = 2_048
#: Seconds a filter lives without being polled.
FILTER_IDLE_S = 300.0
#: Most logs or block hashes one poll returns.
MAX_FILTER_CHANGES = 10_000

#: A log filter: (addresses or None for any, topics as OR-sets or None per position).
Match = tuple[set[bytes] | None, list[set[bytes] | None]]


@dataclass
class Filter:
    """One client's cursor (module docstring)."""

    client: str
    #: "logs" or "blocks".
    kind: str
    #: The next block to look at.
    block: int
    #: Logs of ``block`` already returned (a poll can stop inside a block).
    skip: int = 0
    #: Last block a log filter covers (None: no end).
    to_block: int | None = None
    match: Match = (None, [])
    #: The block a log filter starts at (what ``eth_getFilterLogs`` reads from;
    #: None: the head at that moment).
    from_block: int | None = None
    polled: float = field(default_factory=time.monotonic)
    #: Held by the poll that moves the cursor: two polls at once do not return
    #: the same changes twice.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


class FilterNotFoundError(Exception):
    """No filter of that id (never made, uninstalled or expired)."""


class FilterTable:
    """The node's filters, by id (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._filters: dict[str, Filter] = {}

    def __len__(self) -> int:
        return len(self._filters)

    def _expire(self) -> None:
        cutoff = self.clock() - FILTER_IDLE_S
        for fid in [f for f, flt in self._filters.items() if flt.polled < cutoff]:
            del self._filters[fid]

    def add(self, flt: Filter) -> str:
        """Install ``flt``; RpcLimitError when its client or the node holds the most."""
        with self._lock:
            self._expire()
            if len(self._filters) >= MAX_FILTERS:
                raise RpcLimitError(
                    f"the node holds {MAX_FILTERS} filters, its most: uninstall some or "
                    f"let them expire ({FILTER_IDLE_S:g} s unpolled)"
                )
            held = sum(1 for f in self._filters.values() if f.client == flt.client)
            if held >= MAX_FILTERS_PER_CLIENT:
                raise RpcLimitError(
                    f"this client holds {held} filters, the most one client may "
                    f"({MAX_FILTERS_PER_CLIENT}): uninstall some with eth_uninstallFilter"
                )
            flt.polled = self.clock()
            fid = "0x" + secrets.token_hex(16)
            self._filters[fid] = flt
            return fid

    def get(self, fid: Any) -> Filter:
        """The filter ``fid``, marked as polled now; FilterNotFoundError if none."""
        with self._lock:
            self._expire()
            flt = self._filters.get(fid) if isinstance(fid, str) else None
            if flt is None:
                raise FilterNotFoundError
            flt.polled = self.clock()
            return flt

    def remove(self, fid: Any) -> bool:
        with self._lock:
            return isinstance(fid, str) and self._filters.pop(fid, None) is not None


#: The node's filters (one table per process, as the node is one process).
FILTERS = FilterTable()
