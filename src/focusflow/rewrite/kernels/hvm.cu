// The CUDA evaluator of HVM2 nets (cuda.py), compiled by CuPy's RawModule.
// cuda.py puts the rule table in place of RULE_TABLE. The layout, the rules
// and the counting are cpu.py's; numbers.py is the reference of operate().
//
// A launch is one round: thread t takes the input pairs t, t + stride, ...
// and works in region (t + shift) % regions, the host moving `shift` after a
// round in which a thread found its region full,
// and reduces each with what it makes, on a small stack of its own, for at
// most `budget` interactions; what is left goes to the output bag. A pair
// that a link finds through a variable another thread wrote is *foreign*:
// the nodes behind it may have been written by that thread in this round,
// and only the end of the launch makes them visible, so it goes to the output
// bag too. Bags keep their pairs by rule (see BIN_OF). A thread allocates
// only in its own region of nodes and variables (so every slot has one
// allocator): first the slots of its region it freed itself this round, most
// recent first, else scanning for a free slot from where it stopped; any
// thread frees any slot. A wide net fills the heap, and there a scan passes
// many taken slots: without the freed slots the bitonic sort of 2^19 numbers
// took 2.1x as long on an H100 (bench/RESULTS.md). A link publishes a
// variable with an atomic exchange after a fence, so that whatever the thread
// wrote before (nodes, the variables it set up) is visible to the one that
// reads it.
//
// The rules are written once (`rules`), over the memory they run on: the
// global heap here (GlobalMem), a block's shared slots beside it in
// hvm_block_round (BlockMem).

typedef unsigned int u32;
typedef unsigned long long u64;
typedef int i32;
typedef long long i64;

#define VAR 0u
#define REF 1u
#define ERA 2u
#define NUM 3u
#define CON 4u
#define DUP 5u
#define OPR 6u
#define SWI 7u

#define R_LINK 0
#define R_CALL 1
#define R_VOID 2
#define R_ERAS 3
#define R_ANNI 4
#define R_COMM 5
#define R_OPER 6
#define R_SWIT 7

#define NONE 0xFFFFFFFFu
#define FID_MASK 0x0FFFFFFFu
#define RESERVED 0xFFFFFFFFFFFFFFFFull

#define ST_OK 0u
#define ST_OOM_NODES 1u
#define ST_OOM_VARS 2u
#define ST_OOM_REDEXES 3u
#define ST_UNSAFE_CLONE 4u

#define COUNTED 1
#define UNCOUNTED 0
#define SHORT 2

#ifndef LOCAL
#define LOCAL 16
#endif
#ifndef LOCAL_FOREIGN
#define LOCAL_FOREIGN 0
#endif
#ifndef FREE_CACHE
#define FREE_CACHE 8
#endif

__constant__ unsigned char RULES[64] = RULE_TABLE;

// A bag of pending pairs is cut into NBINS bins of out_cap / NBINS pairs, one
// per rule, and a round reads them bin after bin, shrinking rules first
// (LINK VOID ERAS ANNI, then OPER SWIT COMM CALL). Consecutive threads take
// consecutive pairs, so the lanes of a warp start on one rule instead of
// diverging over eight: 1.1-1.3x on the wide programs on an H200
// (bench/RESULTS.md). A bag's tally holds its bins' counts, then the flag
// that a thread went short of slots.
#ifndef NBINS
#define NBINS 8
#endif
// BIN_OF holds rule r's bin in its bits 4r..4r+3 (LINK 0, CALL 7, VOID 1,
// ERAS 2, ANNI 3, COMM 6, OPER 4, SWIT 5): a register, where a table in
// constant memory would serialise the lanes that look up different rules.
static_assert(NBINS == 8, "BIN_OF gives each of the eight rules its own bin");
#define BIN_OF 0x54632170u
#define SHORT_FLAG NBINS

// ---------------------------------------------------------------------------
// Numbers: HVM2's 29-bit words (numbers.py has the semantics and the reasons)

#define TY_SYM 0
#define TY_U24 1
#define TY_I24 2
#define TY_F24 3
#define OP_ADD 4
#define OP_SUB 5
#define FP_SUB 6
#define OP_MUL 7
#define OP_DIV 8
#define FP_DIV 9
#define OP_REM 10
#define FP_REM 11
#define OP_EQ 12
#define OP_NEQ 13
#define OP_LT 14
#define OP_GT 15
#define OP_AND 16
#define OP_OR 17
#define OP_XOR 18
#define OP_SHL 19
#define FP_SHL 20
#define OP_SHR 21
#define FP_SHR 22
#define NUMB_MASK 0x1FFFFFFFu
#define U24_MASK 0xFFFFFFu

__device__ __forceinline__ u32 new_u24(i64 v) { return (u32)(((v & U24_MASK) << 5) | TY_U24); }
__device__ __forceinline__ u32 new_i24(i64 v) { return (u32)(((v & U24_MASK) << 5) | TY_I24); }
__device__ __forceinline__ i64 get_u24(u32 w) { return (i64)((w & NUMB_MASK) >> 5); }
__device__ __forceinline__ i64 get_i24(u32 w) { return (i64)(((w & NUMB_MASK) >> 5) ^ 0x800000u) - 0x800000; }
__device__ __forceinline__ u32 get_typ(u32 w) { return w & 0x1Fu; }
__device__ __forceinline__ u32 get_sym(u32 w) { return (w & NUMB_MASK) >> 5; }

// The f24 of a float32's bits, rounded as HVM2's C runtime rounds.
__device__ __forceinline__ u32 f24_round(u32 bits)
{
    u32 hi = bits >> 8, lo = bits & 0xFFu;
    bool nan = (bits & 0x7F800000u) == 0x7F800000u && (bits & 0x7FFFFFu) != 0;
    if (nan) {
        hi |= 1u;
    } else {
        u32 keep = (lo >> 7) & (hi == 0 ? 1u : 0u);
        hi += (lo - keep) >> 7;
    }
    return ((hi << 5) | TY_F24) & NUMB_MASK;
}
__device__ __forceinline__ u32 new_f24(float v) { return f24_round(__float_as_uint(v)); }
__device__ __forceinline__ float get_f24(u32 w) { return __uint_as_float(((w & NUMB_MASK) << 3) & 0xFFFFFF00u); }

__device__ __forceinline__ bool is_num(u32 w) { u32 t = get_typ(w); return t >= TY_U24 && t <= TY_F24; }
__device__ __forceinline__ bool is_cast(u32 w) { u32 s = get_sym(w); return get_typ(w) == TY_SYM && s >= TY_U24 && s <= TY_F24; }

__device__ i64 f32_to_int(float v, i64 lo, i64 hi)
{
    if (v != v) return 0;
    if (v < (float)lo) return lo;
    if (v > (float)hi) return hi;
    return (i64)v;
}

__device__ u32 cast_numb(u32 sym, u32 w)
{
    u32 to = get_sym(sym), typ = get_typ(w);
    if (to == typ && typ >= TY_U24 && typ <= TY_F24) return w & NUMB_MASK;
    if (to == TY_U24 && typ == TY_I24) return new_u24(get_u24(w));
    if (to == TY_U24 && typ == TY_F24) return new_u24(f32_to_int(get_f24(w), 0, 0xFFFFFF));
    if (to == TY_I24 && typ == TY_U24) return new_i24(get_i24(w));
    if (to == TY_I24 && typ == TY_F24) return new_i24(f32_to_int(get_f24(w), -0x800000, 0x7FFFFF));
    if (to == TY_F24 && typ == TY_U24) return new_f24((float)get_u24(w));
    if (to == TY_F24 && typ == TY_I24) return new_f24((float)get_i24(w));
    return new_u24(0);
}

__device__ __forceinline__ i64 int_div(i64 x, i64 y) { return y == 0 ? 0 : x / y; }
__device__ __forceinline__ i64 int_rem(i64 x, i64 y) { return y == 0 ? x : x % y; }

