// The exact arithmetic's kernels on a GPU (focus/backends/cuda_exact.py).
//
// Each one computes what its twin on the CPU (numba_cpu.py, numba_lap.py,
// anderson.py, compiled without fastmath) computes, bit for bit: every
// product, quotient and sum is rounded on its own by the round-to-nearest
// intrinsics (__dmul_rn, __dadd_rn, __dsub_rn, __ddiv_rn), which the compiler
// never contracts into fused multiply-adds, in the CPU's source order.
//
// Sums follow the CPU's grouping: a row's entries in storage order (one
// thread per row), and every global sum over the same 64 fixed chunks, each
// chunk summed in order by one thread (chunk_sums); the host adds the 64
// partials in order. exact-v3 (the end of this file) cuts every sum, a hub
// row's too, into chunks of 1,024 and adds the partials in a fixed tree. Element-wise passes write what a chunk sum reads (or a
// lane value where a row's term is summed), so a chunk thread needs nothing
// but loads and additions.

#define C 8

// Rows longer than LONG slots (the hubs) are summed by a warp each
// (long_rows): its lanes form the products of a tile in parallel and one lane
// adds them in order, so the chain of dependent additions no longer waits on
// a gather each. Shorter rows are summed by one thread, its loads issued a
// batch ahead of the additions. Neither changes the order of the additions.
#define LONG 128
#define BATCH 8
#define TILE 256

__device__ __forceinline__ double row_dot(
    const long long* gptr, const long long* glen, const int* sidx, const double* sval,
    const double* x, long long g, int lane)
{
    double acc = 0.0;
    const long long base = gptr[g] + lane;
    const long long len = glen[g];
    long long j = 0;
    for (; j + BATCH <= len; j += BATCH) {
        double prod[BATCH];
#pragma unroll
        for (int k = 0; k < BATCH; ++k) {
            const long long o = base + (j + k) * C;
            prod[k] = __dmul_rn(sval[o], x[(unsigned int)sidx[o]]);
        }
#pragma unroll
        for (int k = 0; k < BATCH; ++k) acc = __dadd_rn(acc, prod[k]);
    }
    for (; j < len; ++j) {
        const long long o = base + j * C;
        acc = __dadd_rn(acc, __dmul_rn(sval[o], x[(unsigned int)sidx[o]]));
    }
    return acc;
}

// A row's sum: precomputed by long_rows for the first long_slots slots (the
// long groups come first: rows are sorted by length), else summed here.
__device__ __forceinline__ double row_sum(
    const long long* gptr, const long long* glen, const int* sidx, const double* sval,
    const double* x, const double* pre, long long long_slots, long long s)
{
    if (s < long_slots) return pre[s];
    return row_dot(gptr, glen, sidx, sval, x, s / C, (int)(s % C));
}

// One chunk's sum, [lo, hi) of a (mode 0), a * b (1) or |a - b| (2), added
// in order from 0 by lane 0 of the warp; the lanes load a tile's terms.
// Lane 0's value is the sum.
__device__ __forceinline__ double chunk_sum(
    const double* a, const double* b, int mode, long long lo, long long hi, int lane,
    double* tile)
{
    double s = 0.0;
    for (long long i0 = lo; i0 < hi; i0 += TILE) {
        const int m = (int)(hi - i0 < TILE ? hi - i0 : TILE);
#pragma unroll
        for (int u = 0; u < TILE / 32; ++u) {
            const int k = lane + 32 * u;
            if (k >= m) break;
            const long long i = i0 + k;
            double v;
            if (mode == 0) v = a[i];
            else if (mode == 1) v = __dmul_rn(a[i], b[i]);
            else v = fabs(__dsub_rn(a[i], b[i]));
            tile[k] = v;
        }
        __syncwarp();
        if (lane == 0) {
#pragma unroll 16
            for (int k = 0; k < m; ++k) s = __dadd_rn(s, tile[k]);
        }
        __syncwarp();
    }
    return s;
}

