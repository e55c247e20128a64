// The scaled symmetric matrix of springs and heat, built on the GPU
// (focus/backends/cuda_symmetric.py) with the bits the host builds it with.
//
// The host (symmetric.py, numba_lap.py) merges two CSRs of sorted rows a
// thread a row, adding a shared column's values (A's first), sums each merged
// row in column order from 0, and writes scale * sigma_r * v * sigma_q into
// the row's SELL-8 lane. A thread a row would leave a hub row of 10^5
// entries to one GPU thread, so here the work is cut by entry and only the
// additions that must stay in order are done in order:
//
// * merge_place: every entry of A and of B finds its place in its row's
//   merge by a binary search in the other row (A's entry first on a shared
//   column, where it carries both values and B's is dropped);
// * row_sums: a warp a row, its lanes loading 32 values at a time and lane 0
//   adding them in column order (the host's sum, the same bits);
// * sym_scatter: every merged entry written to its slot.
//
// Every addition and product is rounded on its own (__dadd_rn, __dmul_rn:
// never contracted), as the CPU code compiled without fastmath rounds them.

#define C 8

__device__ __forceinline__ long long lower_bound(
    const int* idx, long long lo, long long hi, int key)
{
    while (lo < hi) {
        const long long mid = lo + ((hi - lo) >> 1);
        if (idx[mid] < key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

extern "C" {

// Entry e of A (e < nnz_a) or of B (e - nnz_a): its place p in the merge of
// its row with duplicates, rows laid out one after another (row r starts at
// a_ptr[r] + b_ptr[r]); col[p], val[p], and keep[p] = 0 for a B entry whose
// column A holds (A's entry there holds a + b).
__global__ void merge_place(
    const long long* a_ptr, const int* a_idx, const double* a_w, const long long* a_rows,
    const long long* b_ptr, const int* b_idx, const double* b_w, const long long* b_rows,
    long long nnz_a, long long nnz_b, int* col, double* val, unsigned char* keep)
{
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (e >= nnz_a + nnz_b) return;
    if (e < nnz_a) {
        const long long r = a_rows[e];
        const int c = a_idx[e];
        const long long lo = b_ptr[r], hi = b_ptr[r + 1];
        const long long j = lower_bound(b_idx, lo, hi, c);
        const long long p = a_ptr[r] + b_ptr[r] + (e - a_ptr[r]) + (j - lo);
        double v = a_w[e];
        if (j < hi && b_idx[j] == c) v = __dadd_rn(v, b_w[j]);
        col[p] = c;
        val[p] = v;
        keep[p] = 1;
    } else {
        const long long f = e - nnz_a;
        const long long r = b_rows[f];
        const int d = b_idx[f];
        const long long lo = a_ptr[r], hi = a_ptr[r + 1];
        const long long i = lower_bound(a_idx, lo, hi, d);
        const int shared = i < hi && a_idx[i] == d;
        const long long p = a_ptr[r] + b_ptr[r] + (f - b_ptr[r]) + (i - lo) + shared;
        col[p] = d;
        val[p] = b_w[f];
        keep[p] = !shared;
    }
}

// Row r's sum in column order from 0 and its largest value (0 when empty):
// a warp a row (every thread of a warp has the same r, so the warp leaves
// together), lane 0 adding what the lanes loaded, one value after another.
__global__ void row_sums(
    const long long* ptr, const double* w, double* rowsum, double* rowmax, long long n)
{
    const long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long r = t >> 5;
    const int lane = threadIdx.x & 31;
    if (r >= n) return;
    const long long lo = ptr[r], hi = ptr[r + 1];
    double s = 0.0, best = 0.0;
    for (long long base = lo; base < hi; base += 32) {
        const long long e = base + lane;
        const double v = e < hi ? w[e] : 0.0;
        const int m = hi - base < 32 ? (int)(hi - base) : 32;
        for (int k = 0; k < m; ++k) {
            const double x = __shfl_sync(0xffffffffu, v, k);
            if (lane == 0) {
                s = __dadd_rn(s, x);
                if (x > best) best = x;
            }
        }
    }
    if (lane == 0) {
        rowsum[r] = s;
        rowmax[r] = best;
    }
}

// Merged entry e (row rows[e], the k-th of its row) into its SELL-8 slot:
// the row's lane slot_of[r] of its group, k groups' widths down. Slots no
// entry reaches stay as the caller zeroed them (the host's padding).
__global__ void sym_scatter(
    const long long* rows, const long long* ptr, const int* idx, const double* w,
    const long long* slot_of, const long long* gptr, const double* sigma, double scale,
    int* sidx, double* sval, long long nnz)
{
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (e >= nnz) return;
    const long long r = rows[e];
    const long long s = slot_of[r];
    const long long g = s / C;
    const long long o = gptr[g] + (e - ptr[r]) * C + (s - g * C);
    const int q = idx[e];
    sidx[o] = q;
    sval[o] = __dmul_rn(__dmul_rn(__dmul_rn(sigma[r], scale), w[e]), sigma[q]);
}
}
