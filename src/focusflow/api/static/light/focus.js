// Personal focus in the browser: the engine's tri-kernel (docs/focus.md §2) on
// a graph the page holds, in float64 on the CPU, or with springs and heat on
// WebGPU (gpu.js) where the browser has it.
//
// The answer is the fixed point the engine's `personalized_focus` computes,
// not its bits: φ = norm₁(λ_d D(φ) + λ_s S(φ) + λ_h H(φ)) with the teleport
// distribution u on the context. Springs and heat are applied as one
// Chebyshev series in the normalized Laplacian (the engine's `series`
// springs method): g(x) = λ_s μ/(x + μ) + λ_h e^(−τx) on [0, 2], the
// resolvent's coefficients in closed form and heat's from Miller's backward
// recurrence (focusflow.focus.spectral.bessel_ive), truncated where the
// remaining coefficients sum to at most `heatTol`. As in the engine, the
// series is applied to the change since its last application where that
// takes fewer terms (the series is linear, and the change shrinks as the
// iteration converges), the truncation errors adding up within the same
// budget as a fresh application's. The outer iteration is Anderson-mixed
// (type II, window `anderson`) and follows the engine's rules
// (focusflow.focus.policy.TriPolicy, finish "fixed"): while it is far from
// its equilibrium the series is only as accurate as FORCING times the last
// L1 change asks (at most LOOSEST, at least `heatTol`); once a step moves
// focus by less than `tol` it goes on at `heatTol`, the Anderson history
// dropped, and returns the first such step that moves focus by less than
// `tol`: a fixed point of the accurate map.

import { GpuSeries, LIGHT_TOL } from "./gpu.js";

export const DEFAULTS = Object.freeze({
  alpha: 0.85,
  mu: 1.0,
  tau: 1.0,
  weights: [0.5, 0.3, 0.2],
  tol: 1e-6,
  maxIter: 2048,
  anderson: 6,
  heatTol: 1e-12,
});

// What the page computes on at most: a neighbourhood larger than this is cut
// by the caller (links.js), never handed here to run for minutes.
export const MAX_PARTICLES = 1 << 20;
export const MAX_LINKS = 1 << 22;
// focusflow.focus.backends.base.DEGREE_FLOOR and the weights' floor (docs/focus.md §1).
const DEGREE_FLOOR = 1e-12;
const WEIGHT_FLOOR = 1e-300;
// Most Chebyshev terms the series may take (μ > 0 keeps it far below this).
const MAX_TERMS = 4096;
// The share of an application's error budget a fresh one spends, leaving room
// for increments on it (focusflow.focus.spectral.FRESH_SHARE).
const FRESH_SHARE = 0.1;
// Inexact steps aim their series at this fraction of the last L1 change, and
// at no looser than LOOSEST (focusflow.focus.policy.FORCING and LOOSEST).
const FORCING = 0.05;
const LOOSEST = 1e-2;

export class FocusError extends Error {
  // code: invalid_parameter (docs/errors.md), as the Python API refuses the same input
  constructor(message) {
    super(message);
    this.name = "FocusError";
    this.code = "invalid_parameter";
  }
}

const refuse = (message) => {
  throw new FocusError(message);
};

function checkedParams(given) {
  const p = { ...DEFAULTS, ...given };
  const inOpen = (x, lo, hi) => typeof x === "number" && x > lo && x < hi;
  if (!inOpen(p.alpha, 0, 1)) refuse(`alpha must be in (0, 1), got ${p.alpha}`);
  if (!(typeof p.mu === "number" && p.mu > 0 && Number.isFinite(p.mu))) refuse(`mu must be > 0, got ${p.mu}`);
  if (!(typeof p.tau === "number" && p.tau > 0 && Number.isFinite(p.tau))) refuse(`tau must be > 0, got ${p.tau}`);
  const w = p.weights;
  if (!(Array.isArray(w) && w.length === 3 && w.every((x) => typeof x === "number" && x >= 0 && Number.isFinite(x)))) {
    refuse("weights are three numbers >= 0");
  }
  if (Math.abs(w[0] + w[1] + w[2] - 1) > 1e-9 || !(w[0] > 0)) refuse("weights sum to 1 with lambda_d > 0");
  if (!inOpen(p.tol, 0, 1)) refuse(`tol must be in (0, 1), got ${p.tol}`);
  if (!(Number.isInteger(p.maxIter) && p.maxIter >= 1 && p.maxIter <= 2048)) refuse("maxIter is 1 to 2048");
  if (!(Number.isInteger(p.anderson) && p.anderson >= 0 && p.anderson <= 16)) refuse("anderson is 0 to 16");
  if (!inOpen(p.heatTol, 0, 1)) refuse(`heatTol must be in (0, 1), got ${p.heatTol}`);
  return p;
}

