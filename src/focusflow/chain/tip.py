"""The tip: the committed head that the next block builds on.

Every part of the chain reads the same few facts about its head, and two
parts move them: the committer after each block, and the lifecycle
(lifecycle.py) when the store is opened or the head's focus state is rebuilt.
:class:`Tip` holds them in one place:

* the head block's header and the certificate that decided it;
* the head's focus state, which a block advances (a copy of it, or itself for a
  block committed at once: pipeline.py);
* every recorded validator set, and the one of the next height (head + 1) with
  its proposers and hash;
* the focus upgrade schedule in force (focus_upgrade.py), and whether this
  code can run the focus algorithm a height switches to;
* the height the store began at (0, or a state-sync snapshot's).

What a block's handlers read of the head (``BlockContext.focus_of`` and
``karma_of``) is answered here too, since it is the head's focus state that
answers it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from focusflow.chain.block import Header
from focusflow.chain.errors import UnknownBlockError, UpgradeNeededError
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_upgrade import (
    UPGRADES_KEY,
    Schedule,
    decode_decided,
    focus_in_force,
    genesis_schedule,
    merge_schedule,
    runnable_params,
)
from focusflow.chain.karma import karma_fixed
from focusflow.chain.params import ChainParams
from focusflow.chain.valsets import ValidatorSets
from focusflow.consensus.certificate import CommitCertificate
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.errors import InvalidParameterError
from focusflow.focus.params import FocusParams

log = logging.getLogger("focusflow.chain")


class Tip:
    """The head a new block builds on; see the module docstring."""

    #: The head block's header (set when the store is opened: genesis's on a
    #: fresh store, else the stored head's).
    header: Header

    def __init__(self, params: ChainParams, genesis_set: ValidatorSet) -> None:
        self.params = params
        #: The certificate of the head block (None at genesis).
        self.certificate: CommitCertificate | None = None
        self.focus = FocusState(params.focus)
        #: Every recorded validator set by first height (chain/valsets.py).
        self.valsets = ValidatorSets([(1, genesis_set)])
        self.set_validators(self.valsets.at(1))
        #: The focus upgrade schedule in force: the genesis's, with what
        #: ``focus.upgrade`` decided on chain; the head's state's.
        self.schedule: Schedule = genesis_schedule(params.focus_upgrades)
        #: The height this store began at: 0, or a state-sync snapshot's
        #: (chain/snapshot.py): no blocks below it.
        self.base = 0
        self._upgrade_logged = 0
        #: (head hash, every neuron's karma at it): ``karma_of``'s cache.
        self._karma: tuple[bytes, np.ndarray] | None = None
        self._karma_lock = threading.Lock()

    @property
    def height(self) -> int:
        return self.header.height

    # --- validator sets --------------------------------------------------------
    def set_validators(self, vset: ValidatorSet) -> None:
        """The set of the next height (head + 1), with its proposer priorities."""
        self.validators = vset
        self.validators_hash = vset.hash()
        self.proposers = frozenset(v.address for v in vset.validators)

    def validators_at(self, height: int) -> ValidatorSet:
        """Members and powers of the set that decides ``height`` (1 .. head + 1)."""
        if not 1 <= height <= self.height + 1:
            raise UnknownBlockError(f"height {height} is outside 1..{self.height + 1}")
        return self.valsets.at(height)

    def recorded_set(self, height: int) -> ValidatorSet:
        """The recorded set that decides ``height``, unchecked: evidence is of
        past heights, and checks its own age (evidence_pool.py)."""
        return self.valsets.at(height)

    # --- focus upgrades ----------------------------------------------------------
    def focus_upgrade(self, height: int) -> FocusParams | None:
        """The focus parameters from block ``height`` on if a focus upgrade
        takes effect there (None otherwise); UpgradeNeededError, logged once,
        if this node cannot run them."""
        if height not in self.schedule:
            return None
        focus = focus_in_force(self.params.focus, self.schedule, height)
        try:
            return runnable_params(focus)
        except InvalidParameterError as exc:
            error = UpgradeNeededError(
                f"UPGRADE NEEDED at height {height}: the chain's focus algorithm changes there "
                f"({self.schedule[height]!r} over the previous one), and this focusflow "
                f"cannot run it ({exc.message}): install a version that does",
                height,
            )
        if self._upgrade_logged != height:
            self._upgrade_logged = height
            log.error(
                "upgrade needed: this node stops before the block",
                extra={"fields": {"height": height, "reason": error.message}},
            )
        raise error

    @property
    def upgrade_needed(self) -> UpgradeNeededError | None:
        """Why this node cannot process the next block (its height switches to a
        focus algorithm this code does not implement), or None."""
        try:
            self.focus_upgrade(self.height + 1)
        except UpgradeNeededError as exc:
            return exc
        return None

    def load_schedule(self, get: Callable[[bytes], bytes | None]) -> None:
        """The schedule in force: the genesis's and the committed decisions."""
        decided = decode_decided(get(UPGRADES_KEY))
        self.schedule = merge_schedule(genesis_schedule(self.params.focus_upgrades), decided)

    # --- what a block reads of its parent -----------------------------------------
    def focus_of(self, cid: bytes) -> int:
        """The head's committed focus of a particle (``BlockContext.focus_of``): a
        block always runs on top of the head, so this is its parent's focus."""
        found = self.focus.focus_of(cid)
        return 0 if found is None else found[0]

    def karma_of(self, address: bytes) -> int:
        """A neuron's karma at the head (``BlockContext.karma_of``), every
        neuron's computed once per head, on the first ask (``chain.karma``)."""
        with self._karma_lock:
            head = self.header.hash
            if self._karma is None or self._karma[0] != head:
                self._karma = (head, karma_fixed(self.focus.graph, self.focus.q))
            table = self._karma[1]
        i = self.focus.graph.neurons.get(address)
        return int(table[i]) if 0 <= i < len(table) else 0


__all__ = ["Tip"]
