"""Running a compiled model directory with onnxruntime.

``CompiledModel.load(DIR)`` opens ``DIR/model.onnx`` and ``DIR/vocab.tsv``;
``predict`` takes vocabulary indices (and optional semcon factors, from
``factors``: the same ``{name: weight}`` and ``others`` rules as focus-flow
inference) and returns next-particle probabilities.
Every bad input is refused before the runtime sees it, with an
:class:`InvalidParameterError` that says what and where: onnxruntime would
read an out-of-range index as a crash or as garbage, and an all-padding row
would silently come back as the global focus.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from focusflow.core.errors import InputFileError, InvalidParameterError
from focusflow.graph.semcons import SemconNames

if TYPE_CHECKING:
    import onnxruntime as ort  # imported when a model is opened, not with the module

MODEL_FILE = "model.onnx"
VOCAB_FILE = "vocab.tsv"
REPORT_FILE = "report.json"
PADDING = -1
FACTORS_INPUT = "semcons"


def read_vocab(path: str | Path) -> list[str]:
    """Particle keys by row index from ``vocab.tsv`` (``index<TAB>key`` lines)."""
    path = Path(path)
    keys: list[str] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                index, _, key = line.rstrip("\n").partition("\t")
                if index != str(len(keys)) or not key:
                    raise InputFileError(f"{path}:{line_no}: expected '{len(keys)}<TAB>key'")
                keys.append(key)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror}") from None
    return keys


def write_vocab(path: str | Path, keys: list[str]) -> None:
    """Write ``index<TAB>key`` lines; keys may not hold tabs or newlines."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for i, key in enumerate(keys):
            if "\t" in key or "\n" in key:
                raise InvalidParameterError(f"particle key {key!r} holds a tab or newline")
            fh.write(f"{i}\t{key}\n")


def check_batch(particles: npt.ArrayLike, vocab: int) -> np.ndarray:
    """``particles`` as an int64 [batch, seq] array, refused unless every index is
    ``-1`` (padding) or in ``[0, vocab)`` and every row has a particle."""
    arr = np.asarray(particles)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidParameterError(
            f"particles must be a non-empty [batch, seq] array of indices, got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise InvalidParameterError(f"particle indices must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < PADDING) | (arr >= vocab)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidParameterError(
            f"particle index {int(arr[row, col])} at [{row}, {col}] is out of range: "
            f"use 0..{vocab - 1}, or -1 for padding"
        )
    empty = ~(arr >= 0).any(axis=1)
    if empty.any():
        raise InvalidParameterError(
            f"context row {int(np.flatnonzero(empty)[0])} holds only padding: "
            "give at least one particle"
        )
    return arr


def check_factors(factors: npt.ArrayLike, count: int) -> np.ndarray:
    """Semcon ``factors`` as float32 [count], refused unless finite, >= 0 and
    not all 0 (a query that weighs every relation at 0 has no exact hop)."""
    arr = np.asarray(factors, dtype=np.float64)
    if arr.shape != (count,):
        raise InvalidParameterError(
            f"semcon factors must be {count} numbers (one per semcon), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or (arr < 0).any():
        raise InvalidParameterError("semcon factors must be finite and >= 0")
    if not (arr > 0).any():
        raise InvalidParameterError("semcon factors are all 0: weigh at least one semcon above 0")
    return arr.astype(np.float32)


def _semcons_of(
    directory: Path, session: ort.InferenceSession, report: dict[str, Any]
) -> SemconNames:
    """The semcon names of a model: its ``semcons`` input (a graph input with a
    default, which onnxruntime lists among overridable initializers) in
    report.json's order."""
    inputs = {i.name: i for i in session.get_inputs()}
    inputs.update({i.name: i for i in session.get_overridable_initializers()})
    listed = report.get("semcons")
    if FACTORS_INPUT not in inputs or listed is None:
        return SemconNames(())
    count = inputs[FACTORS_INPUT].shape[0]
    if len(listed) != count:
        raise InputFileError(
            f"{directory}: report.json lists {len(listed)} semcons, the model weighs {count}"
        )
    return SemconNames(listed)


@dataclass
class CompiledModel:
    """A compiled model directory opened for inference."""

    directory: Path
    keys: list[str]
    #: report.json as read (any JSON object: a model may come from an older compile).
    report: dict[str, Any]
    session: ort.InferenceSession
    #: The relation types the ``semcons`` input weighs, in order (none for a
    #: model compiled before it had that input).
    semcons: SemconNames

    @classmethod
    def load(cls, directory: str | Path, threads: int | None = None) -> CompiledModel:
        """Open ``directory`` (``model.onnx``, ``vocab.tsv``, ``report.json`` if present)."""
        import onnxruntime as ort

        directory = Path(directory)
        model = directory / MODEL_FILE
        if not model.is_file():
            raise InputFileError(f"{model}: no such file (run focusflow compile first)")
        keys = read_vocab(directory / VOCAB_FILE)
        report_path = directory / REPORT_FILE
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        options = ort.SessionOptions()
        # Errors only: onnxruntime warns that the semcons input has a default
        # (an initializer that is also an input), which is the design.
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        vocab = session.get_outputs()[0].shape[1]
        if vocab != len(keys):
            raise InputFileError(
                f"{directory}: model has {vocab} outputs but vocab.tsv {len(keys)} rows"
            )
        return cls(directory, keys, report, session, _semcons_of(directory, session, report))

    @property
    def vocab(self) -> int:
        return len(self.keys)

    def factors(
        self, weights: Mapping[str, float] | None, others: float | None = None
    ) -> np.ndarray | None:
        """Semcon factors for ``{name: weight}`` and ``others`` (the rules of
        :meth:`SemconNames.factors`); None when every factor is 1."""
        if weights or (others is not None and others != 1.0):
            self._require_semcon_input()
        return self.semcons.factors(weights, others)

    def _require_semcon_input(self) -> None:
        if not len(self.semcons):
            raise InvalidParameterError(
                f"{self.directory}: this model has no semcon input (compiled before it "
                "had one): compile it again to weigh semcons"
            )

    def index_of(self, key: str) -> int:
        """The row index of a particle key (InvalidParameterError when absent)."""
        table: dict[str, int] | None = getattr(self, "_index", None)
        if table is None:
            table = {k: i for i, k in enumerate(self.keys)}
            self._index = table
        if key not in table:
            raise InvalidParameterError(f"particle {key!r} is not in the model's vocabulary")
        return table[key]

    def predict(self, particles: npt.ArrayLike, factors: npt.ArrayLike | None = None) -> np.ndarray:
        """Next-particle probabilities, float32 [batch, vocab], each row summing
        to 1; ``factors`` (one per semcon, see :meth:`factors`) weigh the hops."""
        feed = {"particles": check_batch(particles, self.vocab)}
        if factors is not None:
            self._require_semcon_input()
            feed[FACTORS_INPUT] = check_factors(factors, len(self.semcons))
        # onnxruntime ships no types: run answers a list of numpy arrays, one per output.
        probs: np.ndarray = self.session.run(None, feed)[0]
        return probs
