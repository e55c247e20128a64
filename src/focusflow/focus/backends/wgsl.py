"""The WGSL source of the wgpu backend and the bindings each entry point uses.

Kept apart from ``webgpu.py`` (which builds pipelines, buffers and bind groups
and drives the solve) so the device code reads as one piece. Two modules:
:data:`SHADER` holds the matrix products (SELL-32 rows, long-row chunks and
their ordered sums), :data:`VECTOR_SHADER` the vector side of a diffusion step
(fill, gather, overlay rows, mass and L1 reductions in double-float pairs,
finish) and of Anderson mixing on the device.
"""

from __future__ import annotations

#: Largest Anderson window on the device (FocusParams allows 0..10).
MAX_ANDERSON = 10

SHADER = """
struct Params {
    ngroups: u32,
    nchunks: u32,
    nlong: u32,
    width: u32,
    scale: f32,
    p0: u32,
    p1: u32,
    p2: u32,
}

@group(0) @binding(0) var<storage, read> gptr: array<u32>;
@group(0) @binding(1) var<storage, read> glen: array<u32>;
@group(0) @binding(2) var<storage, read> grows: array<i32>;
@group(0) @binding(3) var<storage, read> sidx: array<u32>;
@group(0) @binding(4) var<storage, read> sval: array<f32>;
@group(0) @binding(5) var<storage, read> z: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;
@group(0) @binding(8) var<storage, read> cstart: array<u32>;
@group(0) @binding(9) var<storage, read> cend: array<u32>;
@group(0) @binding(10) var<storage, read> lidx: array<u32>;
@group(0) @binding(11) var<storage, read> lval: array<f32>;
@group(0) @binding(12) var<storage, read_write> partial: array<f32>;
@group(0) @binding(13) var<storage, read> lrow: array<u32>;
@group(0) @binding(14) var<storage, read> lchunk: array<u32>;

var<workgroup> scratch: array<f32, 64>;

fn flat(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.width;
}

@compute @workgroup_size(64)
fn sell_pull(@builtin(global_invocation_id) gid: vec3<u32>) {
    let tid = flat(gid);
    let g = tid / 32u;
    let lane = tid % 32u;
    if (g >= params.ngroups) {
        // rows past the matrix (particles added after it was built, p1 of
        // them from row p0) have only overlay entries: their sums start at 0
        let t = tid - params.ngroups * 32u;
        if (t < params.p1) {
            out[params.p0 + t] = 0.0;
        }
        return;
    }
    var o = gptr[g] + lane;
    let len = glen[g];
    var acc: f32 = 0.0;
    for (var j: u32 = 0u; j < len; j = j + 1u) {
        acc = acc + sval[o] * z[sidx[o]];
        o = o + 32u;
    }
    let r = grows[g * 32u + lane];
    if (r >= 0) {
        out[u32(r)] = acc * params.scale;
    }
}

@compute @workgroup_size(64)
fn chunk_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = wid.x + wid.y * (params.width / 64u);
    if (k >= params.nchunks) {
        return;
    }
    var acc: f32 = 0.0;
    for (var e: u32 = cstart[k] + lid.x; e < cend[k]; e = e + 64u) {
        acc = acc + lval[e] * z[lidx[e]];
    }
    scratch[lid.x] = acc;
    workgroupBarrier();
    for (var s: u32 = 32u; s > 0u; s = s / 2u) {
        if (lid.x < s) {
            scratch[lid.x] = scratch[lid.x] + scratch[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        partial[k] = scratch[0];
    }
}

@compute @workgroup_size(64)
fn long_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if (i >= params.nlong) {
        return;
    }
    var acc: f32 = 0.0;
    for (var k: u32 = lchunk[i]; k < lchunk[i + 1u]; k = k + 1u) {
        acc = acc + partial[k];
    }
    out[lrow[i]] = acc * params.scale;
}
"""

