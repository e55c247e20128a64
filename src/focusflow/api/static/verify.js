// What the page's verified mode checks, with nothing but the browser's WebCrypto
// (SHA-256 and Ed25519): no library, no network, no DOM. The checks of headers
// and values return what they proved or throw a VerifyError naming the check
// that failed; the two tree primitives (verifySmtProof, verifyMerklePath)
// answer true or false, as the chain's own verifiers do.
//
// The formats are the chain's own (docs/state.md, docs/consensus.md):
// - canonical CBOR (RFC 8949 core deterministic encoding, no floats, no tags but
//   bignums) is the byte form of headers, certificates, votes and state values;
// - a header is a 12-element array, its hash SHA-256 of its encoding;
// - a commit certificate is ["commit", height, round, value_id, [[key, sig], ...]],
//   each signature over the precommit's sign bytes
//   ["focusflow/consensus/vote/v1", chain_id, height, round, 2, value_id];
// - a validator set's hash is the RFC 6962 root over encode([key, power]) in set order;
// - state proofs are sparse Merkle proofs [D, bitmap, [siblings], leaf or null];
// - the focus root is the RFC 6962 root over chunks of 1024 little-endian uint64s.
// Integers decoded from CBOR are BigInt, so nothing is rounded.

export class VerifyError extends Error {
  // check: a stable name of the check that failed (docs/web.md lists them)
  constructor(check, message) {
    super(message);
    this.name = "VerifyError";
    this.check = check;
  }
}

const fail = (check, message) => {
  throw new VerifyError(check, message);
};

// ---------------------------------------------------------------- bytes

// Each ASCII code's value as a lowercase hex digit, -1 for any other.
const HEX_DIGIT = new Int8Array(128).fill(-1);
for (let d = 0; d < 16; d++) HEX_DIGIT["0123456789abcdef".charCodeAt(d)] = d;

// A digit by table, not a parseInt of a slice a byte: a fraud proof's answer
// carries about 160 KB, whose decoding took 17 ms that way.
export function fromHex(hex, what = "value") {
  if (typeof hex !== "string" || hex.length % 2) fail("malformed", `${what} is not lowercase hex`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hex.charCodeAt(2 * i);
    const lo = hex.charCodeAt(2 * i + 1);
    const h = hi < 128 ? HEX_DIGIT[hi] : -1;
    const l = lo < 128 ? HEX_DIGIT[lo] : -1;
    if (h < 0 || l < 0) fail("malformed", `${what} is not lowercase hex`);
    out[i] = (h << 4) | l;
  }
  return out;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
}

// ---------------------------------------------------------------- canonical CBOR

const MAX_DEPTH = 32;

