"""Fine-tuning the compiled transformer, and measuring whether its weights are a better start.

The design claims that the weights ``focusflow compile`` derives from the
graph are a better initialization than random ones: fine-tuning from them
should reach a given held-out loss in far fewer steps. This module holds what
that measurement needs:

- the data: next-particle sequences from focus-flow walks
  (:func:`walk_sequences`, padded with ``-1``), a seeded train/held-out split
  and the (context prefix, next particle) pairs a sequence teaches
  (:func:`prefix_pairs`), saved as a compressed ``.npz`` (:func:`save_data`);
- the compiled weights as a plain ``.npz`` (:func:`save_weights`), so that
  the GPU machine, which has numpy and torch but none of focusflow's other
  dependencies, can read them;
- :func:`torch_module`: a torch module that is exactly ``forward_numpy``
  (the same operations in the same order, float32), every weight a
  trainable parameter, initialised from the compiled weights or from random
  ones of the same shapes (:func:`random_arrays` documents the init);
- :func:`train` (AdamW, the cross-entropy of the next particle given the
  prefix, held-out loss every ``eval_every`` steps, the weights of the best
  held-out loss kept, optionally stopping early) and :func:`compare`
  (steps each init needs to reach the random init's final held-out loss);
- :func:`implicit_links`: after fine-tuning, the likely (particle -> next
  particle) pairs that the graph does not link, as proposals, never links;
  :func:`module_arrays`: the fine-tuned weights in the layout of
  :func:`save_weights`, so that the CPU side can rank with them.

The loss is that of the next-particle rule of docs/infer.md: the model's
output is ``phi*_c`` over the whole vocabulary, context included, and a next
particle is never one already in the context, so the probability of the
target is renormalised over the particles outside the context.

torch is imported inside the functions that need it: ``import
focusflow.compile`` and the data functions work without it. The module
imports nothing of focusflow but its error class, and falls back to a plain
``ValueError`` subclass where focusflow is not installed, so that on the GPU
machine it runs as a script by path (``python
src/focusflow/compile/finetune.py --data ...``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

try:
    from focusflow.core.errors import InvalidParameterError
except ModuleNotFoundError:  # run by path where only numpy and torch are installed

    class InvalidParameterError(ValueError):  # type: ignore[no-redef]
        """A parameter outside its domain (focusflow's own class where it is installed)."""


#: Index of a padded position, as in the compiled model's input.
PADDING = -1
#: Logit of masked keys; equal to ``forward.MASKED`` (this module imports no focusflow).
MASKED = -1.0e9
#: Smallest row mass divided by; equal to ``forward.TINY``.
TINY = 1.0e-30
#: The float arrays of ``CompiledWeights``: each becomes a trainable parameter.
PARAMETERS = (
    "phi",
    "emb_att",
    "emb_in",
    "hop_p",
    "hop_rest",
    "unemb",
    "w_q",
    "w_k",
    "head_share",
    "prop_t",
    "basis_mass",
)
#: Integer and scalar settings, fixed during training.
FIXED = ("hop_idx", "hop_sem", "alpha", "layers", "floor", "attention_share", "hops")


class TrainRun(TypedDict):
    """What :func:`train` measured: ``[step, loss]`` curves (held-out at
    :func:`eval_steps`, training every ``eval_every`` steps), the last and
    the best held-out loss, the step the returned weights are from, why the
    run stopped and its settings. ``steps`` is the steps run, ``max_steps``
    the steps asked for."""

    curve: list[list[float]]
    train_curve: list[list[float]]
    final: float
    best: float
    best_step: int
    stopped: str
    steps: int
    max_steps: int
    seconds: float
    batch: int
    lr: float
    weight_decay: float


class Comparison(TypedDict):
    """What :func:`compare` found: the random init's final held-out loss, the
    steps each init needed to reach it (``None``: never) and their ratio."""

    target: float
    compiled_steps: int | None
    random_steps: int | None
    ratio: float | None
    compiled_at_init: bool


# --- weights and data as plain arrays ---------------------------------------------------


def weights_arrays(weights: Any) -> dict[str, np.ndarray | np.generic]:
    """The arrays and scalars of a ``CompiledWeights`` by name (numpy only)."""
    out: dict[str, np.ndarray | np.generic] = {
        name: np.asarray(getattr(weights, name)) for name in (*PARAMETERS, "hop_idx", "hop_sem")
    }
    out["hops"] = np.int64(weights.hops)
    out["alpha"] = np.float64(weights.alpha)
    out["layers"] = np.int64(weights.layers)
    out["floor"] = np.float64(weights.floor)
    out["attention_share"] = np.float64(weights.attention_share)
    return out


def save_weights(weights: Any, path: str | Path) -> None:
    """Write the compiled weights as a compressed ``.npz`` (readable with numpy alone)."""
    # numpy's stub lets a **dict of arrays reach allow_pickle: bool.
    np.savez_compressed(path, **weights_arrays(weights))  # type: ignore[arg-type]


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` written by :func:`save_weights` or :func:`save_data`."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def plan_walks(
    n_particles: int, count: int, min_len: int, max_len: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, lengths, seeds)`` of ``count`` walks: uniform random start
    particles, sequence lengths uniform in ``[min_len, max_len]`` (start
    included) and one seed per walk, so that any split of the walks over
    processes gives the same sequences."""
    if not 2 <= min_len <= max_len:
        raise InvalidParameterError(f"need 2 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_particles, count)
    lengths = rng.integers(min_len, max_len + 1, count)
    seeds = rng.integers(0, 2**63 - 1, count)
    return starts, lengths, seeds


def walk_sequences(
    engine: Any,
    starts: Sequence[int],
    lengths: Sequence[int],
    seeds: Sequence[int],
    *,
    sampling: Any = None,
) -> np.ndarray:
    """Sequences ``[start, step 1, ...]`` of focus-flow walks, int64, padded with ``-1``.

    ``engine`` is a ``focusflow.infer.Inference`` (passed in: compile may not
    import infer, the two are one layer); walk ``i`` starts at ``starts[i]``,
    takes ``lengths[i] - 1`` steps with seed ``seeds[i]``, and is shorter
    when the walk ends early (nothing left to draw).
    """
    width = int(max(lengths)) if len(lengths) else 0
    out = np.full((len(starts), width), PADDING, dtype=np.int64)
    for row, (start, length, seed) in enumerate(zip(starts, lengths, seeds, strict=True)):
        out[row, 0] = int(start)
        steps = engine.walk([int(start)], int(length) - 1, seed=int(seed), sampling=sampling)
        for step in steps:
            out[row, step.step] = step.particle
    return out


def split_sequences(seqs: np.ndarray, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, held_out)``: a seeded shuffle of whole sequences (a walk is never
    split, so held-out contexts are not prefixes of training ones by construction)."""
    if not 0.0 < held_out < 1.0:
        raise InvalidParameterError(f"held_out must be in (0, 1), got {held_out}")
    order = np.random.default_rng(seed).permutation(len(seqs))
    n_test = max(1, round(len(seqs) * held_out))
    return seqs[order[n_test:]], seqs[order[:n_test]]


def save_data(
    path: str | Path,
    train: np.ndarray,
    test: np.ndarray,
    *,
    keys: Sequence[str],
    src: np.ndarray,
    dst: np.ndarray,
    meta: dict[str, object],
) -> None:
    """One compressed ``.npz``: the sequences, the particle keys, the graph's links
    (for :func:`implicit_links`) and a JSON string of how they were made."""
    np.savez_compressed(
        path,
        train=train.astype(np.int32),
        test=test.astype(np.int32),
        keys=np.asarray([str(k) for k in keys]),
        src=np.asarray(src, dtype=np.int32),
        dst=np.asarray(dst, dtype=np.int32),
        meta=np.asarray(json.dumps(meta)),
    )


def prefix_pairs(seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(contexts, targets)``: every prefix of every sequence and the particle after it.

    A sequence of ``m`` particles teaches ``m - 1`` pairs: ``seq[:t] -> seq[t]``.
    Contexts are ``(pairs, width - 1)`` int64 rows padded with ``-1``.
    """
    seqs = np.asarray(seqs, dtype=np.int64)
    b, width = seqs.shape
    if width < 2:
        return np.zeros((0, 1), dtype=np.int64), np.zeros(0, dtype=np.int64)
    w = width - 1
    ctx = np.broadcast_to(seqs[:, None, :w], (b, w, w)).copy()
    ctx[:, np.arange(w)[:, None] < np.arange(w)[None, :]] = PADDING
    targets = seqs[:, 1:]
    keep = targets >= 0
    return ctx[keep], targets[keep]


def first_occurrence(contexts: np.ndarray) -> np.ndarray:
    """True at each context position holding a particle not seen earlier in its row:
    the positions whose output mass the next-particle rule removes, each once."""
    c = np.asarray(contexts)
    same = c[:, :, None] == c[:, None, :]
    earlier = np.tril(np.ones((c.shape[1], c.shape[1]), dtype=bool), k=-1)
    first: np.ndarray = (c >= 0) & ~(same & earlier[None]).any(axis=2)
    return first


def random_arrays(compiled: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Weights of the compiled shapes that know nothing of the graph (the baseline init).

    The standard init, per array (d the width, r the hop width, h the heads):

    - matrices and embedding tables (``emb_att``, ``emb_in``, ``unemb``,
      ``w_q``, ``w_k``, ``prop_t``): LeCun normal, N(0, 1/d), the variance
      that keeps a product with a unit-scale vector at unit scale;
    - ``hop_idx``: r particles drawn uniformly per row (hops to random
      particles, not along the graph's links), ``hop_p`` 1/r each,
      ``hop_rest`` 0 and ``hop_sem`` 0;
    - ``basis_mass``: zeros, as biases start;
    - the distributions ``phi`` and ``head_share``: uniform;
    - the scalars (alpha, layers, floor, attention share): the compiled
      ones: they are the architecture, not weights.
    """
    rng = np.random.default_rng(seed)
    f32 = np.float32
    n, d = compiled["emb_in"].shape
    h = compiled["w_q"].shape[0]
    r = compiled["hop_idx"].shape[1]
    std = 1.0 / math.sqrt(d)
    out = {k: compiled[k] for k in ("alpha", "layers", "floor", "attention_share", "hops")}
    for name in ("emb_att", "emb_in", "unemb", "w_q", "w_k", "prop_t"):
        out[name] = rng.normal(0.0, std, compiled[name].shape).astype(f32)
    out["hop_idx"] = rng.integers(0, n, (n, r)).astype(np.int32)
    out["hop_p"] = np.full((n, r), 1.0 / r, dtype=f32)
    out["hop_rest"] = np.zeros(n, dtype=f32)
    out["hop_sem"] = np.zeros((n, r), dtype=np.int32)
    out["basis_mass"] = np.zeros(d, dtype=f32)
    out["phi"] = np.full(n, 1.0 / n, dtype=f32)
    out["head_share"] = np.full(h, 1.0 / h, dtype=f32)
    return out


# --- the torch module -------------------------------------------------------------------


def torch_module(arrays: dict[str, np.ndarray]) -> Any:
    """A ``torch.nn.Module`` computing ``forward_numpy`` with ``arrays`` as its weights.

    Every float array is a trainable parameter; ``hop_idx`` (which particles
    the exact hops reach) is a buffer, and the scalars are fixed; every
    semcon is weighed 1 (``hop_sem`` is not needed then). The departures:
    ``phi``, ``hop_p`` and ``hop_rest`` enter as their absolute values, so
    that training cannot make the output's floor or a hop's probability
    negative (a negative row sum divided by made the loss NaN within 300
    steps); the compiled values are non-negative, so at init the output is
    the compiled one.
    """
    import torch

    # torch is not installed where mypy runs (nor a dependency): its Module is Any.
    class CompiledTorch(torch.nn.Module):  # type: ignore[misc]
        """The compiled forward pass (docs/compile.md), step for step."""

        def __init__(self) -> None:
            super().__init__()
            for name in PARAMETERS:
                # A copy: from_numpy shares memory, and training on the CPU
                # would otherwise rewrite the caller's arrays (the next run's init).
                value = torch.from_numpy(np.array(arrays[name], dtype=np.float32, copy=True))
                self.register_parameter(name, torch.nn.Parameter(value))
            hop_idx = np.ascontiguousarray(arrays["hop_idx"], dtype=np.int64)
            self.register_buffer("hop_idx", torch.from_numpy(hop_idx))
            self.alpha = float(arrays["alpha"])
            self.layers = int(arrays["layers"])
            self.floor = float(arrays["floor"])
            self.gamma = float(arrays["attention_share"])
            self.hops = int(arrays["hops"])

        def _hops_dense(self, uniq: torch.Tensor) -> list[torch.Tensor]:
            """Per exact step k, the k-step distributions out of the particles
            ``uniq`` through the tables, dense (len(uniq) x vocab): a batch of
            walk prefixes repeats its particles many times, so each is expanded
            once and the output is a product with these rows, not a scatter
            of r^k entries per context position."""
            n = self.hop_p.shape[0]
            out = []
            rows, prob = uniq, None
            for _ in range(self.hops):
                pr = self.hop_p[rows].abs()
                norm = pr.sum(dim=-1, keepdim=True) + self.hop_rest[rows].abs()[..., None]
                pr = pr / norm.clamp_min(TINY)
                prob = pr if prob is None else prob[..., None] * pr
                rows = self.hop_idx[rows]
                flat_to = rows.reshape(len(uniq), -1)
                dense = torch.zeros((len(uniq), n), dtype=pr.dtype, device=pr.device)
                out.append(dense.scatter_add(1, flat_to, prob.reshape(len(uniq), -1)))
            return out

        def forward(self, particles: torch.Tensor) -> torch.Tensor:
            valid = particles >= 0
            idx = torch.where(valid, particles, torch.zeros_like(particles))
            vf = valid.to(torch.float32)
            u = vf / vf.sum(dim=1, keepdim=True).clamp_min(1.0)
            x = self.emb_att[idx]
            e_in = self.emb_in[idx]
            uniq, pos = torch.unique(idx, return_inverse=True)
            hops = self._hops_dense(uniq)
            masses = [h.sum(dim=1)[pos] for h in hops]
            g, stay = self._attention(x, valid)
            b = particles.shape[0]
            a = u
            ones = torch.ones((b, 1), dtype=torch.float32, device=particles.device)
            c = [ones] + [torch.zeros_like(ones)] * self.hops
            z = torch.zeros((b, self.emb_in.shape[1]), dtype=torch.float32, device=ones.device)
            alpha, gamma, depth = self.alpha, self.gamma, self.hops
            for _ in range(self.layers):
                m = torch.bmm(a[:, None, :], e_in)[:, 0, :]
                z = alpha * (alpha**depth * c[depth] * m + z @ self.prop_t)
                c = [ones, *c[:-1]]
                spread = z @ self.basis_mass[:, None]
                for k in range(1, depth + 1):
                    carried = (a * masses[k - 1]).sum(dim=1, keepdim=True)
                    spread = spread + alpha**k * c[k] * carried
                c[0] = 1.0 - spread
                flow = torch.bmm(a[:, None, :], g)[:, 0, :] + a * stay
                a = (1.0 - gamma) * u + gamma * flow
            q = z @ self.unemb
            q = q.scatter_add(1, idx, c[0] * u)
            for k, h in enumerate(hops, 1):
                share = torch.zeros((b, len(uniq)), dtype=a.dtype, device=a.device)
                share = share.scatter_add(1, pos, a * (alpha**k * c[k]))
                q = q + share @ h
            q = torch.relu(q)
            q = q / q.sum(dim=1, keepdim=True).clamp_min(TINY)
            out = (1.0 - self.floor) * q + self.floor * self.phi.abs()[None, :]
            return out / out.sum(dim=1, keepdim=True)

        def _attention(
            self, x: torch.Tensor, valid: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            b, s, d = x.shape
            h = self.w_q.shape[0]
            q = torch.matmul(x[:, None, :, :], self.w_q[None])
            k = torch.matmul(x[:, None, :, :], self.w_k[None])
            logits = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
            eye = torch.eye(s, dtype=torch.bool, device=x.device)
            key_ok = valid[:, None, None, :] & ~eye[None, None]
            logits = logits.masked_fill(~key_ok, MASKED)
            sink = torch.zeros((b, h, s, 1), dtype=x.dtype, device=x.device)
            att = torch.softmax(torch.cat([logits, sink], dim=-1), dim=-1)
            share = self.head_share
            g = (att[..., :s] * share[None, :, None, None]).sum(dim=1)
            stay = (att[..., s] * share[None, :, None]).sum(dim=1)
            return g, stay

    return CompiledTorch()


def next_particle_nll(model: Any, contexts: Any, targets: Any, first: Any) -> Any:
    """Per pair, ``-log`` of the target's probability under the next-particle rule:
    the output renormalised over the particles outside the context."""
    import torch

    out = model(contexts)
    p_target = out.gather(1, targets[:, None])[:, 0]
    idx = contexts.clamp_min(0)
    ctx_mass = (out.gather(1, idx) * first).sum(dim=1)
    rest = (1.0 - ctx_mass).clamp_min(TINY)
    return -(torch.log(p_target.clamp_min(TINY)) - torch.log(rest))


# --- training and the comparison --------------------------------------------------------


def eval_steps(steps: int, every: int) -> list[int]:
    """Steps after which held-out loss is measured: 0, a geometric run early on
    (so that a small step count to the target is resolved), then every ``every``."""
    early = {0, steps}
    k = 1
    while k < every:
        early.add(k)
        k *= 2
    early.update(range(every, steps + 1, every))
    return sorted(s for s in early if s <= steps)


def train(  # noqa: PLR0913 - keyword-only training knobs with defaults
    arrays: dict[str, np.ndarray],
    train_seqs: np.ndarray,
    test_seqs: np.ndarray,
    *,
    steps: int,
    batch: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    eval_every: int = 100,
    seed: int = 0,
    patience: int = 0,
    deadline: float | None = None,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> tuple[Any, TrainRun]:
    """Fine-tune ``arrays`` with AdamW on batches of ``batch`` training sequences.

    Each step's loss is the mean next-particle NLL over every prefix of the
    batch's sequences; held-out loss is the mean over every prefix of every
    held-out sequence, measured at :func:`eval_steps`. Seeded: the batches
    come from numpy's PCG64 with ``seed``, torch's generator is seeded too.

    The module returned holds the weights of the lowest held-out loss
    measured, not the last: where that comes depends on the learning rate
    (the compiled init at 1e-3 was best two steps in and worse from there
    on, at 1e-4 best after 500 steps: docs/compile.md, *Fine-tuning*), and
    what it proposes must come from that point. With ``patience`` > 0 the
    run stops once that many steps have passed since the best held-out loss; past ``deadline`` (a
    ``time.perf_counter`` value) it stops at the next measurement, so that a
    run on a lent machine ends inside its slot. ``stopped`` says which of
    ``"steps"``, ``"patience"`` or ``"deadline"`` ended it.
    """
    import torch

    torch.manual_seed(seed)
    dev = torch.device(device)
    model = torch_module(arrays).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    ctx_t, tgt_t = prefix_pairs(test_seqs)
    test = [torch.from_numpy(x).to(dev) for x in (ctx_t, tgt_t, first_occurrence(ctx_t))]
    test[2] = test[2].to(torch.float32)

    def held_out() -> float:
        model.eval()
        total = 0.0
        with torch.no_grad():
            for lo in range(0, len(tgt_t), 4096):
                sl = slice(lo, lo + 4096)
                total += float(
                    next_particle_nll(model, test[0][sl], test[1][sl], test[2][sl]).sum()
                )
        model.train()
        return total / max(len(tgt_t), 1)

    rng = np.random.default_rng(seed)
    marks = set(eval_steps(steps, eval_every))
    curve: list[list[float]] = []
    train_curve: list[list[float]] = []
    best, best_step, best_state = math.inf, 0, None
    stopped = "steps"
    t0 = time.perf_counter()
    for step in range(steps + 1):
        if step in marks:
            loss_now = held_out()
            curve.append([step, loss_now])
            if loss_now < best:
                best, best_step = loss_now, step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if log is not None:
                log(f"step {step}: held-out {loss_now:.4f} (best {best:.4f} at {best_step})")
            if step < steps and patience > 0 and step - best_step >= patience:
                stopped = "patience"
            elif step < steps and deadline is not None and time.perf_counter() > deadline:
                stopped = "deadline"
            if stopped != "steps":
                break
        if step == steps:
            break
        rows = rng.choice(len(train_seqs), size=min(batch, len(train_seqs)), replace=False)
        ctx, tgt = prefix_pairs(train_seqs[rows])
        ctx_d = torch.from_numpy(ctx).to(dev)
        first = torch.from_numpy(first_occurrence(ctx)).to(dev, torch.float32)
        loss = next_particle_nll(model, ctx_d, torch.from_numpy(tgt).to(dev), first).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0:
            train_curve.append([step, float(loss.detach())])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, {
        "curve": curve,
        "train_curve": train_curve,
        "final": curve[-1][1],
        "best": best,
        "best_step": best_step,
        "stopped": stopped,
        "steps": int(curve[-1][0]),
        "max_steps": steps,
        "seconds": seconds,
        "batch": batch,
        "lr": lr,
        "weight_decay": weight_decay,
    }


def steps_to_reach(curve: Iterable[Sequence[float]], target: float) -> int | None:
    """The first measured step whose held-out loss is at or under ``target``."""
    for step, loss in curve:
        if loss <= target:
            return int(step)
    return None


def compare(compiled_run: TrainRun, random_run: TrainRun) -> Comparison:
    """Steps each init needs to reach the random init's final held-out loss.

    ``ratio`` is random's steps over compiled's; when the compiled init is
    already there before any training (step 0) the ratio is unbounded and
    reported as ``None`` with ``compiled_at_init`` true.
    """
    target = random_run["final"]
    c = steps_to_reach(compiled_run["curve"], target)
    r = steps_to_reach(random_run["curve"], target)
    ratio = None if c in (None, 0) or r is None else r / c
    return {
        "target": target,
        "compiled_steps": c,
        "random_steps": r,
        "ratio": ratio,
        "compiled_at_init": c == 0,
    }


def implicit_links(
    model: Any,
    src: np.ndarray,
    dst: np.ndarray,
    keys: Sequence[str],
    *,
    per_particle: int = 5,
    limit: int = 1000,
    device: str = "cpu",
) -> list[tuple[str, str, float]]:
    """Likely (particle -> next particle) pairs the graph does not link: proposals only.

    For each particle alone as the context, its ``per_particle`` likeliest
    next particles that the graph does not link from it (``src -> dst``),
    itself excluded, with their probabilities renormalised over every
    particle but itself; all of them, most probable first, at most
    ``limit`` (0: no limit). The graph's own links are skipped before the
    ``per_particle`` are counted, so a particle whose likeliest next
    particles are all linked still proposes its next likeliest ones, as the
    compounding benchmark's proposals from the compiled model do. Nothing is
    linked: a person or a neuron decides.
    """
    import torch

    n = len(keys)
    src_t = torch.as_tensor(np.asarray(src, dtype=np.int64), device=device)
    dst_t = torch.as_tensor(np.asarray(dst, dtype=np.int64), device=device)
    found: list[tuple[float, int, int]] = []
    model.eval()
    with torch.no_grad():
        for lo in range(0, n, 1024):
            ids = torch.arange(lo, min(lo + 1024, n), device=device)
            out = model(ids[:, None])
            out[torch.arange(len(ids), device=device), ids] = 0.0
            out = out / out.sum(dim=1, keepdim=True)
            mine = (src_t >= lo) & (src_t < lo + len(ids))
            out[src_t[mine] - lo, dst_t[mine]] = -1.0
            out[torch.arange(len(ids), device=device), ids] = -1.0
            p, j = torch.topk(out, min(per_particle, n), dim=1)
            for i, row_p, row_j in zip(
                ids.tolist(), p.cpu().tolist(), j.cpu().tolist(), strict=True
            ):
                found.extend((pp, i, jj) for pp, jj in zip(row_p, row_j, strict=True) if pp >= 0)
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    if limit > 0:
        found = found[:limit]
    return [(keys[i], keys[j], p) for p, i, j in found]


def module_arrays(model: Any, compiled: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A trained module's weights in :func:`save_weights`' layout, for ``forward_numpy``.

    ``phi``, ``hop_p`` and ``hop_rest`` are written as the absolute values
    the module computes with, and ``hop_sem`` as zeros (one semcon), since
    the module weighs every semcon 1: ``forward_numpy`` of these arrays with
    its default factors is then the module's forward pass.
    """
    out = {k: np.asarray(compiled[k]) for k in FIXED}
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    for name in PARAMETERS:
        value = state[name].astype(np.float32)
        out[name] = np.abs(value) if name in ("phi", "hop_p", "hop_rest") else value
    out["hop_idx"] = np.asarray(compiled["hop_idx"])
    out["hop_sem"] = np.zeros_like(np.asarray(compiled["hop_sem"]))
    return out


def links_tsv(pairs: Iterable[tuple[str, str, float]]) -> str:
    """``from<TAB>to<TAB>probability`` lines with a header."""
    lines = ["from\tto\tprobability"]
    lines.extend(f"{a}\t{b}\t{p:.6g}" for a, b, p in pairs)
    return "\n".join(lines) + "\n"


# --- the GPU run ------------------------------------------------------------------------


def check_forward(
    arrays: dict[str, np.ndarray], check: dict[str, np.ndarray], device: str
) -> float:
    """Largest relative difference between the torch forward and saved ``forward_numpy``
    outputs on the same contexts (the GPU machine cannot run focusflow's numpy side)."""
    import torch

    model = torch_module(arrays).to(device)
    with torch.no_grad():
        got = model(torch.from_numpy(check["contexts"].astype(np.int64)).to(device)).cpu().numpy()
    want = check["probs"]
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-12)))


def _floats(text: str) -> list[float]:
    """A comma-separated list of numbers (``--lr 1e-3,1e-4``)."""
    return [float(x) for x in text.split(",") if x.strip()]


def _inits(text: str) -> list[str]:
    """``compiled``, ``random`` or both, comma-separated, in the order given."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names or any(x not in ("compiled", "random") for x in names):
        raise argparse.ArgumentTypeError(f"inits are compiled and/or random, got {text!r}")
    return names


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="fine-tune the compiled (and a random) init, write its implicit links"
    )
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--check", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--inits",
        type=_inits,
        default=["compiled", "random"],
        help="inits to train: compiled,random (the comparison) or compiled alone",
    )
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--lr", type=_floats, default=[1e-3], help="learning rates, comma-separated: one run each"
    )
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument(
        "--patience",
        type=int,
        default=0,
        help="stop a run this many steps after its best held-out loss (0: never)",
    )
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=0.0,
        help="training time for all runs together; a run past it stops (0: no limit)",
    )
    ap.add_argument("--per-particle", type=int, default=5)
    ap.add_argument(
        "--limit", type=int, default=1000, help="implicit links written (0: all of them)"
    )
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Fine-tune each init at each learning rate, compare, write JSON, TSV and the weights.

    Every run keeps its weights at its best held-out loss (:func:`train`);
    the implicit links come from the run with the lowest best held-out loss
    among the compiled init's runs (the random init's when it alone is
    trained), and ``finetuned.npz`` holds that run's weights in
    :func:`save_weights`' layout. The comparison of the two inits is made
    when both are trained at one learning rate.
    """
    import torch

    args = _parser().parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    data = load_arrays(args.data)
    compiled = load_arrays(args.weights)

    def log(msg: str) -> None:
        print(msg, flush=True)

    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "meta": json.loads(str(data["meta"])),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.check is not None:
        result["check_max_rel"] = check_forward(compiled, load_arrays(args.check), device)
        log(
            f"torch forward vs forward_numpy: max relative difference {result['check_max_rel']:.3e}"
        )
    deadline = time.perf_counter() + args.max_seconds if args.max_seconds > 0 else None
    runs: dict[str, TrainRun] = {}
    source = "compiled" if "compiled" in args.inits else args.inits[0]
    chosen: tuple[str, Any] | None = None
    for init in args.inits:
        arrays = compiled if init == "compiled" else random_arrays(compiled, args.seed)
        for lr in args.lr:
            label = init if len(args.lr) == 1 else f"{init} lr={lr:g}"
            log(f"--- {label}")
            model, runs[label] = train(
                arrays,
                data["train"],
                data["test"],
                steps=args.steps,
                batch=args.batch,
                lr=lr,
                weight_decay=args.weight_decay,
                eval_every=args.eval_every,
                seed=args.seed,
                patience=args.patience,
                deadline=deadline,
                device=device,
                log=log,
            )
            run = runs[label]
            log(
                f"{label}: best held-out {run['best']:.4f} at step {run['best_step']}, "
                f"last {run['final']:.4f} at step {run['steps']} (stopped: {run['stopped']}), "
                f"{run['seconds']:.1f} s"
            )
            if init == source and (chosen is None or run["best"] < runs[chosen[0]]["best"]):
                chosen = (label, model)
    result["runs"] = runs
    if set(args.inits) == {"compiled", "random"} and len(args.lr) == 1:
        result["comparison"] = compare(runs["compiled"], runs["random"])
        log(json.dumps(result["comparison"]))
    if chosen is None:  # unreachable: --inits is never empty
        raise RuntimeError("no run was trained")
    label, model = chosen
    best = runs[label]
    result["proposals_from"] = {
        "run": label,
        "lr": best["lr"],
        "step": best["best_step"],
        "held_out": best["best"],
        "held_out_at_init": best["curve"][0][1],
        "note": "the implicit links and finetuned.npz come from this run's weights at its "
        "best held-out loss (step above), not from its last step",
    }
    keys = data["keys"].tolist()
    pairs = implicit_links(
        model,
        data["src"],
        data["dst"],
        keys,
        per_particle=args.per_particle,
        limit=args.limit,
        device=device,
    )
    tsv = links_tsv(pairs)
    result["implicit_links"] = len(pairs)
    result["implicit_links_head"] = tsv.splitlines()[1:51]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "implicit_links.tsv").write_text(tsv)
    # numpy's stub lets a **dict of arrays reach allow_pickle: bool.
    np.savez_compressed(args.out / "finetuned.npz", **module_arrays(model, compiled))  # type: ignore[arg-type]
    (args.out / "finetune.json").write_text(json.dumps(result, indent=1) + "\n")
    log(
        f"proposals from {label} at step {best['best_step']} (held-out {best['best']:.4f}, "
        f"{best['curve'][0][1]:.4f} at step 0): {len(pairs)} implicit links in "
        f"{args.out / 'implicit_links.tsv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