# The vector side of a diffusion step. ``y`` holds ``alpha P^T x`` after the
# product passes and the next iterate after ``finish``; ``stats[0]`` is the
# teleport weight of the current step, ``stats[2 + 2 k]`` the L1 change of the
# k-th step of a batch as a (hi, lo) pair, ``counter[0]`` the next slot. An
# Anderson step (one per submission) instead leaves its 1 + 2 m values (the L1
# change, the m cross products, the m right-hand sides) in pairs from
# ``stats[2]`` on.
_VECTOR_SOURCE = """
struct VParams {
    n: u32,
    nparts: u32,
    nov: u32,
    width: u32,
    inv_prior_sum: f32,
    scale: f32,
    // 1: the prior is uniform and taken as 1 everywhere (inv_prior_sum = 1 / n),
    // so finish reads no prior buffer and none is uploaded.
    uniform_prior: u32,
    // What fill writes into every entry of y (a uniform start vector).
    fill_value: f32,
    // Anderson mixing (the window is the module constant AA_M): the slot the
    // next step's differences go to, and the live slots the next mix combines.
    p0: u32,
    aa_slot: u32,
    aa_k: u32,
    p1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;
@group(0) @binding(3) var<storage, read> prior: array<f32>;
@group(0) @binding(4) var<storage, read> inv_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> part: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<uniform> vp: VParams;
@group(0) @binding(8) var<storage, read_write> counter: array<u32>;
@group(0) @binding(9) var<storage, read> ovrow: array<u32>;
@group(0) @binding(10) var<storage, read> ovstart: array<u32>;
@group(0) @binding(11) var<storage, read> ovend: array<u32>;
@group(0) @binding(12) var<storage, read> ovidx: array<u32>;
@group(0) @binding(13) var<storage, read> ovval: array<f32>;
// Anderson history: x_prev, g_prev, then s_0..s_{m-1}, dg_0..dg_{m-1}, n each,
// where s_j = dx_j + dg_j (the mix needs only that sum; the Gram products dg).
@group(0) @binding(14) var<storage, read_write> hist: array<f32>;
// Anderson coefficients gamma_0..gamma_{k-1} of the next mix (from the host).
@group(0) @binding(15) var<storage, read> coef: array<f32>;

var<workgroup> red: array<vec2<f32>, 256>;

// Knuth's TwoSum: s + e == a + b exactly (round to nearest, no reassociation).
fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = a + b;
    let bb = s - a;
    return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

// (hi, lo) + (hi, lo), renormalised.
fn dd_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = two_sum(a.x, b.x);
    return two_sum(s.x, s.y + (a.y + b.y));
}

// (hi, lo) + a float32 value.
fn dd_add1(a: vec2<f32>, v: f32) -> vec2<f32> {
    let s = two_sum(a.x, v);
    return two_sum(s.x, s.y + a.y);
}

// Fixed tree over the 256 invocations of a workgroup; the sum is in lane 0.
fn wg_reduce(lid: u32, v: vec2<f32>) -> vec2<f32> {
    red[lid] = v;
    workgroupBarrier();
    for (var s: u32 = 128u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = dd_add(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    return red[0];
}

// Second level: one workgroup adds the nparts first-level pairs in a fixed order.
fn reduce_parts(lid: u32) -> vec2<f32> {
    var acc = vec2<f32>(0.0, 0.0);
    for (var k: u32 = lid; k < vp.nparts; k = k + 256u) {
        acc = dd_add(acc, part[k]);
    }
    return wg_reduce(lid, acc);
}

@compute @workgroup_size(256)
fn fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let stride = vp.nparts * 256u;
    for (var i: u32 = wid.x * 256u + lid.x; i < vp.n; i = i + stride) {
        y[i] = vp.fill_value;
    }
}

@compute @workgroup_size(256)
fn prep(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let stride = vp.nparts * 256u;
    for (var i: u32 = wid.x * 256u + lid.x; i < vp.n; i = i + stride) {
        z[i] = x[i] * inv_out[i];
    }
}

@compute @workgroup_size(64)
fn ov_add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x + gid.y * vp.width;
    if (k >= vp.nov) {
        return;
    }
    var acc: f32 = 0.0;
    for (var e: u32 = ovstart[k]; e < ovend[k]; e = e + 1u) {
        acc = acc + ovval[e] * z[ovidx[e]];
    }
    let r = ovrow[k];
    y[r] = y[r] + acc * vp.scale;
}

@compute @workgroup_size(256)
fn sum_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let stride = vp.nparts * 256u;
    var acc = vec2<f32>(0.0, 0.0);
    for (var i: u32 = wid.x * 256u + lid.x; i < vp.n; i = i + stride) {
        acc = dd_add1(acc, y[i]);
    }
    let r = wg_reduce(lid.x, acc);
    if (lid.x == 0u) {
        part[wid.x] = r;
    }
}

@compute @workgroup_size(256)
fn mass_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    let s = reduce_parts(lid.x);
    if (lid.x == 0u) {
        let rest = two_sum(1.0, -s.x);
        stats[0] = (rest.x + (rest.y - s.y)) * vp.inv_prior_sum;
        stats[1] = 1.0;
    }
}

// Tri mode: y holds the unnormalised blend; finish then computes y / sum(y)
// (stats[1] = 1 / sum, no teleport term). A zero or non-finite sum makes the
// entries, and so the L1 change the host reads, non-finite.
@compute @workgroup_size(256)
fn blend_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    let s = reduce_parts(lid.x);
    if (lid.x == 0u) {
        stats[0] = 0.0;
        stats[1] = 1.0 / (s.x + s.y);
    }
}

@compute @workgroup_size(256)
fn finish(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tele = stats[0];
    let keep = stats[1];
    let stride = vp.nparts * 256u;
    var acc = vec2<f32>(0.0, 0.0);
    for (var i: u32 = wid.x * 256u + lid.x; i < vp.n; i = i + stride) {
        var u: f32 = 1.0;
        if (vp.uniform_prior == 0u) {
            u = prior[i];
        }
        let v = y[i] * keep + tele * u;
        y[i] = v;
        z[i] = v * inv_out[i];
        acc = dd_add1(acc, abs(v - x[i]));
    }
    let r = wg_reduce(lid.x, acc);
    if (lid.x == 0u) {
        part[wid.x] = r;
    }
}

// Most values one Anderson step reduces: the L1 change, m cross and m rhs products.
// The window and the values an Anderson step reduces (1 + 2 AA_M) are module
// constants, so the loops over slots unroll and the running sums stay in
// registers; a module is compiled per window (``vector_shader``).
const AA_M: u32 = AA_M_VALUEu;
const AA_VALUES: u32 = AA_VALUES_Nu;

// finish with Anderson bookkeeping: besides the next iterate, the gathered
// vector and the L1 change, store s = dx + dg and dg = g - g_prev (g = G(x) - x,
// dx = x - x_prev) in slot aa_slot, set x_prev = x and g_prev = g, and reduce
// cross_j = dg . dg_j and rhs_j = dg_j . g for every slot j (the new dg in
// slot aa_slot): value q of workgroup w goes to part[q * nparts + w].
@compute @workgroup_size(256)
fn finish_aa(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tele = stats[0];
    let keep = stats[1];
    let n = vp.n;
    let m = AA_M;
    let slot = vp.aa_slot;
    let stride = vp.nparts * 256u;
    var acc: array<vec2<f32>, AA_VALUES_N>;
    for (var q: u32 = 0u; q < AA_VALUES; q = q + 1u) {
        acc[q] = vec2<f32>(0.0, 0.0);
    }
    for (var i: u32 = wid.x * 256u + lid.x; i < n; i = i + stride) {
        var u: f32 = 1.0;
        if (vp.uniform_prior == 0u) {
            u = prior[i];
        }
        let v = y[i] * keep + tele * u;
        y[i] = v;
        z[i] = v * inv_out[i];
        let xi = x[i];
        let g = v - xi;
        acc[0] = dd_add1(acc[0], abs(g));
        let dg = g - hist[n + i];
        hist[(2u + slot) * n + i] = (xi - hist[i]) + dg;
        hist[(2u + m + slot) * n + i] = dg;
        hist[i] = xi;
        hist[n + i] = g;
        for (var j: u32 = 0u; j < m; j = j + 1u) {
            var d = dg;
            if (j != slot) {
                d = hist[(2u + m + j) * n + i];
            }
            acc[1u + j] = dd_add1(acc[1u + j], dg * d);
            acc[1u + m + j] = dd_add1(acc[1u + m + j], d * g);
        }
    }
    for (var q: u32 = 0u; q < AA_VALUES; q = q + 1u) {
        let r = wg_reduce(lid.x, acc[q]);
        if (lid.x == 0u) {
            part[q * vp.nparts + wid.x] = r;
        }
        workgroupBarrier();
    }
}

// The 1 + 2 m values of finish_aa into stats[2 + 2 q], stats[3 + 2 q].
@compute @workgroup_size(256)
fn aa_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    for (var q: u32 = 0u; q < AA_VALUES; q = q + 1u) {
        var acc = vec2<f32>(0.0, 0.0);
        for (var k: u32 = lid.x; k < vp.nparts; k = k + 256u) {
            acc = dd_add(acc, part[q * vp.nparts + k]);
        }
        let s = wg_reduce(lid.x, acc);
        if (lid.x == 0u) {
            stats[2u + 2u * q] = s.x;
            stats[3u + 2u * q] = s.y;
        }
        workgroupBarrier();
    }
}

// The mixed iterate y = max(y - sum_j gamma_j s_j, 0) over the aa_k live slots,
// and its gathered vector. It is not renormalised: the next step's teleport
// term makes G(y) a distribution whatever the mass of y (near 1: every s_j has
// mass ~0, only clipping adds some), and a degenerate mix shows up as a jump
// in the next L1 change, which restarts the history.
@compute @workgroup_size(256)
fn aa_mix(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let n = vp.n;
    let stride = vp.nparts * 256u;
    for (var i: u32 = wid.x * 256u + lid.x; i < n; i = i + stride) {
        var v = y[i];
        for (var j: u32 = 0u; j < vp.aa_k; j = j + 1u) {
            v = v - coef[j] * hist[(2u + j) * n + i];
        }
        v = max(v, 0.0);
        y[i] = v;
        z[i] = v * inv_out[i];
    }
}

@compute @workgroup_size(256)
fn l1_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    let s = reduce_parts(lid.x);
    if (lid.x == 0u) {
        let slot = counter[0];
        stats[2u + 2u * slot] = s.x;
        stats[3u + 2u * slot] = s.y;
        counter[0] = slot + 1u;
    }
}
"""


