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
// bag too. A thread allocates only in its own region of nodes and variables,
// scanning for a free slot from where it stopped (so every slot has one
// allocator); any thread frees any slot. A link publishes a variable with an
// atomic exchange after a fence, so that whatever the thread wrote before
// (nodes, the variables it set up) is visible to the one that reads it.

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

__constant__ unsigned char RULES[64] = RULE_TABLE;

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

struct Net {
    u64* node;
    u32* vars;
    u64* bag_out;
    u32* ctl;  // [0] pairs in the output bag, [1] status, [2] its detail, [3] a thread went short, [4..5] interactions
    u32* scratch;
    u32 out_cap, region_n, region_v, width;
    const u32* roots;
    const u32* node_start;
    const u64* def_nodes;
    const u32* rbag_start;
    const u64* def_rbag;
    const u32* def_vars;
    const unsigned char* safe;
    u32 root_port;
};

struct Worker {
    u32 t;  // the thread
    u32 r;  // its region this round
    u32 ncur, vcur;  // where the next scan of the thread's regions starts
    u64 stack[LOCAL];
    int top;
    u32 itrs;
    bool dirty;  // wrote something since the last fence
};

__device__ __forceinline__ void fail(Net& net, u32 status, u32 info)
{
    if (atomicCAS(&net.ctl[1], ST_OK, status) == ST_OK) net.ctl[2] = info;
}

