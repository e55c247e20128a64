// The interaction-net evaluator of focusflow.rewrite in bulk-synchronous rounds
// (docs/hvm.md, "The WebGPU evaluator"). numbers.wgsl is prepended.
//
// One `reduce` dispatch is a round: invocation i takes the redexes i, i+G,
// i+2G, ... of the input bag and runs each depth-first on a small private
// stack for at most `budget` interactions; what it cannot finish, and every
// redex one of whose ports came out of a variable (written by another
// invocation, whose node writes WGSL does not order before it), goes to the
// output bag for the next round. `flip` then makes the output bag the next
// input. Each invocation allocates only in its own region of node and
// variable slots, so allocation needs no atomics beyond the slot words.

const VAR: u32 = 0u;
const REF: u32 = 1u;
const ERA: u32 = 2u;
const NUM: u32 = 3u;
const CON: u32 = 4u;
const DUP: u32 = 5u;
const OPR: u32 = 6u;
const SWI: u32 = 7u;

const LINK: u32 = 0u;
const CALL: u32 = 1u;
const VOID: u32 = 2u;
const ERAS: u32 = 3u;
const ANNI: u32 = 4u;
const COMM: u32 = 5u;
const OPER: u32 = 6u;
const SWIT: u32 = 7u;

const NONE: u32 = 0xFFFFFFFFu;
const RESERVED: u32 = 0xFFFFFFFFu;
const FID_MASK: u32 = 0x0FFFFFFFu;

const OK: u32 = 0u;
const OOM_NODES: u32 = 1u;
const OOM_VARS: u32 = 2u;
const OOM_REDEXES: u32 = 3u;
const UNSAFE_CLONE: u32 = 4u;

// Words of `ctrl`: the redex counts of bag 0 and bag 1, the interactions of
// the round (folded into a 64-bit total by `flip`), the status and its info,
// the rounds that had work, the bag the next round reads, then two cursor
// words per invocation.
const C_COUNT0: u32 = 0u;
const C_ROUND_ITRS: u32 = 2u;
const C_ITRS_LO: u32 = 3u;
const C_ITRS_HI: u32 = 4u;
const C_STATUS: u32 = 5u;
const C_INFO: u32 = 6u;
const C_ROUNDS: u32 = 7u;
const C_PARITY: u32 = 8u;
const C_CURSORS: u32 = 16u;

const STACK: u32 = 256u;

struct Params {
    per_invocation: u32, // input redexes an invocation takes per round at most
    invocations: u32,
    budget: u32,        // interactions per invocation per round
    root: u32,          // the root port
    region_nodes: u32,  // node slots per invocation, from slot 1
    region_vars: u32,   // variable slots per invocation, from slot 1
    bag_cap: u32,       // redexes a bag holds
    scratch: u32,       // scratch words per invocation
    max_def_nodes: u32, // where the variable part of the scratch starts
    off_roots: u32,     // offsets into `book`
    off_nstart: u32,
    off_nodes: u32,
    off_rstart: u32,
    off_rbag: u32,
    off_vars: u32,
    off_safe: u32,
    test_count: u32,    // pairs for `numbers_test`
    loop_cap: u32,      // loop turns an invocation may take per round
    loop_hard: u32,     // turns past which an allocation gives up
    reserve: u32,       // turns the worst interaction and a flush may need
}

@group(0) @binding(0) var<storage, read_write> node: array<atomic<u32>>;
@group(0) @binding(1) var<storage, read_write> vars: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read_write> bag0: array<u32>;
@group(0) @binding(3) var<storage, read_write> bag1: array<u32>;
@group(0) @binding(4) var<storage, read_write> ctrl: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read> book: array<u32>;
@group(0) @binding(6) var<storage, read_write> scratch: array<u32>;
@group(0) @binding(7) var<uniform> P: Params;

var<private> stk: array<vec2<u32>, STACK>;
var<private> sp: u32;
var<private> tid: u32;
var<private> ncur: u32;
var<private> vcur: u32;
var<private> failed: bool;
// One invocation alone in the round: every variable it reads was written
// before the dispatch or by itself, so nothing is foreign.
var<private> solo: bool;
// The bag this round appends to (the other one is read).
var<private> out_bag: u32;
// Loop turns taken this round. Mesa's llvmpipe ends every loop for good once an
// invocation has taken 65535 turns in all (counting turns of its own, such as
// one per switch, several times more than are counted here), so the round
// stops well before.
var<private> spent: u32;
// The new nodes and variables of a COMM. Module-scope: an array local to the
// loop's function made llvmpipe grow its stack every interaction.
var<private> cn: array<u32, 4>;
var<private> cv: array<u32, 4>;

fn tag(p: u32) -> u32 {
    return p & 7u;
}

