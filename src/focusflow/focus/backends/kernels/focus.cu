// The CUDA kernels of the focus backend (cuda.py), compiled by CuPy's RawModule.
// cuda.py replaces the value type's two placeholders (float or double, and its
// pair) and the threads per block; the largest Anderson window (the define
// below) is cuda.py's _AndersonKernels.MAX, which a test compares.

// The block's sum of v added to *total (one atomic per block); every thread of
// the block must call it, and may call it again at once (it ends on a barrier,
// so the next call does not overwrite warp_part before warp 0 has read it).
// Every kernel that sums a vector does it this way; a diffusion product sums
// its output so, where a separate pass over the output cost a read of it and
// two more launches.
__device__ __forceinline__ void block_add(double v, double* total)
{
    __shared__ double warp_part[BLOCK / 32];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffff, v, off);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) warp_part[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < BLOCK / 32 ? warp_part[lane] : 0.0;
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffff, v, off);
        if (lane == 0) atomicAdd(total, v);
    }
    __syncthreads();
}

// The matrix's indices and values are read once per product: loaded with the
// streaming hint (__ldcs, evict first), they leave the caches to the gathered
// vector (measured: 0.771 -> 0.741 ms per product at 10^8 entries).
// With sum != 0 the products also add the sum of what they write to *total.
extern "C" __global__
void sell_pull(const long long* __restrict__ gptr, const int* __restrict__ glen,
               const int* __restrict__ grows, const int* __restrict__ sidx,
               const VAL* __restrict__ sval, const VAL* __restrict__ z,
               double* __restrict__ out, const double scale, const long long ngroups,
               double* __restrict__ total, const int sum)
{
    long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long g = tid >> 5;
    int lane = (int)(tid & 31);
    double v = 0.0;
    if (g < ngroups) {
        long long o = gptr[g] + lane;
        int len = glen[g];
        double acc0 = 0.0, acc1 = 0.0;
        int j = 0;
        for (; j + 1 < len; j += 2, o += 64) {
            int i0 = __ldcs(&sidx[o]), i1 = __ldcs(&sidx[o + 32]);
            VAL v0 = __ldcs(&sval[o]), v1 = __ldcs(&sval[o + 32]);
            acc0 += (double)v0 * (double)z[i0];
            acc1 += (double)v1 * (double)z[i1];
        }
        if (j < len) acc0 += (double)__ldcs(&sval[o]) * (double)z[__ldcs(&sidx[o])];
        int r = grows[(g << 5) + lane];
        if (r >= 0) {
            v = (acc0 + acc1) * scale;
            out[r] = v;
        }
    }
    if (sum) block_add(v, total);
}

extern "C" __global__
void chunk_pull(const int* __restrict__ crow, const long long* __restrict__ cstart,
                const long long* __restrict__ cend, const int* __restrict__ idx,
                const VAL* __restrict__ val, const VAL* __restrict__ z,
                double* __restrict__ out, const double scale, const int nchunks,
                double* __restrict__ total, const int sum)
{
    int warp = (int)(((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    double mine = 0.0;
    if (warp < nchunks) {
        double acc = 0.0;
        for (long long e = cstart[warp] + lane; e < cend[warp]; e += 32) {
            acc += (double)__ldcs(&val[e]) * (double)z[__ldcs(&idx[e])];
        }
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffff, acc, off);
        if (lane == 0) {
            mine = acc * scale;
            atomicAdd(&out[crow[warp]], mine);
        }
    }
    if (sum) block_add(mine, total);
}

// The overlay (pairs added since the snapshot was built) as COO in entry order:
// a block appends its new pairs instead of regrouping all of them by row.
extern "C" __global__
void coo_pull(const int* __restrict__ src, const int* __restrict__ dst,
              const VAL* __restrict__ w, const VAL* __restrict__ z,
              double* __restrict__ out, const double scale, const long long m,
              double* __restrict__ total, const int sum)
{
    double mine = 0.0;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < m;
         e += (long long)gridDim.x * blockDim.x) {
        double v = scale * (double)w[e] * (double)z[src[e]];
        atomicAdd(&out[dst[e]], v);
        mine += v;
    }
    if (sum) block_add(mine, total);
}

// The same for a pair of vectors (the symmetric matrix's weight changes).
extern "C" __global__
void coo_pull2(const int* __restrict__ src, const int* __restrict__ dst,
               const VAL* __restrict__ w, const VAL2* __restrict__ z2,
               double* __restrict__ out2, const double scale, const long long m)
{
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < m;
         e += (long long)gridDim.x * blockDim.x) {
        const VAL2 v = z2[src[e]];
        const double a = scale * (double)w[e];
        atomicAdd(&out2[2 * (long long)dst[e]], a * (double)v.x);
        atomicAdd(&out2[2 * (long long)dst[e] + 1], a * (double)v.y);
    }
}