def vector_shader(m: int) -> str:
    """The vector module with an Anderson window of ``m`` (0: no mixing)."""
    if not 0 <= m <= MAX_ANDERSON:
        raise ValueError(f"the wgpu backend mixes at most {MAX_ANDERSON} steps")
    return _VECTOR_SOURCE.replace("AA_M_VALUE", str(m)).replace("AA_VALUES_N", str(1 + 2 * m))


VECTOR_SHADER = vector_shader(0)

# A patch's new matrix values, written where they belong on the device: the
# positions and values of the changed entries go up, not the whole matrix.
SCATTER_SHADER = """
struct Count {
    n: u32,
    width: u32,
    p0: u32,
    p1: u32,
}

@group(0) @binding(0) var<storage, read> pos: array<u32>;
@group(0) @binding(1) var<storage, read> val: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> count: Count;

@compute @workgroup_size(64)
fn scatter(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * count.width;
    if (i >= count.n) {
        return;
    }
    dst[pos[i]] = val[i];
}
"""

#: Bindings each entry point uses (``layout="auto"`` keeps only those).
BINDINGS = {
    "scatter": (0, 1, 2, 3),
    "sell_pull": (0, 1, 2, 3, 4, 5, 6, 7),
    "chunk_sum": (5, 7, 8, 9, 10, 11, 12),
    "long_finish": (6, 7, 12, 13, 14),
    "fill": (1, 7),
    "prep": (0, 2, 4, 7),
    "ov_add": (1, 2, 7, 9, 10, 11, 12, 13),
    "sum_partial": (1, 5, 7),
    "mass_final": (5, 6, 7),
    "blend_final": (5, 6, 7),
    "finish": (0, 1, 2, 3, 4, 5, 6, 7),
    "l1_final": (5, 6, 7, 8),
    "finish_aa": (0, 1, 2, 3, 4, 5, 6, 7, 14),
    "aa_final": (5, 6, 7),
    "aa_mix": (1, 2, 4, 7, 14, 15),
}
AA_KERNELS = ("finish_aa", "aa_final", "aa_mix")
MATRIX_KERNELS = ("sell_pull", "chunk_sum", "long_finish")
VECTOR_KERNELS = (
    "fill",
    "prep",
    "ov_add",
    "sum_partial",
    "mass_final",
    "blend_final",
    "finish",
    "l1_final",
)