// The graph as the kernels read it: n particles, links src -> dst of weight w
// (self-links and weights below the floor dropped; repeated pairs add up).
export function prepareGraph(n, src, dst, w) {
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_PARTICLES)) refuse(`a graph has 1 to ${MAX_PARTICLES} particles, got ${n}`);
  const m = src.length;
  if (dst.length !== m || w.length !== m) refuse("src, dst and weights have one entry per link");
  if (m > MAX_LINKS) refuse(`a graph has at most ${MAX_LINKS} links, got ${m}`);
  const outW = new Float64Array(n);
  const degree = new Float64Array(n);
  const count = new Int32Array(n + 1);
  let kept = 0;
  for (let e = 0; e < m; e++) {
    const p = src[e], q = dst[e], x = w[e];
    if (!(Number.isInteger(p) && Number.isInteger(q) && p >= 0 && q >= 0 && p < n && q < n)) {
      refuse(`link ${e} (${p} -> ${q}) names a particle outside 0..${n - 1}`);
    }
    if (!(typeof x === "number" && x >= 0 && Number.isFinite(x))) refuse(`link ${e} has weight ${x}: finite and >= 0`);
    if (p === q || x < WEIGHT_FLOOR) continue;
    outW[p] += x;
    degree[p] += x;
    degree[q] += x;
    count[p + 1]++;
    count[q + 1]++;
    kept++;
  }
  // A = W + W^T by rows (counting sort), for springs and heat.
  for (let i = 0; i < n; i++) count[i + 1] += count[i];
  const aCol = new Int32Array(2 * kept);
  const aVal = new Float64Array(2 * kept);
  const fill = count.slice(0, n);
  const lSrc = new Int32Array(kept), lDst = new Int32Array(kept), lW = new Float64Array(kept);
  let k = 0;
  for (let e = 0; e < m; e++) {
    const p = src[e], q = dst[e], x = w[e];
    if (p === q || x < WEIGHT_FLOOR) continue;
    lSrc[k] = p; lDst[k] = q; lW[k] = x; k++;
    aCol[fill[p]] = q; aVal[fill[p]++] = x;
    aCol[fill[q]] = p; aVal[fill[q]++] = x;
  }
  let top = 0;
  for (let i = 0; i < n; i++) if (degree[i] > top) top = degree[i];
  const sigma = new Float64Array(n);
  const linked = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (degree[i] > 0 && degree[i] > DEGREE_FLOOR * top) {
      linked[i] = 1;
      sigma[i] = 1 / Math.sqrt(degree[i]);
    }
  }
  // σAσ, entries touching an unlinked particle dropped (its row and column are zero).
  for (let i = 0; i < n; i++) {
    for (let e = count[i]; e < count[i + 1]; e++) aVal[e] *= sigma[i] * sigma[aCol[e]];
  }
  // P^T as link weights over out-weights.
  const step = new Float64Array(kept);
  for (let e = 0; e < kept; e++) step[e] = lW[e] / outW[lSrc[e]];
  return { n, links: kept, src: lSrc, dst: lDst, step, dangling: outW.map((x) => (x > 0 ? 0 : 1)), aPtr: count, aCol, aVal, sigma, linked };
}

// exp(−c) I_k(c) for k = 0..kmax: focusflow.focus.spectral.bessel_ive, step for step.
export function besselIve(c, kmax) {
  const BIG = 1e250;
  const start = 2 * (kmax + Math.trunc(Math.sqrt(40 * (kmax + c))) + 20);
  const vals = new Float64Array(start + 2);
  vals[start] = 1e-30;
  const twoOverC = 2 / c;
  for (let k = start; k > 0; k--) {
    const v = vals[k + 1] + k * twoOverC * vals[k];
    vals[k - 1] = v;
    if (v > BIG) for (let j = k - 1; j <= start; j++) vals[j] /= BIG;
  }
  let total = 0;
  for (let k = start; k > 0; k--) total += vals[k];
  total = vals[0] + 2 * total;
  return Array.from(vals.subarray(0, kmax + 1), (v) => v / total);
}

