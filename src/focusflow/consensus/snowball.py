"""Snowball's counters for one decision, and Snowman's parameters and their risk.

Snowball is the counting rule of "Scalable and Probabilistic Leaderless BFT
Consensus through Metastability" (Team Rocket et al., 2019/2020), as avalanchego
runs it: after each poll of ``k`` sampled validators,

- a choice named by at least ``alpha_preference`` answers gains one unit of
  preference strength, and becomes the preference once its strength exceeds the
  current preference's (a tie keeps it; the first choice heard of is the first
  preference);
- a choice named by at least ``alpha_confidence`` answers extends the run of
  consecutive successful polls when it is the same choice as the last success
  (else the run restarts at 1); any poll without such a choice resets the run;
- a run of ``beta`` successes finalizes that choice.

One addition of ours, for liveness: a poll in which no choice reaches
``alpha_preference`` moves the preference (not the strength, not the
confidence) to the poll's plurality when more answers named it than named the
preference, or as many and it ranks better (the proposal's slot, then its value
id). With a set no larger than ``k`` every poll asks everyone, so no sampling
noise breaks a split: among four, two against two, or two against one with one
crashed, never reaches 3 of 4, and nothing would ever move (seeded schedules
stalled so). Rank is used only there, on a poll's evidence: breaking ties by
rank on no evidence (a choice heard of later but ranked better replacing a
preference that had no strength yet) made validators change their answers
under a poller's feet, and with beta = 5 among four, two finalized different
values (seeded schedules with an equivocating proposer found it). Finalizing
still takes ``beta`` polls in a row of ``alpha_confidence`` answers, which is
all the safety figures count.

This module holds no network or signatures: :class:`Snowball` is a pure counter
(tested against a direct transcription of the rule), :class:`SnowmanParams`
validates parameters, and :func:`failure_probability` evaluates their risk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from focusflow.core.errors import InvalidParameterError


@dataclass(frozen=True)
class SnowmanParams:
    """Polling parameters (avalanchego's mainnet values by default).

    ``k`` validators are sampled per poll (by stake, without replacement);
    ``alpha_preference`` and ``alpha_confidence`` are the answer counts that move
    the preference and extend confidence, ``beta`` the consecutive confident
    polls that finalize. ``concurrent_polls`` polls run at once (avalanchego's
    concurrent repolls); ``poll_timeout`` and ``propose_timeout`` are seconds of the
    host's clock. ``poll_timeout`` is where a poll's timer starts: an answer
    that comes after its poll's timer doubles it for the next polls, up to
    ``poll_timeout_max``, and each poll that ends before its timer takes 1% off
    again, down to ``poll_timeout`` (a loaded machine or network answers later
    than an idle one; a fixed timer there kept every poll short of a quorum and
    the height undecided). With no more than ``k`` validators every poll asks all of them
    (:meth:`effective`): ``alpha_confidence`` scales down in proportion, rounded
    up, but never above the quorum ``n - f`` (``f = (n - 1) // 3``), and
    ``alpha_preference`` becomes a bare majority. Two polls of everyone that reach
    ``n - f`` share ``n - 2f > f`` answers, as Tendermint's quorums do, so the cap
    keeps the static safety argument and makes Snowman live with ``f`` of ``n``
    down, as Tendermint is: the proportional 3/4 asked 6 of 7 and stalled with 2
    of 7 crashed. A poll of everyone has no sampling noise, so a split such as
    three against three with a liar among seven would never move under a
    preference quorum of 6 of 7 (3/4, rounded up); a majority lets the liar's or
    a late node's answers tip it, and Snowball's strength counters then pull the
    split together.
    """

    k: int = 20
    alpha_preference: int = 15
    alpha_confidence: int = 15
    beta: int = 20
    concurrent_polls: int = 4
    poll_timeout: float = 0.2
    propose_timeout: float = 0.3
    poll_timeout_max: float = 3.2

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidParameterError(f"snowman k must be >= 1, not {self.k}")
        if not self.k / 2 < self.alpha_preference <= self.alpha_confidence <= self.k:
            raise InvalidParameterError(
                "snowman thresholds need k/2 < alpha_preference <= alpha_confidence <= k, "
                f"not k={self.k} alpha_preference={self.alpha_preference} "
                f"alpha_confidence={self.alpha_confidence}"
            )
        if self.beta < 1 or self.concurrent_polls < 1:
            raise InvalidParameterError("snowman beta and concurrent_polls must be >= 1")
        if self.poll_timeout <= 0 or self.propose_timeout <= 0:
            raise InvalidParameterError("snowman timeouts must be positive")
        if self.poll_timeout_max < self.poll_timeout:
            raise InvalidParameterError(
                f"snowman poll_timeout_max ({self.poll_timeout_max}) is below "
                f"poll_timeout ({self.poll_timeout})"
            )

    def effective(self, validators: int) -> tuple[int, int, int]:
        """(k, alpha_preference, alpha_confidence) for a set of ``validators``."""
        if validators > self.k:
            return self.k, self.alpha_preference, self.alpha_confidence
        k = validators
        ap = k // 2 + 1
        quorum = k - (k - 1) // 3
        ac = min(math.ceil(self.alpha_confidence * k / self.k), quorum)
        return k, ap, max(ac, ap)


class Snowball:
    """Counters of one Snowball instance; choices are value ids."""

    def __init__(self, alpha_preference: int, alpha_confidence: int, beta: int) -> None:
        self.alpha_preference = alpha_preference
        self.alpha_confidence = alpha_confidence
        self.beta = beta
        self.preference: bytes | None = None
        self.strength: dict[bytes, int] = {}
        self.rank: dict[bytes, tuple[int, bytes]] = {}
        self.last: bytes | None = None  # the choice of the current confident run
        self.confidence = 0
        self.polls = 0
        self.finalized: bytes | None = None

    def add(self, choice: bytes, rank: int = 0) -> None:
        """A new valid choice of rank ``rank`` (its slot; lower is better)."""
        if choice in self.strength:
            return
        self.strength[choice] = 0
        self.rank[choice] = (rank, choice)
        if self.preference is None:
            self.preference = choice

    def _better(self, a: bytes, b: bytes) -> bool:
        return self.strength[a] > self.strength[b]

    def _nudge(self, counts: Mapping[bytes, int]) -> None:
        """A poll without a preferred choice: follow its plurality (ours, below)."""
        known = [c for c in counts if c in self.strength]
        if not known or self.preference is None:
            return
        top = min(known, key=lambda c: (-counts[c], self.rank[c]))
        mine = counts.get(self.preference, 0)
        if counts[top] > mine or (
            counts[top] == mine and self.rank[top] < self.rank[self.preference]
        ):
            self.preference = top

    def record(self, counts: Mapping[bytes, int]) -> None:
        """One finished poll: ``counts[choice]`` answers named each known choice."""
        if self.finalized is not None:
            return
        self.polls += 1
        best = max(
            (c for c in counts if c in self.strength), key=lambda c: (counts[c], c), default=None
        )
        if best is None or counts[best] < self.alpha_preference:
            self.confidence = 0
            self._nudge(counts)
            return
        self.strength[best] += 1
        assert self.preference is not None
        if self._better(best, self.preference):
            self.preference = best
        if counts[best] < self.alpha_confidence:
            self.confidence = 0
            return
        if best == self.last:
            self.confidence += 1
        else:
            self.last, self.confidence = best, 1
        if self.confidence >= self.beta:
            self.finalized = best


def poll_success_probability(total: int, agreeing: int, k: int, alpha: int) -> float:
    """P[at least ``alpha`` of ``k`` drawn without replacement from ``total`` agree].

    Exact hypergeometric tail in rationals (``math.comb``), so the figure does not
    depend on a floating-point library.
    """
    if not 0 <= agreeing <= total or not 0 < k <= total:
        raise InvalidParameterError("need 0 <= agreeing <= total and 0 < k <= total")
    hits = sum(
        math.comb(agreeing, i) * math.comb(total - agreeing, k - i)
        for i in range(alpha, min(k, agreeing) + 1)
    )
    return hits / math.comb(total, k)


def failure_probability(params: SnowmanParams, validators: int, byzantine: int) -> dict[str, float]:
    """Two risk figures for ``validators`` equal-stake validators, ``byzantine`` of them lying.

    - ``byzantine_only``: honest validators all prefer v; the liars answer w to
      every poll of one victim. The victim finalizes w only if ``beta`` polls in
      a row each draw at least ``alpha_confidence`` liars:
      ``P[Hyp >= alpha_c]^beta``. (This is the attack that breaks a single poller;
      it is exact for the sampling here.)
    - ``split``: the honest validators are split, a share x preferring v and the
      rest w, and the liars answer each victim whatever helps; two victims
      finalize different values only if one sees ``beta`` confident polls for v and
      the other ``beta`` for w. The figure is the worst x of
      ``P_v(x)^beta * P_w(x)^beta``, which holds the split still while both run; it
      is a static-split estimate in the spirit of the paper's analysis, not its
      full bound over the dynamics (which the paper evaluates numerically).
    """
    k, _, ac = params.effective(validators)
    honest = validators - byzantine
    byz_only = poll_success_probability(validators, byzantine, k, ac) ** params.beta
    worst = 0.0
    for x in range(honest + 1):
        pv = poll_success_probability(validators, byzantine + x, k, ac)
        pw = poll_success_probability(validators, byzantine + honest - x, k, ac)
        worst = max(worst, (pv * pw) ** params.beta)
    return {"byzantine_only": byz_only, "split": worst}
