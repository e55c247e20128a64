"""The powers of an anvil-like devnet over its own block production: mining on
demand and the clock its blocks are stamped with.

A devnet started with ``focusflow devnet --anvil`` (docs/evm.md, *Anvil mode*)
holds one :class:`DevMode`: its consensus makes a block only when a
transaction is ready or ``evm_mine`` asks for blocks (a block per transaction,
as anvil's automine), and its proposals take their time from :meth:`DevMode.block_time_ms`,
which ``evm_increaseTime`` and ``evm_setNextBlockTimestamp`` move. Nothing
here writes state: every change still comes in a block that consensus decides
and the store commits. The JSON-RPC side lives in ``api.evm_dev``; this module
sits in the chain layer so that both the node (which makes the blocks) and the
API (which asks for them) can hold it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from focusflow.chain.tx import Msg, Tx

#: Most blocks one ``evm_mine``/``anvil_mine`` call may ask for.
MAX_MINE_BLOCKS = 10_000
#: Snapshots one devnet keeps (the oldest is dropped beyond), and the state
#: keys one may hold: a devnet of tests holds a few hundred.
MAX_SNAPSHOTS = 64
MAX_SNAPSHOT_KEYS = 100_000
#: Undone block ranges one devnet remembers (the oldest forgotten first).
MAX_UNDONE_RANGES = 1_024
#: Furthest the clock may be moved ahead of the wall clock, in seconds (100 years:
#: far enough for any test of a time lock, short of a header's time limit).
MAX_TIME_SHIFT_S = 100 * 365 * 86_400


class DevMode:
    """Block demand and the clock of an anvil-like devnet (module docstring)."""

    def __init__(
        self,
        unlocked: dict[bytes, bytes],
        submit: Callable[[list[Msg]], Tx],
        clock: Callable[[], float] = time.time,
        *,
        own: frozenset[bytes] = frozenset(),
    ) -> None:
        """``unlocked``: the accounts ``eth_sendTransaction`` signs for, address to
        private key (the test mnemonic's); ``submit``: signs native messages with
        the devnet's dev key and admits them (``anvil_setBalance``'s transaction);
        ``own``: the node's own accounts (the dev key's, the validator's), which
        pay and earn the fees of those transactions and which a revert leaves
        as they are."""
        self.own = own
        #: Addresses ``anvil_impersonateAccount`` named: ``eth_sendTransaction``
        #: sends for them without their key (an ``evm.call_as`` transaction).
        self.impersonated: set[bytes] = set()
        self.unlocked = dict(unlocked)
        self.submit = submit
        self._clock = clock
        self._lock = threading.Lock()
        #: ``evm_snapshot``'s saved EVM states by id (the keys ``evm.restore`` writes).
        self._snapshots: dict[int, tuple[int, dict[bytes, bytes]]] = {}
        #: Block ranges (first, last) a revert undid: their transactions and logs
        #: are hidden from the RPC, as anvil's revert removes those blocks.
        self._undone: list[tuple[int, int]] = []
        self._next_snapshot = 1
        #: Blocks asked for by ``evm_mine`` and not started yet.
        self._demand = 0
        #: Milliseconds added to the wall clock for the next blocks' time.
        self.offset_ms = 0
        #: The time of the next block, when ``evm_setNextBlockTimestamp`` set one.
        self.next_time_ms: int | None = None

    # --- mining ---------------------------------------------------------------
    def ask_blocks(self, count: int) -> None:
        """Ask for ``count`` more blocks, made one after another at once."""
        with self._lock:
            self._demand = min(self._demand + count, MAX_MINE_BLOCKS)

    def take_block(self) -> bool:
        """Whether a block was asked for; counts it as started."""
        with self._lock:
            if self._demand <= 0:
                return False
            self._demand -= 1
            return True

    @property
    def demand(self) -> int:
        with self._lock:
            return self._demand

    # --- snapshots --------------------------------------------------------------
    def save(self, height: int, state: dict[bytes, bytes]) -> int:
        """Keep ``state``, the EVM state after block ``height``, as a new snapshot;
        its id (ids increase from 1)."""
        with self._lock:
            sid = self._next_snapshot
            self._next_snapshot += 1
            self._snapshots[sid] = (height, state)
            while len(self._snapshots) > MAX_SNAPSHOTS:
                del self._snapshots[min(self._snapshots)]
            return sid

    def take(self, sid: int) -> tuple[int, dict[bytes, bytes]] | None:
        """Snapshot ``sid``'s state, dropping it and every later one (anvil's rule:
        a revert undoes the snapshots taken after it too); None if unknown."""
        with self._lock:
            state = self._snapshots.get(sid)
            if state is not None:
                for later in [i for i in self._snapshots if i >= sid]:
                    del self._snapshots[later]
            return state

    def undo(self, first: int, last: int) -> None:
        """Blocks ``first`` to ``last`` were undone by a revert."""
        if first > last:
            return
        with self._lock:
            self._undone.append((first, last))
            del self._undone[:-MAX_UNDONE_RANGES]

    def undone(self, height: int) -> bool:
        """Whether a revert undid block ``height``."""
        with self._lock:
            return any(first <= height <= last for first, last in self._undone)

    # --- the clock ------------------------------------------------------------
    def now_ms(self) -> int:
        """The devnet's clock: the wall clock plus the shift time travel made."""
        return int(self._clock() * 1000) + self.offset_ms

    def increase_time(self, seconds: int) -> int:
        """Move the clock ``seconds`` ahead; returns the whole shift in seconds."""
        with self._lock:
            self.offset_ms = min(self.offset_ms + seconds * 1000, MAX_TIME_SHIFT_S * 1000)
            return self.offset_ms // 1000

    def set_next_time(self, seconds: int) -> None:
        """Stamp the next block ``seconds`` (Unix time); later blocks go on from it."""
        with self._lock:
            self.next_time_ms = seconds * 1000

    def block_time_ms(self, parent_ms: int) -> int:
        """The time of the block after one stamped ``parent_ms``: the time set for
        it, else the shifted clock, and always after its parent (block times
        increase)."""
        with self._lock:
            wanted = self.next_time_ms
            if wanted is not None:
                self.next_time_ms = None
                self.offset_ms = wanted - int(self._clock() * 1000)
                return max(wanted, parent_ms + 1)
        return max(self.now_ms(), parent_ms + 1)
