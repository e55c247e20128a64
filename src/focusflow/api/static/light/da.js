// Data-availability sampling in the browser: draw shares of a verified block's
// extended square at random, check each one's proof up to the header's
// data_root, and say how sure that makes us that the square can be rebuilt.
//
// A share's proof has two steps (docs/da.md): an NMT range proof of the leaf
// `ns || share` to its row's (or column's) root, and an RFC 6962 path of that
// root to the data root (row i is leaf i, column j leaf 2k + j of the 4k
// roots). The node's row and column roots must themselves hash to the data
// root before any share is drawn. Each function names the Python function it
// mirrors (focusflow.da.nmt, focusflow.da.proofs, focusflow.da.sampling,
// focusflow.cli.light_cmd.sample_verified).

import * as V from "../verify.js";
import { NodeError } from "./client.js";
import { RepairError, decode } from "./leopard.js";

export const NAMESPACE_SIZE = 29; // focusflow.da.namespace.NAMESPACE_SIZE
export const SHARE_SIZE = 512; // focusflow.da.shares.SHARE_SIZE
export const NMT_NODE_SIZE = 2 * NAMESPACE_SIZE + 32;
export const MAX_WIDTH = 1024; // focusflow.da.wire.MAX_WIDTH
export const MAX_PROOF_NODES = 16; // focusflow.da.wire.MAX_PROOF_NODES
// celestia-node's light nodes sample 16 shares per block (focusflow light sample's default).
export const DEFAULT_SAMPLES = 16;
// The shares of a round not served in this time count as withheld.
export const SHARE_TIMEOUT_MS = 5000;
// Most shares one request asks (focusflow.api.routes_light.MAX_SAMPLE_SHARES).
export const MAX_BATCH = 64;

const PARITY_NS = new Uint8Array(NAMESPACE_SIZE).fill(0xff); // PARITY_SHARE_NAMESPACE
const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

