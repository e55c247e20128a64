"""Data-availability sampling: a light client's check that a block's square can be rebuilt.

To make a square unrecoverable, a producer must withhold at least
``(k+1)²`` of its ``(2k)²`` shares (fewer leave some row or column with ``k``
known shares, and the crossword repair proceeds; Al-Bassam et al., "Fraud and
data availability proofs", 2018). A uniformly drawn share is then withheld
with probability at least ``p_k = (k+1)² / (2k)² > 1/4``, so ``s`` samples all
succeed with probability at most ``(1 - p_k)^s``. The client reports

    confidence = 1 - (1 - p_k)^s

and, for a target confidence ``c``, draws ``s = ceil(ln(1-c) / ln(3/4))``
samples, which holds for every ``k`` (``p_k > 1/4``): 25 samples for 99.9 %.
Samples are distinct coordinates (drawing without replacement only helps).

The client is sans-io: ``Sampler`` yields the requests to make and takes the
answers; ``sample`` drives it with a caller-supplied fetch function (a REST
client, the network, or a test double).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256

from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.da.namespace import FOCUSFLOW_NAMESPACE
from focusflow.da.proofs import ShareProof, verify_share_proof

log = logging.getLogger("focusflow.da")

DEFAULT_CONFIDENCE = 0.999


def samples_for_confidence(confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Samples that catch an unrecoverable square with probability ``>= confidence``, any k."""
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"confidence must be in (0, 1), got {confidence}")
    return math.ceil(math.log(1 - confidence) / math.log(0.75))


DEFAULT_SAMPLES = samples_for_confidence(DEFAULT_CONFIDENCE)


def detection_probability(k: int, samples: int) -> float:
    """Lower bound on the chance that ``samples`` distinct draws hit a withheld share."""
    p = (k + 1) ** 2 / (2 * k) ** 2
    return 1.0 - (1.0 - min(p, 1.0)) ** samples


def share_id(namespace: bytes, row: int, col: int, height: int) -> bytes:
    """Content id of a share: ``SHA-256(namespace || row || col || height)``.

    ``row`` and ``col`` are 4-byte and ``height`` 8-byte big-endian integers.
    """
    return sha256(
        namespace + row.to_bytes(4, "big") + col.to_bytes(4, "big") + height.to_bytes(8, "big")
    ).digest()


@dataclass(frozen=True)
class SampleRequest:
    """One share a light client asks for."""

    height: int
    row: int
    col: int
    share_id: bytes


@dataclass(frozen=True)
class SamplingResult:
    """Verdict of one sampling round.

    ``available`` is true when every sample arrived and verified;
    ``confidence`` is ``detection_probability(k, len(samples))``, the strength
    of the test whatever its verdict; ``failed`` lists the coordinates that were
    missing or did not verify.
    """

    available: bool
    confidence: float
    samples: tuple[tuple[int, int], ...]
    failed: tuple[tuple[int, int], ...]


@dataclass
class Sampler:
    """State of one sampling round against a header's data root (sans-io)."""

    data_root: bytes
    width: int
    height: int
    samples: int = DEFAULT_SAMPLES
    namespace: bytes = FOCUSFLOW_NAMESPACE
    rng: random.Random = field(default_factory=random.SystemRandom)
    _pending: dict[tuple[int, int], SampleRequest] = field(default_factory=dict, init=False)
    _coords: list[tuple[int, int]] = field(default_factory=list, init=False)
    _failed: list[tuple[int, int]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.width < 2 or self.width & (self.width - 1):
            raise InvalidParameterError(f"square width {self.width} is not 2k, k a power of 2")
        if self.samples < 1:
            raise InvalidParameterError("at least one sample is needed")
        count = min(self.samples, self.width * self.width)
        for flat in self.rng.sample(range(self.width * self.width), count):
            row, col = divmod(flat, self.width)
            self._coords.append((row, col))
            self._pending[(row, col)] = SampleRequest(
                self.height, row, col, share_id(self.namespace, row, col, self.height)
            )

    def requests(self) -> list[SampleRequest]:
        """The samples still to fetch."""
        return list(self._pending.values())

    def receive(self, request: SampleRequest, proof: ShareProof | None) -> bool:
        """Record the answer to ``request`` (``None``: not served); whether it verified."""
        coord = (request.row, request.col)
        if self._pending.pop(coord, None) is None:
            raise InvalidParameterError(f"no pending sample at {coord}")
        ok = (
            proof is not None
            and (proof.row, proof.col) == coord
            and proof.width == self.width
            and verify_share_proof(self.data_root, proof)
        )
        if not ok:
            self._failed.append(coord)
        return ok

    def result(self) -> SamplingResult:
        """The verdict; samples never answered count as failed."""
        failed = self._failed + list(self._pending)
        return SamplingResult(
            available=not failed,
            confidence=detection_probability(self.width // 2, len(self._coords)),
            samples=tuple(self._coords),
            failed=tuple(failed),
        )


Fetch = Callable[[SampleRequest], ShareProof | None]


def sample(
    data_root: bytes,
    width: int,
    height: int,
    fetch: Fetch,
    samples: int = DEFAULT_SAMPLES,
    rng: random.Random | None = None,
) -> SamplingResult:
    """Run one sampling round, fetching each share with ``fetch``.

    ``fetch`` returns the share's proof, or ``None`` when the node does not
    serve it. A share it cannot get counts as missing when ``fetch`` raises
    ``OSError`` (the transport: connection refused or reset, a timeout) or a
    ``FocusflowError`` (the node refused or answered something malformed);
    any other exception is a bug in ``fetch`` and propagates.
    """
    sampler = Sampler(data_root, width, height, samples, rng=rng or random.SystemRandom())
    for request in sampler.requests():
        try:
            proof = fetch(request)
        except (OSError, FocusflowError) as exc:
            log.info(
                "share (%d, %d) of block %d not fetched: %s: %s",
                request.row,
                request.col,
                height,
                type(exc).__name__,
                exc,
            )
            proof = None
        sampler.receive(request, proof)
    return sampler.result()
