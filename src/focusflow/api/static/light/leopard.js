// Reed–Solomon erasure decoding as rsmt2d's Leopard codec encodes, for the
// browser's check of a bad-encoding fraud proof: the k shares a proof carries
// are decoded into the whole row (or column), whose NMT root the proof says
// differs from the committed one.
//
// Mirrors focusflow.da.leopard (its docstring derives every step): symbols of
// GF(2^8) for codewords of at most 256 shares, GF(2^16) above, written in
// Leopard's Cantor basis, so that the points are ω_j with ω_i + ω_j =
// ω_(i xor j); position p of a codeword (data first, then parity) holds the
// polynomial's value at ω_(p xor k). The decoder is Lin, Han and Chung's:
// scale the known values by the erasure locator, one inverse additive FFT,
// the formal derivative, one FFT, and a division at each erased point.
//
// Symbols here are plain integers, one at a time; Python packs them into 64-bit
// lanes. Both multiply a symbol by a constant through the log and exp tables.

export class RepairError extends Error {
  constructor(message) {
    super(message);
    this.name = "RepairError";
  }
}

// Mirrors focusflow.da.leopard._make_field.
function makeField(bits, polynomial, cantorBasis) {
  const order = 1 << bits;
  const modulus = order - 1;
  const polyLog = new Int32Array(order);
  let state = 1;
  for (let i = 0; i < modulus; i++) {
    polyLog[state] = i;
    state <<= 1;
    if (state >= order) state ^= polynomial;
  }
  const cantorToPoly = new Int32Array(order);
  cantorBasis.forEach((basis, i) => {
    const width = 1 << i;
    for (let j = 0; j < width; j++) cantorToPoly[width + j] = cantorToPoly[j] ^ basis;
  });
  const log = new Int32Array(order);
  for (let j = 0; j < order; j++) log[j] = polyLog[cantorToPoly[j]];
  const exp = new Int32Array(2 * order);
  for (let j = 1; j < order; j++) exp[log[j]] = j;
  for (let i = 0; i < modulus; i++) exp[modulus + i] = exp[i];
  log[0] = modulus;
  return { bits, modulus, log, exp, twiddles: new Map() };
}

// Leopard's Cantor bases and generator polynomials (focusflow.da.leopard.GF8, GF16).
export const GF8 = makeField(8, 0x11d, [1, 214, 152, 146, 86, 200, 88, 230]);
export const GF16 = makeField(16, 0x1002d, [
  0x0001, 0xacca, 0x3c0e, 0x163e, 0xc582, 0xed2e, 0x914c, 0x4012,
  0x6c98, 0x10d8, 0x6a72, 0xb900, 0xfdb8, 0xfb34, 0xff38, 0x991e,
]);

// The field rsmt2d uses for codewords of 2k symbols (focusflow.da.leopard.field_for).
export const fieldFor = (k) => (2 * k <= 256 ? GF8 : GF16);

// log of the product of (a xor s) for s < d, or -1 where a factor is zero.
function logProduct(field, a, d) {
  let sum = 0;
  for (let s = 0; s < d; s++) {
    const v = a ^ s;
    if (v === 0) return -1;
    sum += field.log[v];
  }
  return sum % field.modulus;
}

// Butterfly factors of an FFT over the n points ω_0 .. (focusflow.da.leopard.twiddles
// with offset 0): entry r + d of layer d's block at r, `modulus` where it is zero.
function twiddles(field, n) {
  let table = field.twiddles.get(n);
  if (table) return table;
  table = new Int32Array(n).fill(field.modulus);
  for (let j = 1; j < n; j++) {
    const d = j & -j;
    const num = logProduct(field, j - d, d);
    const den = logProduct(field, d, d);
    if (num >= 0) table[j] = (((num - den) % field.modulus) + field.modulus) % field.modulus;
  }
  field.twiddles.set(n, table);
  return table;
}

const times = (field, y, lm) => (y === 0 ? 0 : field.exp[field.log[y] + lm]);

// One butterfly layer of width d over `n` rows of `m` symbols (focusflow.da.leopard._layer).
function layer(field, work, n, m, d, tw, inverse) {
  for (let r = 0; r < n; r += 2 * d) {
    const lm = tw[r + d];
    for (let i = r; i < r + d; i++) {
      const x = i * m;
      const y = (i + d) * m;
      for (let t = 0; t < m; t++) {
        if (inverse) work[y + t] ^= work[x + t];
        if (lm !== field.modulus) work[x + t] ^= times(field, work[y + t], lm);
        if (!inverse) work[y + t] ^= work[x + t];
      }
    }
  }
}