// The Chebyshev coefficients of λ_s μ/(x + μ) + λ_h e^(−τx) in T_k(x − 1), x in [0, 2],
// up to the first K whose remaining coefficients sum to at most tol.
export function seriesCoefficients(mu, tau, lamS, lamH, tol) {
  const a = 1 + mu;
  const s = Math.sqrt(a * a - 1);
  const rho = a + s;
  const ive = lamH > 0 ? besselIve(tau, MAX_TERMS) : null;
  const coef = [];
  let r = 1;
  for (let k = 0; k <= MAX_TERMS; k++) {
    let c = 0;
    if (lamS > 0) c += lamS * (2 * mu / s) * (k === 0 ? 0.5 : r);
    if (ive) c += lamH * (k === 0 ? ive[0] : (k % 2 === 0 ? 2 : -2) * ive[k]);
    coef.push(c);
    r *= -1 / rho;
  }
  // Tail sums from the last term back: the first k whose tail is within tol ends it.
  let tail = 0;
  const tails = new Float64Array(coef.length + 1);
  for (let k = coef.length - 1; k >= 0; k--) {
    tail += Math.abs(coef[k]);
    tails[k] = tail;
  }
  let K = 1;
  while (K < coef.length && tails[K] > tol) K++;
  return coef.slice(0, K);
}

// y = Z x on the linked particles, Z = Ls − I = −σAσ.
function zProduct(g, x, y) {
  const { n, aPtr, aCol, aVal } = g;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let e = aPtr[i]; e < aPtr[i + 1]; e++) s += aVal[e] * x[aCol[e]];
    y[i] = -s;
  }
}

// The series Σ c_k T_k(Z) ψ in float64 on the CPU (gpu.js's GpuSeries is the
// same on WebGPU, in float32).
class CpuSeries {
  constructor(g, coef) {
    this.g = g;
    this.coef = coef;
    this.t = [0, 1, 2].map(() => new Float64Array(g.n));
    this.passes = 0;
  }

  // The first `terms` terms of the series applied to psi, into acc.
  apply(psi, acc, terms) {
    const { g } = this;
    const coef = this.coef.slice(0, terms);
    const n = g.n;
    let [prev, cur, next] = this.t;
    prev.set(psi);
    for (let i = 0; i < n; i++) acc[i] = coef[0] * psi[i];
    if (coef.length > 1) {
      zProduct(g, psi, cur);
      this.passes++;
      for (let i = 0; i < n; i++) acc[i] += coef[1] * cur[i];
    }
    for (let k = 2; k < coef.length; k++) {
      zProduct(g, cur, next);
      this.passes++;
      const c = coef[k];
      for (let i = 0; i < n; i++) {
        const v = 2 * next[i] - prev[i];
        next[i] = v;
        acc[i] += c * v;
      }
      [prev, cur, next] = [cur, next, prev];
    }
  }
}

// The smallest K >= 1 (at most the coefficients' count) whose tail, the error
// of cutting the series there, is at most `bound`.
function cutAt(coef, tails, bound) {
  let k = 1;
  while (k < coef.length && tails[k] > bound) k++;
  return k;
}

