// The vector side of a diffusion step (webgpu_diffusion.py). ``y`` holds
// ``alpha P^T x`` after the product passes and the next iterate after ``finish``;
// ``stats[0]`` is the teleport weight of the current step, ``stats[2 + 2 k]`` the
// L1 change of the k-th step of a batch as a (hi, lo) pair, ``counter[0]`` the
// next slot. An Anderson step (one per submission) instead leaves its 1 + 2 m
// values (the L1 change, the m cross products, the m right-hand sides) in pairs
// from ``stats[2]`` on. The window's two placeholders are replaced by
// wgsl.vector_shader. Bindings and VParams fields: wgsl.py (VectorBinding,
// VectorParam).

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
