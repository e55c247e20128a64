"""FemtoLLM: a byte-level transformer with hidden size 16, one layer and one head.

The seed sketches the model as a 16×16 random matrix that echoes its input in
brackets; this one is a real language model. It reads bytes (vocabulary 256),
adds a learned position embedding (context 64), runs one causal self-attention
head and one ReLU MLP (16 -> 64 -> 16) with residual connections, and predicts
the next byte. 12,624 parameters: 17 KB on disk as int8 (with provenance), 52 KB
as float32 in memory, far below the seed's 4 MB. Weights are trained on the CPU by
:mod:`focusflow.konomi.femto_train` on a corpus of the project's own docs and
shipped as ``data/femtollm.npz``.

One :class:`FemtoModel` (the weights) is shared by every agent of a template;
an agent (:class:`FemtoLLM`) holds only its state: κ, a call counter, its
connections and a random generator.

κ dynamics, exactly as the seed: every call moves κ 1% of the way to 0.6
(``κ += (0.6 - κ) * 0.01``). *Quality scales with κ*: a call's generation budget
is ``round(κ · len(text))`` bytes (the seed's ``quality = κ * len(txt)``, clamped
to [1, 32]) and its sampling temperature is ``1.5 - 1.4 κ``, so a high-κ agent
writes longer, more probable (lower-temperature) continuations and a low-κ agent
short, noisy ones. Both effects are tested.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from focusflow.konomi.errors import KonomiError

KAPPA_STAR = 0.6
VOCAB = 256
HIDDEN = 16
FF = 64
CONTEXT = 64
MAX_NEW = 32
PARAM_SHAPES: dict[str, tuple[int, ...]] = {
    "E": (VOCAB, HIDDEN),
    "P": (CONTEXT, HIDDEN),
    "Wq": (HIDDEN, HIDDEN),
    "Wk": (HIDDEN, HIDDEN),
    "Wv": (HIDDEN, HIDDEN),
    "Wo": (HIDDEN, HIDDEN),
    "W1": (HIDDEN, FF),
    "b1": (FF,),
    "W2": (FF, HIDDEN),
    "b2": (HIDDEN,),
    "Wout": (HIDDEN, VOCAB),
    "bout": (VOCAB,),
}
WEIGHTS_FILE = "femtollm.npz"


def temperature(kappa: float) -> float:
    """Sampling temperature for an agent's κ: 1.5 at κ=0, 0.66 at κ=0.6, 0.1 at κ=1."""
    return min(2.0, max(0.05, 1.5 - 1.4 * float(kappa)))


def budget(kappa: float, text: str) -> int:
    """Bytes a call generates: the seed's ``quality = κ · len(txt)``, clamped to [1, 32]."""
    return min(MAX_NEW, max(1, round(kappa * len(text.encode()))))


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Small random weights (float64) for training from scratch."""
    p = {}
    for name, shape in PARAM_SHAPES.items():
        if name.startswith("b"):
            p[name] = np.zeros(shape)
        else:
            fan_in = shape[0] if name not in ("E", "P") else HIDDEN
            p[name] = rng.standard_normal(shape) / np.sqrt(fan_in) * (0.5 if name == "P" else 1.0)
    return p


def quantise(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Symmetric per-tensor int8: ``q = round(w / s)``, ``s = max|w| / 127``
    (each scale a 0-d float32 array, as the weights file holds it)."""
    out: dict[str, np.ndarray] = {}
    for name, w in params.items():
        scale = float(np.max(np.abs(w))) / 127.0 or 1.0
        out[f"{name}.q"] = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        out[f"{name}.scale"] = np.asarray(scale, dtype=np.float32)
    return out