extern "C" __global__
void sell_pull2(const long long* __restrict__ gptr, const int* __restrict__ glen,
                const int* __restrict__ grows, const int* __restrict__ sidx,
                const VAL* __restrict__ sval, const VAL2* __restrict__ z2,
                double2* __restrict__ out2, const double scale, const long long ngroups)
{
    long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long g = tid >> 5;
    int lane = (int)(tid & 31);
    if (g >= ngroups) return;
    long long o = gptr[g] + lane;
    int len = glen[g];
    double a0 = 0.0, a1 = 0.0;
    for (int j = 0; j < len; ++j, o += 32) {
        VAL2 x = z2[__ldcs(&sidx[o])];
        double v = (double)__ldcs(&sval[o]);
        a0 += v * (double)x.x;
        a1 += v * (double)x.y;
    }
    int r = grows[(g << 5) + lane];
    if (r >= 0) out2[r] = make_double2(a0 * scale, a1 * scale);
}

extern "C" __global__
void chunk_pull2(const int* __restrict__ crow, const long long* __restrict__ cstart,
                 const long long* __restrict__ cend, const int* __restrict__ idx,
                 const VAL* __restrict__ val, const VAL2* __restrict__ z2,
                 double* __restrict__ out2, const double scale, const int nchunks)
{
    int warp = (int)(((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    if (warp >= nchunks) return;
    double a0 = 0.0, a1 = 0.0;
    for (long long e = cstart[warp] + lane; e < cend[warp]; e += 32) {
        VAL2 x = z2[__ldcs(&idx[e])];
        double v = (double)__ldcs(&val[e]);
        a0 += v * (double)x.x;
        a1 += v * (double)x.y;
    }
    for (int off = 16; off > 0; off >>= 1) {
        a0 += __shfl_down_sync(0xffffffff, a0, off);
        a1 += __shfl_down_sync(0xffffffff, a1, off);
    }
    if (lane == 0) {
        atomicAdd(&out2[2 * (long long)crow[warp]], a0 * scale);
        atomicAdd(&out2[2 * (long long)crow[warp] + 1], a1 * scale);
    }
}

// The vector work around one pair product, fused. The product gathered
// sigma x, so N x = sigma * acc. While CG runs (scal[5] != 0):
// ap = (diag + mu) p - N p and scal[1] += p . ap. heat (1: first term, 2: later
// terms): T_{k+1} from N T_k, hacc gains a_k T_{k+1}; pack: x2[:, 1] =
// sigma T_{k+1} for the next product.
extern "C" __global__
void pair_after(const double* __restrict__ dmu, const double* __restrict__ p,
                const double* __restrict__ sig,
                const double* __restrict__ acc2, double* __restrict__ ap,
                const double* __restrict__ diag, const double* __restrict__ tcur,
                const double* __restrict__ tprev, double* __restrict__ tnext,
                double* __restrict__ hacc, VAL* __restrict__ x2, const double scale,
                const double a0, const double ak, const int heat,
                const int pack, double* __restrict__ scal, const long long n)
{
    const int do_cg = scal[5] != 0.0;
    double s = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        if (do_cg) {
            double pi = p[i];
            double w = dmu[i] * pi - sig[i] * acc2[2 * i];
            ap[i] = w;
            s += pi * w;
        }
        if (heat) {
            double tc = tcur[i];
            double u = scale * (diag[i] * tc - sig[i] * acc2[2 * i + 1]) - tc;
            if (heat == 1) {
                hacc[i] = a0 * tc + ak * u;
            } else {
                u = 2.0 * u - tprev[i];
                hacc[i] += ak * u;
            }
            tnext[i] = u;
            if (pack) x2[2 * i + 1] = (VAL)(sig[i] * u);
        }
    }
    if (do_cg) block_add(s, &scal[1]);
}

// CG update with step = scal[0] / scal[1] (rz / p.ap): y += step p, r -= step ap;
// scal[2] += r . M^-1 r, scal[3] += r . r.
extern "C" __global__
void cg_step(const double* __restrict__ p, const double* __restrict__ ap,
             const double* __restrict__ minv, double* __restrict__ y, double* __restrict__ r,
             double* __restrict__ scal, const long long n)
{
    if (scal[5] == 0.0) return;
    double step = scal[0] / scal[1];
    double a = 0.0, b = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        y[i] += step * p[i];
        double ri = r[i] - step * ap[i];
        r[i] = ri;
        a += ri * minv[i] * ri;
        b += ri * ri;
    }
    block_add(a, &scal[2]);
    block_add(b, &scal[3]);
}

// New direction p = M^-1 r + (scal[2] / scal[0]) p, and sigma p into x2[:, 0].
extern "C" __global__
void cg_direction(const double* __restrict__ r, const double* __restrict__ minv,
                  const double* __restrict__ sig, double* __restrict__ p, VAL* __restrict__ x2,
                  const double* __restrict__ scal, const long long n)
{
    if (scal[5] == 0.0) return;
    double beta = scal[2] / scal[0];
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double v = minv[i] * r[i] + beta * p[i];
        p[i] = v;
        x2[2 * i] = (VAL)(sig[i] * v);
    }
}