// The integer operators on exact operands; `ok` false for a code without one.
__device__ i64 int_op(u32 op, i64 x, i64 y, bool* ok)
{
    *ok = true;
    switch (op) {
    case OP_ADD: return x + y;
    case OP_SUB: return x - y;
    case OP_MUL: return x * y;
    case OP_DIV: return int_div(x, y);
    case OP_REM: return int_rem(x, y);
    case OP_EQ: return x == y;
    case OP_NEQ: return x != y;
    case OP_LT: return x < y;
    case OP_GT: return x > y;
    case OP_AND: return x & y;
    case OP_OR: return x | y;
    case OP_XOR: return x ^ y;
    case OP_SHL: return x << (y & 31);
    case OP_SHR: return x >> (y & 31);
    }
    *ok = false;
    return 0;
}

__device__ __forceinline__ bool flipped(u32 op)
{
    return op == FP_SUB || op == FP_DIV || op == FP_REM || op == FP_SHL || op == FP_SHR;
}

__device__ u32 op_u24(u32 op, i64 x, i64 y)
{
    if (flipped(op)) { i64 t = x; x = y; y = t; op -= 1; }
    bool ok;
    i64 r = int_op(op, x, y, &ok);
    return new_u24(ok ? r : 0);
}

__device__ u32 op_i24(u32 op, i64 x, i64 y)
{
    if (op == OP_SHL || op == FP_SHL || op == OP_SHR || op == FP_SHR) return new_i24(0);
    if (flipped(op)) { i64 t = x; x = y; y = t; op -= 1; }
    bool ok;
    i64 r = int_op(op, x, y, &ok);
    if (!ok) return new_i24(0);
    if (op >= OP_EQ && op <= OP_GT) return new_u24(r);
    return new_i24(r);
}

__device__ u32 op_f24(u32 op, float x, float y)
{
    if (op == OP_SHL) return new_f24((float)sin((double)(x + y)));
    if (op == OP_SHR) return new_f24((float)tan((double)(x + y)));
    if (op == FP_SHL || op == FP_SHR) return new_f24(0.0f);
    if (op == FP_SUB || op == FP_DIV || op == FP_REM) { float t = x; x = y; y = t; op -= 1; }
    switch (op) {
    case OP_ADD: return new_f24(__fadd_rn(x, y));
    case OP_SUB: return new_f24(__fsub_rn(x, y));
    case OP_MUL: return new_f24(__fmul_rn(x, y));
    case OP_DIV: return new_f24(__fdiv_rn(x, y));
    case OP_REM: return new_f24(fmodf(x, y));
    case OP_EQ: return new_u24(x == y);
    case OP_NEQ: return new_u24(x != y);
    case OP_LT: return new_u24(x < y);
    case OP_GT: return new_u24(x > y);
    case OP_AND: return new_f24(atan2f(x, y));
    case OP_OR: return new_f24(__fdiv_rn(logf(y), logf(x)));
    case OP_XOR: return new_f24(powf(x, y));
    }
    return new_f24(0.0f);
}

__device__ u32 operate(u32 a, u32 b)
{
    u32 wa = a & NUMB_MASK, wb = b & NUMB_MASK;
    u32 at = get_typ(wa), bt = get_typ(wb);
    if (at == TY_SYM && bt == TY_SYM) return new_u24(0);
    if (is_cast(wa) && is_num(wb)) return cast_numb(wa, wb);
    if (is_cast(wb) && is_num(wa)) return cast_numb(wb, wa);
    if (at == TY_SYM) return ((wb & ~0x1Fu) | get_sym(wa)) & NUMB_MASK;
    if (bt == TY_SYM) return ((wa & ~0x1Fu) | get_sym(wb)) & NUMB_MASK;
    if ((at >= OP_ADD) == (bt >= OP_ADD)) return new_u24(0);
    u32 op, ty, p, n;
    if (at >= OP_ADD) { op = at; ty = bt; p = wa; n = wb; } else { op = bt; ty = at; p = wb; n = wa; }
    if (ty == TY_U24) return op_u24(op, get_u24(p), get_u24(n));
    if (ty == TY_I24) return op_i24(op, get_i24(p), get_i24(n));
    return op_f24(op, get_f24(p), get_f24(n));
}

// Test entry point: operate() over arrays of word pairs.
extern "C" __global__ void hvm_operate(const u32* a, const u32* b, u32* out, u32 n)
{
    u32 i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = operate(a[i], b[i]);
}

// ---------------------------------------------------------------------------
// Ports and the heap

__device__ __forceinline__ u32 tag(u32 p) { return p & 7u; }
__device__ __forceinline__ u32 val(u32 p) { return p >> 3; }
__device__ __forceinline__ u32 mk(u32 t, u32 v) { return ((v & 0x1FFFFFFFu) << 3) | t; }
__device__ __forceinline__ u64 mkpair(u32 f, u32 s) { return (u64)f | ((u64)s << 32); }
__device__ __forceinline__ u32 fst(u64 p) { return (u32)p; }
__device__ __forceinline__ u32 snd(u64 p) { return (u32)(p >> 32); }

// Put a pair in its rule's bin of an output bag; false when that bin is full.
// The lanes of a warp that put pairs at once take their places in one atomic
// add a bin (its lowest lane adds for all of them), not one add a lane:
// 1.1-1.5x on the wide programs on an H200 (bench/RESULTS.md).
__device__ __forceinline__ bool bag_put(u64* bag, u32 seg, u32* tally, u64 pair)
{
    u32 b = (BIN_OF >> (4 * RULES[tag(fst(pair)) * 8 + tag(snd(pair))])) & 0xFu;
    u32 lane = threadIdx.x & 31u;
    u32 peers = __match_any_sync(__activemask(), b);
    u32 first = __ffs(peers) - 1;
    u32 base = 0;
    if (lane == first) base = atomicAdd(&tally[b], (u32)__popc(peers));
    u32 i = __shfl_sync(peers, base, first) + __popc(peers & ((1u << lane) - 1u));
    if (i >= seg) return false;
    bag[(u64)b * seg + i] = pair;
    return true;
}

// A round's input bag, read at growing positions i (a thread's i, i + stride,
// ...): pair i is in the bin whose counts, summed from bin 0, first pass i.
struct BagIn {
    const u64* bag;
    const u32* tally;
    u32 seg, bin, first, end;
};

__device__ __forceinline__ BagIn bag_in(const u64* bag, const u32* tally, u32 seg)
{
    BagIn in = {bag, tally, seg, 0, 0, tally[0]};
    return in;
}

__device__ __forceinline__ u64 bag_get(BagIn& in, u32 i)
{
    while (i >= in.end) { in.first = in.end; in.bin++; in.end += in.tally[in.bin]; }
    return in.bag[(u64)in.bin * in.seg + (i - in.first)];
}

struct Net {
    u64* node;
    u32* vars;
    u64* bag_out;
    u32* ctl;  // [1] status, [2] its detail, [4..5] interactions
    u32* tally;  // the output bag's
    u32* scratch;
    u32 seg, region_n, region_v, width;
    const u32* roots;
    const u32* node_start;
    const u64* def_nodes;
    const u32* rbag_start;
    const u64* def_rbag;
    const u32* def_vars;
    const unsigned char* safe;
    u32 root_port;
    u32 low;  // the first slot of region 0 (LLEN where hvm_block_round shares the heap)
};

struct Worker {
    u32 t;  // the thread
    u32 r;  // its region this round
    u32 ncur, vcur;  // where the next scan of the thread's regions starts
    u64 stack[LOCAL];
    int top;
    u32 itrs;
    bool dirty;  // wrote something since the last fence
    u32 nfc[FREE_CACHE], vfc[FREE_CACHE];  // slots of its regions it freed this round
    u32 nfn, vfn;
};

