"""Block sync's checks: which claimed heights to believe, and how often to answer.

A peer's ``status`` answer is ``[height, certificate]``: its committed height
and the commit certificate of that block (None at genesis). A claim above our
own height is believed only when the certificate commits that height and its
signatures (each verified) come from members of the validator set this node
knows holding more than 1/3 of its power: at least one validator we trust
signed it, so the height exists. The set may have changed since the height we
know, hence 1/3 (the light-client trust level) and not 2/3, and non-members'
signatures are skipped rather than refused; every block fetched is then
checked in full, certificate and roots, by :meth:`Chain.apply_block`. A claim
without such a certificate is a lie the claimant is penalised for.

Status is served at most ``STATUS_RATE`` times a second per peer (a burst of
``STATUS_BURST``); more is answered ``rate_limited``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from focusflow.chain.errors import UnknownBlockError
from focusflow.consensus import ValidatorSet
from focusflow.consensus.certificate import CommitCertificate, decode_certificate
from focusflow.consensus.messages import Step, vote_sign_bytes
from focusflow.consensus.validators import has_one_third
from focusflow.core.errors import DecodeError
from focusflow.core.keys import verify
from focusflow.net.errors import NetError, RemoteError

#: Status answers served per second per peer, and the burst allowed.
STATUS_RATE = 4.0
STATUS_BURST = 8.0


class ClaimError(Exception):
    """A status answer does not prove the height it claims."""


def parse_status(value: object) -> tuple[int, bytes | None, int]:
    """``(height, certificate bytes, base)`` of a decoded status answer; ClaimError
    if malformed. ``base`` is the height below which the peer holds no blocks (a
    node that started from a snapshot of that height; 0: it has them all), so a
    node that needs older blocks does not ask it, nor blame it for not serving them."""
    if not isinstance(value, list) or len(value) != 3:
        raise ClaimError("status is not [height, certificate, base]")
    height, cert, base = value
    if not isinstance(height, int) or isinstance(height, bool) or height < 0:
        raise ClaimError(f"status height {height!r} is not a height")
    if cert is not None and not isinstance(cert, bytes):
        raise ClaimError("status certificate is not bytes")
    if not isinstance(base, int) or isinstance(base, bool) or not 0 <= base <= height:
        raise ClaimError(f"status base {base!r} is not a height from 0 to {height}")
    return height, cert, base


def check_claim(height: int, cert_bytes: bytes | None, vset: ValidatorSet, chain_id: str) -> None:
    """Return if ``cert_bytes`` backs a claim of ``height`` (see the module
    docstring); ClaimError says why not."""
    if cert_bytes is None:
        raise ClaimError(f"height {height} claimed without a commit certificate")
    try:
        cert = decode_certificate(cert_bytes)
    except DecodeError as exc:
        raise ClaimError(f"undecodable certificate: {exc}") from None
    if cert.height != height:
        raise ClaimError(f"certificate is for height {cert.height}, not the claimed {height}")
    power = trusted_power(cert, vset, chain_id)
    if not has_one_third(power, vset.total_power):
        raise ClaimError(
            f"certificate of height {height}: known validators with {power} of "
            f"{vset.total_power} power signed it, not more than 1/3"
        )


def trusted_power(cert: CommitCertificate, vset: ValidatorSet, chain_id: str) -> int:
    """Power of ``vset``'s members whose precommit in ``cert`` verifies (each counted
    once); a bad signature of a member is a forged certificate (ClaimError)."""
    message = vote_sign_bytes(chain_id, cert.height, cert.round, Step.PRECOMMIT, cert.value_id)
    power, seen = 0, set()
    for s in cert.signatures:
        weight = vset.power_of(s.public_key)
        if weight == 0 or s.public_key in seen:
            continue
        if not verify(s.public_key, s.signature, message):
            raise ClaimError(f"bad precommit signature of {s.public_key.hex()[:16]}")
        seen.add(s.public_key)
        power += weight
    return power


class RateLimiter:
    """A token bucket per peer: ``rate`` per second, bursts of ``burst``."""

    #: Peers remembered before idle buckets (full again) are forgotten.
    PRUNE_AT = 1024

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[bytes, tuple[float, float]] = {}

    def allow(self, peer: bytes) -> bool:
        """Take a token for ``peer``; False when its bucket is empty."""
        now = self._clock()
        tokens, at = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if len(self._buckets) >= self.PRUNE_AT:
            full = now - self.burst / self.rate
            self._buckets = {p: v for p, v in self._buckets.items() if v[1] > full}
        if tokens < 1.0:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - 1.0, now)
        return True


__all__ = [
    "STATUS_BURST",
    "STATUS_RATE",
    "ClaimError",
    "RateLimiter",
    "check_claim",
    "parse_status",
    "trusted_power",
]


def sync_refusal_is_a_lie(exc: NetError) -> bool:
    """Whether a peer's failure to serve a block it claimed to have is its fault.

    It claimed a height with a certificate, so "unknown block" below that
    height is a lie. A busy peer, a store installed from a snapshot that never
    held the block (``block_not_kept``), a handler that failed, and a timeout
    (which costs the peer already, as an unanswered request) are not: the
    syncing node backs off and asks another.
    """
    return isinstance(exc, RemoteError) and exc.remote_code == UnknownBlockError.code
