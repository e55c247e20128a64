"""The forward pass in numpy: the reference the ONNX graph is tested against.

For a context of particle indices (``-1`` = padding), with ``u`` uniform over
the context and ``a_0 = u``:

1. attention, computed once (the weights are tied across layers): per head s,
   ``softmax((X W_Q^s)(X W_K^s)^T / sqrt(d))`` over the other context
   positions plus a sink of logit 0 (attending to the sink keeps the mass
   where it is); the heads are mixed by their link-weight shares into ``G``;
2. each of the L layers is one diffusion step, ``D(x) = alpha P^T x +
   (1 - alpha + alpha * dangling(x)) u``, on the state
   ``x = c u + alpha c' P_r^T a + V z``: the context's own mass, its exact
   first hop (the r heaviest out-links) and the low-rank rest:

       m_l     = sum_j a_l[j] emb_in[j]                (two hops, basis V)
       z_{l+1} = alpha (alpha c'_l m_l + T z_l)         (the MLP: propagation T)
       c_{l+1} = 1 - alpha c_l hop_mass(a_l) - 1^T V z_{l+1}
       c'_{l+1} = c_l                                   (c_0 = 1, c'_0 = 0)
       a_{l+1} = (1 - gamma) u + gamma (a_l G + a_l * stay)

   ``c`` is what is not spread: teleport plus the mass returned by dangling
   particles, by mass balance;
3. ``q = relu(c u + alpha c' P_r^T a + V z)`` normalised, mixed with a share
   ``floor`` of ``phi*`` (full support, so KL(phi*_c || q) is finite),
   normalised again.

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


def attention_mix(w: CompiledWeights, x: np.ndarray, valid: np.ndarray):
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


def forward_numpy(w: CompiledWeights, particles: np.ndarray) -> np.ndarray:
    """``next`` probabilities (batch x vocab, float32) of int64 ``particles``
    (batch x seq, ``-1`` padding). Indices are not checked here (the runner
    does); an all-padding row gives ``phi*``."""
    f32 = np.float32
    p = np.asarray(particles, dtype=np.int64)
    valid = p >= 0
    idx = np.where(valid, p, 0)
    vf = valid.astype(f32)
    count = np.maximum(vf.sum(axis=1, keepdims=True), f32(1.0))
    u = vf / count
    x = w.emb_att[idx]
    e_in = w.emb_in[idx]
    g, stay = attention_mix(w, x, valid)
    alpha = f32(w.alpha)
    gamma = f32(w.attention_share)
    a = u
    c = np.ones((p.shape[0], 1), dtype=f32)
    c_hop = np.zeros((p.shape[0], 1), dtype=f32)
    z = np.zeros((p.shape[0], w.dim), dtype=f32)
    hop_mass = w.hop_mass[idx]
    for _ in range(w.layers):
        m = np.matmul(a[:, None, :], e_in)[:, 0, :]
        z = alpha * (alpha * c_hop * m + z @ w.prop_t)
        c_next = f32(1.0) - alpha * c * (a * hop_mass).sum(axis=1, keepdims=True)
        c_next = c_next - z @ w.basis_mass[:, None]
        c_hop, c = c, c_next
        flow = np.matmul(a[:, None, :], g)[:, 0, :] + a * stay
        a = (f32(1.0) - gamma) * u + gamma * flow
    q = z @ w.unemb
    b, s = p.shape
    r = w.hop_idx.shape[1]
    hop_to = w.hop_idx[idx].astype(np.int64).reshape(b, s * r)
    hop_by = (w.hop_w[idx] * a[:, :, None]).reshape(b, s * r) * (alpha * c_hop)
    to = np.concatenate([idx, hop_to], axis=1)
    by = np.concatenate([c * u, hop_by], axis=1)
    rows = np.repeat(np.arange(b), to.shape[1])
    np.add.at(q, (rows, to.ravel()), by.ravel())
    q = np.maximum(q, f32(0.0))
    q = q / np.maximum(q.sum(axis=1, keepdims=True), f32(TINY))
    out = (f32(1.0) - f32(w.floor)) * q + f32(w.floor) * w.phi[None, :]
    return (out / out.sum(axis=1, keepdims=True)).astype(f32)