__device__ __forceinline__ void fail(Net& net, u32 status, u32 info)
{
    if (atomicCAS(&net.ctl[1], ST_OK, status) == ST_OK) net.ctl[2] = info;
}

__device__ __forceinline__ void spill(Net& net, u64 pair)
{
    if (!bag_put(net.bag_out, net.seg, net.tally, pair)) fail(net, ST_OOM_REDEXES, 0);
}

// A pair found through a variable is reduced here too when LOCAL_FOREIGN is
// on: a fence after the exchange that found it (the writer fenced before its
// own) makes the nodes behind it visible. Off, it waits for the next launch.
__device__ __forceinline__ void push(Net& net, Worker& tm, u32 a, u32 b, bool foreign)
{
    if (foreign && LOCAL_FOREIGN) __threadfence();
    if ((!foreign || LOCAL_FOREIGN) && tm.top < LOCAL) tm.stack[tm.top++] = mkpair(a, b);
    else spill(net, mkpair(a, b));
}

__device__ __forceinline__ u64 node_load(Net& net, u32 loc) { return __ldcg(&net.node[loc]); }

__device__ __forceinline__ void node_store(Net& net, Worker& tm, u32 loc, u64 pair)
{
    net.node[loc] = pair;
    tm.dirty = true;
}

// The first slot of the thread's region of `size` slots (nodes or variables).
__device__ __forceinline__ u32 region_base(Net& net, Worker& tm, u32 size) { return net.low + tm.r * size; }

// A freed slot of the thread's own region is remembered, and its next
// allocation takes it back without a scan (it alone allocates there).
__device__ __forceinline__ void node_free(Net& net, Worker& tm, u32 loc)
{
    net.node[loc] = 0;
    bool mine = loc - region_base(net, tm, net.region_n) < net.region_n;
    if (mine && tm.nfn < FREE_CACHE) tm.nfc[tm.nfn++] = loc;
}
__device__ __forceinline__ void var_free(Net& net, Worker& tm, u32 loc)
{
    net.vars[loc] = 0;
    bool mine = loc - region_base(net, tm, net.region_v) < net.region_v;
    if (mine && tm.vfn < FREE_CACHE) tm.vfc[tm.vfn++] = loc;
}

// A free node slot of the thread's region (marked reserved), or 0 when the
// whole region is taken.
__device__ u32 node_alloc(Net& net, Worker& tm)
{
    if (tm.nfn) {
        u32 loc = tm.nfc[--tm.nfn];
        net.node[loc] = RESERVED;
        return loc;
    }
    u32 base = region_base(net, tm, net.region_n);
    for (u32 k = 0; k < net.region_n; k++) {
        u32 i = tm.ncur;
        tm.ncur = (tm.ncur + 1 == net.region_n) ? 0 : tm.ncur + 1;
        if (__ldcg(&net.node[base + i]) == 0) {
            net.node[base + i] = RESERVED;
            return base + i;
        }
    }
    return 0;
}

__device__ u32 var_alloc(Net& net, Worker& tm)
{
    if (tm.vfn) {
        u32 loc = tm.vfc[--tm.vfn];
        net.vars[loc] = NONE;
        tm.dirty = true;
        return loc;
    }
    u32 base = region_base(net, tm, net.region_v);
    for (u32 k = 0; k < net.region_v; k++) {
        u32 i = tm.vcur;
        tm.vcur = (tm.vcur + 1 == net.region_v) ? 0 : tm.vcur + 1;
        if (__ldcg(&net.vars[base + i]) == 0) {
            net.vars[base + i] = NONE;
            tm.dirty = true;
            return base + i;
        }
    }
    return 0;
}

// Follow p through linked variables, freeing the ones passed; *foreign is set
// when the port came out of a variable. A port found in a variable was written
// by its other end, which is done with it, so a load suffices (a volatile one:
// it goes to the coherent L2, never to a stale L1 line).
__device__ __forceinline__ u32 enter(Net& net, Worker& tm, u32 p, bool* foreign)
{
    while (tag(p) == VAR) {
        u32 x = *(volatile u32*)&net.vars[val(p)];
        if (x == NONE || x == 0) break;
        var_free(net, tm, val(p));
        p = x;
        *foreign = true;
    }
    return p;
}

// HVM2's atomic link; `foreign` says whether b came out of a variable.
__device__ void link(Net& net, Worker& tm, u32 a, u32 b, bool foreign = false)
{
    while (true) {
        if (tag(a) != VAR && tag(b) == VAR) { u32 t = a; a = b; b = t; }
        if (tag(a) != VAR) { push(net, tm, a, b, foreign); return; }
        b = enter(net, tm, b, &foreign);
        if (tm.dirty) { __threadfence(); tm.dirty = false; }
        u32 old = atomicExch(&net.vars[val(a)], b);
        if (old == NONE) return;
        var_free(net, tm, val(a));
        a = old;
        foreign = true;
    }
}

__device__ __forceinline__ u32 relocate(u32 p, const u32* nloc, const u32* vloc)
{
    u32 t = tag(p);
    if (t >= CON) return mk(t, nloc[val(p)]);
    if (t == VAR) return mk(VAR, vloc[val(p)]);
    return p;
}

// Take n node and v variable slots into the thread's scratch, all or none:
// on a shortfall the slots taken go back, the run notes that a thread went
// short (the tally's SHORT_FLAG) and the caller hands its pair on to the next round, where
// another thread (another region) may take it.
__device__ bool alloc_many(Net& net, Worker& tm, u32* nloc, u32* vloc, u32 n, u32 v)
{
    for (u32 i = 0; i < n; i++) {
        nloc[i] = node_alloc(net, tm);
        if (nloc[i] == 0) {
            for (u32 j = 0; j < i; j++) node_free(net, tm, nloc[j]);
            net.tally[SHORT_FLAG] = ST_OOM_NODES;
            return false;
        }
    }
    for (u32 i = 0; i < v; i++) {
        vloc[i] = var_alloc(net, tm);
        if (vloc[i] == 0) {
            for (u32 j = 0; j < i; j++) var_free(net, tm, vloc[j]);
            for (u32 j = 0; j < n; j++) node_free(net, tm, nloc[j]);
            net.tally[SHORT_FLAG] = ST_OOM_VARS;
            return false;
        }
    }
    return true;
}

// The memory the rules run on, for hvm_round: the global heap. Each memory
// (this one, and BlockMem below) gives the rules the same operations on
// nodes and links, and three hooks that only a block's shared memory needs
// (see BlockMem): the rules are written once, in `rules`.
struct GlobalMem {
    Net& n;
    Worker& w;
    __device__ __forceinline__ u64 get(u32 loc) { return node_load(n, loc); }
    __device__ __forceinline__ void set(u32 loc, u64 v) { node_store(n, w, loc, v); }
    __device__ __forceinline__ void free_node(u32 loc) { node_free(n, w, loc); }
    __device__ __forceinline__ u64 take(u32 loc)
    {
        u64 v = node_load(n, loc);
        node_free(n, w, loc);
        return v;
    }
    __device__ __forceinline__ u32 enter(u32 p, bool* foreign) { return ::enter(n, w, p, foreign); }
    __device__ __forceinline__ void link(u32 a, u32 b, bool foreign = false) { ::link(n, w, a, b, foreign); }
    __device__ __forceinline__ bool alloc(u32* nloc, u32* vloc, u32 nn, u32 nv)
    {
        return alloc_many(n, w, nloc, vloc, nn, nv);
    }
    __device__ __forceinline__ void fail(u32 status, u32 info) { ::fail(n, status, info); }
    __device__ __forceinline__ int link_rule(u32 a, u32 b)
    {
        link(a, b);
        return UNCOUNTED;
    }
    __device__ __forceinline__ bool keep_global(u32, u32* gv)
    {
        *gv = 0;
        return true;
    }
    __device__ __forceinline__ void drop_var(u32) {}
    __device__ __forceinline__ u32 globalize(u32 p, u32) { return p; }
    __device__ __forceinline__ void unalloc_nodes(const u32*, u32) {}
};