// The value whose canonical encoding is exactly `bytes`; anything else (a longer
// head than needed, indefinite lengths, floats, tags but bignums, unsorted map
// keys, trailing bytes) is refused, as the chain's decoder refuses it.
export function cborDecode(bytes, what = "value") {
  let pos = 0;
  const bad = (why) => fail("malformed", `${what}: ${why} at byte ${pos}`);

  function head() {
    if (pos >= bytes.length) bad("truncated");
    const initial = bytes[pos++];
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (info < 24) return [major, BigInt(info), initial];
    if (info > 27) bad("indefinite length or reserved head");
    const width = 1 << (info - 24);
    if (pos + width > bytes.length) bad("truncated head");
    let arg = 0n;
    for (let i = 0; i < width; i++) arg = (arg << 8n) | BigInt(bytes[pos++]);
    const min = [24n, 1n << 8n, 1n << 16n, 1n << 32n][info - 24];
    if (major !== 7 && arg < min) bad("head not in its shortest form");
    return [major, arg, initial];
  }

  function take(n) {
    if (n > BigInt(bytes.length - pos)) bad("length past the end");
    const out = bytes.subarray(pos, pos + Number(n));
    pos += Number(n);
    return out;
  }

  function item(depth) {
    if (depth > MAX_DEPTH) bad("nested too deeply");
    const [major, arg, initial] = head();
    switch (major) {
      case 0:
        return arg;
      case 1:
        return -1n - arg;
      case 2:
        return take(arg).slice();
      case 3:
        try {
          return utf8Strict.decode(take(arg));
        } catch {
          return bad("text is not UTF-8");
        }
      case 4: {
        if (arg > BigInt(bytes.length - pos)) bad("array longer than the input");
        const out = [];
        for (let i = 0n; i < arg; i++) out.push(item(depth + 1));
        return out;
      }
      case 5: {
        if (2n * arg > BigInt(bytes.length - pos)) bad("map longer than the input");
        const out = new Map();
        let lastKey = null;
        for (let i = 0n; i < arg; i++) {
          const start = pos;
          const key = item(depth + 1);
          const keyBytes = bytes.subarray(start, pos);
          if (typeof key !== "string" && typeof key !== "bigint") bad("map key not an integer or text");
          if (lastKey) {
            const order = keyBytes.length - lastKey.length || compareBytes(keyBytes, lastKey);
            if (order <= 0) bad("map keys not in canonical order");
          }
          lastKey = keyBytes;
          out.set(key, item(depth + 1));
        }
        return out;
      }
      case 6: {
        if (arg !== 2n && arg !== 3n) bad(`tag ${arg}`);
        const [m, len] = head();
        if (m !== 2) bad("bignum without a byte string");
        const mag = take(len);
        if (mag.length < 9 || mag[0] === 0) bad("bignum not in its shortest form");
        const n = BigInt(`0x${toHex(mag)}`);
        return arg === 2n ? n : -1n - n;
      }
      default:
        if (initial === 0xf4) return false;
        if (initial === 0xf5) return true;
        if (initial === 0xf6) return null;
        return bad("float or simple value");
    }
  }

  const value = item(0);
  if (pos !== bytes.length) bad("trailing bytes");
  return value;
}

function encodeHead(major, n) {
  n = BigInt(n);
  if (n < 0n) fail("malformed", "negative length");
  if (n < 24n) return Uint8Array.of((major << 5) | Number(n));
  for (const [info, width] of [[24, 1], [25, 2], [26, 4], [27, 8]]) {
    if (n < 1n << BigInt(8 * width)) {
      const out = new Uint8Array(1 + width);
      out[0] = (major << 5) | info;
      for (let i = width; i >= 1; i--) {
        out[i] = Number(n & 0xffn);
        n >>= 8n;
      }
      return out;
    }
  }
  return fail("malformed", "integer above 2^64 - 1");
}

// Canonical CBOR of what sign bytes and set hashes use: unsigned integers (BigInt
// or safe Number), byte strings, text, arrays and null.
export function cborEncode(value) {
  if (value === null) return Uint8Array.of(0xf6);
  if (typeof value === "bigint" || typeof value === "number") {
    if (typeof value === "number" && !Number.isSafeInteger(value)) fail("malformed", "not an integer");
    return encodeHead(0, value);
  }
  if (value instanceof Uint8Array) return concat(encodeHead(2, value.length), value);
  if (typeof value === "string") {
    const b = utf8.encode(value);
    return concat(encodeHead(3, b.length), b);
  }
  if (Array.isArray(value)) return concat(encodeHead(4, value.length), ...value.map(cborEncode));
  return fail("malformed", `cannot encode ${typeof value}`);
}

// ---------------------------------------------------------------- RFC 6962 trees

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

export async function merkleRoot(leaves) {
  if (!leaves.length) return sha256();
  let level = await Promise.all(leaves.map((l) => sha256(LEAF, l)));
  // both halves at once: WebCrypto digests run off the page's thread
  const fold = async (hs) => {
    if (hs.length === 1) return hs[0];
    let k = 1;
    while (k * 2 < hs.length) k *= 2;
    const [left, right] = await Promise.all([fold(hs.slice(0, k)), fold(hs.slice(k))]);
    return sha256(NODE, left, right);
  };
  return fold(level);
}