// Next step's scalars: rz <- rz_new, r . r in scal[4], sums zeroed, one more
// step counted in scal[6]; the stop test (r . r <= scal[7] = goal^2, or
// max_iter steps) clears scal[5], after which the CG kernels do nothing.
extern "C" __global__
void cg_rotate(double* scal, const double max_iter)
{
    if (scal[5] == 0.0) return;
    scal[0] = scal[2];
    scal[4] = scal[3];
    scal[1] = 0.0;
    scal[2] = 0.0;
    scal[3] = 0.0;
    scal[6] += 1.0;
    if (scal[4] <= scal[7] || scal[6] >= max_iter) scal[5] = 0.0;
}

// The tri-kernel's blend b = ld d + ls s + lh h, and its sum into sums[0].
extern "C" __global__
void blend_sum(const double* __restrict__ d, const double* __restrict__ s,
               const double* __restrict__ h, const double ld, const double ls,
               const double lh, double* __restrict__ out, double* __restrict__ sums,
               const long long n)
{
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double v = ld * d[i] + ls * s[i] + lh * h[i];
        out[i] = v;
        acc += v;
    }
    block_add(acc, &sums[0]);
}

// b /= sums[0] and sums[1] += |b - x|: the blend normalised, and the L1 change.
extern "C" __global__
void blend_norm(double* __restrict__ b, const double* __restrict__ x,
                double* __restrict__ sums, const long long n)
{
    const double inv = 1.0 / sums[0];
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double v = b[i] * inv;
        b[i] = v;
        acc += fabs(v - x[i]);
    }
    block_add(acc, &sums[1]);
}

// Anderson mixing, the two passes of anderson.py's numba kernels. aa_record:
// g = gx - x; when live, dx[slot] = x - x_prev, dg[slot] = g - g_prev and
// sums[j] += dg[slot] . dg[j], sums[AA_MAX + j] += dg[j] . g for j < k; then
// x_prev = x, g_prev = g.
#define AA_MAX 10
extern "C" __global__
void aa_record(const double* __restrict__ x, const double* __restrict__ gx,
               double* __restrict__ x_prev, double* __restrict__ g_prev,
               double* __restrict__ dx, double* __restrict__ dg, const int slot,
               const int live, const int k, double* __restrict__ sums, const long long n)
{
    double cross[AA_MAX], rhs[AA_MAX];
    for (int j = 0; j < AA_MAX; ++j) { cross[j] = 0.0; rhs[j] = 0.0; }
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double xi = x[i];
        double g = gx[i] - xi;
        if (live) {
            double dnew = g - g_prev[i];
            dx[slot * n + i] = xi - x_prev[i];
            dg[slot * n + i] = dnew;
            for (int j = 0; j < k; ++j) {
                double dj = (j == slot) ? dnew : dg[j * n + i];
                cross[j] += dnew * dj;
                rhs[j] += dj * g;
            }
        }
        x_prev[i] = xi;
        g_prev[i] = g;
    }
    if (!live) return;
    for (int j = 0; j < k; ++j) {
        block_add(cross[j], &sums[j]);
        block_add(rhs[j], &sums[AA_MAX + j]);
    }
}

// out = max(gx - sum_j gamma_j (dx_j + dg_j), 0); total += sum(out).
extern "C" __global__
void aa_mix(const double* __restrict__ gx, const double* __restrict__ dx,
            const double* __restrict__ dg, const double* __restrict__ gamma, const int k,
            double* __restrict__ out, double* __restrict__ total, const long long n)
{
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double v = gx[i];
        for (int j = 0; j < k; ++j) v -= gamma[j] * (dx[j * n + i] + dg[j * n + i]);
        v = v < 0.0 ? 0.0 : v;
        out[i] = v;
        acc += v;
    }
    block_add(acc, total);
}

// With a uniform prior (uniform != 0) its value is pval and the prior array is
// not read: one stream fewer in a pass bound by memory.
extern "C" __global__
void finish(const double* __restrict__ ylink, double* __restrict__ y,
            const double* __restrict__ x, const double* __restrict__ prior,
            const double* __restrict__ inv_out, VAL* __restrict__ z,
            const double* __restrict__ linked, double* __restrict__ l1, const long long n,
            const int uniform, const double pval)
{
    const double tele = 1.0 - linked[0];
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double v = ylink[i] + tele * (uniform ? pval : prior[i]);
        y[i] = v;
        acc += fabs(v - x[i]);
        z[i] = (VAL)(v * inv_out[i]);
    }
    block_add(acc, l1);
}
