// A patch's new matrix values, written where they belong on the device: the
// positions and values of the changed entries go up, not the whole matrix.
// Bindings and Count fields: wgsl.py (ScatterBinding, ScatterParam).

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
