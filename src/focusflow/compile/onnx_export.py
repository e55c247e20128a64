"""The forward pass of ``forward.py`` as an ONNX graph, built with ``onnx.helper``.

Signature: input ``particles`` int64 [batch, seq] (vocabulary indices, -1 =
padding), output ``next`` float32 [batch, vocab] (probabilities, rows sum to
1). A second input, ``semcons`` float32 [semcons] (one factor per relation
type, in report.json's ``semcons`` order), weighs the exact hops the way
focus-flow inference weighs links; it is also an initializer of ones, so a
caller that feeds only ``particles`` gets every relation at 1. The L layers
are unrolled (their weights are shared initializers), so any runtime that runs
opset 17 runs the model; nothing but onnxruntime is needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from focusflow.compile.forward import MASKED, TINY
from focusflow.compile.weights import CompiledWeights

OPSET = 17
#: Models with more weight bytes keep them in a file beside ``model.onnx``,
#: written as they are built. Protobuf refuses messages of 2 GiB, and building
#: one in memory holds about three copies of the weights (every message handed
#: to ``make_graph`` and ``make_model`` is copied): 3.8 GB extra at R-MAT 20.
EXTERNAL_ABOVE = 256 << 20
#: In a model with external weights, initializers from this size on go to the
#: data file, each at an offset aligned for memory mapping.
EXTERNAL_MIN = 1 << 16
EXTERNAL_ALIGN = 4096
DATA_SUFFIX = ".data"
INPUT = "particles"
FACTORS = "semcons"
OUTPUT = "next"
#: What an ONNX node attribute holds here: an axis or flag, a type, a mode, a permutation.
Attribute = int | float | str | list[int]


class _Builder:
    """Nodes and initializers with generated names.

    With ``sink`` (an open binary file named ``location`` beside the model),
    initializers of ``EXTERNAL_MIN`` bytes or more are written there as they
    are made and the model only points at them: a 3·10^6-particle model's
    weights are 3.4 GB, and protobuf copies every message it is handed
    (``make_graph``, ``make_model``), so building them in memory held three
    copies and could not be sized or saved past 2 GiB.
    """

    def __init__(self, sink: BinaryIO | None = None, location: str = "") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self._sink = sink
        self._location = location

    def const(self, name: str, value: np.ndarray) -> str:
        arr = np.asarray(value)
        if self._sink is None or arr.nbytes < EXTERNAL_MIN:
            self.inits.append(numpy_helper.from_array(arr, name))
            return name
        offset = self._sink.seek(0, 2)
        pad = -offset % EXTERNAL_ALIGN
        if pad:
            self._sink.write(bytes(pad))
            offset += pad
        self._sink.write(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).data)
        tensor = onnx.TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
        tensor.dims.extend(arr.shape)
        tensor.data_location = TensorProto.EXTERNAL
        refs = (("location", self._location), ("offset", offset), ("length", arr.nbytes))
        for field_name, field_value in refs:
            entry = tensor.external_data.add()
            entry.key, entry.value = field_name, str(field_value)
        self.inits.append(tensor)
        return name

    def scalar(self, value: float | np.floating[Any]) -> str:
        self._n += 1
        return self.const(f"c{self._n}", np.asarray(value, dtype=np.float32))

    def ints(self, *values: int) -> str:
        self._n += 1
        return self.const(f"i{self._n}", np.asarray(values, dtype=np.int64))

    def op(self, kind: str, *inputs: str, out: str | None = None, **attrs: Attribute) -> str:
        self._n += 1
        name = out or f"t{self._n}_{kind.lower()}"
        node = helper.make_node(kind, list(inputs), [name])
        # Added as make_node adds its **kwargs (sorted by name), but apart from
        # them: there an attribute could be taken for one of its own keywords
        # (name, domain, ...).
        node.attribute.extend(helper.make_attribute(k, v) for k, v in sorted(attrs.items()))
        self.nodes.append(node)
        return name


def _hop_levels(b: _Builder, w: CompiledWeights, idx: str) -> list[tuple[str, str]]:
    """The graph of ``forward.hop_levels``: per exact step, targets (int64) and
    probabilities, each (batch, seq, r^k)."""
    if w.hops == 0:
        return []
    hop_idx = b.const("hop_idx", w.hop_idx)
    hop_p = b.const("hop_p", w.hop_p)
    hop_sem = b.const("hop_sem", w.hop_sem)
    hop_rest = b.const("hop_rest", w.hop_rest)
    last = b.ints(-1)
    fsum = b.op("ReduceSum", FACTORS, b.ints(0), keepdims=0)
    fbar = b.op("Div", fsum, b.scalar(float(w.n_semcons)))
    shape3 = b.ints(0, 0, -1)
    out = []
    rows, prob = idx, None
    for _ in range(w.hops):
        to = b.op("Cast", b.op("Gather", hop_idx, rows, axis=0), to=TensorProto.INT64)
        pr = b.op(
            "Mul",
            b.op("Gather", hop_p, rows, axis=0),
            b.op("Gather", FACTORS, b.op("Gather", hop_sem, rows, axis=0), axis=0),
        )
        rest = b.op("Mul", b.op("Unsqueeze", b.op("Gather", hop_rest, rows, axis=0), last), fbar)
        norm = b.op("Add", b.op("ReduceSum", pr, last, keepdims=1), rest)
        pr = b.op("Div", pr, b.op("Max", norm, b.scalar(TINY)))
        prob = pr if prob is None else b.op("Mul", b.op("Unsqueeze", prob, last), pr)
        rows = to
        out.append((b.op("Reshape", to, shape3), b.op("Reshape", prob, shape3)))
    return out


def build_model(  # noqa: PLR0915 - builds the ONNX graph node by node, in order
    w: CompiledWeights, sink: BinaryIO | None = None, location: str = ""
) -> onnx.ModelProto:
    """The ONNX model of ``w``'s forward pass (large weights into ``sink``, named
    ``location`` in the model, when given)."""
    b = _Builder(sink, location)
    f32 = np.float32
    emb_att = b.const("emb_att", w.emb_att)
    emb_in = b.const("emb_in", w.emb_in)
    unemb = b.const("unemb", w.unemb)
    phi = b.const("phi_floor", (f32(w.floor) * w.phi)[None, :])
    w_q = b.const("w_q", w.w_q)
    w_k = b.const("w_k", w.w_k)
    share = b.const("head_share", w.head_share.reshape(1, -1, 1, 1))
    prop_t = b.const("prop_t", w.prop_t)
    mass = b.const("basis_mass", w.basis_mass.reshape(-1, 1))
    one, zero = b.scalar(1.0), b.scalar(0.0)
    alpha, gamma = b.scalar(w.alpha), b.scalar(w.attention_share)
    axis1, axis_last = b.ints(1), b.ints(3)

    valid = b.op("GreaterOrEqual", INPUT, b.const("zero_i", np.asarray(0, dtype=np.int64)))
    idx = b.op("Where", valid, INPUT, "zero_i")
    vf = b.op("Cast", valid, to=TensorProto.FLOAT)
    count = b.op("Max", b.op("ReduceSum", vf, axis1, keepdims=1), one)
    u = b.op("Div", vf, count)
    x = b.op("Unsqueeze", b.op("Gather", emb_att, idx, axis=0), axis1)
    e_in = b.op("Gather", emb_in, idx, axis=0)

    # Attention, once: (batch, heads, seq, seq) logits, masked, plus a sink of logit 0.
    q = b.op("MatMul", x, w_q)
    keys_t = b.op("Transpose", b.op("MatMul", x, w_k), perm=[0, 1, 3, 2])
    logits = b.op("Div", b.op("MatMul", q, keys_t), b.scalar(math.sqrt(w.dim)))
    seq = b.op("Gather", b.op("Shape", INPUT), b.const("one_i", np.asarray(1, dtype=np.int64)))
    r = b.op("Range", "zero_i", seq, "one_i")
    eye = b.op("Equal", b.op("Unsqueeze", r, axis1), b.op("Unsqueeze", r, b.ints(0)))
    key_ok = b.op("And", b.op("Unsqueeze", valid, b.ints(1, 2)), b.op("Not", eye))
    logits = b.op("Where", key_ok, logits, b.scalar(MASKED))
    att_sink = b.op("Mul", b.op("Slice", logits, b.ints(0), b.ints(1), axis_last), zero)
    att = b.op("Softmax", b.op("Concat", logits, att_sink, axis=3), axis=-1)
    flow = b.op("Slice", att, b.ints(0), b.ints(-1), axis_last)
    stay = b.op("Slice", att, b.ints(-1), b.ints(2**62), axis_last)
    g = b.op("ReduceSum", b.op("Mul", flow, share), axis1, keepdims=0)
    stay = b.op("ReduceSum", b.op("Mul", stay, share), b.ints(1, 3), keepdims=0)

    # The exact hops: per step k, targets and probabilities (batch, seq, r^k).
    levels = _hop_levels(b, w, idx)
    axis2 = b.ints(2)
    masses = [b.op("ReduceSum", pk, axis2, keepdims=0) for _, pk in levels]

    # The L diffusion layers, from c_0 = 1, c_1 .. c_D = 0, z = 0.
    steps = [one, *(b.scalar(float(f32(w.alpha) ** f32(k))) for k in range(1, w.hops + 1))]
    a, z = u, None
    c: list[str | None] = [one] + [None] * w.hops
    keep_u = b.op("Mul", u, b.op("Sub", one, gamma))
    for _layer in range(w.layers):
        a3 = b.op("Unsqueeze", a, axis1)
        last_c = c[w.hops]
        if last_c is not None:
            m = b.op("Squeeze", b.op("MatMul", a3, e_in), axis1)
            inner = b.op("Mul", b.op("Mul", steps[w.hops], last_c), m)
            if z is not None:
                inner = b.op("Add", inner, b.op("MatMul", z, prop_t))
            z = b.op("Mul", alpha, inner)
        elif z is not None:
            z = b.op("Mul", alpha, b.op("MatMul", z, prop_t))
        c = [None, *c[:-1]]
        spread = b.op("MatMul", z, mass) if z is not None else None
        for k in range(1, w.hops + 1):
            ck = c[k]
            if ck is None:
                continue
            carried = b.op("ReduceSum", b.op("Mul", a, masses[k - 1]), axis1, keepdims=1)
            term = b.op("Mul", b.op("Mul", steps[k], ck), carried)
            spread = term if spread is None else b.op("Add", spread, term)
        # Never None: with hops, c_1 now holds the last c_0 (1 before the first
        # layer); without, c_0 = 1 set z in the first layer.
        assert spread is not None
        c[0] = b.op("Sub", one, spread)
        moved = b.op("Squeeze", b.op("MatMul", a3, g), axis1)
        moved = b.op("Add", moved, b.op("Mul", a, stay))
        a = b.op("Add", keep_u, b.op("Mul", gamma, moved))

    flat = b.ints(0, -1)
    if z is not None:
        qv = b.op("MatMul", z, unemb)
    else:
        rows_one = b.op("ReduceSum", u, axis1, keepdims=1)
        qv = b.op("Mul", rows_one, b.const("zero_row", np.zeros((1, w.vocab), dtype=f32)))
    c0 = c[0]
    assert c0 is not None  # 1 before the first layer, set by every layer
    to, by = [idx], [b.op("Mul", c0, u)]
    a_col = b.op("Unsqueeze", a, axis2)
    for k, (tk, pk) in enumerate(levels, 1):
        ck = c[k]
        if ck is None:
            continue
        to.append(b.op("Reshape", tk, flat))
        weight = b.op("Reshape", b.op("Mul", pk, a_col), flat)
        by.append(b.op("Mul", weight, b.op("Mul", steps[k], ck)))
    to_all = b.op("Concat", *to, axis=1)
    by_all = b.op("Concat", *by, axis=1)
    qv = b.op("ScatterElements", qv, to_all, by_all, axis=1, reduction="add")
    qv = b.op("Relu", qv)
    total = b.op("Max", b.op("ReduceSum", qv, axis1, keepdims=1), b.scalar(TINY))
    qv = b.op("Div", qv, total)
    mixed = b.op("Add", b.op("Mul", qv, b.scalar(1.0 - f32(w.floor))), phi)
    b.op("Div", mixed, b.op("ReduceSum", mixed, axis1, keepdims=1), out=OUTPUT)

    factors_default = b.const(FACTORS, np.ones(w.n_semcons, dtype=f32))
    graph = helper.make_graph(
        b.nodes,
        "focusflow_compiled",
        [
            helper.make_tensor_value_info(INPUT, TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info(factors_default, TensorProto.FLOAT, [w.n_semcons]),
        ],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", w.vocab])],
        b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="focusflow.compile",
    )
    model.ir_version = 8
    helper.set_model_props(model, {key: str(value) for key, value in w.meta.items()})
    return model


def weight_bytes(w: CompiledWeights) -> int:
    """The bytes of ``w``'s arrays: about what the model's initializers hold."""
    return sum(v.nbytes for v in vars(w).values() if isinstance(v, np.ndarray))


def export(w: CompiledWeights, path: str | Path) -> list[Path]:
    """Write ``w``'s model to ``path``; past ``EXTERNAL_ABOVE`` bytes of weights
    they go to ``path + ".data"`` beside it. Returns the files written."""
    path = Path(path)
    if weight_bytes(w) <= EXTERNAL_ABOVE:
        onnx.save_model(build_model(w), path)
        return [path]
    data = path.with_name(path.name + DATA_SUFFIX)
    with data.open("wb") as sink:
        model = build_model(w, sink, data.name)
    onnx.save_model(model, path)
    return [path, data]