// The slots one interaction takes (nloc, vloc) are kept on the thread's
// stack when the book's widest definition has at most this many nodes and
// variables: local memory stays in L1 until it is evicted, where a store to
// the global scratch goes on to L2 (on an H200, bitonic sort of 2^19 numbers
// made 15 times HVM2's global stores an interaction with the global scratch:
// bench/RESULTS.md). A wider book uses its thread's share of the global
// scratch.
#ifndef SCRATCH_LOCAL
#define SCRATCH_LOCAL 64
#endif

// One interaction on memory M: COUNTED, UNCOUNTED (LINK), or SHORT (no
// slots: the pair is untouched and must be tried again). M's net (`m.n`)
// holds the book and the thread's scratch, M's worker (`m.w`) the thread.
template <class M>
__device__ __forceinline__ int rules(M& m, u32 a, u32 b)
{
    u32 rule = RULES[tag(a) * 8 + tag(b)];
    if (tag(a) == REF && b == m.n.root_port) rule = R_CALL;
    else if (tag(b) < tag(a)) { u32 t = a; a = b; b = t; }
    u32 stack[2 * SCRATCH_LOCAL];
    bool narrow = m.n.width <= SCRATCH_LOCAL;
    u32* nloc = narrow ? stack : m.n.scratch + (u64)m.w.t * 2 * m.n.width;
    u32* vloc = narrow ? stack + SCRATCH_LOCAL : nloc + m.n.width;
    switch (rule) {
    case R_LINK:
        return m.link_rule(a, b);
    case R_VOID:
        return COUNTED;
    case R_CALL: {
        u32 fid = val(a) & FID_MASK;
        if (tag(b) == DUP) {
            if (!m.n.safe[fid]) { m.fail(ST_UNSAFE_CLONE, fid); return UNCOUNTED; }
            u64 pr = m.take(val(b));
            m.link(a, fst(pr));
            m.link(a, snd(pr));
            return COUNTED;
        }
        u32 n0 = m.n.node_start[fid], nlen = m.n.node_start[fid + 1] - n0;
        if (!m.alloc(nloc, vloc, nlen, m.n.def_vars[fid])) return SHORT;
        for (u32 i = 0; i < nlen; i++) {
            u64 pr = m.n.def_nodes[n0 + i];
            m.set(nloc[i], mkpair(relocate(fst(pr), nloc, vloc), relocate(snd(pr), nloc, vloc)));
        }
        for (u32 r = m.n.rbag_start[fid]; r < m.n.rbag_start[fid + 1]; r++) {
            u64 pr = m.n.def_rbag[r];
            m.link(relocate(fst(pr), nloc, vloc), relocate(snd(pr), nloc, vloc));
        }
        m.link(relocate(m.n.roots[fid], nloc, vloc), b);
        return COUNTED;
    }
    case R_ERAS: {
        u64 pr = m.take(val(b));
        m.link(a, fst(pr));
        m.link(a, snd(pr));
        return COUNTED;
    }
    case R_ANNI: {
        // both loads before either slot is freed: the compiler cannot tell
        // the slots apart, so a store between them makes the second load
        // wait for it (5-11 % on the wide programs on an H200)
        u64 pa = m.get(val(a)), pb = m.get(val(b));
        m.free_node(val(a));
        m.free_node(val(b));
        m.link(fst(pa), fst(pb));
        m.link(snd(pa), snd(pb));
        return COUNTED;
    }
    case R_COMM: {
        if (!m.alloc(nloc, vloc, 4, 4)) return SHORT;
        u64 pa = m.get(val(a)), pb = m.get(val(b));
        m.free_node(val(a));
        m.free_node(val(b));
        u32 v0 = mk(VAR, vloc[0]), v1 = mk(VAR, vloc[1]), v2 = mk(VAR, vloc[2]), v3 = mk(VAR, vloc[3]);
        m.set(nloc[0], mkpair(v0, v1));
        m.set(nloc[1], mkpair(v2, v3));
        m.set(nloc[2], mkpair(v0, v2));
        m.set(nloc[3], mkpair(v1, v3));
        m.link(mk(tag(b), nloc[0]), fst(pa));
        m.link(mk(tag(b), nloc[1]), snd(pa));
        m.link(mk(tag(a), nloc[2]), fst(pb));
        m.link(mk(tag(a), nloc[3]), snd(pb));
        return COUNTED;
    }
    case R_OPER: {
        // the operator's node is kept for the result when b1 is no number:
        // in a block, a global one must then not hold a shared port
        u32 gv;
        if (!m.keep_global(val(b), &gv)) return SHORT;
        u64 pr = m.get(val(b));
        u32 b1 = fst(pr);
        bool foreign = false;
        u32 b2 = m.enter(snd(pr), &foreign);
        if (tag(b1) == NUM) {
            m.drop_var(gv);
            m.free_node(val(b));
            m.link(mk(NUM, operate(val(a), val(b1))), b2, foreign);
        } else {
            b2 = m.globalize(b2, gv);
            m.set(val(b), mkpair(a, b2));
            m.link(b1, mk(OPR, val(b)));
        }
        return COUNTED;
    }
    case R_SWIT: {
        u32 k = (val(a) >> 5) & 0xFFFFFFu, nn = k == 0 ? 1u : 2u;
        if (!m.alloc(nloc, vloc, nn, 0)) return SHORT;
        u32 gv;
        if (!m.keep_global(nloc[0], &gv)) { m.unalloc_nodes(nloc, nn); return SHORT; }
        u64 pr = m.take(val(b));
        u32 b1 = fst(pr), b2 = m.globalize(snd(pr), gv);
        if (k == 0) {
            m.set(nloc[0], mkpair(b2, mk(ERA, 0)));
        } else {
            m.set(nloc[1], mkpair(mk(NUM, ((k - 1) << 5) | 1u), b2));
            m.set(nloc[0], mkpair(mk(ERA, 0), mk(CON, nloc[1])));
        }
        m.link(mk(CON, nloc[0]), b1);
        return COUNTED;
    }
    }
    return UNCOUNTED;
}

__device__ int interact(Net& net, Worker& tm, u32 a, u32 b)
{
    GlobalMem m = {net, tm};
    return rules(m, a, b);
}

extern "C" __global__ void hvm_round(
    u64* node, u32* vars, const u64* bag_in_, u32 n_in, u64* bag_out, u32 out_cap,
    u32* ctl, u32* cursors, u32* scratch, u32 width,
    const u32* roots, const u32* node_start, const u64* def_nodes, const u32* rbag_start,
    const u64* def_rbag, const u32* def_vars, const unsigned char* safe,
    u32 root_port, u32 region_n, u32 region_v, u32 budget, u32 stride,
    u32 regions, u32 shift, u32 low, const u32* tally_in, u32* tally_out)
{
    u32 t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= stride) return;
    u32 seg = out_cap / NBINS;
    Net net = {node, vars, bag_out, ctl, tally_out, scratch, seg, region_n, region_v,
               width, roots, node_start, def_nodes, rbag_start, def_rbag, def_vars, safe, root_port,
               low};
    BagIn in = bag_in(bag_in_, tally_in, seg);
    Worker tm;
    tm.t = t;
    tm.r = (t + shift) % regions;
    tm.ncur = cursors[2 * tm.r];
    tm.vcur = cursors[2 * tm.r + 1];
    tm.top = 0;
    tm.itrs = 0;
    tm.dirty = false;
    tm.nfn = 0;
    tm.vfn = 0;
    u32 steps = 0;
    for (u32 i = t; i < n_in; i += stride) {
        u64 r = bag_get(in, i);
        if (steps >= budget) { spill(net, r); continue; }
        tm.stack[tm.top++] = r;
        while (tm.top > 0) {
            if (steps >= budget) {
                while (tm.top > 0) spill(net, tm.stack[--tm.top]);
                break;
            }
            u64 redex = tm.stack[--tm.top];
            int done = interact(net, tm, fst(redex), snd(redex));
            if (done == SHORT) {
                // the region is full: this thread hands everything on
                spill(net, redex);
                steps = budget;
                continue;
            }
            if (done == COUNTED) tm.itrs++;
            steps++;
            if ((steps & 63) == 0 && *(volatile u32*)&ctl[1] != ST_OK) { tm.top = 0; break; }
        }
    }
    cursors[2 * tm.r] = tm.ncur;
    cursors[2 * tm.r + 1] = tm.vcur;
    if (tm.itrs) atomicAdd((u64*)(ctl + 4), (u64)tm.itrs);
}