extern "C" {

// long_rows: the row sums of slots [0, long_slots), one warp (32 threads) a
// slot. With pairs, x holds two interleaved vectors and pre gets both sums
// (pre[2 s], pre[2 s + 1]); else pre[s].
__global__ void long_rows(
    const long long* gptr, const long long* glen, const int* sidx, const double* sval,
    const double* x, int pairs, double* pre, long long long_slots)
{
    __shared__ double tile[2][TILE];
    const long long s = blockIdx.x;
    if (s >= long_slots) return;
    const int lane = threadIdx.x;
    const long long g = s / C;
    const long long base = gptr[g] + s % C;
    const long long len = glen[g];
    double acc0 = 0.0, acc1 = 0.0;
    for (long long j0 = 0; j0 < len; j0 += TILE) {
        const int m = (int)(len - j0 < TILE ? len - j0 : TILE);
#pragma unroll
        for (int u = 0; u < TILE / 32; ++u) {
            const int k = lane + 32 * u;
            if (k >= m) break;
            const long long o = base + (j0 + k) * C;
            const long long q = (unsigned int)sidx[o];
            const double v = sval[o];
            if (pairs) {
                tile[0][k] = __dmul_rn(v, x[2 * q]);
                tile[1][k] = __dmul_rn(v, x[2 * q + 1]);
            } else {
                tile[0][k] = __dmul_rn(v, x[q]);
            }
        }
        __syncwarp();
        if (lane == 0) {
            if (pairs) {
#pragma unroll 16
                for (int k = 0; k < m; ++k) {
                    acc0 = __dadd_rn(acc0, tile[0][k]);
                    acc1 = __dadd_rn(acc1, tile[1][k]);
                }
            } else {
#pragma unroll 16
                for (int k = 0; k < m; ++k) acc0 = __dadd_rn(acc0, tile[0][k]);
            }
        }
        __syncwarp();
    }
    if (lane == 0) {
        if (pairs) {
            pre[2 * s] = acc0;
            pre[2 * s + 1] = acc1;
        } else {
            pre[s] = acc0;
        }
    }
}

// Sums of chunks: partial[y * nparts + t] = sum over i in [bounds[t], bounds[t + 1])
// of a[i] (mode 0), a[i] * b[i] (mode 1) or |a[i] - b[i]| (mode 2), added in
// order from 0; a and b advance by their strides for each y (blockIdx.y).
// One warp a chunk (blockIdx.x): its lanes load a tile's terms, one lane adds them.
__global__ void chunk_sums(
    const double* a, const double* b, int mode, const long long* bounds, int nparts,
    double* partial, long long a_stride, long long b_stride)
{
    __shared__ double tile[TILE];
    const int t = blockIdx.x;
    if (t >= nparts) return;
    const long long y = blockIdx.y;
    const double s = chunk_sum(
        a + y * a_stride, b + y * b_stride, mode, bounds[t], bounds[t + 1], threadIdx.x, tile);
    if (threadIdx.x == 0) partial[y * nparts + t] = s;
}

// sell_pull: out[r] = scale * (row r . z); lane[s] = that value (0 for padding).
__global__ void sell_pull(
    const long long* grows, const long long* gptr, const long long* glen, const int* sidx,
    const double* sval, const double* z, double* out, double* lane, const double* pre,
    long long long_slots, long long slots, double scale)
{
    const long long s = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (s >= slots) return;
    const long long r = grows[s];
    if (r < 0) { lane[s] = 0.0; return; }
    const double v = __dmul_rn(row_sum(gptr, glen, sidx, sval, z, pre, long_slots, s), scale);
    out[r] = v;
    lane[s] = v;
}

// csr_pull_add: out[rows[k]] += scale * (row k . z); vals[k] = that value.
__global__ void csr_pull_add(
    const long long* rows, const long long* ptr, const int* indices, const double* weights,
    const double* z, double* out, double* vals, long long count, double scale)
{
    const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (k >= count) return;
    double acc = 0.0;
    for (long long e = ptr[k]; e < ptr[k + 1]; ++e)
        acc = __dadd_rn(acc, __dmul_rn(weights[e], z[indices[e]]));
    const double v = __dmul_rn(acc, scale);
    const long long r = rows[k];
    out[r] = __dadd_rn(out[r], v);
    vals[k] = v;
}

// lap_apply: out = diag * x - N x.
__global__ void lap_apply(
    const long long* grows, const long long* gptr, const long long* glen, const int* sidx,
    const double* sval, const double* diag, const double* x, double* out, const double* pre,
    long long long_slots, long long slots)
{
    const long long s = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (s >= slots) return;
    const long long r = grows[s];
    if (r < 0) return;
    const double acc = row_sum(gptr, glen, sidx, sval, x, pre, long_slots, s);
    out[r] = __dsub_rn(__dmul_rn(diag[r], x[r]), acc);
}

// One Chebyshev term at a row, in numba_lap's order: u = scale (diag t - N t)
// - t with `acc` = N t; the series' next term (u on the first step, 2u - the
// previous term after it) is added to the row's sum with weight a_k (and t
// with a_0 on the first step). Returns that term. Both kernels that step a
// series (cheb_step, pair_step) use it.
__device__ __forceinline__ double cheb_term(double scale, double diag_r, double tc, double acc,
                                            const double* t_prev_r, double a_k, double a_0,
                                            int first, double* acc_out_r)
{
    const double u = __dsub_rn(__dmul_rn(scale, __dsub_rn(__dmul_rn(diag_r, tc), acc)), tc);
    if (first) {
        *acc_out_r = __dadd_rn(__dmul_rn(a_0, tc), __dmul_rn(a_k, u));
        return u;
    }
    const double v = __dsub_rn(__dmul_rn(2.0, u), *t_prev_r);
    *acc_out_r = __dadd_rn(*acc_out_r, __dmul_rn(a_k, v));
    return v;
}

// cheb_step: one Chebyshev term with Z = scale * Ls - I (numba_lap.cheb_step).
__global__ void cheb_step(
    const long long* grows, const long long* gptr, const long long* glen, const int* sidx,
    const double* sval, const double* diag, double scale, const double* t_cur, double* t_prev,
    double* acc_out, double a_k, double a_0, int first, const double* pre, long long long_slots,
    long long slots)
{
    const long long s = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (s >= slots) return;
    const long long r = grows[s];
    if (r < 0) return;
    const double acc = row_sum(gptr, glen, sidx, sval, t_cur, pre, long_slots, s);
    t_prev[r] = cheb_term(scale, diag[r], t_cur[r], acc, &t_prev[r], a_k, a_0, first, &acc_out[r]);
}

// cg_product: ap = (diag + mu) p - N p; lane[s] = p[r] * ap[r].
__global__ void cg_product(
    const long long* grows, const long long* gptr, const long long* glen, const int* sidx,
    const double* sval, const double* diag_mu, const double* p, double* ap, double* lane,
    const double* pre, long long long_slots, long long slots)
{
    const long long s = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (s >= slots) return;
    const long long r = grows[s];
    if (r < 0) { lane[s] = 0.0; return; }
    const double acc = row_sum(gptr, glen, sidx, sval, p, pre, long_slots, s);
    const double v = __dsub_rn(__dmul_rn(diag_mu[r], p[r]), acc);
    ap[r] = v;
    lane[s] = __dmul_rn(p[r], v);
}

// pair_step: a CG product and a Chebyshev term in one pass (numba_lap.pair_step).
__global__ void pair_step(
    const long long* grows, const long long* gptr, const long long* glen, const int* sidx,
    const double* sval, const double* x2, const double* diag_mu, double* ap, int do_cg,
    const double* diag, double scale, double* t_prev, double* t_next, double* acc_out,
    double a_k, double a_0, int first, int do_heat, double* lane, const double* pre,
    long long long_slots, long long slots)
{
    const long long s = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (s >= slots) return;
    const long long r = grows[s];
    if (r < 0) { lane[s] = 0.0; return; }
    double acc0 = 0.0, acc1 = 0.0;
    if (s < long_slots) {
        acc0 = pre[2 * s];
        acc1 = pre[2 * s + 1];
    } else {
        const long long base = gptr[s / C] + s % C;
        const long long len = glen[s / C];
        long long j = 0;
        for (; j + BATCH <= len; j += BATCH) {
            double p0[BATCH], p1[BATCH];
#pragma unroll
            for (int k = 0; k < BATCH; ++k) {
                const long long o = base + (j + k) * C;
                const long long q = (unsigned int)sidx[o];
                const double v = sval[o];
                p0[k] = __dmul_rn(v, x2[2 * q]);
                p1[k] = __dmul_rn(v, x2[2 * q + 1]);
            }
#pragma unroll
            for (int k = 0; k < BATCH; ++k) {
                acc0 = __dadd_rn(acc0, p0[k]);
                acc1 = __dadd_rn(acc1, p1[k]);
            }
        }
        for (; j < len; ++j) {
            const long long o = base + j * C;
            const long long q = (unsigned int)sidx[o];
            const double v = sval[o];
            acc0 = __dadd_rn(acc0, __dmul_rn(v, x2[2 * q]));
            acc1 = __dadd_rn(acc1, __dmul_rn(v, x2[2 * q + 1]));
        }
    }
    double term = 0.0;
    if (do_cg) {
        const double pr = x2[2 * r];
        const double w = __dsub_rn(__dmul_rn(diag_mu[r], pr), acc0);
        ap[r] = w;
        term = __dmul_rn(pr, w);
    }
    lane[s] = term;
    if (do_heat) {
        const double tc = x2[2 * r + 1];
        t_next[r] = cheb_term(scale, diag[r], tc, acc1, &t_prev[r], a_k, a_0, first, &acc_out[r]);
        t_prev[r] = tc;
    }
}

#define FOR_EACH(n) \
    const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; \
    if (i >= (n)) return;

// finish_diffusion: y = ylink + tele * prior; z = y * inv_out.
__global__ void finish_diffusion(
    const double* ylink, double* y, const double* prior, const double* inv_out, double* z,
    double tele, long long n)
{
    FOR_EACH(n)
    const double v = __dadd_rn(ylink[i], __dmul_rn(tele, prior[i]));
    y[i] = v;
    z[i] = __dmul_rn(v, inv_out[i]);
}

// cg_update: y += step p; r -= step ap; z = minv r.
__global__ void cg_update(
    double* y, double* r, const double* p, const double* ap, const double* minv, double step,
    double* z, long long n)
{
    FOR_EACH(n)
    y[i] = __dadd_rn(y[i], __dmul_rn(step, p[i]));
    const double ri = __dsub_rn(r[i], __dmul_rn(step, ap[i]));
    r[i] = ri;
    z[i] = __dmul_rn(minv[i], ri);
}

// cg_start: z = p = minv r.
__global__ void cg_start(const double* r, const double* minv, double* z, double* p, long long n)
{
    FOR_EACH(n)
    const double zi = __dmul_rn(minv[i], r[i]);
    z[i] = zi;
    p[i] = zi;
}

// springs_rhs: v = mu sigma phi; r += v - rhs unless fresh; rhs = v.
__global__ void springs_rhs(
    const double* phi, const double* sigma, double mu, double* rhs, double* r, int fresh,
    long long n)
{
    FOR_EACH(n)
    const double v = __dmul_rn(__dmul_rn(mu, sigma[i]), phi[i]);
    if (!fresh) r[i] = __dadd_rn(r[i], __dsub_rn(v, rhs[i]));
    rhs[i] = v;
}

// residual_of: r = rhs - ap.
__global__ void residual_of(const double* rhs, const double* ap, double* r, long long n)
{
    FOR_EACH(n)
    r[i] = __dsub_rn(rhs[i], ap[i]);
}

// cg_direction: p = z + beta p.
__global__ void cg_direction(double* p, const double* z, double beta, long long n)
{
    FOR_EACH(n)
    p[i] = __dadd_rn(z[i], __dmul_rn(beta, p[i]));
}

// pair_start: x2[:, 0] = p, x2[:, 1] = v.
__global__ void pair_start(double* x2, const double* p, const double* v, long long n)
{
    FOR_EACH(n)
    x2[2 * i] = p[i];
    x2[2 * i + 1] = v[i];
}

// pair_pack: p = z + beta p into p and x2[:, 0]; x2[:, 1] = t_next.
__global__ void pair_pack(
    double* x2, double* p, const double* z, double beta, int do_cg, const double* t_next,
    int do_heat, long long n)
{
    FOR_EACH(n)
    if (do_cg) {
        const double v = __dadd_rn(z[i], __dmul_rn(beta, p[i]));
        p[i] = v;
        x2[2 * i] = v;
    }
    if (do_heat) x2[2 * i + 1] = t_next[i];
}

// blend: d = ld d + ls s + lh h, each product and sum rounded in that order.
__global__ void blend(
    double* d, const double* s, const double* h, double ld, double ls, double lh, int use_s,
    int use_h, long long n)
{
    FOR_EACH(n)
    double v = __dmul_rn(ld, d[i]);
    if (use_s) v = __dadd_rn(v, __dmul_rn(ls, s[i]));
    if (use_h) v = __dadd_rn(v, __dmul_rn(lh, h[i]));
    d[i] = v;
}

// divide: d /= total.
__global__ void divide(double* d, double total, long long n)
{
    FOR_EACH(n)
    d[i] = __ddiv_rn(d[i], total);
}

// aa_record: Anderson's new differences in slot; x_prev, g_prev <- x, gx - x.
__global__ void aa_record(
    const double* x, const double* gx, double* x_prev, double* g_prev, double* dx, double* dg,
    long long slot, int have_prev, long long n)
{
    FOR_EACH(n)
    const double g = __dsub_rn(gx[i], x[i]);
    if (have_prev) {
        dx[slot * n + i] = __dsub_rn(x[i], x_prev[i]);
        dg[slot * n + i] = __dsub_rn(g, g_prev[i]);
    }
    x_prev[i] = x[i];
    g_prev[i] = g;
}

// aa_mix: out = max(gx - sum_j gamma_j (dx_j + dg_j), 0), the terms taken in order.
__global__ void aa_mix(
    const double* gx, const double* dx, const double* dg, const double* gamma, int k,
    double* out, long long n)
{
    FOR_EACH(n)
    double v = gx[i];
    for (int j = 0; j < k; ++j)
        v = __dsub_rn(v, __dmul_rn(gamma[j], __dadd_rn(dx[j * n + i], dg[j * n + i])));
    if (v < 0.0) v = 0.0;
    out[i] = v;
}


// --- exact-v3: sums in chunks of TREE_CHUNK values combined by a fixed tree ---
//
// A chunk is added in order from 0.0 (chunk_sums, with bounds every
// TREE_CHUNK values, or a warp per chunk of a hub row); the partials are
// combined by reduce.tree_sum's tree: level by level, neighbours (0, 1),
// (2, 3), ... added and an odd last value carried up. Each addition of the
// tree is one rounding of two values the definition fixes, so the threads
// that add a level's pairs change nothing.
#define TREE_CHUNK 1024

// tree_chunk_sums: a sum's chunks and its tree in one launch. Sum y (blockIdx.y)
// reads a + y * a_stride and b + y * b_stride under mode, except that sum 1
// reads a1, b1 under mode1 where a1 is given (two different sums at once).
// Each warp adds its chunk in order, as chunk_sums does; the warp that
// finishes a sum's chunks last (a ticket in done[y], taken after a fence that
// publishes its partial) adds that sum's tree, level by level as tree_sums
// pairs them (neighbours (0, 1), (2, 3), ..., an odd last value carried up),
// into out[y], and sets done[y] back to 0 for the next launch. Each addition
// of the tree is one rounding of two values the definition fixes, so the
// lanes that add a level's pairs change nothing.
__global__ void tree_chunk_sums(
    const double* a, const double* b, int mode, const double* a1, const double* b1, int mode1,
    const long long* bounds, int nparts, double* partial, double* scratch, long long a_stride,
    long long b_stride, unsigned int* done, double* out)
{
    __shared__ double tile[TILE];
    __shared__ int last;
    const int t = blockIdx.x;
    const int lane = threadIdx.x;
    const long long y = blockIdx.y;
    if (y == 1 && a1 != nullptr) {
        a = a1;
        b = b1;
        mode = mode1;
    } else {
        a += y * a_stride;
        b += y * b_stride;
    }
    const double s = chunk_sum(a, b, mode, bounds[t], bounds[t + 1], lane, tile);
    double* mine = partial + y * nparts;
    if (lane == 0) {
        mine[t] = s;
        __threadfence();
        last = atomicAdd(&done[y], 1u) == (unsigned int)(nparts - 1);
    }
    __syncwarp();
    if (!last) return;
    __threadfence();
    double* from = mine;
    double* to = scratch + y * nparts;
    long long m = nparts;
    while (m > 1) {
        const long long half = m / 2;
        for (long long i = lane; i < half; i += 32)
            to[i] = __dadd_rn(__ldcg(from + 2 * i), __ldcg(from + 2 * i + 1));
        if ((m & 1) && lane == 0) to[half] = __ldcg(from + m - 1);
        __syncwarp();
        double* swap = from;
        from = to;
        to = swap;
        m = half + (m & 1);
    }
    if (lane == 0) {
        out[y] = __ldcg(from);
        done[y] = 0u;
    }
}

// The tree of a[0 .. m), by one thread, in place (tree_chunk_sums' additions).
__device__ double tree_in_place(double* a, long long m)
{
    if (m == 0) return 0.0;
    while (m > 1) {
        const long long half = m / 2;
        for (long long i = 0; i < half; ++i) a[i] = __dadd_rn(a[2 * i], a[2 * i + 1]);
        if (m & 1) a[half] = a[m - 1];
        m = half + (m & 1);
    }
    return a[0];
}

// long_chunks: the chunk sums of the long rows (the first nslots slots), one
// warp a chunk: item_ptr[s] .. item_ptr[s + 1] are slot s's chunks (of
// TREE_CHUNK slots of its row each). part[item] gets the chunk's sum of x
// (and part[items + item] of the second vector with pairs).
__global__ void long_chunks(
    const long long* gptr, const long long* glen, const int* sidx, const double* sval,
    const double* x, int pairs, const long long* item_ptr, long long nslots, double* part,
    long long items)
{
    __shared__ double tile[2][TILE];
    const long long item = blockIdx.x;
    if (item >= items) return;
    long long lo = 0, hi = nslots;  // the slot s with item_ptr[s] <= item < item_ptr[s + 1]
    while (hi - lo > 1) {
        const long long mid = (lo + hi) / 2;
        if (item_ptr[mid] <= item) lo = mid; else hi = mid;
    }
    const long long s = lo;
    const int lane = threadIdx.x;
    const long long g = s / C;
    const long long base = gptr[g] + s % C;
    const long long len = glen[g];
    const long long first = (item - item_ptr[s]) * TREE_CHUNK;
    const long long last = first + TREE_CHUNK < len ? first + TREE_CHUNK : len;
    double acc0 = 0.0, acc1 = 0.0;
    for (long long j0 = first; j0 < last; j0 += TILE) {
        const int m = (int)(last - j0 < TILE ? last - j0 : TILE);
#pragma unroll
        for (int u = 0; u < TILE / 32; ++u) {
            const int k = lane + 32 * u;
            if (k >= m) break;
            const long long o = base + (j0 + k) * C;
            const long long q = (unsigned int)sidx[o];
            const double v = sval[o];
            if (pairs) {
                tile[0][k] = __dmul_rn(v, x[2 * q]);
                tile[1][k] = __dmul_rn(v, x[2 * q + 1]);
            } else {
                tile[0][k] = __dmul_rn(v, x[q]);
            }
        }
        __syncwarp();
        if (lane == 0) {
            if (pairs) {
#pragma unroll 16
                for (int k = 0; k < m; ++k) {
                    acc0 = __dadd_rn(acc0, tile[0][k]);
                    acc1 = __dadd_rn(acc1, tile[1][k]);
                }
            } else {
#pragma unroll 16
                for (int k = 0; k < m; ++k) acc0 = __dadd_rn(acc0, tile[0][k]);
            }
        }
        __syncwarp();
    }
    if (lane == 0) {
        part[item] = acc0;
        if (pairs) part[items + item] = acc1;
    }
}

// long_trees: each long slot's row sum, the tree of its chunk sums (one
// thread a slot), into pre as long_rows writes it.
__global__ void long_trees(
    const long long* item_ptr, long long nslots, double* part, long long items, int pairs,
    double* pre)
{
    const long long s = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (s >= nslots) return;
    const long long at = item_ptr[s], m = item_ptr[s + 1] - item_ptr[s];
    if (pairs) {
        pre[2 * s] = tree_in_place(part + at, m);
        pre[2 * s + 1] = tree_in_place(part + items + at, m);
    } else {
        pre[s] = tree_in_place(part + at, m);
    }
}

// csr_pull_tree: csr_pull_add with exact-v3's row sums: a row's entries in
// chunks of TREE_CHUNK, the chunks combined as the tree combines them (a
// binary counter: equal-sized subtrees merge as they complete, and what is
// left is added right to left, which is the level-by-level tree's result).
__global__ void csr_pull_tree(
    const long long* rows, const long long* ptr, const int* indices, const double* weights,
    const double* z, double* out, double* vals, long long count, double scale)
{
    const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (k >= count) return;
    double stack[64];
    long long size[64];
    int top = 0;
    for (long long lo = ptr[k]; lo < ptr[k + 1] || (top == 0 && lo == ptr[k]); lo += TREE_CHUNK) {
        const long long hi = lo + TREE_CHUNK < ptr[k + 1] ? lo + TREE_CHUNK : ptr[k + 1];
        double acc = 0.0;
        for (long long e = lo; e < hi; ++e)
            acc = __dadd_rn(acc, __dmul_rn(weights[e], z[indices[e]]));
        stack[top] = acc;
        size[top] = 1;
        ++top;
        while (top >= 2 && size[top - 1] == size[top - 2]) {
            stack[top - 2] = __dadd_rn(stack[top - 2], stack[top - 1]);
            size[top - 2] *= 2;
            --top;
        }
    }
    double acc = stack[top - 1];
    for (int i = top - 2; i >= 0; --i) acc = __dadd_rn(stack[i], acc);
    const double v = __dmul_rn(acc, scale);
    const long long r = rows[k];
    out[r] = __dadd_rn(out[r], v);
    vals[k] = v;
}
}
