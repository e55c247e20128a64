// HVM2's 29-bit numbers in WGSL: the word layout and `operate` of numbers.py.
//
// A number word is a 5-bit type (bits 0..4) and a 24-bit payload (bits 5..28).
// u24 and i24 arithmetic, the casts and the f24 rounding are integer code and
// give the CPU's bits exactly. f24 add, sub and mul are single IEEE float32
// operations (WGSL requires them correctly rounded) and the comparisons and
// `%` are computed on the bits, so those are exact too, except that a device
// may flush subnormal float32 operands and results to zero. Division, sin,
// tan, atan2, log and pow are the device's (sin and tan through the reduction
// below); docs/hvm.md says how far they may be from the CPU's.

const NUMB_MASK: u32 = 0x1FFFFFFFu;
const U24_MASK: u32 = 0xFFFFFFu;
const TY_SYM: u32 = 0x00u;
const TY_U24: u32 = 0x01u;
const TY_I24: u32 = 0x02u;
const TY_F24: u32 = 0x03u;
const OP_ADD: u32 = 0x04u;
const OP_SUB: u32 = 0x05u;
const FP_SUB: u32 = 0x06u;
const OP_MUL: u32 = 0x07u;
const OP_DIV: u32 = 0x08u;
const FP_DIV: u32 = 0x09u;
const OP_REM: u32 = 0x0Au;
const FP_REM: u32 = 0x0Bu;
const OP_EQ: u32 = 0x0Cu;
const OP_NEQ: u32 = 0x0Du;
const OP_LT: u32 = 0x0Eu;
const OP_GT: u32 = 0x0Fu;
const OP_AND: u32 = 0x10u;
const OP_OR: u32 = 0x11u;
const OP_XOR: u32 = 0x12u;
const OP_SHL: u32 = 0x13u;
const FP_SHL: u32 = 0x14u;
const OP_SHR: u32 = 0x15u;
const FP_SHR: u32 = 0x16u;
// The quiet NaN an x86 float unit makes from no NaN operand (0/0, inf-inf).
const DEFAULT_NAN: u32 = 0xFFC00000u;

fn new_u24(v: u32) -> u32 {
    return ((v & U24_MASK) << 5u) | TY_U24;
}

fn new_i24(v: i32) -> u32 {
    return ((bitcast<u32>(v) & U24_MASK) << 5u) | TY_I24;
}

fn get_u24(w: u32) -> u32 {
    return (w & NUMB_MASK) >> 5u;
}

fn get_i24(w: u32) -> i32 {
    return bitcast<i32>(((w & NUMB_MASK) >> 5u) ^ 0x800000u) - 0x800000;
}

fn get_sym(w: u32) -> u32 {
    return (w & NUMB_MASK) >> 5u;
}

fn get_f24_bits(w: u32) -> u32 {
    return ((w & NUMB_MASK) << 3u) & 0xFFFFFF00u;
}

fn is_nan_bits(b: u32) -> bool {
    return (b & 0x7FFFFFFFu) > 0x7F800000u;
}

// HVM2's C new_f24: keep the top 24 bits, an exact tie rounding away from zero
// unless the kept bits are all zero; a NaN keeps its lowest kept bit set.
fn f24_round(bits: u32) -> u32 {
    var hi = bits >> 8u;
    let lo = bits & 0xFFu;
    if is_nan_bits(bits) {
        hi = hi | 1u;
    } else {
        let keep = (lo >> 7u) & select(0u, 1u, hi == 0u);
        hi = hi + ((lo - keep) >> 7u);
    }
    return ((hi << 5u) | TY_F24) & NUMB_MASK;
}

fn new_f24(x: f32) -> u32 {
    return f24_round(bitcast<u32>(x));
}

fn is_num(w: u32) -> bool {
    let t = w & 0x1Fu;
    return t >= TY_U24 && t <= TY_F24;
}

fn is_cast(w: u32) -> bool {
    let s = get_sym(w);
    return (w & 0x1Fu) == TY_SYM && s >= TY_U24 && s <= TY_F24;
}

fn partial(sym: u32, w: u32) -> u32 {
    return ((w & NUMB_MASK & ~0x1Fu) | get_sym(sym)) & NUMB_MASK;
}