// An RFC 6962 audit path (RFC 9162 2.1.3.2): true when `leaf` is entry `index`
// of a `size`-entry tree with this root.
export async function verifyMerklePath(root, leaf, index, size, path) {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) {
    return false;
  }
  let fn = index;
  let sn = size - 1;
  let h = await sha256(LEAF, leaf);
  for (const sibling of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      h = await sha256(NODE, sibling, h);
      if (fn % 2 === 0) {
        while (fn !== 0 && fn % 2 === 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      h = await sha256(NODE, h, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(h, root);
}

// ---------------------------------------------------------------- the sparse Merkle tree

const EMPTY = new Uint8Array(32);

const bit = (path, d) => (path[d >> 3] >> (7 - (d & 7))) & 1;

function samePrefix(a, b, bits) {
  for (let d = 0; d < bits; d++) if (bit(a, d) !== bit(b, d)) return false;
  return true;
}

// The wire form [D, bitmap, [non-empty siblings], leaf or null] as
// {siblings: [D hashes], leaf: [path, valueHash] | null}.
export function decodeSmtProof(bytes) {
  const v = cborDecode(bytes, "state proof");
  const bad = (why) => fail("malformed", `state proof: ${why}`);
  if (!Array.isArray(v) || v.length !== 4) bad("not a 4-element array");
  const [depthBig, bitmap, full, leaf] = v;
  if (typeof depthBig !== "bigint" || depthBig > 256n) bad("depth");
  const depth = Number(depthBig);
  if (!(bitmap instanceof Uint8Array) || bitmap.length !== (depth + 7) >> 3) bad("bitmap");
  if (!Array.isArray(full)) bad("siblings");
  const siblings = [];
  let next = 0;
  for (let i = 0; i < depth; i++) {
    if (bitmap[i >> 3] & (0x80 >> (i & 7))) {
      const s = full[next++];
      if (!(s instanceof Uint8Array) || s.length !== 32) bad("sibling");
      siblings.push(s);
    } else {
      siblings.push(EMPTY);
    }
  }
  if (next !== full.length) bad("extra siblings");
  if (leaf !== null) {
    const ok = Array.isArray(leaf) && leaf.length === 2 &&
      leaf.every((x) => x instanceof Uint8Array && x.length === 32);
    if (!ok) bad("leaf");
  }
  return { siblings, leaf };
}

// docs/state.md "Proofs": true when the proof shows `key` holds `value` under
// `root` (or holds nothing, for value null).
export async function verifySmtProof(root, key, value, proofBytes) {
  const { siblings, leaf } = decodeSmtProof(proofBytes);
  const path = await sha256(key);
  const depth = siblings.length;
  let h;
  if (value !== null) {
    if (leaf !== null) return false;
    h = await sha256(LEAF, path, await sha256(value));
  } else if (leaf === null) {
    h = EMPTY;
  } else {
    const [other, otherValueHash] = leaf;
    if (equal(other, path) || !samePrefix(other, path, depth)) return false;
    h = await sha256(LEAF, other, otherValueHash);
  }
  for (let d = depth - 1; d >= 0; d--) {
    h = bit(path, d) ? await sha256(NODE, siblings[d], h) : await sha256(NODE, h, siblings[d]);
  }
  return equal(h, root);
}

// ---------------------------------------------------------------- headers

export const HEADER_FIELDS = [
  "chain_id", "height", "time_ms", "parent", "txs_root", "state_root", "focus_root",
  "data_root", "evidence_root", "validators_hash", "proposer", "last_commit",
];

// The header that `bytes` encode, checked field by field as the chain checks it.
export function decodeHeader(bytes) {
  const v = cborDecode(bytes, "header");
  const bad = (why) => fail("malformed", `header: ${why}`);
  if (!Array.isArray(v) || v.length !== 12) bad("not a 12-element array");
  const h = Object.fromEntries(HEADER_FIELDS.map((name, i) => [name, v[i]]));
  if (typeof h.chain_id !== "string") bad("chain id");
  if (typeof h.height !== "bigint" || typeof h.time_ms !== "bigint") bad("height or time");
  for (const name of HEADER_FIELDS.slice(3, 10)) {
    if (!(h[name] instanceof Uint8Array) || h[name].length !== 32) bad(name);
  }
  if (!(h.proposer instanceof Uint8Array) || ![0, 20].includes(h.proposer.length)) bad("proposer");
  if (!(h.last_commit instanceof Uint8Array) || ![0, 32].includes(h.last_commit.length)) bad("last_commit");
  return h;
}

// ---------------------------------------------------------------- validators and certificates

export const VOTE_DOMAIN = "focusflow/consensus/vote/v1";
export const PRECOMMIT = 2;

export function voteSignBytes(chainId, height, round, step, valueId) {
  return cborEncode([VOTE_DOMAIN, chainId, BigInt(height), BigInt(round), BigInt(step), valueId]);
}

// [{public_key: Uint8Array, power: BigInt}] from the API's [{public_key: hex, power}]:
// refuses duplicates and non-positive powers (no set holds them).
export function parseValidators(list) {
  if (!Array.isArray(list) || !list.length) fail("malformed", "validator set is empty");
  const seen = new Set();
  return list.map((v, i) => {
    const key = fromHex(v?.public_key, `validator ${i} key`);
    if (key.length !== 32) fail("malformed", `validator ${i} key is not 32 bytes`);
    let power;
    try {
      power = BigInt(v.power);
    } catch {
      fail("malformed", `validator ${i} power is not an integer`);
    }
    if (power <= 0n) fail("malformed", `validator ${i} power is not positive`);
    if (seen.has(v.public_key)) fail("malformed", `validator ${v.public_key} listed twice`);
    seen.add(v.public_key);
    return { public_key: key, power };
  });
}

// Set hashes by the set's members: a set signs header after header, and a
// light client's sync meets it again in each (a pure function, so kept). Bounded.
const setHashes = new Map();
const SET_HASHES_KEPT = 64;

export async function validatorSetHash(validators) {
  const id = validators.map((v) => `${toHex(v.public_key)}:${v.power}`).join(",");
  const known = setHashes.get(id);
  if (known) return known.slice();
  const hash = await merkleRoot(validators.map((v) => cborEncode([v.public_key, v.power])));
  if (setHashes.size >= SET_HASHES_KEPT) setHashes.delete(setHashes.keys().next().value);
  setHashes.set(id, hash.slice());
  return hash;
}

export function decodeCertificate(bytes) {
  const v = cborDecode(bytes, "commit certificate");
  const bad = (why) => fail("malformed", `commit certificate: ${why}`);
  if (!Array.isArray(v) || v.length !== 5 || v[0] !== "commit") bad("not a commit array");
  const [, height, round, valueId, sigs] = v;
  if (typeof height !== "bigint" || typeof round !== "bigint") bad("height or round");
  if (!(valueId instanceof Uint8Array) || valueId.length !== 32) bad("value id");
  if (!Array.isArray(sigs)) bad("signatures");
  const signatures = sigs.map((s) => {
    const ok = Array.isArray(s) && s.length === 2 && s[0] instanceof Uint8Array &&
      s[0].length === 32 && s[1] instanceof Uint8Array && s[1].length === 64;
    if (!ok) bad("signature entry");
    return { public_key: s[0], signature: s[1] };
  });
  return { height, round, value_id: valueId, signatures };
}

// Imported keys by hex: a validator signs every header, and a light client's
// sync checks the same set's signatures header after header. Bounded.
const importedKeys = new Map();
const KEYS_KEPT = 4096;

export async function ed25519Verify(publicKey, signature, message) {
  const hex = toHex(publicKey);
  let key = importedKeys.get(hex);
  if (!key) {
    try {
      key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      // a browser without Ed25519 cannot check, which is not a bad signature
      if (e?.name === "NotSupportedError") fail("unsupported", "this browser's WebCrypto has no Ed25519");
      return false; // a key that is not a curve point
    }
    if (importedKeys.size >= KEYS_KEPT) importedKeys.delete(importedKeys.keys().next().value);
    importedKeys.set(hex, key);
  }
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

const hasTwoThirds = (power, total) => 3n * power > 2n * total;
const hasOneThird = (power, total) => 3n * power > total;

// The certificate's signers that verify, with their power in `validators`;
// throws at the first signer that repeats, is outside the set, or whose
// signature does not verify. A certificate carries no garbage, as the chain's.
async function signedPower(cert, validators, chainId) {
  const power = new Map(validators.map((v) => [toHex(v.public_key), v.power]));
  const message = voteSignBytes(chainId, cert.height, cert.round, PRECOMMIT, cert.value_id);
  const seen = new Set();
  const results = await Promise.all(
    cert.signatures.map((s) => ed25519Verify(s.public_key, s.signature, message)),
  );
  let total = 0n;
  cert.signatures.forEach((s, i) => {
    const key = toHex(s.public_key);
    if (seen.has(key)) fail("cert_duplicate", `validator ${key} signed twice`);
    seen.add(key);
    if (!power.has(key)) fail("cert_non_member", `signer ${key} is not in the validator set`);
    if (!results[i]) fail("cert_signature", `bad precommit signature of ${key}`);
    total += power.get(key) ?? 0n;
  });
  return total;
}

// Check that the commit certificate `certBytes` proves the header `headerBytes`
// was decided by more than 2/3 of the power of `validators` (the set the node
// names for this height), whose hash the header commits to. `hash`, `height`
// and `chainId`, when given, are what the header must be.
//
// `trusted` ({chain_id, hash, validators?}: a set the user pinned, by its hash,
// with its members once a verified header showed them) is what makes this more
// than the node's word: the header must be of the pinned chain, and name the
// pinned set, or, when the chain moved to another set, signers from the pinned
// set must hold more than 1/3 of its power in this certificate (CometBFT's
// skipping verification at trust level 1/3: at least one honest member of the
// trusted set vouches for the new one).
// Returns {header, hash, signedPower, totalPower, skipped}.
export async function verifyHeader({ headerBytes, certBytes, validators, hash, height, chainId, trusted }) {
  const header = decodeHeader(headerBytes);
  const headerHash = await sha256(headerBytes);
  if (hash !== undefined && toHex(headerHash) !== hash) {
    fail("header_hash", `the header's bytes hash to ${toHex(headerHash)}, not the stated ${hash}`);
  }
  if (height !== undefined && header.height !== BigInt(height)) {
    fail("header_height", `the header is for height ${header.height}, not ${height}`);
  }
  if (chainId !== undefined && header.chain_id !== chainId) {
    fail("chain_id", `the header is of chain ${header.chain_id}, not ${chainId}`);
  }
  const setHash = await validatorSetHash(validators);
  if (!equal(setHash, header.validators_hash)) {
    fail("validators_hash",
      `the validator set given hashes to ${toHex(setHash)}, the header names ${toHex(header.validators_hash)}`);
  }
  if (certBytes === null) fail("cert_missing", `the node gives no commit certificate for height ${header.height}`);
  const cert = decodeCertificate(certBytes);
  if (cert.height !== header.height) {
    fail("cert_height", `the certificate is for height ${cert.height}, the header for ${header.height}`);
  }
  if (!equal(cert.value_id, headerHash)) {
    fail("cert_value", `the certificate commits block ${toHex(cert.value_id)}, not this header`);
  }
  const total = validators.reduce((n, v) => n + v.power, 0n);
  const signed = await signedPower(cert, validators, header.chain_id);
  if (!hasTwoThirds(signed, total)) {
    fail("cert_power", `signers hold ${signed} of ${total} power, not more than 2/3`);
  }
  const skipped = trusted ? await checkPinned(header, cert, trusted) : false;
  return { header, hash: headerHash, signedPower: signed, totalPower: total, skipped };
}

// The pinned trust (see verifyHeader); true when the header's set is not the
// pinned one but more than 1/3 of the pinned set vouches for it.
async function checkPinned(header, cert, trusted) {
  if (trusted.chain_id && header.chain_id !== trusted.chain_id) {
    fail("pinned_chain", `the header is of chain ${header.chain_id}, the pinned chain is ${trusted.chain_id}`);
  }
  if (equal(header.validators_hash, trusted.hash)) return false;
  const label = trusted.label ?? "pinned"; // or the set a light client synced to
  const named = `the header names validator set ${toHex(header.validators_hash)}, not the ${label} ${toHex(trusted.hash)}`;
  if (!trusted.validators) fail("pinned_set", `${named}, whose members this page has not seen`);
  if (!equal(await validatorSetHash(trusted.validators), trusted.hash)) {
    fail("malformed", "the pinned members do not hash to the pinned set");
  }
  const pinnedTotal = trusted.validators.reduce((n, v) => n + v.power, 0n);
  const pinnedKeys = new Set(trusted.validators.map((v) => toHex(v.public_key)));
  const fromPinned = {
    ...cert,
    signatures: cert.signatures.filter((s) => pinnedKeys.has(toHex(s.public_key))),
  };
  const vouching = await signedPower(fromPinned, trusted.validators, header.chain_id);
  if (!hasOneThird(vouching, pinnedTotal)) {
    fail("pinned_set", `${named}; signers from the ${label} set hold ${vouching} of its ${pinnedTotal} power, ` +
      "not more than 1/3");
  }
  return true;
}

// ---------------------------------------------------------------- values under a verified header

export const FOCUS_CHUNK = 1024;
export const PARTICLE_CHUNK = 1024;
export const FOCUS_KEY = utf8.encode("/graph/focus");

export function particleChunkKey(chunk) {
  const k = new Uint8Array(4);
  new DataView(k.buffer).setUint32(0, chunk);
  return concat(utf8.encode("/graph/particles/"), k);
}

// A state value with its proof against the header's state root: the value's bytes
// (or null when the proof shows the key absent). `check` names the value in errors.
export async function verifyStateValue(header, key, valueHex, proofHex, what) {
  const value = valueHex === null ? null : fromHex(valueHex, `${what} value`);
  const ok = await verifySmtProof(header.state_root, key, value, fromHex(proofHex, `${what} proof`));
  if (!ok) {
    fail("state_proof",
      `the proof of ${what} does not lead to the state root ${toHex(header.state_root)} of height ${header.height}`);
  }
  return value;
}

// The uint64 at `offset` of a focus chunk (little-endian), as BigInt.
export function focusAt(chunk, offset) {
  if (offset < 0 || 8 * offset + 8 > chunk.length) fail("focus_proof", `no value ${offset} in the chunk`);
  return new DataView(chunk.buffer, chunk.byteOffset).getBigUint64(8 * offset, true);
}

// A particle's committed focus under a verified header, from the node's answer
// to GET /v1/light/proofs/particle/{cid}: {index, focus_q, index_proof,
// focus_record, chunk, path} (docs/api.md). Checks the particle's index through
// the particle list in the state, the focus record in the state (its root is
// the header's focus root, its count sizes the tree), and the chunk through its
// RFC 6962 path to the header's focus root; the answer's own focus_q must be
// the chunk's value. Returns {index, q} (q a BigInt).
export async function verifyParticleFocus(header, cidBytes, p) {
  const index = Number(p.index);
  if (!Number.isSafeInteger(index) || index < 0) fail("malformed", "particle index");
  const listChunk = Math.floor(index / PARTICLE_CHUNK);
  const list = await verifyStateValue(header, particleChunkKey(listChunk), p.index_proof?.value ?? null,
    p.index_proof?.proof, `particle list chunk ${listChunk}`);
  const entries = list === null ? [] : cborDecode(list, "particle list");
  const entry = Array.isArray(entries) ? entries[index % PARTICLE_CHUNK] : null;
  if (!(entry instanceof Uint8Array) || !equal(entry, cidBytes)) {
    fail("particle_index", `the state's particle ${index} is not this particle`);
  }
  const recordBytes = await verifyStateValue(header, FOCUS_KEY, p.focus_record?.value ?? null,
    p.focus_record?.proof, "the focus record");
  if (recordBytes === null) fail("focus_record", "the state holds no focus record");
  const record = cborDecode(recordBytes, "focus record");
  const root = record instanceof Map ? record.get("root") : null;
  const count = record instanceof Map ? record.get("particles") : null;
  if (!(root instanceof Uint8Array) || !equal(root, header.focus_root) || typeof count !== "bigint") {
    fail("focus_record", "the state's focus record does not name the header's focus root");
  }
  if (BigInt(index) >= count) fail("particle_index", `particle ${index} is past the ${count} focus values`);
  const chunks = Number((count + BigInt(FOCUS_CHUNK) - 1n) / BigInt(FOCUS_CHUNK));
  const chunkIndex = Math.floor(index / FOCUS_CHUNK);
  const chunk = fromHex(p.chunk, "focus chunk");
  const path = (Array.isArray(p.path) ? p.path : []).map((x) => fromHex(x, "focus path"));
  if (!(await verifyMerklePath(header.focus_root, chunk, chunkIndex, chunks, path))) {
    fail("focus_proof", `focus chunk ${chunkIndex} does not lead to the focus root of height ${header.height}`);
  }
  const q = focusAt(chunk, index % FOCUS_CHUNK);
  if (p.focus_q !== undefined && String(p.focus_q) !== String(q)) {
    fail("value_mismatch", `the answer states focus ${p.focus_q}, its proven chunk holds ${q}`);
  }
  return { index, q };
}

// A name's record [cid, owner] under a verified header, from the node's answer
// to GET /v1/light/proofs/name/{name}: the binary CID it names, or null when the
// proof shows the name is not registered.
export async function verifyName(header, name, p) {
  const key = concat(utf8.encode("/kv/name/"), utf8.encode(name));
  const value = await verifyStateValue(header, key, p.value ?? null, p.proof, `name ${name}`);
  if (value === null) return null;
  const record = cborDecode(value, "name record");
  if (!Array.isArray(record) || !(record[0] instanceof Uint8Array)) fail("malformed", "name record");
  return record[0];
}

// ---------------------------------------------------------------- CIDs

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const B32 = "abcdefghijklmnopqrstuvwxyz234567";

// The binary CID of the two spellings the chain writes (docs/api.md): CIDv0
// (base58btc "Qm...") and CIDv1 in base32 ("b..."); the chain keys particles by
// these bytes. Other spellings are refused: the page cannot bind them to a proof.
export function cidToBytes(cid) {
  if (/^Qm[1-9A-HJ-NP-Za-km-z]{44}$/.test(cid)) {
    let n = 0n;
    for (const c of cid) n = n * 58n + BigInt(B58.indexOf(c));
    const hex = n.toString(16).padStart(68, "0");
    if (hex.length !== 68) fail("malformed", `CID ${cid} is too large`);
    return fromHex(hex);
  }
  if (/^b[a-z2-7]+$/.test(cid)) {
    const out = [];
    let acc = 0;
    let bits = 0;
    for (const c of cid.slice(1)) {
      acc = (acc << 5) | B32.indexOf(c);
      bits += 5;
      if (bits >= 8) {
        bits -= 8;
        out.push((acc >> bits) & 0xff);
      }
    }
    if (acc & ((1 << bits) - 1)) fail("malformed", `CID ${cid} has stray bits`);
    return Uint8Array.from(out);
  }
  return fail("malformed", `CID ${cid} is not base58btc v0 or base32 v1`);
}
