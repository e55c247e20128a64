"""Fault injection for tests: one :class:`FaultPlan` names every fault a node can
be made to commit.

Production code never builds a plan: every place that takes one takes
``faults: FaultPlan | None = None``, and None means an honest node. Tests build
one and hand it to what they start:

* in one process, to ``NodeRuntime``/``ValidatorRuntime`` (``faults=``), or to a
  ``DAStore`` directly; the runtime passes it on to its DA store and the
  extensions read it from their host (``ExtensionHost.faults``);
* to a node process, as the hidden, tests-only option
  ``--fault-plan JSON`` of ``focusflow devnet`` and ``focusflow node start``
  (:meth:`FaultPlan.to_json`), or the environment variable
  ``FOCUSFLOW_FAULT_PLAN`` holding the same JSON, read only when it is set
  (a testnet's node processes inherit it).

The faults, each where it applies:

``da_withhold`` (``DAStore``)
    The fraction in ``[0, 1]`` of every committed data square's shares the node
    does not serve (rows and columns drawn from ``da_withhold_seed`` and the
    height; see ``DAStore``): a producer that publishes a header but withholds
    data.
``da_withhold_proposals`` (``DAStore``)
    Serve no share of a square not committed yet: a proposer that withholds its
    proposal's data, which the validators' sampling refuses.
``da_bad_encoding`` (``DANet``)
    Build the squares of blocks with transactions with a corrupted parity share,
    so the node commits a data root over a square that is not a valid encoding.
    The chain kernel builds squares without a node at hand, so this fault is
    process-wide (``chain.da_commit.set_bad_encoding``): a node turns it on when
    its ``DANet`` attaches; a test in one process uses :func:`bad_encoding`.
``blob_serve_corrupt`` (``BlobNet``)
    Serve every blob block with its first byte flipped: a holder that lies.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields

from focusflow.core.errors import InvalidParameterError

#: The environment variable a node process reads its plan from, when set.
FAULT_PLAN_ENV = "FOCUSFLOW_FAULT_PLAN"


@dataclass(frozen=True)
class FaultPlan:
    """The faults a node commits (module docstring); the defaults commit none."""

    da_withhold: float = 0.0
    da_withhold_seed: int = 0
    da_withhold_proposals: bool = False
    da_bad_encoding: bool = False
    blob_serve_corrupt: bool = False

    def __post_init__(self) -> None:
        withhold = self.da_withhold
        if (
            isinstance(withhold, bool)
            or not isinstance(withhold, int | float)
            or not 0.0 <= withhold <= 1.0
        ):
            raise InvalidParameterError(
                f"fault plan: da_withhold must be a fraction in [0, 1], got {withhold!r}"
            )
        object.__setattr__(self, "da_withhold", float(withhold))
        if isinstance(self.da_withhold_seed, bool) or not isinstance(self.da_withhold_seed, int):
            raise InvalidParameterError("fault plan: da_withhold_seed must be an integer")
        for name in ("da_withhold_proposals", "da_bad_encoding", "blob_serve_corrupt"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidParameterError(f"fault plan: {name} must be true or false")

    def to_json(self) -> str:
        """The plan as the JSON ``--fault-plan`` and ``FOCUSFLOW_FAULT_PLAN`` take."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        """The plan ``text`` names (a JSON object of the fields above, each optional);
        InvalidParameterError for anything else."""
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise InvalidParameterError(f"fault plan: not JSON ({e})") from None
        if not isinstance(doc, dict):
            raise InvalidParameterError("fault plan: must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise InvalidParameterError(f"fault plan: unknown faults {unknown}")
        return cls(**doc)


def fault_plan_option(text: str | None) -> FaultPlan | None:
    """The plan of a node command's hidden ``--fault-plan`` option (or of
    ``FOCUSFLOW_FAULT_PLAN``, which typer reads for it only when it is set);
    None, an honest node, where neither is given."""
    return FaultPlan.from_json(text) if text else None


@contextlib.contextmanager
def bad_encoding() -> Iterator[None]:
    """Tests only: within, this process builds badly encoded squares (the
    ``da_bad_encoding`` fault, for blocks produced in the test's own process)."""
    from focusflow.chain.da_commit import set_bad_encoding  # the chain kernel: loaded on use

    set_bad_encoding(True)
    try:
        yield
    finally:
        set_bad_encoding(False)


__all__ = ["FAULT_PLAN_ENV", "FaultPlan", "bad_encoding", "fault_plan_option"]