fn val(p: u32) -> u32 {
    return p >> 3u;
}

fn mk(t: u32, v: u32) -> u32 {
    return ((v & 0x1FFFFFFFu) << 3u) | t;
}

fn rule(ta: u32, tb: u32) -> u32 {
    if ta == VAR || tb == VAR {
        return LINK;
    }
    let lo = min(ta, tb);
    let hi = max(ta, tb);
    if hi <= NUM {
        return VOID;
    }
    if lo == REF {
        return CALL;
    }
    if lo == ERA {
        return ERAS;
    }
    if lo == NUM {
        if hi == OPR {
            return OPER;
        }
        if hi == SWI {
            return SWIT;
        }
        return ERAS;
    }
    return select(COMM, ANNI, lo == hi);
}

fn fail(code: u32, info: u32) {
    atomicStore(&ctrl[C_INFO], info);
    atomicMax(&ctrl[C_STATUS], code);
    failed = true;
}

// The next free node slot of this invocation's region, marked reserved; 0
// when a whole turn of the region found none.
fn alloc_node() -> u32 {
    let base = 1u + tid * P.region_nodes;
    for (var k = 0u; k < P.region_nodes; k = k + 1u) {
        spent = spent + 1u;
        if spent >= P.loop_hard {
            return 0u;
        }
        let s = base + ncur;
        ncur = ncur + 1u;
        if ncur == P.region_nodes {
            ncur = 0u;
        }
        if atomicLoad(&node[2u * s]) == 0u {
            atomicStore(&node[2u * s], RESERVED);
            return s;
        }
    }
    return 0u;
}

fn alloc_var() -> u32 {
    let base = 1u + tid * P.region_vars;
    for (var k = 0u; k < P.region_vars; k = k + 1u) {
        spent = spent + 1u;
        if spent >= P.loop_hard {
            return 0u;
        }
        let s = base + vcur;
        vcur = vcur + 1u;
        if vcur == P.region_vars {
            vcur = 0u;
        }
        if atomicLoad(&vars[s]) == 0u {
            atomicStore(&vars[s], NONE);
            return s;
        }
    }
    return 0u;
}

// Freeing clears only the first word: its owner reallocates the slot after
// reading that 0, so no late store of ours can overwrite its new contents.
fn free_node(s: u32) {
    atomicStore(&node[2u * s], 0u);
}

fn free_var(s: u32) {
    atomicStore(&vars[s], 0u);
}

fn set_node(s: u32, fst: u32, snd: u32) {
    atomicStore(&node[2u * s + 1u], snd);
    atomicStore(&node[2u * s], fst);
}

fn put_out(a: u32, b: u32) {
    let i = atomicAdd(&ctrl[C_COUNT0 + out_bag], 1u);
    if i >= P.bag_cap {
        fail(OOM_REDEXES, 0u);
        return;
    }
    if out_bag == 0u {
        bag0[2u * i] = a;
        bag0[2u * i + 1u] = b;
    } else {
        bag1[2u * i] = a;
        bag1[2u * i + 1u] = b;
    }
}

fn bag_get(bag: u32, w: u32) -> u32 {
    if bag == 0u {
        return bag0[w];
    }
    return bag1[w];
}

fn push(a: u32, b: u32, foreign: bool) {
    if (solo || !foreign) && sp < STACK {
        stk[sp] = vec2<u32>(a, b);
        sp = sp + 1u;
    } else {
        put_out(a, b);
    }
}

// Follow `p` through variables whose other end is linked already, freeing
// them (we hold their last occurrence, so nobody else touches them).
fn enter(p: u32) -> u32 {
    var v = p;
    while tag(v) == VAR {
        spent = spent + 1u;
        let x = atomicLoad(&vars[val(v)]);
        if x == NONE || x == 0u {
            break;
        }
        free_var(val(v));
        v = x;
    }
    return v;
}

// HVM2's atomic link. A redex made after the first turn holds a port read
// from a variable, so it is foreign and waits for the next round.
fn link(a0: u32, b0: u32, foreign0: bool) {
    var a = a0;
    var b = b0;
    var foreign = foreign0;
    loop {
        spent = spent + 1u;
        if tag(a) != VAR && tag(b) == VAR {
            let t = a;
            a = b;
            b = t;
        }
        if tag(a) != VAR {
            push(a, b, foreign);
            return;
        }
        b = enter(b);
        let old = atomicExchange(&vars[val(a)], b);
        if old == NONE {
            return;
        }
        free_var(val(a));
        a = old;
        foreign = true;
    }
}

// A book port with its definition-local node and variable numbers replaced
// by the slots this CALL took (kept in the invocation's scratch).
fn adjust(p: u32, sb: u32) -> u32 {
    let t = tag(p);
    if t >= CON {
        return mk(t, scratch[sb + val(p)]);
    }
    if t == VAR {
        return mk(VAR, scratch[sb + P.max_def_nodes + val(p)]);
    }
    return p;
}

