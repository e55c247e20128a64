// Springs and heat on the device (tri mode, webgpu_tri.py). ``lap`` holds
// (sigma, diag) of the symmetric Laplacian ``Ls = diag(diag) - sigma A sigma``
// per particle; a product ``A t`` runs through the matrix module (``t = sigma *
// v`` in, ``acc`` out), so ``Ls v = diag * v - sigma * acc``. Scalars live in
// ``ts`` (wgsl.TriScalar names them):
//
//   0 CG active (1/0)   1 CG iterations   2 r.z   3 step   4 beta   5 goal
//   6, 7 r.r (hi, lo)   8 next Chebyshev term   9, 10 ||sigma (x - hphi)||^2
//   11, 12 ||sigma x||^2   from COEF0 on: the Chebyshev coefficients
//
// CG follows ``spectral.springs`` step for step: every kernel of an iteration
// reads the active flag, so iterations encoded past convergence (or past
// ``cg_max``) change nothing, and their products are dispatched indirectly
// with counts the stop test zeroes (``dims``); the host reads the flag and
// the count. Bindings and TParams fields: wgsl.py (TriBinding, TriParam).

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