function compare(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

const isMaxNs = (ns) => ns.every((b) => b === 0xff);

// Mirrors focusflow.da.nmt.split_point.
const splitPoint = (n) => 2 ** (Math.ceil(Math.log2(n)) - 1);

// Mirrors focusflow.da.nmt.leaf_node.
export async function leafNode(data) {
  const ns = data.subarray(0, NAMESPACE_SIZE);
  return V.concat(ns, ns, await V.sha256(LEAF, data));
}

// Mirrors focusflow.da.nmt.inner_node (IgnoreMaxNamespace, as Celestia).
export async function innerNode(left, right) {
  const lMin = left.subarray(0, NAMESPACE_SIZE);
  const lMax = left.subarray(NAMESPACE_SIZE, 2 * NAMESPACE_SIZE);
  const rMin = right.subarray(0, NAMESPACE_SIZE);
  const rMax = right.subarray(NAMESPACE_SIZE, 2 * NAMESPACE_SIZE);
  let hi;
  if (isMaxNs(lMin)) hi = PARITY_NS;
  else if (isMaxNs(rMin)) hi = lMax;
  else hi = compare(lMax, rMax) >= 0 ? lMax : rMax;
  const lo = compare(lMin, rMin) <= 0 ? lMin : rMin;
  return V.concat(lo, hi, await V.sha256(NODE, left, right));
}

// Whether the one leaf `data` is leaf `start` of the tree of `total` leaves
// with root `root`, given the proof's nodes (the subtrees beside the leaf,
// in order). Mirrors focusflow.da.nmt.verify_range and _root_from_proof for a
// range of one leaf.
export async function nmtVerifyLeaf(root, start, total, nodes, data) {
  if (!(start >= 0 && start < total)) return false;
  let next = 0;
  const leaf = await leafNode(data);
  async function walk(lo, hi) {
    if (hi <= start || lo >= start + 1) {
      if (next >= nodes.length) throw new Error("too few nodes");
      return nodes[next++];
    }
    if (hi - lo === 1) return leaf;
    const k = splitPoint(hi - lo);
    const left = await walk(lo, lo + k);
    return innerNode(left, await walk(lo + k, hi));
  }
  let computed;
  try {
    computed = await walk(0, total);
  } catch {
    return false;
  }
  return next === nodes.length && V.equal(computed, root);
}

// The root over leaf nodes already hashed. Mirrors focusflow.da.nmt.root_of_leaf_nodes
// (never called here with no leaves).
export async function rootOfLeafNodes(nodes) {
  if (nodes.length === 1) return nodes[0];
  const k = splitPoint(nodes.length);
  return innerNode(await rootOfLeafNodes(nodes.slice(0, k)), await rootOfLeafNodes(nodes.slice(k)));
}

// The NMT leaf of a share: its own namespace in the original quadrant, the
// parity namespace elsewhere. Mirrors focusflow.da.proofs.leaf_data.
export function leafData(share, row, col, k) {
  const ns = row < k && col < k ? share.subarray(0, NAMESPACE_SIZE) : PARITY_NS;
  return V.concat(ns, share);
}

const isCount = (n, top) => Number.isSafeInteger(n) && n >= 0 && n <= top;

function hexSized(value, size, what) {
  const b = V.fromHex(value, what);
  if (b.length !== size) throw new V.VerifyError("malformed", `${what} is not ${size} bytes`);
  return b;
}

function hexList(value, size, what) {
  if (!Array.isArray(value) || value.length > MAX_PROOF_NODES) {
    throw new V.VerifyError("malformed", `${what} is not a list of at most ${MAX_PROOF_NODES}`);
  }
  return value.map((x) => hexSized(x, size, what));
}

// A node's share answer (GET /v1/da/{h}/shares/{row}/{col}), bounded and
// decoded. Mirrors focusflow.da.proofs.proof_from_json with wire.py's sizes.
export function parseShare(doc) {
  const p = doc?.proof;
  const n = p?.nmt_proof;
  const r = p?.root_proof;
  if (!p || !n || !r || (p.axis !== "row" && p.axis !== "col")) throw new V.VerifyError("malformed", "a share proof's shape");
  for (const [what, v, top] of [["row", doc.row, MAX_WIDTH], ["col", doc.col, MAX_WIDTH], ["start", n.start, MAX_WIDTH],
    ["end", n.end, MAX_WIDTH], ["total", n.total, MAX_WIDTH], ["root index", r.index, 2 * MAX_WIDTH],
    ["root total", r.total, 2 * MAX_WIDTH]]) {
    if (!isCount(v, top)) throw new V.VerifyError("malformed", `share proof ${what}`);
  }
  return {
    row: doc.row,
    col: doc.col,
    share: hexSized(doc.share, SHARE_SIZE, "share"),
    axis: p.axis,
    nmt: { start: n.start, end: n.end, total: n.total, nodes: hexList(n.nodes, NMT_NODE_SIZE, "NMT nodes") },
    axisRoot: hexSized(p.axis_root, NMT_NODE_SIZE, "axis root"),
    rootProof: { index: r.index, total: r.total, aunts: hexList(r.aunts, 32, "aunts") },
  };
}

// Whether proof.share is the share at (proof.row, proof.col) under `dataRoot`.
// Mirrors focusflow.da.proofs.verify_share_proof.
export async function verifyShareProof(dataRoot, proof) {
  const total = proof.rootProof.total;
  const width = total / 2;
  if (total % 4 || width & (width - 1) || proof.share.length !== SHARE_SIZE) return false;
  if (!(proof.row < width && proof.col < width)) return false;
  const [position, rootIndex] = proof.axis === "row" ? [proof.col, proof.row] : [proof.row, width + proof.col];
  const n = proof.nmt;
  if (n.start !== position || n.end !== position + 1 || n.total !== width) return false;
  if (proof.rootProof.index !== rootIndex) return false;
  const leaf = leafData(proof.share, proof.row, proof.col, width / 2);
  if (!(await nmtVerifyLeaf(proof.axisRoot, n.start, n.total, n.nodes, leaf))) return false;
  return V.verifyMerklePath(dataRoot, proof.axisRoot, rootIndex, total, proof.rootProof.aunts);
}

// Lower bound on the chance that `samples` distinct draws hit a withheld share
// of an unrecoverable square. Mirrors focusflow.da.sampling.detection_probability.
export function detectionProbability(k, samples) {
  const p = Math.min(((k + 1) ** 2) / ((2 * k) ** 2), 1);
  return 1 - (1 - p) ** samples;
}

// `count` distinct flat indices of [0, n), drawn with the browser's CSPRNG.
// Mirrors the draw of focusflow.da.sampling.Sampler (random.sample).
export function drawDistinct(n, count, random = cryptoRandom) {
  const picked = new Set();
  while (picked.size < Math.min(count, n)) picked.add(Math.floor(random() * n));
  return [...picked];
}

function cryptoRandom() {
  const u = new Uint32Array(2);
  crypto.getRandomValues(u);
  return (u[0] * 2 ** 21 + (u[1] >>> 11)) / 2 ** 53;
}

// `k` when the node's row and column roots of block `height` hash to
// `dataRoot`; a VerifyError (wrong roots) or NodeError (none served) otherwise.
// Mirrors focusflow.cli.da_cmd.square_width.
export async function squareWidth(node, height, dataRoot) {
  const body = await node.get(`/v1/da/${height}`);
  const k = body?.k;
  if (!Number.isSafeInteger(k) || k < 1 || k & (k - 1) || 2 * k > MAX_WIDTH) {
    throw new V.VerifyError("malformed", `the node's k=${k} is not a power of two up to ${MAX_WIDTH / 2}`);
  }
  const rows = body.row_roots;
  const cols = body.col_roots;
  if (!Array.isArray(rows) || !Array.isArray(cols) || rows.length !== 2 * k || cols.length !== 2 * k) {
    throw new V.VerifyError("malformed", "the node's square roots are malformed");
  }
  const roots = [...rows, ...cols].map((x) => hexSized(x, NMT_NODE_SIZE, "axis root"));
  if (!V.equal(await V.merkleRoot(roots), dataRoot)) {
    throw new V.VerifyError("da_roots", "the node's row and column roots do not hash to the header's data root");
  }
  return k;
}

// One sampling round of a verified block: {height, k, width, samples, verified,
// available, confidence, withheld: [[row, col, why]], invalid: [[row, col, why]],
// badEncoding: {axis, index} or null, badFraudProof: why or null (checkFraud)}.
// The shares are asked in one request (GET /v1/light/shares/{h}?at=r,c;...,
// focusflow.api.routes_light.sample_shares). A share the node does not serve
// (an error item, or no answer in SHARE_TIMEOUT_MS) is withheld; one whose
// proof does not lead to the data root, or that the answer leaves out, is
// invalid. Mirrors focusflow.cli.light_cmd.sample_verified.
export async function sampleBlock(node, block, samples = DEFAULT_SAMPLES, { random, timeoutMs = SHARE_TIMEOUT_MS } = {}) {
  const dataRoot = block.header.data_root;
  const k = await squareWidth(node, block.height, dataRoot);
  const width = 2 * k;
  const coords = drawDistinct(width * width, Math.min(samples, MAX_BATCH), random)
    .map((f) => [Math.floor(f / width), f % width]);
  const withheld = [];
  const invalid = [];
  let items = [];
  try {
    const at = coords.map(([row, col]) => `${row},${col}`).join(";");
    const answer = await node.get(`/v1/light/shares/${block.height}?at=${at}`, timeoutMs);
    items = Array.isArray(answer?.shares) ? answer.shares : [];
  } catch (err) {
    if (!(err instanceof NodeError)) throw err;
    for (const [row, col] of coords) withheld.push([row, col, `${err.message} (${err.code})`]);
    items = null;
  }
  if (items !== null) {
    await Promise.all(coords.map(async ([row, col], i) => {
      const doc = items[i];
      if (doc?.error && doc.row === row && doc.col === col) {
        withheld.push([row, col, `${String(doc.error.message).slice(0, 200)} (${String(doc.error.code).slice(0, 40)})`]);
        return;
      }
      try {
        if (!doc) throw new V.VerifyError("da_share", "the answer leaves it out");
        const proof = parseShare(doc);
        if (proof.row !== row || proof.col !== col) throw new V.VerifyError("da_share", "the share of other coordinates");
        if (proof.rootProof.total / 2 !== width) throw new V.VerifyError("da_share", "a proof for a square of another width");
        if (!(await verifyShareProof(dataRoot, proof))) {
          throw new V.VerifyError("da_share", "its proof does not lead to the header's data root");
        }
      } catch (err) {
        invalid.push([row, col, err.message]);
      }
    }));
  }
  const n = coords.length;
  const failed = withheld.length + invalid.length;
  // A fraud proof the node holds: one that verifies makes the block
  // unavailable whatever the samples say; one that proves nothing is listed.
  let badEncoding = null;
  let badFraudProof = null;
  try {
    badEncoding = await checkFraud(node, block.height, dataRoot);
  } catch (err) {
    if (err instanceof V.VerifyError) badFraudProof = err.message;
    else if (!(err instanceof NodeError)) throw err;
  }
  return {
    height: block.height,
    k,
    width,
    samples: n,
    requested: samples,
    verified: n - failed,
    available: failed === 0 && badEncoding === null,
    // every share checked: nothing withheld can have been missed
    confidence: n === width * width ? 1 : detectionProbability(k, n),
    withheld,
    invalid,
    badEncoding,
    badFraudProof,
  };
}

// A bad-encoding fraud proof's JSON (GET /v1/da/{h}/fraud), bounded and decoded.
// Mirrors focusflow.da.wire.befp_from_json.
export function parseBadEncodingProof(doc) {
  const r = doc?.axis_root_proof;
  if (!doc || (doc.axis !== "row" && doc.axis !== "col") || !r) throw new V.VerifyError("malformed", "a fraud proof's shape");
  if (!Array.isArray(doc.shares) || doc.shares.length > MAX_WIDTH / 2) {
    throw new V.VerifyError("malformed", `a fraud proof carries at most ${MAX_WIDTH / 2} shares`);
  }
  for (const [what, v, top] of [["index", doc.index, MAX_WIDTH], ["root index", r.index, 2 * MAX_WIDTH],
    ["root total", r.total, 2 * MAX_WIDTH]]) {
    if (!isCount(v, top)) throw new V.VerifyError("malformed", `fraud proof ${what}`);
  }
  return {
    axis: doc.axis,
    index: doc.index,
    axisRoot: hexSized(doc.axis_root, NMT_NODE_SIZE, "axis root"),
    rootProof: { index: r.index, total: r.total, aunts: hexList(r.aunts, 32, "aunts") },
    shares: doc.shares.map(parseShare),
  };
}

// Whether `proof` shows that the square under `dataRoot` is badly encoded: its
// axis root leads to the data root, its k shares of that axis each lead there
// along the other axis, and the axis decoded from them has another NMT root.
// Mirrors focusflow.da.fraud.verify_bad_encoding_proof.
export async function verifyBadEncodingProof(dataRoot, proof) {
  const width = Math.floor(proof.rootProof.total / 2);
  const k = width / 2;
  // A width that is not a power of two holds no share proof that verifies.
  if (width < 2 || width & (width - 1) || !(proof.index >= 0 && proof.index < width)) return false;
  const rootIndex = proof.axis === "row" ? proof.index : width + proof.index;
  if (proof.rootProof.index !== rootIndex) return false;
  if (!(await V.verifyMerklePath(dataRoot, proof.axisRoot, rootIndex, proof.rootProof.total, proof.rootProof.aunts))) {
    return false;
  }
  const other = proof.axis === "row" ? "col" : "row";
  const line = Array.from({ length: width }, () => new Uint8Array(SHARE_SIZE));
  const present = new Array(width).fill(false);
  for (const sp of proof.shares) {
    const onAxis = proof.axis === "row" ? sp.row === proof.index : sp.col === proof.index;
    const position = proof.axis === "row" ? sp.col : sp.row;
    if (!onAxis || sp.axis !== other || !(position >= 0 && position < width) || present[position]) return false;
    if (Math.floor(sp.rootProof.total / 2) !== width) return false;
    line[position] = sp.share;
    present[position] = true;
  }
  // Every share's proof, the hashes of all of them in flight at once.
  const proven = await Promise.all(proof.shares.map((sp) => verifyShareProof(dataRoot, sp)));
  if (!proven.every(Boolean)) return false;
  let full;
  try {
    full = decode(line, present);
  } catch (err) {
    if (err instanceof RepairError) return false;
    throw err;
  }
  const leaves = await Promise.all(full.map((share, position) => {
    const [row, col] = proof.axis === "row" ? [proof.index, position] : [position, proof.index];
    return leafNode(leafData(share, row, col, k));
  }));
  return !V.equal(await rootOfLeafNodes(leaves), proof.axisRoot);
}

// The node's fraud proof against block `height` checked against `dataRoot`:
// null when it holds none; {axis, index} when one verifies (the square is not
// a valid encoding, whatever sampling says); a VerifyError ("bad_fraud_proof")
// when the node serves one that proves nothing. Mirrors
// focusflow.cli.light_cmd._check_fraud.
export async function checkFraud(node, height, dataRoot) {
  let body;
  try {
    body = await node.get(`/v1/da/${height}/fraud`);
  } catch (err) {
    if (err instanceof NodeError && err.code === "unknown_fraud_proof") return null;
    throw err;
  }
  if (body?.height !== height) throw new V.VerifyError("bad_fraud_proof", `a fraud proof for block ${body?.height}, not ${height}`);
  const proof = parseBadEncodingProof(body.proof);
  if (!(await verifyBadEncodingProof(dataRoot, proof))) {
    throw new V.VerifyError("bad_fraud_proof", `the node's fraud proof against block ${height} proves nothing`);
  }
  return { axis: proof.axis, index: proof.index };
}