function ifft(field, work, n, m, tw) {
  for (let d = 1; d < n; d *= 2) layer(field, work, n, m, d, tw, true);
}

function fft(field, work, n, m, tw) {
  for (let d = n / 2; d >= 1; d /= 2) layer(field, work, n, m, d, tw, false);
}

// Shares of bytes to symbols in the field's layout (focusflow.da.leopard._to_symbols):
// in GF(2^16) each 64-byte block holds 32 low bytes, then their 32 high bytes.
function toSymbols(field, share, out, at) {
  if (field.bits === 8) {
    out.set(share, at);
    return;
  }
  for (let b = 0; b < share.length / 64; b++) {
    for (let s = 0; s < 32; s++) out[at + 32 * b + s] = share[64 * b + s] | (share[64 * b + 32 + s] << 8);
  }
}

function toBytes(field, work, at, size) {
  if (field.bits === 8) return Uint8Array.from(work.subarray(at, at + size));
  const out = new Uint8Array(size);
  for (let b = 0; b < size / 64; b++) {
    for (let s = 0; s < 32; s++) {
      const v = work[at + 32 * b + s];
      out[64 * b + s] = v & 0xff;
      out[64 * b + 32 + s] = v >> 8;
    }
  }
  return out;
}

// The whole codeword (2k shares of `size` bytes, data then parity) from any k
// of its shares: `codeword[p]` is read where `present[p]`, and the others are
// restored. A RepairError when fewer than k are present, a RangeError for a
// shape the codec does not take. Mirrors focusflow.da.leopard.decode.
export function decode(codeword, present) {
  const n = codeword.length;
  const k = n / 2;
  if (!(Number.isInteger(k) && k >= 1 && (k & (k - 1)) === 0)) {
    throw new RangeError(`the number of data shards must be a power of two, got ${k}`);
  }
  const size = codeword[0].length;
  if (size % 64 || codeword.some((s) => s.length !== size)) {
    throw new RangeError(`the shard size must be one multiple of 64 bytes, got ${size}`);
  }
  const have = present.filter(Boolean).length;
  if (have < k) throw new RepairError(`${have} of ${n} shards present, ${k} needed`);
  if (have === n) return codeword.map((s) => Uint8Array.from(s));
  const field = fieldFor(k);
  const m = field.bits === 8 ? size : size / 2;
  const work = field.bits === 8 ? new Uint8Array(n * m) : new Uint16Array(n * m);
  // Point i holds position i xor k.
  const erased = new Array(n);
  for (let i = 0; i < n; i++) {
    erased[i] = !present[i ^ k];
    if (!erased[i]) toSymbols(field, codeword[i ^ k], work, i * m);
  }
  // log Π(ω_i) at a known point, log Π'(ω_i) at an erased one.
  const loc = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let e = 0; e < n; e++) if (erased[e] && e !== i) acc += field.log[i ^ e];
    loc[i] = acc % field.modulus;
  }
  for (let i = 0; i < n; i++) {
    if (erased[i]) continue;
    for (let t = i * m; t < (i + 1) * m; t++) work[t] = times(field, work[t], loc[i]);
  }
  const tw = twiddles(field, n);
  ifft(field, work, n, m, tw);
  // The formal derivative in the novel basis, plus the polynomial itself
  // (zero at the erased points, where alone the result is read).
  for (let i = 1; i < n; i++) {
    const w = i & -i;
    for (let j = 0; j < w; j++) {
      const a = (i - w + j) * m;
      const b = (i + j) * m;
      for (let t = 0; t < m; t++) work[a + t] ^= work[b + t];
    }
  }
  fft(field, work, n, m, tw);
  return codeword.map((share, p) => {
    if (present[p]) return Uint8Array.from(share);
    const i = p ^ k;
    const lm = (field.modulus - loc[i]) % field.modulus;
    for (let t = i * m; t < (i + 1) * m; t++) work[t] = times(field, work[t], lm);
    return toBytes(field, work, i * m, size);
  });
}
