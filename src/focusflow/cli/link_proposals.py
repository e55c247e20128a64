"""Proposed links a model wrote, read for a person to review and link.

A fine-tuned compiled model lists the (particle -> next particle) pairs it
finds likely and the graph does not link (``compile.finetune.implicit_links``,
written as ``from<TAB>to<TAB>probability`` with a header line). They are
proposals, never links: ``focusflow tx link --proposals FILE`` shows the ones
chosen (``--top``, ``--min-probability``) and links them in one transaction,
signed by the user's key, so their weight is that user's stake like any other
link. The file is input from a model or a peer, so it is bounded before it is
parsed and every line is checked: a bad line is refused with its number,
nothing is linked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from focusflow.core.errors import InputFileError, InvalidParameterError

#: The largest proposals file read (bytes) and the most proposals in it: far
#: above what one review covers, and bounded so a hostile file costs little.
MAX_PROPOSALS_BYTES = 16 << 20
MAX_PROPOSALS = 100_000
#: The header ``links_tsv`` writes.
HEADER = ("from", "to", "probability")


@dataclass(frozen=True)
class Proposal:
    """One proposed link: particle keys (CIDs or texts) and the model's probability."""

    source: str
    target: str
    probability: float


def read_proposals(
    path: str | Path, *, top: int | None = None, min_probability: float = 0.0
) -> list[Proposal]:
    """The proposals of ``path``, most probable first (ties in file order),
    those under ``min_probability`` dropped, at most ``top``.

    InputFileError names the file and, for a bad line, its number; a
    self-link, an empty key or a probability outside [0, 1] is a bad line.
    """
    if top is not None and top < 1:
        raise InvalidParameterError(f"--top must be at least 1, got {top}")
    if not (0.0 <= min_probability <= 1.0):
        raise InvalidParameterError(f"--min-probability must be in [0, 1], got {min_probability}")
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_PROPOSALS_BYTES + 1)
    except OSError as exc:
        raise InputFileError(f"cannot read proposals file {p}: {exc.strerror or exc}") from None
    if len(raw) > MAX_PROPOSALS_BYTES:
        raise InputFileError(f"proposals file {p} is larger than {MAX_PROPOSALS_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"proposals file {p} is not UTF-8 (byte {exc.start})") from None
    lines = text.splitlines()
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise InputFileError(
            f"proposals file {p} does not start with the header 'from<TAB>to<TAB>probability'"
        )
    if len(lines) - 1 > MAX_PROPOSALS:
        raise InputFileError(f"proposals file {p} has more than {MAX_PROPOSALS} proposals")
    found = [_parse(p, number, line) for number, line in enumerate(lines[1:], start=2) if line]
    kept = [x for x in found if x.probability >= min_probability]
    kept.sort(key=lambda x: -x.probability)
    return kept if top is None else kept[:top]


def _parse(path: Path, number: int, line: str) -> Proposal:
    fields = line.split("\t")
    if len(fields) != 3:
        raise InputFileError(f"{path} line {number}: {len(fields)} fields, not 3 (from, to, p)")
    source, target, prob = fields
    if not source or not target:
        raise InputFileError(f"{path} line {number}: an empty particle")
    if source == target:
        raise InputFileError(f"{path} line {number}: {source!r} -> {target!r} is a self-link")
    try:
        value = float(prob)
    except ValueError:
        raise InputFileError(
            f"{path} line {number}: probability {prob!r} is not a number"
        ) from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InputFileError(f"{path} line {number}: probability {prob} is not in [0, 1]")
    return Proposal(source, target, value)


__all__ = ["MAX_PROPOSALS", "MAX_PROPOSALS_BYTES", "Proposal", "read_proposals"]