// ---------------------------------------------------------------------------
// The block-local evaluator (hvm_block_round, the `local` schedule)
//
// The same rules (on BlockMem), with the nodes and variables a thread makes
// kept in its block's shared memory, as HVM2's CUDA runtime keeps them: addresses below
// LLEN are the block's own slots (thread i owns slots i, i + LT, ...), the
// rest are the global heap's. An interaction whose nodes are all shared pays
// shared-memory latency instead of L2's. Two rules keep a round's end safe,
// when the shared memory is gone:
// - a global node or variable never holds a shared address: linking a global
//   variable to a shared node first copies ("leaks") that node to the global
//   heap, its shared ports behind fresh global variables, and a shared
//   variable met by a global one is pointed at it instead;
// - at the end of the round every pair still in a thread's bags is leaked
//   the same way and goes to the output bag with global ports only.
// Every pair is reduced where it is found, as hvm_round does with
// LOCAL_FOREIGN: through a shared variable (the writer is in the block, and
// fenced before publishing) and through a global one, behind a fence. A
// narrow program's chain so stays with one thread, in shared memory; a wide
// one loses the spreading that waiting for the next launch gives it, which is
// why the `auto` schedule runs this kernel only where a round measures it
// faster (cuda.py, _Auto). Under `auto` the rounds of hvm_round share the heap,
// their regions starting at `low` = LLEN.

// cuda_base.py defines LT and LLEN from the device's Geometry and RLEN from
// its BAG; the values here are those of its SMALL geometry, for a compile
// without them.
#ifndef LT
#define LT 128
#endif
#ifndef LLEN
#define LLEN 8192
#endif
#define LPER (LLEN / LT)
#ifndef RLEN
#define RLEN 256
#endif
#define ST_BAG 5u

struct BNet {
    u64* node;
    u32* vars;
    u64* bag_out;
    u32* ctl;
    u32* tally;
    u32* scratch;
    u64* lnode;
    u32* lvars;
    u32 seg, region_n, region_v, width;
    const u32* roots;
    const u32* node_start;
    const u64* def_nodes;
    const u32* rbag_start;
    const u64* def_rbag;
    const u32* def_vars;
    const unsigned char* safe;
    u32 root_port;
};

struct BWorker {
    u32 t, tid, r;
    u32 ncur, vcur, lncur, lvcur;
    u32 hi_end, lo_end;
    u64 hi[RLEN];
    u64 lo[RLEN];
    u32 itrs;
    bool dirty_g, dirty_l;
    bool local_only;
};

// A thread `t` of the block kernels, in region r, its scans going on where
// the region's last thread left them (`cursors`), with empty bags.
__device__ __forceinline__ void b_start(BWorker& w, u32 t, u32 r, const u32* cursors,
                                        bool local_only)
{
    w.t = t;
    w.tid = threadIdx.x;
    w.r = r;
    w.ncur = cursors[2 * r];
    w.vcur = cursors[2 * r + 1];
    w.lncur = 0;
    w.lvcur = 0;
    w.hi_end = 0;
    w.lo_end = 0;
    w.itrs = 0;
    w.dirty_g = false;
    w.dirty_l = false;
    w.local_only = local_only;
}

__device__ __forceinline__ bool b_addr(u32 p) { return tag(p) == VAR || (tag(p) >= CON && p != NONE); }
__device__ __forceinline__ bool b_local(u32 p) { return b_addr(p) && val(p) < LLEN; }

__device__ __forceinline__ void b_fail(BNet& n, u32 status, u32 info)
{
    if (atomicCAS(&n.ctl[1], ST_OK, status) == ST_OK) n.ctl[2] = info;
}

__device__ __forceinline__ void b_spill(BNet& n, u64 pair)
{
    if (!bag_put(n.bag_out, n.seg, n.tally, pair)) b_fail(n, ST_OOM_REDEXES, 0);
}

// Shrinking rules first (HVM2's priority): they free slots.
__device__ __forceinline__ bool b_high(u32 a, u32 b)
{
    u32 rule = RULES[tag(a) * 8 + tag(b)];
    return rule == R_LINK || rule == R_VOID || rule == R_ERAS || rule == R_ANNI;
}

// A foreign pair is reduced here, behind a fence that makes the global nodes
// behind it (fenced by their writer before it published them) visible.
__device__ __forceinline__ void b_push(BNet& n, BWorker& w, u32 a, u32 b, bool foreign)
{
    if (foreign) __threadfence();
    if (b_high(a, b)) {
        if (w.hi_end < RLEN) { w.hi[w.hi_end++] = mkpair(a, b); return; }
    } else if (w.lo_end < RLEN) { w.lo[w.lo_end++] = mkpair(a, b); return; }
    b_fail(n, ST_BAG, 0);
}

__device__ __forceinline__ u64 b_node_get(BNet& n, u32 loc)
{
    return loc < LLEN ? ((volatile u64*)n.lnode)[loc] : __ldcg(&n.node[loc]);
}

__device__ __forceinline__ void b_node_set(BNet& n, BWorker& w, u32 loc, u64 v)
{
    if (loc < LLEN) { ((volatile u64*)n.lnode)[loc] = v; w.dirty_l = true; }
    else { n.node[loc] = v; w.dirty_g = true; }
}

__device__ __forceinline__ u64 b_node_take(BNet& n, u32 loc)
{
    u64 v = b_node_get(n, loc);
    if (loc < LLEN) ((volatile u64*)n.lnode)[loc] = 0;
    else n.node[loc] = 0;
    return v;
}

__device__ __forceinline__ u32 b_var_get(BNet& n, u32 loc)
{
    return loc < LLEN ? ((volatile u32*)n.lvars)[loc] : *(volatile u32*)&n.vars[loc];
}

__device__ __forceinline__ void b_var_free(BNet& n, u32 loc)
{
    if (loc < LLEN) ((volatile u32*)n.lvars)[loc] = 0;
    else n.vars[loc] = 0;
}

__device__ __forceinline__ u32 b_var_xchg(BNet& n, BWorker& w, u32 loc, u32 v)
{
    if (w.dirty_g) { __threadfence(); w.dirty_g = false; w.dirty_l = false; }
    else if (w.dirty_l) { __threadfence_block(); w.dirty_l = false; }
    return loc < LLEN ? atomicExch(&n.lvars[loc], v) : atomicExch(&n.vars[loc], v);
}

__device__ u32 b_lnode_alloc(BNet& n, BWorker& w)
{
    for (u32 k = 0; k < LPER; k++) {
        u32 loc = w.lncur * LT + w.tid;
        w.lncur = (w.lncur + 1 == LPER) ? 0 : w.lncur + 1;
        if (loc != 0 && ((volatile u64*)n.lnode)[loc] == 0) {
            ((volatile u64*)n.lnode)[loc] = RESERVED;
            return loc;
        }
    }
    return 0;
}

__device__ u32 b_lvar_alloc(BNet& n, BWorker& w)
{
    for (u32 k = 0; k < LPER; k++) {
        u32 loc = w.lvcur * LT + w.tid;
        w.lvcur = (w.lvcur + 1 == LPER) ? 0 : w.lvcur + 1;
        if (loc != 0 && ((volatile u32*)n.lvars)[loc] == 0) {
            ((volatile u32*)n.lvars)[loc] = NONE;
            w.dirty_l = true;
            return loc;
        }
    }
    return 0;
}

