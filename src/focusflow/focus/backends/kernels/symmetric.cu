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
// * merge_fresh, then merge_sources: every entry of B learns whether A's row
//   holds its column (then A's entry carries both and B's is dropped); with
//   the count of B's kept entries before each (a prefix sum), every entry of
//   A and every kept entry of B computes its place in the merge directly.
//   What is kept is where each merged value comes from (an entry of A, of B,
//   or both), so a merge whose structure has not moved is redone by
//   merged_values alone;
// * merge_overlay: the large cached merge and a small one merged the same
//   way, the large one's values gathered on the fly;
// * row_sums: a warp a row, its lanes loading 32 values at a time and each
//   adding all 32 in column order (the host's sum, the same bits);
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

// A merged value from where it comes: A's entry i, B's entry j, or both
// (A's first); -1 where a side holds none.
__device__ __forceinline__ double merged_value(
    long long i, long long j, const double* a_w, const double* b_w)
{
    if (i < 0) return b_w[j];
    if (j < 0) return a_w[i];
    return __dadd_rn(a_w[i], b_w[j]);
}

// fresh[f] = 1 where B's entry f (row b_rows[f]) has a column A's row lacks:
// it is kept in the merge; 0 where A's entry carries it.
__global__ void merge_fresh(
    const long long* a_ptr, const int* a_idx,
    const int* b_idx, const long long* b_rows, long long nnz_b, long long* fresh)
{
    const long long f = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (f >= nnz_b) return;
    const long long r = b_rows[f];
    const int d = b_idx[f];
    const long long lo = a_ptr[r], hi = a_ptr[r + 1];
    const long long i = lower_bound(a_idx, lo, hi, d);
    fresh[f] = !(i < hi && a_idx[i] == d);
}

// The place of A's entry e (e < nnz_a) and of B's kept entry f = e - nnz_a
// in the merge, rows one after another, given kept[f] = the kept entries of
// B before f (an exclusive prefix sum of merge_fresh's flags, nnz_b + 1
// long). Before A's e come A's e entries and B's kept entries of earlier rows
// and of smaller columns in its row: e + kept[j], j the first of its row's B
// entries at or past its column. Before B's f come A's entries of earlier
// rows and smaller columns, i (a lower bound in A's row), and kept[f].
// Written: each place's column, row, and where its value comes from.
__global__ void merge_sources(
    const long long* a_ptr, const int* a_idx, const long long* a_rows,
    const long long* b_ptr, const int* b_idx, const long long* b_rows,
    const long long* kept, long long nnz_a, long long nnz_b,
    int* col, long long* row, long long* src_a, long long* src_b)
{
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (e >= nnz_a + nnz_b) return;
    if (e < nnz_a) {
        const long long r = a_rows[e];
        const int c = a_idx[e];
        const long long lo = b_ptr[r], hi = b_ptr[r + 1];
        const long long j = lower_bound(b_idx, lo, hi, c);
        const long long p = e + kept[j];
        col[p] = c;
        row[p] = r;
        src_a[p] = e;
        src_b[p] = j < hi && b_idx[j] == c ? j : -1;
    } else {
        const long long f = e - nnz_a;
        if (kept[f + 1] == kept[f]) return;
        const long long r = b_rows[f];
        const int d = b_idx[f];
        const long long p = lower_bound(a_idx, a_ptr[r], a_ptr[r + 1], d) + kept[f];
        col[p] = d;
        row[p] = r;
        src_a[p] = -1;
        src_b[p] = f;
    }
}

// Every merged value from its sources (merge_sources'), a thread an entry.
__global__ void merged_values(
    const long long* src_a, const long long* src_b, const double* a_w, const double* b_w,
    double* val, long long nnz)
{
    const long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (p >= nnz) return;
    val[p] = merged_value(src_a[p], src_b[p], a_w, b_w);
}

// merge_sources' placement for A a kept merge (its structure, its rows, and
// where each value comes from in out_w and in_w) and B a small merge with
// values, writing columns, rows and values: A's value gathered, plus B's on a
// shared column (A's first).
__global__ void merge_overlay(
    const long long* a_ptr, const int* a_idx, const long long* a_rows,
    const long long* src_a, const long long* src_b, const double* out_w, const double* in_w,
    const long long* b_ptr, const int* b_idx, const long long* b_rows, const double* b_w,
    const long long* kept, long long nnz_a, long long nnz_b,
    int* col, long long* row, double* val)
{
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (e >= nnz_a + nnz_b) return;
    if (e < nnz_a) {
        const long long r = a_rows[e];
        const int c = a_idx[e];
        const long long lo = b_ptr[r], hi = b_ptr[r + 1];
        double v = merged_value(src_a[e], src_b[e], out_w, in_w);
        long long j = lo;
        if (lo < hi) {
            j = lower_bound(b_idx, lo, hi, c);
            if (j < hi && b_idx[j] == c) v = __dadd_rn(v, b_w[j]);
        }
        const long long p = e + kept[j];
        col[p] = c;
        row[p] = r;
        val[p] = v;
    } else {
        const long long f = e - nnz_a;
        if (kept[f + 1] == kept[f]) return;
        const long long r = b_rows[f];
        const int d = b_idx[f];
        const long long p = lower_bound(a_idx, a_ptr[r], a_ptr[r + 1], d) + kept[f];
        col[p] = d;
        row[p] = r;
        val[p] = b_w[f];
    }
}

// Row r's sum in column order from 0 and its largest value (0 when empty):
// a warp a row (every thread of a warp has the same r, so the warp leaves
// together). The lanes load 32 values at a time and every lane adds all 32,
// broadcast one after another, so each lane holds the row's sum in order and
// lane 0 writes it. A full group of 32 is unrolled: its broadcasts are issued
// ahead of the additions, whose chain alone then sets the pace of a hub row.
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
        if (hi - base >= 32) {
#pragma unroll
            for (int k = 0; k < 32; ++k) {
                const double x = __shfl_sync(0xffffffffu, v, k);
                s = __dadd_rn(s, x);
                best = x > best ? x : best;
            }
        } else {
            const int m = (int)(hi - base);
            for (int k = 0; k < m; ++k) {
                const double x = __shfl_sync(0xffffffffu, v, k);
                s = __dadd_rn(s, x);
                best = x > best ? x : best;
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