function norm2(x) {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

class Operator {
  constructor(g, p, prior, gpu) {
    this.g = g;
    this.p = p;
    this.u = prior;
    const [, lamS, lamH] = p.weights;
    // Coefficients to the fresh applications' share of the budget; tails[k]
    // bounds the error of cutting at k (tails[K] is what lies past them).
    const beyond = FRESH_SHARE * p.heatTol;
    const coef = lamS + lamH > 0 ? seriesCoefficients(p.mu, p.tau, lamS, lamH, beyond) : [];
    this.coef = coef;
    this.tails = new Float64Array(coef.length + 1);
    this.tails[coef.length] = beyond;
    for (let k = coef.length - 1; k >= 0; k--) this.tails[k] = this.tails[k + 1] + Math.abs(coef[k]);
    this.terms = coef.length;
    this.series = coef.length ? (gpu ? new GpuSeries(gpu.device, g, coef) : new CpuSeries(g, coef)) : null;
    this.psi = new Float64Array(g.n);
    this.acc = new Float64Array(g.n);
    this.delta = new Float64Array(g.n);
    // The last application: its input, its result and its error bound
    // (lastErr null: none yet), kept in buffers made once.
    this.lastPsi = new Float64Array(g.n);
    this.lastAcc = new Float64Array(g.n);
    this.lastErr = null;
  }

  get passes() {
    return this.series?.passes ?? 0;
  }

  // g(Ls) psi into acc within innerTol * ||psi||_2: fresh (its share of that
  // budget), or the last result plus the series applied to the change since,
  // cut where the errors so far and this one's stay within the budget, when
  // that takes fewer terms (focusflow.focus.spectral._heat_input's rule).
  async applySeries(psi, acc, innerTol) {
    const { coef, tails } = this;
    const scale = norm2(psi);
    const budget = innerTol * scale;
    const fresh = cutAt(coef, tails, FRESH_SHARE * innerTol);
    let input = psi, terms = fresh, err = tails[fresh] * scale, base = null;
    const lastErr = this.lastErr;
    if (lastErr !== null && lastErr < budget) {
      const delta = this.delta;
      for (let i = 0; i < psi.length; i++) delta[i] = psi[i] - this.lastPsi[i];
      const size = norm2(delta);
      const inc = size > 0 ? cutAt(coef, tails, Math.min(0.5, (budget - lastErr) / size)) : 0;
      if (inc < fresh) {
        input = delta;
        terms = inc;
        err = lastErr + (size > 0 ? tails[inc] * size : 0);
        base = this.lastAcc;
      }
    }
    if (terms > 0) await this.series.apply(input, acc, terms);
    else acc.fill(0);
    if (base) for (let i = 0; i < acc.length; i++) acc[i] += base[i];
    this.lastPsi.set(psi);
    this.lastAcc.set(acc);
    this.lastErr = err;
  }

  // G(φ) = norm₁(λ_d D(φ) + σ⁻¹ g(Ls) σφ) into out, the series within
  // innerTol; unlinked particles keep their own share of springs and heat
  // (identity there).
  async apply(phi, out, innerTol) {
    const { g, p, u } = this;
    const n = g.n;
    const [lamD, lamS, lamH] = p.weights;
    let dangling = 0, mass = 0;
    for (let i = 0; i < n; i++) {
      mass += phi[i];
      if (g.dangling[i]) dangling += phi[i];
    }
    const teleport = p.alpha * dangling + (1 - p.alpha) * mass;
    for (let i = 0; i < n; i++) out[i] = lamD * teleport * u[i];
    const ad = lamD * p.alpha;
    for (let e = 0; e < g.links; e++) out[g.dst[e]] += ad * g.step[e] * phi[g.src[e]];
    if (this.series) {
      const { psi, acc } = this;
      for (let i = 0; i < n; i++) psi[i] = g.sigma[i] * phi[i];
      await this.applySeries(psi, acc, innerTol);
      const keep = lamS + lamH;
      for (let i = 0; i < n; i++) out[i] += g.linked[i] ? acc[i] / g.sigma[i] : keep * phi[i];
    }
    let total = 0;
    for (let i = 0; i < n; i++) total += out[i];
    for (let i = 0; i < n; i++) out[i] /= total;
  }

  destroy() {
    this.series?.destroy?.();
  }
}

// The least-squares weights γ minimising ‖f − ΔF γ‖ through the Gram system,
// eliminated with diagonal pivoting; a pivot below 1e-12 of the largest diagonal
// leaves its direction out (focusflow.focus.anderson.solve_gram's rule).
function gramWeights(dF, f) {
  const m = dF.length;
  const G = Array.from({ length: m }, () => new Float64Array(m));
  const b = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    for (let j = i; j < m; j++) {
      let s = 0;
      const a = dF[i], c = dF[j];
      for (let k = 0; k < a.length; k++) s += a[k] * c[k];
      G[i][j] = G[j][i] = s;
    }
    let s = 0;
    for (let k = 0; k < f.length; k++) s += dF[i][k] * f[k];
    b[i] = s;
  }
  let biggest = 0;
  for (let i = 0; i < m; i++) biggest = Math.max(biggest, G[i][i]);
  const gamma = new Float64Array(m);
  const used = new Uint8Array(m);
  const order = [];
  for (let step = 0; step < m; step++) {
    let best = -1;
    for (let i = 0; i < m; i++) if (!used[i] && (best < 0 || G[i][i] > G[best][best])) best = i;
    if (!(G[best][best] > 1e-12 * biggest)) break;
    used[best] = 1;
    order.push(best);
    const piv = G[best][best];
    for (let i = 0; i < m; i++) {
      if (used[i]) continue;
      const f2 = G[i][best] / piv;
      for (let j = 0; j < m; j++) G[i][j] -= f2 * G[best][j];
      b[i] -= f2 * b[best];
    }
  }
  for (let s = order.length - 1; s >= 0; s--) {
    const i = order[s];
    let v = b[i];
    for (const j of order.slice(s + 1)) v -= G[i][j] * gamma[j];
    gamma[i] = v / G[i][i];
  }
  return gamma;
}