__device__ u32 b_gnode_alloc(BNet& n, BWorker& w)
{
    u32 base = LLEN + w.r * n.region_n;
    for (u32 k = 0; k < n.region_n; k++) {
        u32 i = w.ncur;
        w.ncur = (w.ncur + 1 == n.region_n) ? 0 : w.ncur + 1;
        if (__ldcg(&n.node[base + i]) == 0) {
            n.node[base + i] = RESERVED;
            return base + i;
        }
    }
    return 0;
}

__device__ u32 b_gvar_alloc(BNet& n, BWorker& w)
{
    u32 base = LLEN + w.r * n.region_v;
    for (u32 k = 0; k < n.region_v; k++) {
        u32 i = w.vcur;
        w.vcur = (w.vcur + 1 == n.region_v) ? 0 : w.vcur + 1;
        if (__ldcg(&n.vars[base + i]) == 0) {
            n.vars[base + i] = NONE;
            w.dirty_g = true;
            return base + i;
        }
    }
    return 0;
}

// n nodes and v variables, all shared or (when the thread's shared slots
// run out) all global, or none: false when even the global region is full.
__device__ bool b_alloc(BNet& n, BWorker& w, u32* nloc, u32* vloc, u32 nn, u32 nv)
{
    if (nn <= LPER && nv <= LPER) {
        u32 i = 0, j = 0;
        for (; i < nn; i++) if ((nloc[i] = b_lnode_alloc(n, w)) == 0) break;
        if (i == nn) for (; j < nv; j++) if ((vloc[j] = b_lvar_alloc(n, w)) == 0) break;
        if (i == nn && j == nv) return true;
        for (u32 k = 0; k < i; k++) ((volatile u64*)n.lnode)[nloc[k]] = 0;
        for (u32 k = 0; k < j; k++) ((volatile u32*)n.lvars)[vloc[k]] = 0;
        if (w.local_only) return false;  // the caller waits (hvm_fork_round)
    }
    for (u32 i = 0; i < nn; i++) {
        if ((nloc[i] = b_gnode_alloc(n, w)) == 0) {
            for (u32 k = 0; k < i; k++) n.node[nloc[k]] = 0;
            n.tally[SHORT_FLAG] = ST_OOM_NODES;
            return false;
        }
    }
    for (u32 j = 0; j < nv; j++) {
        if ((vloc[j] = b_gvar_alloc(n, w)) == 0) {
            for (u32 k = 0; k < j; k++) n.vars[vloc[k]] = 0;
            for (u32 k = 0; k < nn; k++) n.node[nloc[k]] = 0;
            n.tally[SHORT_FLAG] = ST_OOM_VARS;
            return false;
        }
    }
    return true;
}

__device__ __forceinline__ u32 b_enter(BNet& n, u32 p, bool* foreign)
{
    while (tag(p) == VAR) {
        u32 x = b_var_get(n, val(p));
        if (x == NONE || x == 0) break;
        b_var_free(n, val(p));
        if (val(p) >= LLEN) *foreign = true;
        p = x;
    }
    return p;
}

__device__ void b_link(BNet& n, BWorker& w, u32 a, u32 b, bool foreign = false)
{
    while (true) {
        if (tag(a) != VAR && tag(b) == VAR) { u32 t = a; a = b; b = t; }
        if (tag(a) != VAR) { b_push(n, w, a, b, foreign); return; }
        b = b_enter(n, b, &foreign);
        if (val(a) >= LLEN && b_local(b)) {
            if (tag(b) == VAR) { u32 t = a; a = b; b = t; continue; }
            b_push(n, w, a, b, false);  // a leak: global variable ~ shared node
            return;
        }
        u32 old = b_var_xchg(n, w, val(a), b);
        if (old == NONE) return;
        b_var_free(n, val(a));
        if (val(a) >= LLEN) foreign = true;
        a = old;
    }
}

// p, or a fresh global variable linked to p when p is shared (var must be a
// global variable slot taken beforehand, or 0 when p is known global).
__device__ __forceinline__ u32 b_globalize(BNet& n, BWorker& w, u32 p, u32 var)
{
    if (!b_local(p)) { if (var) n.vars[var] = 0; return p; }
    u32 g = mk(VAR, var);
    b_link(n, w, g, p);
    return g;
}

// The leak: a global variable a meets the shared node b, which moves to the
// global heap. Its shared ports stay behind fresh global variables; ports are
// not followed through their variables (a node seen with a number where it
// held a variable would take one interaction fewer than the other evaluators).
__device__ u32 b_copy_out(BNet& n, BWorker& w, u32 p)
{
    u32 g = b_gnode_alloc(n, w);
    u32 v1 = g ? b_gvar_alloc(n, w) : 0;
    u32 v2 = v1 ? b_gvar_alloc(n, w) : 0;
    if (!v2) {
        if (g) n.node[g] = 0;
        if (v1) n.vars[v1] = 0;
        return 0;
    }
    u64 pr = b_node_take(n, val(p));
    u32 b1 = b_globalize(n, w, fst(pr), v1);
    u32 b2 = b_globalize(n, w, snd(pr), v2);
    b_node_set(n, w, g, mkpair(b1, b2));
    return mk(tag(p), g);
}

__device__ bool b_leak(BNet& n, BWorker& w, u32 a, u32 b)
{
    u32 g = b_copy_out(n, w, b);
    if (!g) return false;
    b_link(n, w, a, g);
    return true;
}

// A port of a pair about to leave the block: a shared node copied out as
// b_leak does; p itself when global.
__device__ u32 b_export(BNet& n, BWorker& w, u32 p)
{
    if (!b_local(p)) return p;
    u32 g = b_copy_out(n, w, p);
    if (!g) { b_fail(n, ST_OOM_NODES, 0); return p; }
    return g;
}

// The memory of hvm_block_round's rules: a block's shared slots and the
// global heap. Its hooks keep global cells free of shared addresses: a LINK
// of a global variable to a shared node leaks the node; an operator or
// switch whose kept node is global takes a global variable beforehand
// (`keep_global`), behind which a shared port is put (`globalize`).
struct BlockMem {
    BNet& n;
    BWorker& w;
    __device__ __forceinline__ u64 get(u32 loc) { return b_node_get(n, loc); }
    __device__ __forceinline__ void set(u32 loc, u64 v) { b_node_set(n, w, loc, v); }
    __device__ __forceinline__ void free_node(u32 loc)
    {
        if (loc < LLEN) ((volatile u64*)n.lnode)[loc] = 0;
        else n.node[loc] = 0;
    }
    __device__ __forceinline__ u64 take(u32 loc) { return b_node_take(n, loc); }
    __device__ __forceinline__ u32 enter(u32 p, bool* foreign) { return b_enter(n, p, foreign); }
    __device__ __forceinline__ void link(u32 a, u32 b, bool foreign = false) { b_link(n, w, a, b, foreign); }
    __device__ __forceinline__ bool alloc(u32* nloc, u32* vloc, u32 nn, u32 nv)
    {
        return b_alloc(n, w, nloc, vloc, nn, nv);
    }
    __device__ __forceinline__ void fail(u32 status, u32 info) { b_fail(n, status, info); }
    __device__ __forceinline__ int link_rule(u32 a, u32 b)
    {
        if (tag(a) == VAR && val(a) >= LLEN && tag(b) != VAR && b_local(b)) {
            if (!b_leak(n, w, a, b)) { n.tally[SHORT_FLAG] = ST_OOM_NODES; return SHORT; }
        } else {
            b_link(n, w, a, b);
        }
        return UNCOUNTED;
    }
    __device__ __forceinline__ bool keep_global(u32 loc, u32* gv)
    {
        *gv = 0;
        if (loc >= LLEN && (*gv = b_gvar_alloc(n, w)) == 0) {
            n.tally[SHORT_FLAG] = ST_OOM_VARS;
            return false;
        }
        return true;
    }
    __device__ __forceinline__ void drop_var(u32 gv)
    {
        if (gv) n.vars[gv] = 0;
    }
    __device__ __forceinline__ u32 globalize(u32 p, u32 gv) { return gv ? b_globalize(n, w, p, gv) : p; }
    __device__ __forceinline__ void unalloc_nodes(const u32* nloc, u32 nn)
    {
        for (u32 k = 0; k < nn; k++) n.node[nloc[k]] = 0;
    }
};

