"""The forward pass in numpy: the reference the ONNX graph is tested against.

For a context of particle indices (``-1`` = padding), with ``u`` uniform over
the context, ``a_0 = u``, semcon factors ``f`` (one per semcon, default 1)
and ``D`` = ``hops`` exact steps:

1. the hop tables, weighted: a table row's entry ``j`` carries
   ``p_j f[sem_j] / (sum_k p_k f[sem_k] + rest * mean(f))`` (links left out
   of the table count at the mean factor), and ``H_k[i]`` is the k-step
   distribution out of context position i through the tables, k = 1 .. D
   (``r^k`` entries each), with ``mass_k[i]`` its total;
2. attention, computed once (the weights are tied across layers): per head s,
   ``softmax((X W_Q^s)(X W_K^s)^T / sqrt(d))`` over the other context
   positions plus a sink of logit 0 (attending to the sink keeps the mass
   where it is); the heads are mixed by their link-weight shares into ``G``;
3. each of the L layers is one diffusion step, ``D(x) = alpha P^T x +
   (1 - alpha + alpha * dangling(x)) u``, on the state
   ``x = c_0 u + sum_k alpha^k c_k H_k^T a + V z``: the context's own mass,
   its exact first D steps and the low-rank rest:

       m_l       = sum_i a_l[i] emb_in[i]            (D + 1 steps, basis V)
       z_{l+1}   = alpha (alpha^D c_D m_l + T z_l)   (the MLP: propagation T)
       c_k       <- c_{k-1}                          (k = 1 .. D; c_0 = 1 at first)
       c_0       <- 1 - sum_k alpha^k c_k a_l.mass_k - 1^T V z_{l+1}
       a_{l+1}   = (1 - gamma) u + gamma (a_l G + a_l * stay)

   ``c_0`` is what is not spread: teleport plus the mass returned by dangling
   particles and by links outside the tables, by mass balance;
4. ``q = relu(c_0 u + sum_k alpha^k c_k H_k^T a + V z)`` normalised, mixed
   with a share ``floor`` of ``phi*`` (full support, so KL(phi*_c || q) is
   finite), normalised again.

Everything is float32, in the order the ONNX graph computes it.
"""

from __future__ import annotations

import math

import numpy as np

from focusflow.compile.weights import CompiledWeights

#: Logit of masked keys (padding, the query itself): exp() of it is 0 in float32.
MASKED = -1.0e9
#: Smallest row mass divided by (an all-padding row has none).
TINY = 1.0e-30