// Float to integer as HVM2 casts: NaN is 0, else clamp, then truncate toward zero.
fn f24_to_u24(bits: u32) -> u32 {
    if is_nan_bits(bits) {
        return 0u;
    }
    let v = bitcast<f32>(bits);
    if v < 0.0 {
        return 0u;
    }
    if v > 16777215.0 {
        return U24_MASK;
    }
    return u32(v);
}

fn f24_to_i24(bits: u32) -> i32 {
    if is_nan_bits(bits) {
        return 0;
    }
    let v = bitcast<f32>(bits);
    if v < -8388608.0 {
        return -8388608;
    }
    if v > 8388607.0 {
        return 8388607;
    }
    return i32(v);
}

fn cast_numb(sym: u32, w: u32) -> u32 {
    let to = get_sym(sym);
    let typ = w & 0x1Fu;
    if to == typ && typ >= TY_U24 && typ <= TY_F24 {
        return w & NUMB_MASK;
    }
    if to == TY_U24 && typ == TY_I24 {
        return new_u24(get_u24(w));
    }
    if to == TY_U24 && typ == TY_F24 {
        return new_u24(f24_to_u24(get_f24_bits(w)));
    }
    if to == TY_I24 && typ == TY_U24 {
        return new_i24(get_i24(w));
    }
    if to == TY_I24 && typ == TY_F24 {
        return new_i24(f24_to_i24(get_f24_bits(w)));
    }
    // Every 24-bit integer is exactly a float32.
    if to == TY_F24 && typ == TY_U24 {
        return new_f24(f32(get_u24(w)));
    }
    if to == TY_F24 && typ == TY_I24 {
        return new_f24(f32(get_i24(w)));
    }
    return new_u24(0u);
}

fn is_flipped(op: u32) -> bool {
    return op == FP_SUB || op == FP_DIV || op == FP_REM || op == FP_SHL || op == FP_SHR;
}

fn op_u24(op0: u32, x0: u32, y0: u32) -> u32 {
    var op = op0;
    var x = x0;
    var y = y0;
    if is_flipped(op) {
        op = op - 1u;
        x = y0;
        y = x0;
    }
    switch op {
        case 0x04u: { return new_u24(x + y); }
        case 0x05u: { return new_u24(x - y); }
        case 0x07u: { return new_u24(x * y); }
        // By zero: x / 0 = 0 and x % 0 = x (numbers.py), not WGSL's own values.
        case 0x08u: { return new_u24(select(x / max(y, 1u), 0u, y == 0u)); }
        case 0x0Au: { return new_u24(select(x % max(y, 1u), x, y == 0u)); }
        case 0x0Cu: { return new_u24(select(0u, 1u, x == y)); }
        case 0x0Du: { return new_u24(select(0u, 1u, x != y)); }
        case 0x0Eu: { return new_u24(select(0u, 1u, x < y)); }
        case 0x0Fu: { return new_u24(select(0u, 1u, x > y)); }
        case 0x10u: { return new_u24(x & y); }
        case 0x11u: { return new_u24(x | y); }
        case 0x12u: { return new_u24(x ^ y); }
        case 0x13u: { return new_u24(x << (y & 31u)); }
        case 0x15u: { return new_u24(x >> (y & 31u)); }
        default: { return new_u24(0u); }
    }
}

fn op_i24(op0: u32, x0: i32, y0: i32) -> u32 {
    if op0 == OP_SHL || op0 == FP_SHL || op0 == OP_SHR || op0 == FP_SHR {
        return new_i24(0);
    }
    var op = op0;
    var x = x0;
    var y = y0;
    if is_flipped(op) {
        op = op - 1u;
        x = y0;
        y = x0;
    }
    // i24 operands are far from i32's limits, so WGSL's truncating / is C's;
    // by zero / and % follow numbers.py.
    let d = select(y, 1, y == 0);
    switch op {
        case 0x04u: { return new_i24(x + y); }
        case 0x05u: { return new_i24(x - y); }
        case 0x07u: { return new_i24(x * y); }
        case 0x08u: { return new_i24(select(x / d, 0, y == 0)); }
        case 0x0Au: {
            // C's % (the sign of x) on the magnitudes as u32: NVIDIA's Vulkan
            // driver gave WGSL's signed % unsigned results (3 % -2 == 3)
            let r = i32(u32(abs(x)) % u32(abs(d)));
            return new_i24(select(select(r, -r, x < 0), x, y == 0));
        }
        case 0x0Cu: { return new_u24(select(0u, 1u, x == y)); }
        case 0x0Du: { return new_u24(select(0u, 1u, x != y)); }
        case 0x0Eu: { return new_u24(select(0u, 1u, x < y)); }
        case 0x0Fu: { return new_u24(select(0u, 1u, x > y)); }
        case 0x10u: { return new_i24(x & y); }
        case 0x11u: { return new_i24(x | y); }
        case 0x12u: { return new_i24(x ^ y); }
        default: { return new_i24(0); }
    }
}

