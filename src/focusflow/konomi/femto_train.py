"""Training FemtoLLM on the CPU: a hand-written backward pass and Adam, in numpy.

Deterministic for a given seed on a given machine (the batches and the initial
weights come from one ``numpy.random.Generator``; BLAS may round differently on
other CPUs). ``focusflow konomi train`` runs it and writes the int8 weights that
ship as ``focusflow/konomi/data/femtollm.npz``. The backward pass is checked
against finite differences in ``tests/konomi/test_femtollm.py``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from focusflow.konomi.femtollm import (
    CONTEXT,
    HIDDEN,
    VOCAB,
    cross_entropy,
    forward_logits,
    init_params,
    quantise,
)

CORPUS_FILE = "corpus.txt"


def corpus_bytes() -> bytes:
    """The shipped training corpus: the project's README, focus docs and architecture."""
    return resources.files("focusflow.konomi.data").joinpath(CORPUS_FILE).read_bytes()


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


def loss_and_grads(
    params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    """Mean cross-entropy of a batch and its gradient with respect to every weight."""
    B, T = x.shape
    E, P = params["E"], params["P"]
    x0 = E[x] + P[:T]
    q, k, v = x0 @ params["Wq"], x0 @ params["Wk"], x0 @ params["Wv"]
    scale = 1.0 / np.sqrt(HIDDEN)
    s = q @ k.transpose(0, 2, 1) * scale + np.triu(np.full((T, T), -1e9), 1)
    s = np.exp(s - s.max(-1, keepdims=True))
    att = s / s.sum(-1, keepdims=True)
    o = att @ v
    x1 = x0 + o @ params["Wo"]
    hpre = x1 @ params["W1"] + params["b1"]
    hr = np.maximum(hpre, 0)
    x2 = x1 + hr @ params["W2"] + params["b2"]
    logits = x2 @ params["Wout"] + params["bout"]

    z = logits - logits.max(-1, keepdims=True)
    ez = np.exp(z)
    prob = ez / ez.sum(-1, keepdims=True)
    n = B * T
    loss = float(-np.log(np.take_along_axis(prob, y[..., None], -1)).mean())

    g: dict[str, np.ndarray] = {}
    dlog = prob
    np.put_along_axis(dlog, y[..., None], np.take_along_axis(dlog, y[..., None], -1) - 1.0, -1)
    dlog /= n
    g["Wout"] = _flat(x2).T @ _flat(dlog)
    g["bout"] = _flat(dlog).sum(0)
    dx2 = dlog @ params["Wout"].T
    g["W2"] = _flat(hr).T @ _flat(dx2)
    g["b2"] = _flat(dx2).sum(0)
    dh = (dx2 @ params["W2"].T) * (hpre > 0)
    g["W1"] = _flat(x1).T @ _flat(dh)
    g["b1"] = _flat(dh).sum(0)
    dx1 = dx2 + dh @ params["W1"].T
    g["Wo"] = _flat(o).T @ _flat(dx1)
    do = dx1 @ params["Wo"].T
    datt = do @ v.transpose(0, 2, 1)
    dv = att.transpose(0, 2, 1) @ do
    ds = att * (datt - (datt * att).sum(-1, keepdims=True)) * scale
    dq = ds @ k
    dk = ds.transpose(0, 2, 1) @ q
    g["Wq"] = _flat(x0).T @ _flat(dq)
    g["Wk"] = _flat(x0).T @ _flat(dk)
    g["Wv"] = _flat(x0).T @ _flat(dv)
    dx0 = dx1 + dq @ params["Wq"].T + dk @ params["Wk"].T + dv @ params["Wv"].T
    dE = np.zeros_like(E)
    np.add.at(dE, x.ravel(), _flat(dx0))
    g["E"] = dE
    dP = np.zeros_like(P)
    dP[:T] = dx0.sum(0)
    g["P"] = dP
    return loss, g


@dataclass
class TrainResult:
    """What a training run produced and how well it fits its corpus."""

    params: dict[str, np.ndarray]
    steps: int
    seconds: float
    train_loss: float
    eval_loss: float
    uniform_loss: float = float(np.log(VOCAB))


def split(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Training part and held-out tail (the last 10%) of a corpus."""
    arr = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    cut = int(len(arr) * 0.9)
    return arr[:cut], arr[cut:]


def evaluate(params: dict[str, np.ndarray], data: np.ndarray) -> float:
    """Mean next-byte loss (nats) over consecutive 64-byte windows of ``data``."""
    n = (len(data) - 1) // CONTEXT
    x = data[: n * CONTEXT].reshape(n, CONTEXT)
    y = data[1 : n * CONTEXT + 1].reshape(n, CONTEXT)
    return cross_entropy(forward_logits(params, x), y)


def train(
    data: bytes | None = None,
    *,
    steps: int = 3000,
    batch: int = 32,
    lr: float = 1e-2,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train from scratch with Adam (cosine-decayed learning rate) on random 64-byte windows."""
    data = corpus_bytes() if data is None else data
    tr, held = split(data)
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    s = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    start = time.perf_counter()
    loss = float("nan")
    offsets = np.arange(CONTEXT)
    for t in range(1, steps + 1):
        idx = rng.integers(0, len(tr) - CONTEXT - 1, batch)[:, None] + offsets
        loss, g = loss_and_grads(params, tr[idx], tr[idx + 1])
        rate = lr * 0.5 * (1 + np.cos(np.pi * t / steps))
        for k in params:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            s[k] = b2 * s[k] + (1 - b2) * g[k] ** 2
            mh = m[k] / (1 - b1**t)
            sh = s[k] / (1 - b2**t)
            params[k] -= rate * mh / (np.sqrt(sh) + eps)
        if progress is not None and (t % 100 == 0 or t == steps):
            progress(t, loss)
    return TrainResult(params, steps, time.perf_counter() - start, loss, evaluate(params, held))


def save_weights(result: TrainResult, path: str | Path, data: bytes | None = None) -> Path:
    """Write int8 weights plus provenance (corpus hash, steps, losses) to an ``.npz``."""
    data = corpus_bytes() if data is None else data
    arrays = quantise(result.params)
    meta = {
        "meta.corpus_sha256": np.array(hashlib.sha256(data).hexdigest()),
        "meta.steps": np.array(result.steps),
        "meta.train_loss": np.array(result.train_loss),
        "meta.eval_loss": np.array(result.eval_loss),
    }
    path = Path(path)
    with path.open("wb") as fh:
        # numpy's stub lets a **dict of arrays reach allow_pickle: bool.
        np.savez_compressed(fh, **arrays, **meta)  # type: ignore[arg-type]
    return path