__device__ int b_interact(BNet& n, BWorker& w, u32 a, u32 b)
{
    BlockMem m = {n, w};
    return rules(m, a, b);
}

__device__ __forceinline__ bool b_pop(BWorker& w, u64* r)
{
    if (w.hi_end) { *r = w.hi[--w.hi_end]; return true; }
    if (w.lo_end) { *r = w.lo[--w.lo_end]; return true; }
    return false;
}

// Room in the bags for what one interaction pushes (a definition's pairs
// and its root's link for a call, four otherwise).
__device__ __forceinline__ bool b_room(BNet& n, BWorker& w, u64 r)
{
    u32 a = fst(r), b = snd(r), need = 4;
    if (tag(a) == REF || tag(b) == REF) {
        u32 fid = val(tag(a) == REF ? a : b) & FID_MASK;
        need = max(need, n.rbag_start[fid + 1] - n.rbag_start[fid] + 1);
    }
    return w.hi_end + need <= RLEN && w.lo_end + need <= RLEN;
}

extern "C" __global__ void hvm_block_round(
    u64* node, u32* vars, const u64* bag_in_, u32 n_in, u64* bag_out, u32 out_cap,
    u32* ctl, u32* cursors, u32* scratch, u32 width,
    const u32* roots, const u32* node_start, const u64* def_nodes, const u32* rbag_start,
    const u64* def_rbag, const u32* def_vars, const unsigned char* safe,
    u32 root_port, u32 region_n, u32 region_v, u32 budget, u32 stride,
    u32 regions, u32 shift, u32 low, const u32* tally_in, u32* tally_out)
{
    // `low` is hvm_round's argument, passed alike to both kernels: here it is LLEN
    extern __shared__ u64 shared_words[];
    u32 t = blockIdx.x * blockDim.x + threadIdx.x;
    u32 seg = out_cap / NBINS;
    BNet n = {node, vars, bag_out, ctl, tally_out, scratch, shared_words,
              (u32*)(shared_words + LLEN), seg, region_n, region_v, width, roots, node_start,
              def_nodes, rbag_start, def_rbag, def_vars, safe, root_port};
    for (u32 k = 0; k < LPER; k++) {
        n.lnode[k * LT + threadIdx.x] = 0;
        n.lvars[k * LT + threadIdx.x] = 0;
    }
    if (t >= stride) return;
    BWorker w;
    b_start(w, t, (t + shift) % regions, cursors, false);
    u32 steps = 0;
    u64 r;
    BagIn in = bag_in(bag_in_, tally_in, seg);
    for (u32 i = t; i < n_in; i += stride) {
        u64 p = bag_get(in, i);
        if (steps >= budget) { b_spill(n, p); continue; }
        b_push(n, w, fst(p), snd(p), false);
        while (steps < budget && b_pop(w, &r)) {
            if (!b_room(n, w, r)) { b_push(n, w, fst(r), snd(r), false); steps = budget; break; }
            int done = b_interact(n, w, fst(r), snd(r));
            if (done == SHORT) { b_push(n, w, fst(r), snd(r), false); steps = budget; break; }
            if (done == COUNTED) w.itrs++;
            steps++;
            if ((steps & 63) == 0 && *(volatile u32*)&ctl[1] != ST_OK) { steps = budget; break; }
        }
    }
    // the round's end: leaks run, every other pair leaves with global ports
    while (b_pop(w, &r)) {
        u32 a = fst(r), b = snd(r);
        if (*(volatile u32*)&ctl[1] != ST_OK) break;
        if (tag(a) == VAR || tag(b) == VAR) {
            // links and leaks, or the boot pair (@main ~ the root) where its
            // definition's pairs left no room in the round: a counted call
            int done = b_interact(n, w, a, b);
            if (done == SHORT) { b_fail(n, ST_OOM_NODES, 0); break; }
            if (done == COUNTED) w.itrs++;
        } else {
            u32 ga = b_export(n, w, a);
            u32 gb = b_export(n, w, b);
            b_spill(n, mkpair(ga, gb));
        }
    }
    cursors[2 * w.r] = w.ncur;
    cursors[2 * w.r + 1] = w.vcur;
    if (w.itrs) atomicAdd((u64*)(ctl + 4), (u64)w.itrs);
}

// ---------------------------------------------------------------------------
// The forking evaluator (hvm_fork_round, the `fork` schedule)
//
// HVM2's CUDA schedule, on the rules and shared memory of hvm_block_round.
// Each thread keeps its own bag of pending pairs across launches (saved to
// and loaded from `bags` at its own place, in stack order), so it works
// through its part of the net depth first, and the live net stays that of a
// few subtrees a thread instead of a whole level of the program. Work spreads
// along the program's `&!` marks: in a SEED launch thread 0 of each group of
// blocks hands marked pairs down a tree of blocks (the bags are transposed,
// thread t of block b holding the bag of thread b of block t), in a GROW
// launch down a tree of a block's threads; each spawning thread reduces its
// own pairs until it meets a marked one and gives that one away, keeping the
// pair above it. A thread that gave work away marks its stack there (its
// `mark`): a WORK launch reduces only the pairs above the mark, and the
// continuations below it (the join after a fork) wait. When a WORK launch
// does nothing, every thread is waiting at its mark: the host lowers every
// mark by one and starts again with SEED (`down`), until the pairs there
// have spread and reduced (cuda_fork.Modes has the host's rule). Pairs leave a round with global ports only, as
// in hvm_block_round; a thread's pairs that are not high priority keep their
// order, so that its mark keeps its place.

#define M_SEED 0u
#define M_GROW 1u
#define M_WORK 2u
// Interactions a spawning thread does a tick looking for a marked pair, and
// ticks of a WORK launch (each one pair, then every high-priority one): 1,024
// ticks ran bitonic 2^19 and stress 3 % faster than HVM2's 512 on an H200,
// 256 6 % slower (bench/RESULTS.md).
#define FORK_STEPS 64
#define WORK_TICKS 1024
#define PAR_BIT (0x10000000u << 3)
#define SPAWN_TAKEN 0xFFFFFFFFFFFFFFFFull
// ctl words of this kernel: a thread could not go on (its bags full, or its
// region), the pairs saved this round, and a thread of a SEED or GROW launch
// ended it with pairs above its mark (work a WORK launch would do)
#define CTL_BLOCKED 6
#define CTL_SAVED 7
#define CTL_READY 8

// Whether a pair is marked `&!`: the mark is on the definition's reference,
// which a link may have put second (HVM2 looks at the first port only).
__device__ __forceinline__ bool f_par(u64 r)
{
    u32 a = fst(r), b = snd(r);
    return (tag(a) == REF && (a & PAR_BIT)) || (tag(b) == REF && (b & PAR_BIT));
}

__device__ __forceinline__ u64 f_clear(u64 r)
{
    u32 a = fst(r), b = snd(r);
    if (tag(a) == REF) a &= ~PAR_BIT;
    if (tag(b) == REF) b &= ~PAR_BIT;
    return mkpair(a, b);
}

// The bag a thread holds in a SEED launch: consecutive threads of a block
// hold the bags of the first threads of consecutive blocks.
__device__ __forceinline__ u32 f_transpose(u32 idx, u32 blocks)
{
    u32 row = idx / LT, col = idx % LT;
    return (col % blocks) * LT + col / blocks + row * (LT / blocks);
}