fn call(a: u32, b: u32) {
    let fid = val(a) & FID_MASK;
    if tag(b) == DUP {
        fail(UNSAFE_CLONE, fid);
        return;
    }
    let n0 = book[P.off_nstart + fid];
    let nlen = book[P.off_nstart + fid + 1u] - n0;
    let vlen = book[P.off_vars + fid];
    let sb = tid * P.scratch;
    for (var i = 0u; i < nlen; i = i + 1u) {
        spent = spent + 1u;
        let s = alloc_node();
        if s == 0u {
            fail(OOM_NODES, 0u);
            return;
        }
        scratch[sb + i] = s;
    }
    for (var i = 0u; i < vlen; i = i + 1u) {
        spent = spent + 1u;
        let s = alloc_var();
        if s == 0u {
            fail(OOM_VARS, 0u);
            return;
        }
        scratch[sb + P.max_def_nodes + i] = s;
    }
    for (var i = 0u; i < nlen; i = i + 1u) {
        spent = spent + 1u;
        let w = P.off_nodes + 2u * (n0 + i);
        set_node(scratch[sb + i], adjust(book[w], sb), adjust(book[w + 1u], sb));
    }
    let r1 = book[P.off_rstart + fid + 1u];
    for (var r = book[P.off_rstart + fid]; r < r1; r = r + 1u) {
        spent = spent + 1u;
        let w = P.off_rbag + 2u * r;
        link(adjust(book[w], sb), adjust(book[w + 1u], sb), false);
    }
    link(adjust(book[P.off_roots + fid], sb), b, false);
}

// One active pair; returns whether it counts as an interaction.
fn interact(a0: u32, b0: u32) -> bool {
    var a = a0;
    var b = b0;
    var r = rule(tag(a), tag(b));
    if tag(a) == REF && b == P.root {
        r = CALL;
    } else if tag(b) < tag(a) {
        a = b0;
        b = a0;
    }
    switch r {
        case 0u: {
            link(a, b, false);
            return false;
        }
        case 2u: {
            return true;
        }
        case 1u, 3u: {
            if r == CALL && !(tag(b) == DUP && book[P.off_safe + (val(a) & FID_MASK)] != 0u) {
                call(a, b);
                return !failed;
            }
            let bv = val(b);
            let b1 = atomicLoad(&node[2u * bv]);
            let b2 = atomicLoad(&node[2u * bv + 1u]);
            free_node(bv);
            link(a, b1, false);
            link(a, b2, false);
            return true;
        }
        case 4u: {
            let av = val(a);
            let bv = val(b);
            let a1 = atomicLoad(&node[2u * av]);
            let a2 = atomicLoad(&node[2u * av + 1u]);
            let b1 = atomicLoad(&node[2u * bv]);
            let b2 = atomicLoad(&node[2u * bv + 1u]);
            free_node(av);
            free_node(bv);
            link(a1, b1, false);
            link(a2, b2, false);
            return true;
        }
        case 5u: {
            for (var i = 0u; i < 4u; i = i + 1u) {
                spent = spent + 1u;
                cn[i] = alloc_node();
                if cn[i] == 0u {
                    fail(OOM_NODES, 0u);
                    return false;
                }
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                spent = spent + 1u;
                cv[i] = alloc_var();
                if cv[i] == 0u {
                    fail(OOM_VARS, 0u);
                    return false;
                }
            }
            let av = val(a);
            let bv = val(b);
            let a1 = atomicLoad(&node[2u * av]);
            let a2 = atomicLoad(&node[2u * av + 1u]);
            let b1 = atomicLoad(&node[2u * bv]);
            let b2 = atomicLoad(&node[2u * bv + 1u]);
            free_node(av);
            free_node(bv);
            let ta = tag(a);
            let tb = tag(b);
            let v0 = mk(VAR, cv[0]);
            let v1 = mk(VAR, cv[1]);
            let v2 = mk(VAR, cv[2]);
            let v3 = mk(VAR, cv[3]);
            set_node(cn[0], v0, v1);
            set_node(cn[1], v2, v3);
            set_node(cn[2], v0, v2);
            set_node(cn[3], v1, v3);
            link(mk(tb, cn[0]), a1, false);
            link(mk(tb, cn[1]), a2, false);
            link(mk(ta, cn[2]), b1, false);
            link(mk(ta, cn[3]), b2, false);
            return true;
        }
        case 6u: {
            let bv = val(b);
            let b1 = atomicLoad(&node[2u * bv]);
            let raw = atomicLoad(&node[2u * bv + 1u]);
            let b2 = enter(raw);
            spent = spent + 320u; // fmod's loops, at most

            // b2 read out of a variable: whatever it reaches waits a round
            let foreign = b2 != raw;
            if tag(b1) == NUM {
                free_node(bv);
                link(mk(NUM, operate(val(a), val(b1))), b2, foreign);
            } else {
                set_node(bv, a, b2);
                link(b1, mk(OPR, bv), foreign);
            }
            return true;
        }
        default: {
            let bv = val(b);
            let b1 = atomicLoad(&node[2u * bv]);
            let b2 = atomicLoad(&node[2u * bv + 1u]);
            free_node(bv);
            let n = (val(a) >> 5u) & 0xFFFFFFu;
            if n == 0u {
                let loc = alloc_node();
                if loc == 0u {
                    fail(OOM_NODES, 0u);
                    return false;
                }
                set_node(loc, b2, mk(ERA, 0u));
                link(mk(CON, loc), b1, false);
            } else {
                let outer = alloc_node();
                let inner = alloc_node();
                if outer == 0u || inner == 0u {
                    fail(OOM_NODES, 0u);
                    return false;
                }
                set_node(inner, mk(NUM, ((n - 1u) << 5u) | 1u), b2);
                set_node(outer, mk(ERA, 0u), mk(CON, inner));
                link(mk(CON, outer), b1, false);
            }
            return true;
        }
    }
}

