// The matrix products of the wgpu backend (webgpu_storage.py): SELL-32 rows,
// long-row chunks and their ordered sums. Bindings and the Params fields are
// named in wgsl.py (MatrixBinding, MatrixParam); tests/focus/test_shader_bindings.py
// checks that both sides agree.

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
