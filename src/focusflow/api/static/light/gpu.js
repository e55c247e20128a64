// The springs-and-heat series of focus.js on WebGPU: the light mode.
//
// One application of g(Ls) = Σ c_k T_k(Z) to ψ = σφ is K − 1 products with
// Z = −σAσ, each fused with the Chebyshev recurrence and the accumulation:
// T_{k+1} = 2 Z T_k − T_{k−1} is written over T_{k−1} (two vectors in turn) and
// c_{k+1} T_{k+1} added to the sum, a row per invocation over A in CSR. The
// whole series is one command buffer and one read-back; the outer iteration
// (diffusion, Anderson, the stop rule) stays in float64 in focus.js.
//
// WGSL has no float64: the matrix, the vectors and the sum are float32, so an
// application is accurate to about 1e-6 of its size, and the light mode's
// tolerance is looser (LIGHT_TOL) than the CPU path's. The engine's own WGSL
// kernels (SELL-32 with long rows cut into chunks, webgpu_storage.py) need
// the host's SELL layout; a neighbourhood is small enough that plain CSR rows
// do, and the layout's build stays out of the page.

export const LIGHT_TOL = 1e-5;
const WORKGROUP = 256;

const SHADER = /* wgsl */ `
struct Step { coef: f32, first: u32, n: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> ptr: array<u32>;
@group(0) @binding(1) var<storage, read> col: array<u32>;
@group(0) @binding(2) var<storage, read> val: array<f32>;
@group(0) @binding(3) var<storage, read> cur: array<f32>;
@group(0) @binding(4) var<storage, read_write> prevNext: array<f32>;
@group(0) @binding(5) var<storage, read_write> acc: array<f32>;
@group(0) @binding(6) var<uniform> step: Step;

// Row i of Z cur (Z = -sigma A sigma, its values stored as sigma A sigma), then
// T_next = 2 Z cur - T_prev (the first step: Z cur alone), over T_prev; acc += c T_next.
@compute @workgroup_size(${WORKGROUP})
fn cheb(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= step.n) { return; }
  var s = 0.0;
  for (var e = ptr[i]; e < ptr[i + 1u]; e = e + 1u) {
    s = s + val[e] * cur[col[e]];
  }
  var v = -s;
  if (step.first == 0u) { v = -2.0 * s - prevNext[i]; }
  prevNext[i] = v;
  acc[i] = acc[i] + step.coef * v;
}
`;

// A WebGPU device, or null where the browser has none (the CPU path then runs):
// {device, adapter (its name), software}. `software`: the adapter is a CPU
// emulation (SwiftShader, llvmpipe, lavapipe, or one the browser calls a
// fallback), on which the float64 CPU path is faster (bench/web_focus.py:
// 1.1 s against 0.24 s over 10^5 links on SwiftShader, each of its dispatches
// costing about 5 ms however small), so the page takes the GPU path there
// only when asked.
export async function gpuDevice() {
  if (typeof navigator === "undefined" || !navigator.gpu) return null;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info || {};
    const named = `${info.vendor || ""} ${info.architecture || ""} ${info.device || ""} ${info.description || ""}`;
    const software = info.isFallbackAdapter === true || adapter.isFallbackAdapter === true ||
      /swiftshader|llvmpipe|lavapipe/i.test(named);
    const device = await adapter.requestDevice();
    return { device, adapter: info.architecture || info.vendor || "webgpu", software };
  } catch {
    return null;
  }
}

// The series for a prepared graph (focus.js prepareGraph) and its coefficients,
// on `device`: apply(psi, acc, terms) fills acc (Float64Array) with
// Σ_{k < terms} c_k T_k(Z) psi.
export class GpuSeries {
  constructor(device, g, coef) {
    this.device = device;
    this.n = g.n;
    this.coef = coef;
    const usage = GPUBufferUsage;
    const buffer = (data, use) => {
      const b = device.createBuffer({ size: Math.max(16, data.byteLength), usage: use | usage.COPY_DST });
      if (data.byteLength) device.queue.writeBuffer(b, 0, data);
      return b;
    };
    const n = g.n;
    this.ptr = buffer(Uint32Array.from(g.aPtr), usage.STORAGE);
    this.col = buffer(Uint32Array.from(g.aCol), usage.STORAGE);
    this.val = buffer(Float32Array.from(g.aVal), usage.STORAGE);
    const vec = () => device.createBuffer({ size: Math.max(16, 4 * n), usage: usage.STORAGE | usage.COPY_DST | usage.COPY_SRC });
    this.t = [vec(), vec()];
    this.acc = vec();
    this.read = device.createBuffer({ size: Math.max(16, 4 * n), usage: usage.MAP_READ | usage.COPY_DST });
    const module = device.createShaderModule({ code: SHADER });
    this.pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "cheb" } });
    // One bind group per step k >= 1: its coefficient, and which vector is T_k-1 (overwritten).
    this.steps = [];
    this.uniforms = [];
    for (let k = 1; k < coef.length; k++) {
      const uniform = device.createBuffer({ size: 16, usage: usage.UNIFORM | usage.COPY_DST });
      this.uniforms.push(uniform);
      const head = new ArrayBuffer(16);
      new Float32Array(head, 0, 1)[0] = coef[k];
      new Uint32Array(head, 4, 3).set([k === 1 ? 1 : 0, n, 0]);
      device.queue.writeBuffer(uniform, 0, head);
      // k = 1: cur = T_0 (t[0]), written into t[1]; then they alternate.
      const cur = this.t[(k + 1) % 2];
      const over = this.t[k % 2];
      this.steps.push(device.createBindGroup({
        layout: this.pipeline.getBindGroupLayout(0),
        entries: [this.ptr, this.col, this.val, cur, over, this.acc, uniform].map((b, i) => ({ binding: i, resource: { buffer: b } })),
      }));
    }
    this.passes = 0;
  }

  async apply(psi, out, terms = this.coef.length) {
    const { device, n, coef } = this;
    const p32 = Float32Array.from(psi);
    device.queue.writeBuffer(this.t[0], 0, p32);
    const acc0 = new Float32Array(n);
    for (let i = 0; i < n; i++) acc0[i] = coef[0] * psi[i];
    device.queue.writeBuffer(this.acc, 0, acc0);
    const encoder = device.createCommandEncoder();
    const groups = Math.ceil(n / WORKGROUP);
    // One pass: each dispatch's writes are seen by the next (WebGPU orders
    // dispatches that share a writable storage buffer).
    const pass = encoder.beginComputePass();
    pass.setPipeline(this.pipeline);
    const steps = this.steps.slice(0, terms - 1);
    for (const bind of steps) {
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(groups);
    }
    pass.end();
    encoder.copyBufferToBuffer(this.acc, 0, this.read, 0, 4 * n);
    device.queue.submit([encoder.finish()]);
    await this.read.mapAsync(GPUMapMode.READ);
    const got = new Float32Array(this.read.getMappedRange(0, 4 * n));
    for (let i = 0; i < n; i++) out[i] = got[i];
    this.read.unmap();
    this.passes += steps.length;
  }

  destroy() {
    for (const b of [this.ptr, this.col, this.val, ...this.t, this.acc, this.read, ...this.uniforms]) b.destroy();
  }
}