// One interaction of r; false, with r back on its stack, where it cannot run
// in this launch (the thread's bags lack room for what it would push, or its
// global region has no slots).
__device__ bool f_step(BNet& n, BWorker& w, u64 r)
{
    if (b_room(n, w, r)) {
        int done = b_interact(n, w, fst(r), snd(r));
        if (done != SHORT) {
            if (done == COUNTED) w.itrs++;
            return true;
        }
    }
    b_push(n, w, fst(r), snd(r), false);
    n.ctl[CTL_BLOCKED] = 1;
    return false;
}

// Every high-priority pair; false where one could not run.
__device__ __forceinline__ bool f_highs(BNet& n, BWorker& w)
{
    u64 r;
    while (w.hi_end) {
        r = w.hi[--w.hi_end];
        if (!f_step(n, w, r)) return false;
    }
    return true;
}

__device__ __forceinline__ void f_save(BNet& n, u64* dst, u32* out, u64 pair)
{
    if (*out >= RLEN) { b_fail(n, ST_BAG, 0); return; }
    dst[(*out)++] = pair;
}

extern "C" __global__ void hvm_fork_round(
    u64* node, u32* vars, u32* ctl, u32* cursors, u32* scratch, u32 width,
    const u32* roots, const u32* node_start, const u64* def_nodes, const u32* rbag_start,
    const u64* def_rbag, const u32* def_vars, const unsigned char* safe,
    u32 root_port, u32 region_n, u32 region_v, u32 threads, u32 regions, u32 shift,
    const u64* bag_in, const u32* count_in, u64* bag_out, u32* count_out, u32* marks,
    u32 mode, u32 down, u32 rdec)
{
    extern __shared__ u64 shared_words[];
    __shared__ u64 spawn[LT];
    u32 tid = threadIdx.x, gid = blockIdx.x * LT + tid;
    bool live = gid < threads;
    u32 bag = mode == M_SEED ? f_transpose(gid, gridDim.x) : gid;
    u32 have = live ? count_in[bag] : 0;
    if (!__syncthreads_or(have > 0)) {
        if (live) count_out[bag] = 0;
        return;
    }
    BNet n = {node, vars, nullptr, ctl, ctl + 8, scratch, shared_words,
              (u32*)(shared_words + LLEN), 0, region_n, region_v, width, roots, node_start,
              def_nodes, rbag_start, def_rbag, def_vars, safe, root_port};
    for (u32 k = 0; k < LPER; k++) {
        n.lnode[k * LT + tid] = 0;
        n.lvars[k * LT + tid] = 0;
    }
    // A WORK launch allocates in shared memory only: an interaction that finds
    // no shared slots waits for the next launch, whose thread starts with its
    // shared slots empty. Falling back to the global heap, as hvm_block_round
    // does, ran bitonic 2^19 1.13x and radix 2^16 1.4x slower (more nodes
    // copied out, each through a global scan; bench/RESULTS.md). A thread
    // past the live ones (regions) reads region 0's cursors and never writes them.
    BWorker w;
    b_start(w, gid, live ? (gid + shift) % regions : 0, cursors, mode == M_WORK);
    for (u32 i = 0; i < have; i++) {
        u64 p = bag_in[(u64)bag * RLEN + i];
        b_push(n, w, fst(p), snd(p), false);
    }
    spawn[tid] = (!live || have) ? SPAWN_TAKEN : 0;
    u32 pos = live ? marks[bag] : 0;
    if (pos > 0) pos -= rdec;
    __syncthreads();
    if (mode != M_WORK) {
        // a SEED launch of one block is a GROW launch (its bags are not moved)
        u32 levels = 31 - __clz(mode == M_SEED && gridDim.x > 1 ? gridDim.x : LT);
        for (u32 tick = 0; tick < levels; tick++) {
            u32 span = 1u << tick, targ = tid ^ span;
            if (live && tid < span && spawn[targ] == 0) {
                u64 give = 0, r;
                for (u32 i = 0; i < FORK_STEPS && w.lo_end >= pos && b_pop(w, &r); i++) {
                    if (f_par(r)) {
                        u64 above;
                        if (b_pop(w, &above)) {
                            above = f_clear(above);
                            b_push(n, w, fst(above), snd(above), false);
                        }
                        give = r;
                        break;
                    }
                    if (!f_step(n, w, r) || !f_highs(n, w)) break;
                }
                if (give) {
                    spawn[targ] = f_clear(give);
                    if (!down) pos = w.lo_end ? w.lo_end - 1 : 0;
                }
            }
            __syncthreads();
            if (live && tid >= span && tid < 2 * span) {
                u64 s = spawn[tid];
                if (s != 0 && s != SPAWN_TAKEN) {
                    spawn[tid] = SPAWN_TAKEN;
                    b_push(n, w, fst(s), snd(s), false);
                    pos = 0;
                }
            }
            __syncthreads();
        }
        if (live) {
            marks[bag] = pos;
            if (w.lo_end > pos || w.hi_end) ctl[CTL_READY] = 1;
        }
    } else if (live) {
        u64 r;
        for (u32 tick = 0; tick < WORK_TICKS && (w.lo_end > pos || w.hi_end); tick++) {
            b_pop(w, &r);
            if (!f_step(n, w, r) || !f_highs(n, w)) break;
            if ((tick & 63) == 63 && *(volatile u32*)&ctl[1] != ST_OK) break;
        }
    }
    if (!live) return;
    // The save: the pending pairs below the high-priority ones leave first,
    // bottom up, with global ports (exporting a port may push a link: only a
    // high-priority one), then links and leaks run and what is left leaves.
    u64* dst = bag_out + (u64)bag * RLEN;
    u32 out = 0, lo = w.lo_end;
    for (u32 i = 0; i < lo; i++) {
        u64 r = w.lo[i];
        u32 ga = b_export(n, w, fst(r));
        f_save(n, dst, &out, mkpair(ga, b_export(n, w, snd(r))));
    }
    for (u32 i = lo; i < w.lo_end; i++) w.lo[i - lo] = w.lo[i];
    w.lo_end -= lo;
    u64 r;
    while (b_pop(w, &r)) {
        u32 a = fst(r), b = snd(r);
        if (*(volatile u32*)&ctl[1] != ST_OK) break;
        if (tag(a) == VAR || tag(b) == VAR) {
            // links and leaks, or the boot pair (@main ~ the root) where no
            // thread took it: a counted call
            int done = b_interact(n, w, a, b);
            if (done == SHORT) { b_fail(n, ST_OOM_NODES, 0); break; }
            if (done == COUNTED) w.itrs++;
        } else {
            u32 ga = b_export(n, w, a);
            f_save(n, dst, &out, mkpair(ga, b_export(n, w, b)));
        }
    }
    count_out[bag] = out;
    if (out) atomicAdd(&ctl[CTL_SAVED], out);
    cursors[2 * w.r] = w.ncur;
    cursors[2 * w.r + 1] = w.vcur;
    if (w.itrs) atomicAdd((u64*)(ctl + 4), (u64)w.itrs);
}

// ---------------------------------------------------------------------------
// The handoff of the `auto` schedule: the pairs a fork run's threads hold
// (`counts[s]` of them at the start of thread s's bag of RLEN), put in their
// rules' bins of a bag of hvm_round's. A pair that finds its bin full
// raises ST_OOM_REDEXES.
extern "C" __global__ void hvm_gather(const u64* bags, const u32* counts, u32 slots, u64* out,
                                      u32 out_cap, u32* ctl, u32* tally)
{
    u32 t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= slots * RLEN || t % RLEN >= counts[t / RLEN]) return;
    if (!bag_put(out, out_cap / NBINS, tally, bags[t])) atomicCAS(&ctl[1], ST_OK, ST_OOM_REDEXES);
}
