"""The compiled model's unembedding product in float32 against int8 weights.

The compiled WordNet model spends most of a 1x16 forward pass in one product,
``z @ V^T`` (73 x 264,965 float32: 77 MB read per query). This script times
that product alone in onnxruntime, as float32 ``MatMul`` and as int8 weights
with per-column scales behind standard ONNX ops (``DynamicQuantizeLinear`` +
``MatMulInteger``), on random weights of the same shape, and prints the ratio
and the int8 product's largest error relative to the largest entry.

Run from the repository root::

    python bench/onnx_unembed.py [--dim 73] [--vocab 264965] [--runs 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper
from onnx import numpy_helper as nh


def session(nodes, inits, dim: int, vocab: int) -> ort.InferenceSession:
    inp = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, dim])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, vocab])
    graph = helper.make_graph(nodes, "unembed", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def timed(s: ort.InferenceSession, z: np.ndarray, runs: int) -> float:
    s.run(None, {"z": z})
    t = time.perf_counter()
    for _ in range(runs):
        s.run(None, {"z": z})
    return (time.perf_counter() - t) / runs * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=73)
    ap.add_argument("--vocab", type=int, default=264_965)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((args.dim, args.vocab)) * 0.01).astype(np.float32)
    scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
    wq = np.round(w / scale).astype(np.int8)
    f32 = session(
        [helper.make_node("MatMul", ["z", "W"], ["y"])], [nh.from_array(w, "W")], *w.shape
    )
    i8 = session(
        [
            helper.make_node("DynamicQuantizeLinear", ["z"], ["zq", "zs", "zz"]),
            helper.make_node("MatMulInteger", ["zq", "Wq", "zz"], ["acc"]),
            helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["zs", "cs"], ["s"]),
            helper.make_node("Mul", ["accf", "s"], ["y"]),
        ],
        [nh.from_array(wq, "Wq"), nh.from_array(scale, "cs")],
        *w.shape,
    )
    z = rng.standard_normal((1, args.dim)).astype(np.float32)
    rounds = [(timed(f32, z, args.runs), timed(i8, z, args.runs)) for _ in range(2)]
    yf = f32.run(None, {"z": z})[0]
    yq = i8.run(None, {"z": z})[0]
    print(f"z @ V^T, {args.dim} x {args.vocab}, {args.runs} runs per round")
    for k, (a, b) in enumerate(rounds, 1):
        print(f"  round {k}: float32 {a:.2f} ms  int8 {b:.2f} ms  float32/int8 {a / b:.2f}")
    print(f"  int8 max error / max |y|: {np.abs(yf - yq).max() / np.abs(yf).max():.4f}")


if __name__ == "__main__":
    main()