// The context's teleport distribution: particle indices (repeats add up).
export function contextPrior(n, context) {
  if (!Array.isArray(context) || context.length === 0) refuse("the context is empty: give at least one particle");
  const u = new Float64Array(n);
  for (const c of context) {
    if (!(Number.isInteger(c) && c >= 0 && c < n)) refuse(`context particle ${c} is out of range [0, ${n})`);
    u[c] += 1;
  }
  for (let i = 0; i < n; i++) u[i] /= context.length;
  return u;
}

// Personal focus of `context` (particle indices) on a prepared graph; with
// `gpu` (gpu.js gpuDevice()) the series runs on WebGPU in float32 and the
// tolerance defaults to LIGHT_TOL. Resolves to { focus, iterations, converged,
// change, passes, terms, path, ms }.
export async function personalFocus(g, context, given = {}, { gpu = null } = {}) {
  const t0 = performance.now();
  const p = checkedParams(gpu && given.tol === undefined ? { ...given, tol: LIGHT_TOL } : given);
  const n = g.n;
  const u = contextPrior(n, context);
  const op = new Operator(g, p, u, gpu);
  try {
    return { ...(await iterate(op, p, u)), passes: op.passes, terms: op.terms, path: gpu ? "webgpu" : "cpu", ms: performance.now() - t0 };
  } finally {
    op.destroy();
  }
}

// The Anderson-mixed outer iteration from u: inexact steps until one moves
// focus by less than tol, then accurate ones to the first that does.
async function iterate(op, p, u) {
  const n = u.length;
  let phi = Float64Array.from(u);
  let gphi = new Float64Array(n);
  const dX = [], dF = [];
  let lastX = null, lastF = null, lastRes = Infinity;
  let iterations = 0, change = Infinity, converged = false;
  // Without springs and heat every step is accurate (the engine's rule too).
  let exact = !op.series, res = 1;
  while (iterations < p.maxIter) {
    const innerTol = exact ? p.heatTol : Math.min(LOOSEST, Math.max(p.heatTol, FORCING * res));
    await op.apply(phi, gphi, innerTol);
    iterations++;
    const f = new Float64Array(n);
    change = 0;
    for (let i = 0; i < n; i++) {
      f[i] = gphi[i] - phi[i];
      change += Math.abs(f[i]);
    }
    res = change;
    if (change < p.tol && exact) {
      converged = true;
      phi = gphi;
      break;
    }
    const switched = change < p.tol;
    if (switched) exact = true;
    if (switched || p.anderson === 0 || change > 2 * lastRes) {
      dX.length = dF.length = 0; // restart: the history no longer describes this step
      lastX = lastF = null;
    }
    lastRes = change;
    if (lastX) {
      const dx = new Float64Array(n), df = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        dx[i] = gphi[i] - lastX[i];
        df[i] = f[i] - lastF[i];
      }
      dX.push(dx);
      dF.push(df);
      if (dX.length > p.anderson) {
        dX.shift();
        dF.shift();
      }
    }
    lastX = Float64Array.from(gphi);
    lastF = f;
    const next = Float64Array.from(gphi);
    if (dF.length) {
      const gamma = gramWeights(dF, f);
      for (let j = 0; j < gamma.length; j++) {
        const dx = dX[j], gj = gamma[j];
        if (gj !== 0) for (let i = 0; i < n; i++) next[i] -= gj * dx[i];
      }
      let total = 0;
      for (let i = 0; i < n; i++) {
        if (!(next[i] > 0)) next[i] = 0;
        total += next[i];
      }
      if (total > 0) for (let i = 0; i < n; i++) next[i] /= total;
      else next.set(gphi);
    }
    phi = next;
  }
  return { focus: phi, iterations, converged, change };
}