# Springs and heat on the device (tri mode). ``lap`` holds (sigma, diag) of the
# symmetric Laplacian ``Ls = diag(diag) - sigma A sigma`` per particle; a
# product ``A t`` runs through the matrix module (``t = sigma * v`` in, ``acc``
# out), so ``Ls v = diag * v - sigma * acc``. Scalars live in ``ts``:
#
#   0 CG active (1/0)   1 CG iterations   2 r.z   3 step   4 beta   5 goal
#   6, 7 r.r (hi, lo)   8 next Chebyshev term   9, 10 ||sigma (x - hphi)||^2
#   11, 12 ||sigma x||^2   16.. the Chebyshev coefficients
#
# CG follows ``spectral.springs`` step for step: every kernel of an iteration
# reads the active flag, so iterations encoded past convergence (or past
# ``cg_max``) change nothing, and their products are dispatched indirectly
# with counts the stop test zeroes (``dims``); the host reads the flag and
# the count.
TRI_SOURCE = """
struct TParams {
    n: u32,
    nparts: u32,
    cg_max: u32,
    // 1: start CG from sigma * x (no warm start).
    fresh: u32,
    mu: f32,
    cg_tol: f32,
    lam_d: f32,
    lam_s: f32,
    lam_h: f32,
    // 2 / lam_max: Z = hscale * Ls - I maps the spectrum to [-1, 1].
    hscale: f32,
    // 1: heat of the difference x - hphi, added to hout (else afresh).
    incremental: u32,
    p0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> lap: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> ycg: array<f32>;
@group(0) @binding(5) var<storage, read_write> r: array<f32>;
@group(0) @binding(6) var<storage, read_write> p: array<f32>;
@group(0) @binding(7) var<storage, read_write> ap: array<f32>;
@group(0) @binding(8) var<storage, read_write> t: array<f32>;
@group(0) @binding(9) var<storage, read> acc: array<f32>;
@group(0) @binding(10) var<storage, read_write> part: array<vec2<f32>>;
@group(0) @binding(11) var<storage, read_write> ts: array<f32>;
@group(0) @binding(12) var<uniform> tp: TParams;
@group(0) @binding(13) var<storage, read_write> hout: array<f32>;
@group(0) @binding(14) var<storage, read_write> hphi: array<f32>;
@group(0) @binding(15) var<storage, read_write> ha: array<f32>;
@group(0) @binding(16) var<storage, read_write> hb: array<f32>;
@group(0) @binding(17) var<storage, read_write> hc: array<f32>;
@group(0) @binding(18) var<storage, read_write> dims: array<u32>;
@group(0) @binding(19) var<storage, read_write> hacc: array<f32>;

const COEF0: u32 = 16u;

var<workgroup> red: array<vec2<f32>, 256>;

fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = a + b;
    let bb = s - a;
    return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

fn dd_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = two_sum(a.x, b.x);
    return two_sum(s.x, s.y + (a.y + b.y));
}

fn dd_add1(a: vec2<f32>, v: f32) -> vec2<f32> {
    let s = two_sum(a.x, v);
    return two_sum(s.x, s.y + a.y);
}

fn wg_reduce(lid: u32, v: vec2<f32>) -> vec2<f32> {
    red[lid] = v;
    workgroupBarrier();
    for (var s: u32 = 128u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = dd_add(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let out = red[0];
    workgroupBarrier();
    return out;
}

// Value q of the first level (part[q * nparts + w]) reduced in a fixed order.
fn reduce_q(lid: u32, q: u32) -> vec2<f32> {
    var a = vec2<f32>(0.0, 0.0);
    for (var k: u32 = lid; k < tp.nparts; k = k + 256u) {
        a = dd_add(a, part[q * tp.nparts + k]);
    }
    return wg_reduce(lid, a);
}

fn put(lid: u32, wid: u32, q: u32, v: vec2<f32>) {
    let s = wg_reduce(lid, v);
    if (lid == 0u) {
        part[q * tp.nparts + wid] = s;
    }
}

fn cg_running() -> bool {
    return ts[0] > 0.5;
}

// The workgroup counts of the next CG iteration's product (read by indirect
// dispatches from dims[9..18]): the full ones (dims[0..9], from the host) while
// CG runs, none once it has stopped, so iterations past the stop cost no product.
fn set_product_dims(go: bool) {
    for (var j: u32 = 0u; j < 9u; j = j + 1u) {
        var v = 0u;
        if (go) {
            v = dims[j];
        }
        dims[9u + j] = v;
    }
}

// CG start: y from sigma x or the warm start, t = sigma y for A (sigma y).
@compute @workgroup_size(256)
fn cg_init_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
        let sd = lap[i];
        var v = ycg[i];
        if (tp.fresh == 1u) {
            v = sd.x * x[i];
            ycg[i] = v;
        }
        t[i] = sd.x * v;
    }
}

// r = mu sigma x - (Ls + mu) y, p = r / (diag + mu), t = sigma p; reduces
// r.z, r.r and the squared norm of the right-hand side.
@compute @workgroup_size(256)
fn cg_init_b(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    var rz = vec2<f32>(0.0, 0.0);
    var rr = vec2<f32>(0.0, 0.0);
    var bb = vec2<f32>(0.0, 0.0);
    for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
        let sd = lap[i];
        let v = ycg[i];
        let rhs = tp.mu * sd.x * x[i];
        let res = rhs - ((sd.y * v - sd.x * acc[i]) + tp.mu * v);
        let z = res / (sd.y + tp.mu);
        r[i] = res;
        p[i] = z;
        t[i] = sd.x * z;
        rz = dd_add1(rz, res * z);
        rr = dd_add1(rr, res * res);
        bb = dd_add1(bb, rhs * rhs);
    }
    put(lid.x, wid.x, 0u, rz);
    put(lid.x, wid.x, 1u, rr);
    put(lid.x, wid.x, 2u, bb);
}

@compute @workgroup_size(256)
fn cg_init_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    let rz = reduce_q(lid.x, 0u);
    let rr = reduce_q(lid.x, 1u);
    let bb = reduce_q(lid.x, 2u);
    if (lid.x == 0u) {
        let goal = tp.cg_tol * sqrt(bb.x + bb.y);
        ts[1] = 0.0;
        ts[2] = rz.x + rz.y;
        ts[5] = goal;
        ts[6] = rr.x;
        ts[7] = rr.y;
        var go = 0.0;
        if (sqrt(rr.x + rr.y) > goal && tp.cg_max > 0u) {
            go = 1.0;
        }
        ts[0] = go;
        set_product_dims(go > 0.5);
    }
}

// ap = (Ls + mu) p from acc = A (sigma p); reduces p.ap.
@compute @workgroup_size(256)
fn cg_ap(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    var pap = vec2<f32>(0.0, 0.0);
    if (cg_running()) {
        for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
            let sd = lap[i];
            let v = p[i];
            let q = (sd.y * v - sd.x * acc[i]) + tp.mu * v;
            ap[i] = q;
            pap = dd_add1(pap, v * q);
        }
    }
    put(lid.x, wid.x, 0u, pap);
}

@compute @workgroup_size(256)
fn cg_step(@builtin(local_invocation_id) lid: vec3<u32>) {
    let pap = reduce_q(lid.x, 0u);
    if (lid.x == 0u && cg_running()) {
        ts[3] = ts[2] / (pap.x + pap.y);
    }
}

// y += step p, r -= step ap; reduces r.z and r.r of the new residual.
@compute @workgroup_size(256)
fn cg_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    var rz = vec2<f32>(0.0, 0.0);
    var rr = vec2<f32>(0.0, 0.0);
    if (cg_running()) {
        let step = ts[3];
        for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
            let sd = lap[i];
            ycg[i] = ycg[i] + step * p[i];
            let res = r[i] - step * ap[i];
            r[i] = res;
            let z = res / (sd.y + tp.mu);
            rz = dd_add1(rz, res * z);
            rr = dd_add1(rr, res * res);
        }
    }
    put(lid.x, wid.x, 0u, rz);
    put(lid.x, wid.x, 1u, rr);
}

@compute @workgroup_size(256)
fn cg_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    let rz = reduce_q(lid.x, 0u);
    let rr = reduce_q(lid.x, 1u);
    if (lid.x == 0u && cg_running()) {
        let rz_new = rz.x + rz.y;
        ts[4] = rz_new / ts[2];
        ts[2] = rz_new;
        let it = ts[1] + 1.0;
        ts[1] = it;
        ts[6] = rr.x;
        ts[7] = rr.y;
        if (!(sqrt(rr.x + rr.y) > ts[5]) || it >= f32(tp.cg_max)) {
            ts[0] = 0.0;
            set_product_dims(false);
        }
    }
}

// p = r / (diag + mu) + beta p, t = sigma p (the next product's input).
@compute @workgroup_size(256)
fn cg_dir(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    if (!cg_running()) {
        return;
    }
    let beta = ts[4];
    let stride = tp.nparts * 256u;
    for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
        let sd = lap[i];
        let v = r[i] / (sd.y + tp.mu) + beta * p[i];
        p[i] = v;
        t[i] = sd.x * v;
    }
}

// Squared norms of sigma (x - hphi) and sigma x (the incremental heat's error budget).
@compute @workgroup_size(256)
fn heat_norms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    var dd = vec2<f32>(0.0, 0.0);
    var bb = vec2<f32>(0.0, 0.0);
    for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
        let s = lap[i].x;
        let d = s * (x[i] - hphi[i]);
        let b = s * x[i];
        dd = dd_add1(dd, d * d);
        bb = dd_add1(bb, b * b);
    }
    put(lid.x, wid.x, 0u, dd);
    put(lid.x, wid.x, 1u, bb);
}

@compute @workgroup_size(256)
fn heat_norms_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    let dd = reduce_q(lid.x, 0u);
    let bb = reduce_q(lid.x, 1u);
    if (lid.x == 0u) {
        ts[9] = dd.x;
        ts[10] = dd.y;
        ts[11] = bb.x;
        ts[12] = bb.y;
    }
}

// Chebyshev start: v = sigma x (or sigma (x - hphi)), T_0 = v, sum = a_0 v.
@compute @workgroup_size(256)
fn heat_init(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    let a0 = ts[COEF0];
    for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
        let s = lap[i].x;
        var v = x[i];
        if (tp.incremental == 1u) {
            v = v - hphi[i];
        }
        v = s * v;
        ha[i] = v;
        hacc[i] = a0 * v;
        t[i] = s * v;
    }
    if (wid.x == 0u && lid.x == 0u) {
        ts[8] = 2.0;
    }
}

// T_1 = Z T_0 = hscale Ls T_0 - T_0.
@compute @workgroup_size(256)
fn heat_first(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    let a1 = ts[COEF0 + 1u];
    for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
        let sd = lap[i];
        let c = ha[i];
        let v = tp.hscale * (sd.y * c - sd.x * acc[i]) - c;
        hb[i] = v;
        hacc[i] = hacc[i] + a1 * v;
        t[i] = sd.x * v;
    }
}

// T_{k+1} = 2 Z T_k - T_{k-1} (ha = T_{k-1}, hb = T_k, hc = T_{k+1}), term k = ts[8].
@compute @workgroup_size(256)
fn heat_term(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    let a = ts[COEF0 + u32(ts[8])];
    for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
        let sd = lap[i];
        let c = hb[i];
        let v = 2.0 * (tp.hscale * (sd.y * c - sd.x * acc[i]) - c) - ha[i];
        hc[i] = v;
        hacc[i] = hacc[i] + a * v;
        t[i] = sd.x * v;
    }
}

@compute @workgroup_size(1)
fn heat_tick() {
    ts[8] = ts[8] + 1.0;
}

// The unnormalised blend into y (y holds D(x)): lam_d D(x) + lam_s y_cg / sigma
// + lam_h H(x), with H(x) = hacc / sigma (+ hout when incremental); keeps
// hout = H(x) and hphi = x for the next incremental heat.
@compute @workgroup_size(256)
fn tri_blend(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = tp.nparts * 256u;
    for (var i: u32 = wid.x * 256u + lid.x; i < tp.n; i = i + stride) {
        let s = lap[i].x;
        var v = tp.lam_d * y[i];
        if (tp.lam_s > 0.0) {
            v = v + tp.lam_s * (ycg[i] / s);
        }
        if (tp.lam_h > 0.0) {
            var h = hacc[i] / s;
            if (tp.incremental == 1u) {
                h = hout[i] + h;
            }
            hout[i] = h;
            hphi[i] = x[i];
            v = v + tp.lam_h * h;
        }
        y[i] = v;
    }
}
"""

#: Bindings of the tri module's entry points.
TRI_BINDINGS = {
    "cg_init_a": (0, 2, 4, 8, 12),
    "cg_init_b": (0, 2, 4, 5, 6, 8, 9, 10, 12),
    "cg_init_final": (10, 11, 12, 18),
    "cg_ap": (2, 6, 7, 9, 10, 11, 12),
    "cg_step": (10, 11, 12),
    "cg_update": (2, 4, 5, 6, 7, 10, 11, 12),
    "cg_final": (10, 11, 12, 18),
    "cg_dir": (2, 5, 6, 8, 11, 12),
    "heat_norms": (0, 2, 10, 12, 14),
    "heat_norms_final": (10, 11, 12),
    "heat_init": (0, 2, 8, 11, 12, 14, 15, 19),
    "heat_first": (2, 8, 9, 11, 12, 15, 16, 19),
    "heat_term": (2, 8, 9, 11, 12, 15, 16, 17, 19),
    "heat_tick": (11,),
    "tri_blend": (0, 1, 2, 4, 12, 13, 14, 19),
}
TRI_KERNELS = tuple(TRI_BINDINGS)