@compute @workgroup_size(64)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    tid = gid.x;
    if tid >= P.invocations || atomicLoad(&ctrl[C_STATUS]) != OK {
        return;
    }
    // The round takes the top of the fuller bag and appends to the other.
    let bag = atomicLoad(&ctrl[C_PARITY]);
    out_bag = 1u - bag;
    let count = atomicLoad(&ctrl[C_COUNT0 + bag]);
    let take = min(count, P.invocations * P.per_invocation);
    if tid >= take {
        return;
    }
    let base = count - take;
    ncur = atomicLoad(&ctrl[C_CURSORS + 2u * tid]);
    vcur = atomicLoad(&ctrl[C_CURSORS + 2u * tid + 1u]);
    failed = false;
    solo = take == 1u || P.invocations == 1u;
    spent = 0u;
    var steps = 0u;
    var itrs = 0u;
    for (var i = base + tid; i < count; i = i + P.invocations) {
        spent = spent + 1u;
        let a = bag_get(bag, 2u * i);
        let b = bag_get(bag, 2u * i + 1u);
        if steps >= P.budget || failed || spent + P.reserve > P.loop_cap {
            put_out(a, b);
            continue;
        }
        sp = 0u;
        push(a, b, false);
        while sp > 0u && !failed {
            spent = spent + 1u;
            if steps >= P.budget || spent + P.reserve > P.loop_cap {
                for (var k = 0u; k < sp; k = k + 1u) {
                    spent = spent + 1u;
                    put_out(stk[k].x, stk[k].y);
                }
                sp = 0u;
                break;
            }
            sp = sp - 1u;
            let redex = stk[sp];
            steps = steps + 1u;
            if interact(redex.x, redex.y) {
                itrs = itrs + 1u;
            }
        }
    }
    atomicAdd(&ctrl[C_ROUND_ITRS], itrs);
    atomicStore(&ctrl[C_CURSORS + 2u * tid], ncur);
    atomicStore(&ctrl[C_CURSORS + 2u * tid + 1u], vcur);
}

// Between rounds: the taken redexes leave their bag, the next round reads the
// fuller bag, and the round's interactions join the 64-bit total.
@compute @workgroup_size(1)
fn flip() {
    let bag = atomicLoad(&ctrl[C_PARITY]);
    let count = atomicLoad(&ctrl[C_COUNT0 + bag]);
    let take = min(count, P.invocations * P.per_invocation);
    if take > 0u {
        atomicAdd(&ctrl[C_ROUNDS], 1u);
    }
    atomicStore(&ctrl[C_COUNT0 + bag], count - take);
    let c0 = atomicLoad(&ctrl[C_COUNT0]);
    let c1 = atomicLoad(&ctrl[C_COUNT0 + 1u]);
    atomicStore(&ctrl[C_PARITY], select(0u, 1u, c1 > c0));
    let add = atomicExchange(&ctrl[C_ROUND_ITRS], 0u);
    let lo = atomicLoad(&ctrl[C_ITRS_LO]);
    let sum = lo + add;
    atomicStore(&ctrl[C_ITRS_LO], sum);
    if sum < lo {
        atomicAdd(&ctrl[C_ITRS_HI], 1u);
    }
}

// Test entry: `operate` on the pairs of `bag_in`, results into `bag_out`.
@compute @workgroup_size(64)
fn numbers_test(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i < P.test_count {
        bag1[i] = operate(bag0[2u * i], bag0[2u * i + 1u]);
    }
}