// A float32's bits as an integer in value order (both zeros 0), for exact
// comparisons that no flushing of subnormals or NaN shortcut can change.
fn ordered(b: u32) -> i32 {
    let m = bitcast<i32>(b & 0x7FFFFFFFu);
    return select(m, -m, (b & 0x80000000u) != 0u);
}

// C's fmodf on float32 bits, exactly: the remainder of the significands
// shifted by the exponent difference, with the dividend's sign.
fn fmod_bits(xb: u32, yb: u32) -> u32 {
    let xa = xb & 0x7FFFFFFFu;
    let ya = yb & 0x7FFFFFFFu;
    if xa > 0x7F800000u {
        return xb | 0x400000u;
    }
    if ya > 0x7F800000u {
        return yb | 0x400000u;
    }
    if xa == 0x7F800000u || ya == 0u {
        return DEFAULT_NAN;
    }
    if ya == 0x7F800000u || xa < ya {
        return xb;
    }
    let sx = xb & 0x80000000u;
    var ex = xa >> 23u;
    var mx = xa & 0x7FFFFFu;
    if ex == 0u {
        ex = 1u;
    } else {
        mx = mx | 0x800000u;
    }
    var ey = ya >> 23u;
    var my = ya & 0x7FFFFFu;
    if ey == 0u {
        ey = 1u;
    } else {
        my = my | 0x800000u;
    }
    var r = mx % my;
    for (var k = ex - ey; k > 0u; k = k - 1u) {
        r = r << 1u;
        if r >= my {
            r = r - my;
        }
    }
    if r == 0u {
        return sx;
    }
    var e = ey;
    while r < 0x800000u && e > 1u {
        r = r << 1u;
        e = e - 1u;
    }
    if r < 0x800000u {
        return sx | r;
    }
    return sx | (e << 23u) | (r & 0x7FFFFFu);
}

// sin and tan of a float32 argument: a three-part reduction by pi/2 (each
// product exact for the quotients it is used for) and Cephes' float32
// polynomials, so the result is near float32-accurate on every device
// (WGSL only bounds its own sin by an absolute 2^-11).
const PIO2_1: f32 = 1.5703125;
const PIO2_2: f32 = 4.837512969970703125e-4;
const PIO2_3: f32 = 7.54978995489188216e-8;

fn sin_poly(r: f32) -> f32 {
    let z = r * r;
    return ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
}

fn cos_poly(r: f32) -> f32 {
    let z = r * r;
    return ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
}

fn tan_poly(r: f32) -> f32 {
    let z = r * r;
    let p = ((((9.38540185543e-3 * z + 3.11992232697e-3) * z + 2.44301354525e-2) * z
        + 5.34112807005e-2) * z + 1.33387994085e-1) * z + 3.33331568548e-1;
    return select(p * z * r + r, r, abs(r) < 1e-4);
}