def attention_mix(
    w: CompiledWeights, x: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(G, stay)``: the heads' mixed flow between positions and the sink share."""
    f32 = np.float32
    b, s, d = x.shape
    q = np.matmul(x[:, None, :, :], w.w_q[None])  # (b, h, s, d)
    k = np.matmul(x[:, None, :, :], w.w_k[None])
    logits = np.matmul(q, np.swapaxes(k, -1, -2)) / f32(math.sqrt(d))
    key_ok = valid[:, None, None, :] & ~np.eye(s, dtype=bool)[None, None]
    logits = np.where(key_ok, logits, f32(MASKED))
    full = np.concatenate([logits, np.zeros((b, w.heads, s, 1), dtype=f32)], axis=-1)
    full = full - full.max(axis=-1, keepdims=True)
    e = np.exp(full)
    att = e / e.sum(axis=-1, keepdims=True)
    share = w.head_share[None, :, None, None]
    g = (att[..., :s] * share).sum(axis=1)
    stay = (att[..., s] * w.head_share[None, :, None]).sum(axis=1)
    return g.astype(f32), stay.astype(f32)


def default_factors(w: CompiledWeights) -> np.ndarray:
    """Semcon factors of a query that names none: every relation at 1."""
    return np.ones(w.n_semcons, dtype=np.float32)


def weighted_rows(
    w: CompiledWeights, rows: np.ndarray, factors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(targets, probabilities)`` of table rows ``rows`` (any shape ``S``;
    results ``S + (r,)``) under semcon ``factors``."""
    f32 = np.float32
    fbar = factors.sum(dtype=f32) / f32(factors.shape[0])
    pr = w.hop_p[rows] * factors[w.hop_sem[rows]]
    norm = pr.sum(axis=-1, keepdims=True) + w.hop_rest[rows][..., None] * fbar
    return w.hop_idx[rows].astype(np.int64), pr / np.maximum(norm, f32(TINY))


def hop_levels(
    w: CompiledWeights, idx: np.ndarray, factors: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per exact step k = 1 .. D: targets and probabilities out of each context
    position, shaped ``(batch, seq, r^k)``."""
    b, s = idx.shape
    out = []
    rows = idx
    prob = None
    for _ in range(w.hops):
        to, pr = weighted_rows(w, rows, factors)
        prob = pr if prob is None else prob[..., None] * pr
        rows = to
        out.append((to.reshape(b, s, -1), prob.reshape(b, s, -1)))
    return out


def forward_numpy(
    w: CompiledWeights, particles: np.ndarray, factors: np.ndarray | None = None
) -> np.ndarray:
    """``next`` probabilities (batch x vocab, float32) of int64 ``particles``
    (batch x seq, ``-1`` padding) under semcon ``factors`` (default all 1).
    Indices are not checked here (the runner does); an all-padding row gives
    ``phi*``."""
    f32 = np.float32
    f = default_factors(w) if factors is None else np.asarray(factors, dtype=f32)
    p = np.asarray(particles, dtype=np.int64)
    valid = p >= 0
    idx = np.where(valid, p, 0)
    vf = valid.astype(f32)
    count = np.maximum(vf.sum(axis=1, keepdims=True), f32(1.0))
    u = vf / count
    x = w.emb_att[idx]
    e_in = w.emb_in[idx]
    levels = hop_levels(w, idx, f)
    masses = [pr.sum(axis=2) for _, pr in levels]
    g, stay = attention_mix(w, x, valid)
    alpha = f32(w.alpha)
    gamma = f32(w.attention_share)
    steps = [alpha ** f32(k) for k in range(w.hops + 1)]
    a = u
    batch = p.shape[0]
    c = [np.ones((batch, 1), dtype=f32)] + [np.zeros((batch, 1), dtype=f32)] * w.hops
    z = np.zeros((batch, w.dim), dtype=f32)
    for _ in range(w.layers):
        m = np.matmul(a[:, None, :], e_in)[:, 0, :]
        z = alpha * (steps[w.hops] * c[w.hops] * m + z @ w.prop_t)
        shifted = c[:-1]  # this layer's c_1 .. c_D: the last layer's c_0 .. c_(D-1)
        spread = z @ w.basis_mass[:, None]
        for k in range(1, w.hops + 1):
            carried = (a * masses[k - 1]).sum(axis=1, keepdims=True)
            spread = spread + steps[k] * shifted[k - 1] * carried
        c = [f32(1.0) - spread, *shifted]
        flow = np.matmul(a[:, None, :], g)[:, 0, :] + a * stay
        a = (f32(1.0) - gamma) * u + gamma * flow
    q = z @ w.unemb
    to = [idx]
    by = [c[0] * u]
    for k, (tk, pk) in enumerate(levels, 1):
        to.append(tk.reshape(batch, -1))
        by.append((pk * a[:, :, None]).reshape(batch, -1) * (steps[k] * c[k]))
    to_all = np.concatenate(to, axis=1)
    by_all = np.concatenate(by, axis=1)
    rows = np.repeat(np.arange(batch), to_all.shape[1])
    np.add.at(q, (rows, to_all.ravel()), by_all.ravel())
    q = np.maximum(q, f32(0.0))
    q = q / np.maximum(q.sum(axis=1, keepdims=True), f32(TINY))
    out = (f32(1.0) - f32(w.floor)) * q + f32(w.floor) * w.phi[None, :]
    probs: np.ndarray = (out / out.sum(axis=1, keepdims=True)).astype(f32)
    return probs
