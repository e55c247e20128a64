"""A transformer compiled from the graph: d*, h*, L* and weights from its focus.

``compile_to(graph, DIR)`` writes ``DIR/model.onnx``, ``DIR/vocab.tsv`` and
``DIR/report.json``; ``CompiledModel.load(DIR).predict(indices)`` runs it.
docs/compile.md gives the formulas, the forward pass and its limits. Names
load on first use, so that the runner does not pull in the focus engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from focusflow.core.lazy import lazy_names

_WHERE = {
    "CompileOptions": "pipeline",
    "Compiled": "pipeline",
    "compile_graph": "pipeline",
    "compile_to": "pipeline",
    "CompiledModel": "runner",
    "CompiledWeights": "weights",
    "forward_numpy": "forward",
    "randomized_svd": "svd",
}

if TYPE_CHECKING:
    from focusflow.compile.forward import forward_numpy
    from focusflow.compile.pipeline import Compiled, CompileOptions, compile_graph, compile_to
    from focusflow.compile.runner import CompiledModel
    from focusflow.compile.svd import randomized_svd
    from focusflow.compile.weights import CompiledWeights

__getattr__ = lazy_names(__name__, _WHERE)

__all__ = [
    "CompileOptions",
    "Compiled",
    "CompiledModel",
    "CompiledWeights",
    "compile_graph",
    "compile_to",
    "forward_numpy",
    "randomized_svd",
]