__device__ __forceinline__ void spill(Net& net, u64 pair)
{
    u32 i = atomicAdd(&net.ctl[0], 1u);
    if (i < net.out_cap) net.bag_out[i] = pair;
    else fail(net, ST_OOM_REDEXES, 0);
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

__device__ __forceinline__ void node_free(Net& net, u32 loc) { net.node[loc] = 0; }
__device__ __forceinline__ void var_free(Net& net, u32 loc) { net.vars[loc] = 0; }

// A free node slot of the thread's region (marked reserved), or 0 when the
// whole region is taken.
__device__ u32 node_alloc(Net& net, Worker& tm)
{
    u32 base = 1 + tm.r * net.region_n;
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
    u32 base = 1 + tm.r * net.region_v;
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
__device__ __forceinline__ u32 enter(Net& net, u32 p, bool* foreign)
{
    while (tag(p) == VAR) {
        u32 x = *(volatile u32*)&net.vars[val(p)];
        if (x == NONE || x == 0) break;
        var_free(net, val(p));
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
        b = enter(net, b, &foreign);
        if (tm.dirty) { __threadfence(); tm.dirty = false; }
        u32 old = atomicExch(&net.vars[val(a)], b);
        if (old == NONE) return;
        var_free(net, val(a));
        a = old;
        foreign = true;
    }
}

__device__ __forceinline__ u32 relocate(Net& net, u32 p, const u32* nloc, const u32* vloc)
{
    u32 t = tag(p);
    if (t >= CON) return mk(t, nloc[val(p)]);
    if (t == VAR) return mk(VAR, vloc[val(p)]);
    return p;
}

// Take n node and v variable slots into the thread's scratch, all or none:
// on a shortfall the slots taken go back, the run notes that a thread went
// short (ctl[3]) and the caller hands its pair on to the next round, where
// another thread (another region) may take it.
__device__ bool alloc_many(Net& net, Worker& tm, u32* nloc, u32* vloc, u32 n, u32 v)
{
    for (u32 i = 0; i < n; i++) {
        nloc[i] = node_alloc(net, tm);
        if (nloc[i] == 0) {
            for (u32 j = 0; j < i; j++) node_free(net, nloc[j]);
            net.ctl[3] = ST_OOM_NODES;
            return false;
        }
    }
    for (u32 i = 0; i < v; i++) {
        vloc[i] = var_alloc(net, tm);
        if (vloc[i] == 0) {
            for (u32 j = 0; j < i; j++) var_free(net, vloc[j]);
            for (u32 j = 0; j < n; j++) node_free(net, nloc[j]);
            net.ctl[3] = ST_OOM_VARS;
            return false;
        }
    }
    return true;
}

// One interaction: COUNTED, UNCOUNTED (LINK), or SHORT (no slots: the pair
// is untouched and must be tried again).
__device__ int interact(Net& net, Worker& tm, u32 a, u32 b)
{
    u32 rule = RULES[tag(a) * 8 + tag(b)];
    if (tag(a) == REF && b == net.root_port) rule = R_CALL;
    else if (tag(b) < tag(a)) { u32 t = a; a = b; b = t; }
    u32* nloc = net.scratch + (u64)tm.t * 2 * net.width;
    u32* vloc = nloc + net.width;
    switch (rule) {
    case R_LINK:
        link(net, tm, a, b);
        return UNCOUNTED;
    case R_VOID:
        return COUNTED;
    case R_CALL: {
        u32 fid = val(a) & FID_MASK;
        if (tag(b) == DUP) {
            if (!net.safe[fid]) { fail(net, ST_UNSAFE_CLONE, fid); return UNCOUNTED; }
            u64 pr = node_load(net, val(b));
            node_free(net, val(b));
            link(net, tm, a, fst(pr));
            link(net, tm, a, snd(pr));
            return COUNTED;
        }
        u32 n0 = net.node_start[fid], nlen = net.node_start[fid + 1] - n0;
        if (!alloc_many(net, tm, nloc, vloc, nlen, net.def_vars[fid])) return SHORT;
        for (u32 i = 0; i < nlen; i++) {
            u64 pr = net.def_nodes[n0 + i];
            node_store(net, tm, nloc[i], mkpair(relocate(net, fst(pr), nloc, vloc), relocate(net, snd(pr), nloc, vloc)));
        }
        for (u32 r = net.rbag_start[fid]; r < net.rbag_start[fid + 1]; r++) {
            u64 pr = net.def_rbag[r];
            link(net, tm, relocate(net, fst(pr), nloc, vloc), relocate(net, snd(pr), nloc, vloc));
        }
        link(net, tm, relocate(net, net.roots[fid], nloc, vloc), b);
        return COUNTED;
    }
    case R_ERAS: {
        u64 pr = node_load(net, val(b));
        node_free(net, val(b));
        link(net, tm, a, fst(pr));
        link(net, tm, a, snd(pr));
        return COUNTED;
    }
    case R_ANNI: {
        u64 pa = node_load(net, val(a)), pb = node_load(net, val(b));
        node_free(net, val(a));
        node_free(net, val(b));
        link(net, tm, fst(pa), fst(pb));
        link(net, tm, snd(pa), snd(pb));
        return COUNTED;
    }
    case R_COMM: {
        if (!alloc_many(net, tm, nloc, vloc, 4, 4)) return SHORT;
        u64 pa = node_load(net, val(a)), pb = node_load(net, val(b));
        node_free(net, val(a));
        node_free(net, val(b));
        u32 v0 = mk(VAR, vloc[0]), v1 = mk(VAR, vloc[1]), v2 = mk(VAR, vloc[2]), v3 = mk(VAR, vloc[3]);
        node_store(net, tm, nloc[0], mkpair(v0, v1));
        node_store(net, tm, nloc[1], mkpair(v2, v3));
        node_store(net, tm, nloc[2], mkpair(v0, v2));
        node_store(net, tm, nloc[3], mkpair(v1, v3));
        link(net, tm, mk(tag(b), nloc[0]), fst(pa));
        link(net, tm, mk(tag(b), nloc[1]), snd(pa));
        link(net, tm, mk(tag(a), nloc[2]), fst(pb));
        link(net, tm, mk(tag(a), nloc[3]), snd(pb));
        return COUNTED;
    }
    case R_OPER: {
        u64 pr = node_load(net, val(b));
        u32 b1 = fst(pr);
        bool foreign = false;
        u32 b2 = enter(net, snd(pr), &foreign);
        if (tag(b1) == NUM) {
            node_free(net, val(b));
            link(net, tm, mk(NUM, operate(val(a), val(b1))), b2, foreign);
        } else {
            node_store(net, tm, val(b), mkpair(a, b2));
            link(net, tm, b1, mk(OPR, val(b)));
        }
        return COUNTED;
    }
    case R_SWIT: {
        u32 n = (val(a) >> 5) & 0xFFFFFFu;
        if (!alloc_many(net, tm, nloc, vloc, n == 0 ? 1 : 2, 0)) return SHORT;
        u64 pr = node_load(net, val(b));
        node_free(net, val(b));
        u32 b1 = fst(pr), b2 = snd(pr);
        if (n == 0) {
            node_store(net, tm, nloc[0], mkpair(b2, mk(ERA, 0)));
        } else {
            node_store(net, tm, nloc[1], mkpair(mk(NUM, ((n - 1) << 5) | 1u), b2));
            node_store(net, tm, nloc[0], mkpair(mk(ERA, 0), mk(CON, nloc[1])));
        }
        link(net, tm, mk(CON, nloc[0]), b1);
        return COUNTED;
    }
    }
    return UNCOUNTED;
}

extern "C" __global__ void hvm_round(
    u64* node, u32* vars, const u64* bag_in, u32 n_in, u64* bag_out, u32 out_cap,
    u32* ctl, u32* cursors, u32* scratch, u32 width,
    const u32* roots, const u32* node_start, const u64* def_nodes, const u32* rbag_start,
    const u64* def_rbag, const u32* def_vars, const unsigned char* safe,
    u32 root_port, u32 region_n, u32 region_v, u32 budget, u32 stride,
    u32 regions, u32 shift)
{
    u32 t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= stride) return;
    Net net = {node, vars, bag_out, ctl, scratch, out_cap, region_n, region_v,
               width, roots, node_start, def_nodes, rbag_start, def_rbag, def_vars, safe, root_port};
    Worker tm;
    tm.t = t;
    tm.r = (t + shift) % regions;
    tm.ncur = cursors[2 * tm.r];
    tm.vcur = cursors[2 * tm.r + 1];
    tm.top = 0;
    tm.itrs = 0;
    tm.dirty = false;
    u32 steps = 0;
    for (u32 i = t; i < n_in; i += stride) {
        u64 r = bag_in[i];
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
