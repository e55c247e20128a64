// Double-float sums in a fixed order, shared by the vector and tri modules
// (wgsl.shader puts this file before each). A pair (hi, lo) of float32 holds
// a sum to about 2^-48 relative; the reduction order is fixed, so every run
// on one device gives the same bits.

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

// Fixed tree over the 256 invocations of a workgroup; every invocation gets
// the sum. The last barrier lets the caller reduce again at once.
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