fn sin_tan(s: f32, want_tan: bool) -> f32 {
    let sb = bitcast<u32>(s);
    if (sb & 0x7F800000u) == 0x7F800000u {
        return bitcast<f32>(select(DEFAULT_NAN, sb | 0x400000u, is_nan_bits(sb)));
    }
    if abs(s) < 1e-4 {
        return s;
    }
    if abs(s) > 8192.0 {
        return select(sin(s), tan(s), want_tan);
    }
    let k = round(s * 0.63661977236758134);
    let r = ((s - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
    let q = bitcast<u32>(i32(k)) & 3u;
    if want_tan {
        let t = tan_poly(r);
        return select(t, -1.0 / t, (q & 1u) == 1u);
    }
    var v = select(sin_poly(r), cos_poly(r), (q & 1u) == 1u);
    return select(v, -v, q >= 2u);
}

fn is_integer(y: f32) -> bool {
    return abs(y) >= 8388608.0 || trunc(y) == y;
}

fn is_odd_integer(y: f32) -> bool {
    return abs(y) < 16777216.0 && trunc(y) == y && (bitcast<u32>(i32(abs(y))) & 1u) == 1u;
}

// powf's special cases, then exp2(y * log2(x)) (WGSL's pow) on |x| with the sign
// an odd integer power gives.
fn pow_c(x: f32, y: f32) -> f32 {
    let xb = bitcast<u32>(x);
    let yb = bitcast<u32>(y);
    if (yb & 0x7FFFFFFFu) == 0u || x == 1.0 {
        return 1.0;
    }
    if is_nan_bits(xb) || is_nan_bits(yb) {
        return bitcast<f32>(select(yb, xb, is_nan_bits(xb)) | 0x400000u);
    }
    let neg = (xb & 0x80000000u) != 0u;
    if neg && !is_integer(y) && (xb & 0x7FFFFFFFu) < 0x7F800000u {
        return bitcast<f32>(DEFAULT_NAN);
    }
    let ax = abs(x);
    var r: f32;
    if (xb & 0x7FFFFFFFu) == 0u {
        r = select(bitcast<f32>(0x7F800000u), 0.0, y > 0.0);
    } else if x == -1.0 && (yb & 0x7FFFFFFFu) == 0x7F800000u {
        return 1.0;
    } else {
        r = pow(ax, y);
    }
    return select(r, -r, neg && is_odd_integer(y));
}

fn op_f24(op0: u32, xb0: u32, yb0: u32) -> u32 {
    if op0 == OP_SHL || op0 == OP_SHR {
        let s = bitcast<f32>(xb0) + bitcast<f32>(yb0);
        return new_f24(sin_tan(s, op0 == OP_SHR));
    }
    if op0 == FP_SHL || op0 == FP_SHR {
        return new_f24(0.0);
    }
    var op = op0;
    var xb = xb0;
    var yb = yb0;
    if op == FP_SUB || op == FP_DIV || op == FP_REM {
        op = op - 1u;
        xb = yb0;
        yb = xb0;
    }
    let x = bitcast<f32>(xb);
    let y = bitcast<f32>(yb);
    let unordered = is_nan_bits(xb) || is_nan_bits(yb);
    switch op {
        case 0x04u: { return new_f24(x + y); }
        case 0x05u: { return new_f24(x - y); }
        case 0x07u: { return new_f24(x * y); }
        case 0x08u: { return new_f24(x / y); }
        case 0x0Au: { return f24_round(fmod_bits(xb, yb)); }
        case 0x0Cu: { return new_u24(select(0u, 1u, !unordered && ordered(xb) == ordered(yb))); }
        case 0x0Du: { return new_u24(select(0u, 1u, unordered || ordered(xb) != ordered(yb))); }
        case 0x0Eu: { return new_u24(select(0u, 1u, !unordered && ordered(xb) < ordered(yb))); }
        case 0x0Fu: { return new_u24(select(0u, 1u, !unordered && ordered(xb) > ordered(yb))); }
        case 0x10u: { return new_f24(atan2(x, y)); }
        case 0x11u: { return new_f24(log(y) / log(x)); }
        case 0x12u: { return new_f24(pow_c(x, y)); }
        default: { return new_f24(0.0); }
    }
}

// numbers.operate: symmetric in its two words.
fn operate(a: u32, b: u32) -> u32 {
    let wa = a & NUMB_MASK;
    let wb = b & NUMB_MASK;
    let at = wa & 0x1Fu;
    let bt = wb & 0x1Fu;
    if at == TY_SYM && bt == TY_SYM {
        return new_u24(0u);
    }
    if is_cast(wa) && is_num(wb) {
        return cast_numb(wa, wb);
    }
    if is_cast(wb) && is_num(wa) {
        return cast_numb(wb, wa);
    }
    if at == TY_SYM {
        return partial(wa, wb);
    }
    if bt == TY_SYM {
        return partial(wb, wa);
    }
    if (at >= OP_ADD) == (bt >= OP_ADD) {
        return new_u24(0u);
    }
    var op = bt;
    var ty = at;
    var p = wb;
    var n = wa;
    if at >= OP_ADD {
        op = at;
        ty = bt;
        p = wa;
        n = wb;
    }
    if ty == TY_U24 {
        return op_u24(op, get_u24(p), get_u24(n));
    }
    if ty == TY_I24 {
        return op_i24(op, get_i24(p), get_i24(n));
    }
    return op_f24(op, get_f24_bits(p), get_f24_bits(n));
}