def dequantise(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 weights from :func:`quantise`'s arrays."""
    return {
        name: arrays[f"{name}.q"].astype(np.float32) * np.float32(arrays[f"{name}.scale"])
        for name in PARAM_SHAPES
    }


def forward_logits(params: dict[str, np.ndarray], tokens: np.ndarray) -> np.ndarray:
    """Next-byte logits (B, T, 256) for token batches (B, T), T <= 64: the plain forward pass."""
    T = tokens.shape[1]
    x0 = params["E"][tokens] + params["P"][:T]
    q, k, v = x0 @ params["Wq"], x0 @ params["Wk"], x0 @ params["Wv"]
    s = q @ k.transpose(0, 2, 1) / np.sqrt(HIDDEN)
    s = s + np.triu(np.full((T, T), -1e9, dtype=s.dtype), 1)
    s = np.exp(s - s.max(-1, keepdims=True))
    p = s / s.sum(-1, keepdims=True)
    x1 = x0 + (p @ v) @ params["Wo"]
    x2 = x1 + np.maximum(x1 @ params["W1"] + params["b1"], 0) @ params["W2"] + params["b2"]
    logits: np.ndarray = x2 @ params["Wout"] + params["bout"]
    return logits


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean next-byte loss in nats."""
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-np.take_along_axis(logp, targets[..., None], -1).mean())


class FemtoModel:
    """Shared, read-only FemtoLLM weights (float32) with fast cached-attention generation."""

    def __init__(
        self, params: dict[str, np.ndarray], meta: Mapping[str, object] | None = None
    ) -> None:
        self.params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
        for name, shape in PARAM_SHAPES.items():
            if self.params[name].shape != shape:
                raise KonomiError(f"FemtoLLM weight {name} has shape {self.params[name].shape}")
        p = self.params
        self._Wqkv = np.ascontiguousarray(np.concatenate([p["Wq"], p["Wk"], p["Wv"]], axis=1))
        self.meta: dict[str, object] = dict(meta or {})

    @classmethod
    def load(cls, path: str | Path | None = None) -> FemtoModel:
        """Load int8 weights from an ``.npz`` (default: the package's shipped file)."""
        if path is None:
            ref = resources.files("focusflow.konomi.data").joinpath(WEIGHTS_FILE)
            with resources.as_file(ref) as p, np.load(p) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        meta = {k[5:]: arrays[k].item() for k in arrays if k.startswith("meta.")}
        return cls(dequantise(arrays), meta)

    def nbytes(self) -> int:
        """Bytes of the float32 weights held in memory."""
        return sum(a.nbytes for a in self.params.values()) + self._Wqkv.nbytes

    def loss(self, text: bytes | str) -> float:
        """Mean next-byte loss (nats) over a text, in windows of 64 bytes."""
        data = np.frombuffer(text.encode() if isinstance(text, str) else text, dtype=np.uint8)
        n = (len(data) - 1) // CONTEXT
        if n < 1:
            raise KonomiError("text too short to score: need more than 64 bytes")
        x = data[: n * CONTEXT].reshape(n, CONTEXT).astype(np.int64)
        y = data[1 : n * CONTEXT + 1].reshape(n, CONTEXT).astype(np.int64)
        return cross_entropy(forward_logits(self.params, x), y)

    def log_likelihood(self, context: bytes, continuation: bytes) -> float:
        """Mean log-probability per byte (nats) of ``continuation`` after ``context``."""
        if not continuation:
            return 0.0
        seq = (context or b"\n") + continuation
        seq = seq[-CONTEXT - 1 :]
        ids = np.frombuffer(seq, dtype=np.uint8).astype(np.int64)
        logits = forward_logits(self.params, ids[None, :-1])[0]
        z = logits - logits.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        n = min(len(continuation), len(ids) - 1)
        tgt = ids[-n:]
        return float(logp[-n:][np.arange(n), tgt].mean())

    def embed(self, text: str) -> np.ndarray:
        """A 16-d unit vector for a text: the mean of its final hidden states (for consensus)."""
        data = text.encode()[-CONTEXT:] or b"\n"
        ids = np.frombuffer(data, dtype=np.uint8).astype(np.int64)[None, :]
        p = self.params
        x0 = p["E"][ids] + p["P"][: ids.shape[1]]
        v = x0.mean(axis=(0, 1))
        n = float(np.linalg.norm(v))
        unit: np.ndarray = v / n if n > 0 else v
        return unit

    def generate(
        self,
        prompt: bytes,
        lengths: list[int] | np.ndarray,
        temperatures: list[float] | np.ndarray,
        rng: np.random.Generator,
    ) -> list[bytes]:
        """Sample one continuation per (length, temperature) pair, all from the same prompt.

        The prompt is encoded once (its keys and values cached), then all streams
        advance together one byte per step, so eight agents answering the same
        query cost little more than one.
        """
        lengths = np.asarray(lengths, dtype=np.int64)
        temps = np.asarray(temperatures, dtype=np.float32).reshape(-1, 1)
        B, steps = len(lengths), int(lengths.max(initial=0))
        if B == 0 or steps == 0:
            return [b""] * B
        p = self.params
        prompt = (prompt or b"\n")[-(CONTEXT - steps) :]
        ids = np.frombuffer(prompt, dtype=np.uint8).astype(np.int64)
        L = len(ids)
        scale = np.float32(1.0 / np.sqrt(HIDDEN))
        x0 = p["E"][ids] + p["P"][:L]
        qkv = x0 @ self._Wqkv
        K = np.empty((B, L + steps, HIDDEN), np.float32)
        V = np.empty((B, L + steps, HIDDEN), np.float32)
        K[:, :L] = qkv[:, HIDDEN : 2 * HIDDEN]
        V[:, :L] = qkv[:, 2 * HIDDEN :]
        q = qkv[-1:, :HIDDEN]
        s = (K[0, :L] @ q[0]) * scale
        s = np.exp(s - s.max())
        o = (s / s.sum()) @ V[0, :L]
        x1 = x0[-1] + o @ p["Wo"]
        x2 = x1 + np.maximum(x1 @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]
        logits = np.broadcast_to(x2 @ p["Wout"] + p["bout"], (B, VOCAB))
        out = np.empty((B, steps), np.uint8)
        for t in range(steps):
            g = rng.gumbel(size=(B, VOCAB)).astype(np.float32)
            tok = np.argmax(logits / temps + g, axis=1)
            out[:, t] = tok
            if t == steps - 1:
                break
            pos = L + t
            x0 = p["E"][tok] + p["P"][pos]
            qkv = x0 @ self._Wqkv
            K[:, pos] = qkv[:, HIDDEN : 2 * HIDDEN]
            V[:, pos] = qkv[:, 2 * HIDDEN :]
            s = np.einsum("bld,bd->bl", K[:, : pos + 1], qkv[:, :HIDDEN]) * scale
            s = np.exp(s - s.max(1, keepdims=True))
            s /= s.sum(1, keepdims=True)
            o = np.einsum("bl,bld->bd", s, V[:, : pos + 1])
            x1 = x0 + o @ p["Wo"]
            x2 = x1 + np.maximum(x1 @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]
            logits = x2 @ p["Wout"] + p["bout"]
        return [out[b, : lengths[b]].tobytes() for b in range(B)]


@lru_cache(maxsize=1)
def default_model() -> FemtoModel:
    """The shipped weights, loaded once per process and shared by every agent."""
    return FemtoModel.load()


def decode_bytes(data: bytes) -> str:
    """Text of generated bytes (invalid UTF-8 sequences replaced, never raised)."""
    return data.decode("utf-8", errors="replace")


def seed_of(label: str) -> int:
    """A stable 64-bit seed for a label (Python's str hash is salted per process)."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big")


class Agent:
    """What every agent does with its state: drift κ, then answer (subclasses hold the state:
    ``model``, ``rng`` and ``step_kappa``)."""

    model: FemtoModel
    rng: np.random.Generator | None

    def step_kappa(self) -> float:
        raise NotImplementedError

    def process(self, text: str) -> str:
        """Drift κ, then continue ``text`` with a κ-sized, κ-tempered sample."""
        k = self.step_kappa()
        assert self.rng is not None  # every agent makes its generator on construction
        out = self.model.generate(text.encode(), [budget(k, text)], [temperature(k)], self.rng)
        return decode_bytes(out[0])

    async def proc(self, text: str) -> str:
        """The seed's async entry point; the work is a few hundred microseconds of numpy."""
        return self.process(text)


@dataclass
class FemtoLLM(Agent):
    """One agent: shared weights plus its own κ, call count, connections and random state."""

    model: FemtoModel = field(default_factory=default_model, repr=False)
    kappa: float = KAPPA_STAR
    name: str = ""
    calls: int = 0
    #: The cube nodes linked to this agent from outside (``cube_id/vertex``).
    connections: list[str] = field(default_factory=list)
    rng: np.random.Generator | None = field(default=None, repr=False)

    h = HIDDEN

    def __post_init__(self) -> None:
        if self.rng is None:
            self.rng = np.random.default_rng(seed_of(self.name or "femto"))

    @property
    def κ(self) -> float:
        """The seed's spelling of :attr:`kappa`."""
        return self.kappa

    @κ.setter
    def κ(self, value: float) -> None:
        self.kappa = value

    def step_kappa(self) -> float:
        """One call's κ drift: 1% of the way toward 0.6 (the seed's rule)."""
        self.kappa += (KAPPA_STAR - self.kappa) * 0.01
        self.calls += 1
        return self.kappa


def process_many(agents: Sequence[Agent], text: str, rng: np.random.Generator) -> list[str]:
    """Every agent answers the same text in one batched generation (their κ drift as usual)."""
    results: list[str] = [""] * len(agents)
    groups: dict[int, list[int]] = {}
    for i, a in enumerate(agents):
        groups.setdefault(id(a.model), []).append(i)
    for idx in groups.values():
        kappas = [agents[i].step_kappa() for i in idx]
        outs = agents[idx[0]].model.generate(
            text.encode(), [budget(k, text) for k in kappas], [temperature(k) for k in kappas], rng
        )
        for i, o in zip(idx, outs, strict=True):
            results[i] = decode_bytes(o)
    return results
