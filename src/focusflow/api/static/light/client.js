// The browser's light client: follows a node's headers by their certificates
// from a root of trust and keeps what verified in IndexedDB (store.js).
//
// Headers are verified from the store's newest trusted header by skipping
// verification, bisecting when the trusted set's signers of a far header hold
// too little power, down to adjacent steps whose set change is proven from the
// trusted state (rules.js); a header at a verified height with another hash
// and a valid certificate of the verified set is a fork, as is a witness's
// header that differs from the primary's and verifies from the root of trust.
// Mirrors focusflow.light.client.LightClient; each method names its original.

import * as V from "../verify.js";
import {
  InsufficientTrust,
  TRUSTING_PERIOD_MS,
  parseLightBlock,
  verifyAdjacent,
  verifyNextSet,
  verifySkipping,
} from "./rules.js";
import { MemoryStore } from "./store.js";

// focusflow.light.client.MAX_VERIFY_STEPS
export const MAX_VERIFY_STEPS = 100_000;
// Bound of each request, as the page's other requests (api.js).
export const REQUEST_TIMEOUT_MS = 10_000;
// Largest answer read (focusflow.light.client.MAX_ANSWER_BYTES).
export const MAX_ANSWER_BYTES = 16 << 20;
// How long a witness may take to reach the primary's height
// (focusflow.light.client.WITNESS_WAIT_S), and the pause between asks.
export const WITNESS_WAIT_MS = 10_000;
const WITNESS_POLL_MS = 200;

// A node that cannot give an answer (unreachable, an error code, too large):
// not a lie, so not a VerifyError. `code` is the node's own error code.
export class NodeError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = "NodeError";
    this.code = code;
    this.status = status;
  }
}

// A valid header that conflicts with a verified one: the validators signed two
// blocks at one height (CometBFT's light-client attack).
export class ForkError extends V.VerifyError {
  constructor(height, ours, theirs, where) {
    super("fork", `fork at height ${height}: the verified header is ${ours}, ${where} gives ${theirs}, and both are signed`);
    this.height = height;
    this.ours = ours;
    this.theirs = theirs;
    this.where = where;
  }
}

// One node's /v1/light routes over fetch; answers are JSON, unverified.
// Mirrors focusflow.light.client.Node.
export class Node {
  constructor(url = "") {
    this.url = url.replace(/\/+$/, "");
  }

  async get(path, timeoutMs = REQUEST_TIMEOUT_MS) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      let res;
      try {
        res = await fetch(this.url + path, { signal: ctl.signal, headers: { Accept: "application/json" } });
      } catch (e) {
        const why = e.name === "AbortError" ? "gave no answer in time" : "is unreachable";
        throw new NodeError(e.name === "AbortError" ? "timeout" : "unreachable", `${this.url || "the node"} ${why}`);
      }
      const text = await boundedText(res, path);
      let doc = null;
      try {
        doc = JSON.parse(text);
      } catch {
        // said below
      }
      if (!res.ok) {
        const err = doc?.error;
        throw new NodeError(err?.code || `http_${res.status}`, `${this.url}${path}: ${err?.message || res.status}`, res.status);
      }
      if (doc === null) throw new V.VerifyError("malformed", `${path}: the answer is not JSON`);
      return doc;
    } finally {
      clearTimeout(timer);
    }
  }

  header(height) {
    return this.get(`/v1/light/header/${height === null ? "latest" : height}`);
  }
}

// The body of `res` as text, read no further than MAX_ANSWER_BYTES whatever
// the node says its length is (focusflow.client's cap on an answer).
async function boundedText(res, path) {
  const over = () => new V.VerifyError("malformed", `${path}: an answer over ${MAX_ANSWER_BYTES} bytes`);
  if (Number(res.headers.get("content-length") || 0) > MAX_ANSWER_BYTES) throw over();
  if (!res.body) return res.text();
  const reader = res.body.getReader();
  const parts = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_ANSWER_BYTES) {
      reader.cancel();
      throw over();
    }
    parts.push(value);
  }
  return new TextDecoder().decode(V.concat(...parts));
}

export class LightClient {
  // store: a LightStore of the chain; node: the primary Node; clock() -> ms.
  constructor(store, node, { periodMs = TRUSTING_PERIOD_MS, clock = Date.now, witnessWaitMs = WITNESS_WAIT_MS } = {}) {
    this.store = store;
    this.node = node;
    this.periodMs = periodMs;
    this.clock = clock;
    this.witnessWaitMs = witnessWaitMs;
    this.verified = 0; // headers verified by this object (the CLI's verified_headers)
  }

  get chainId() {
    return this.store.chainId;
  }

  async fetch(node, height) {
    return parseLightBlock(await node.header(height), this.chainId, height ?? undefined);
  }

  // ------------------------------------------------------------ roots of trust

  // Header 1 as the root of trust; it must name `setHash` (the genesis set's
  // hash, or a pinned one) when one is given. Mirrors LightClient.trust_genesis.
  async trustGenesis(setHash = null) {
    const block = await this.fetch(this.node, 1);
    if (setHash && !V.equal(block.header.validators_hash, setHash)) {
      throw new V.VerifyError("validator_set_mismatch", "header 1 is not signed by the trusted validator set");
    }
    await this.store.add(block, true);
    await this.store.save();
    this.verified++;
    return block;
  }

  // The node's header at `height` whose hash the user gives, as the root of
  // trust. Mirrors LightClient.trust_hash.
  async trustHash(height, hashHex) {
    const block = await this.fetch(this.node, height);
    if (block.hashHex !== hashHex) {
      throw new V.VerifyError("header_mismatch", `the node's header ${height} is ${block.hashHex}, not the trusted ${hashHex}`);
    }
    await this.checkKnown(block, this.node);
    await this.store.add(block, true);
    await this.store.save();
    this.verified++;
    return block;
  }

  // The node's newest header, when it names `setHash` (a pinned validator set),
  // as the root of trust: the page's pin names a set, not a height.
  async trustSet(setHash) {
    const block = await this.fetch(this.node, null);
    if (!V.equal(block.header.validators_hash, setHash)) {
      throw new V.VerifyError("pinned_set", `the node's newest header ${block.height} does not name the pinned set`);
    }
    await this.store.add(block, true);
    await this.store.save();
    this.verified++;
    return block;
  }

  // ------------------------------------------------------------ headers

  // Verify the node's header at `height` (default: its newest) and store it.
  // Mirrors LightClient.sync.
  async sync(height = null) {
    const target = await this.fetch(this.node, height);
    return this.verifyTo(target, this.node);
  }

  // Verify `target` from the store by bisection; headers come from `node`.
  // Mirrors LightClient.verify_to.
  async verifyTo(target, node) {
    await this.checkKnown(target, node);
    if (this.store.get(target.height)) return target;
    let trusted = this.store.atOrBelow(target.height);
    if (!trusted) {
      throw new V.VerifyError("below_trust_root", `height ${target.height} is below the root of trust ${this.store.rootHeight}`);
    }
    const pending = [target];
    let steps = 0;
    try {
      while (pending.length) {
        if (++steps > MAX_VERIFY_STEPS) throw new V.VerifyError("malformed", "bisection did not end; the node's headers are looping");
        const candidate = pending[pending.length - 1];
        try {
          await this.verifyStep(trusted, candidate, node);
        } catch (err) {
          if (!(err instanceof InsufficientTrust)) throw err;
          const pivot = Math.floor((trusted.height + candidate.height) / 2);
          const block = await this.fetch(node, pivot);
          await this.checkKnown(block, node);
          pending.push(block);
          continue;
        }
        await this.store.add(candidate);
        this.verified++;
        trusted = pending.pop();
      }
    } finally {
      await this.store.save(); // what verified stays verified, whatever refused the rest
    }
    return target;
  }

  // Mirrors LightClient._verify_step.
  async verifyStep(trusted, target, node) {
    const now = this.clock();
    if (target.height === trusted.height + 1) {
      await verifyAdjacent(trusted, target, (t) => this.nextSet(t, node), now, this.periodMs);
    } else {
      verifySkipping(trusted, target, now, this.periodMs);
    }
  }

  // Mirrors LightClient._next_set.
  async nextSet(trusted, node) {
    const doc = await node.get(`/v1/light/proofs/validators/${trusted.height + 1}?height=${trusted.height}`);
    return verifyNextSet(doc, trusted);
  }

  // A header at a height already verified must be that one; one with a valid
  // certificate of the verified set is a fork. Mirrors LightClient._check_known.
  async checkKnown(block, node) {
    const known = this.store.get(block.height);
    if (!known || known.hashHex === block.hashHex) return;
    try {
      await this.signedByKnown(block, known);
    } catch (err) {
      throw new V.VerifyError("bad_certificate",
        `header ${block.height} from ${node.url || "the node"} is not the verified one and its certificate ` +
        `is not of the verified set: ${err.message}`);
    }
    throw new ForkError(block.height, known.hashHex, block.hashHex, node.url || "the node");
  }

  // More than 2/3 of the verified set's power signed `block`, whatever set its
  // header names (focusflow.consensus.certificate.verify_certificate against
  // the known set).
  async signedByKnown(block, known) {
    const cert = block.cert;
    const message = V.voteSignBytes(this.chainId, cert.height, cert.round, V.PRECOMMIT, cert.value_id);
    const power = new Map(known.validators.map((v) => [V.toHex(v.public_key), v.power]));
    const seen = new Set();
    let signed = 0n;
    for (const s of cert.signatures) {
      const key = V.toHex(s.public_key);
      if (seen.has(key) || !power.has(key)) throw new V.VerifyError("cert_non_member", `signer ${key} is not of the verified set`);
      seen.add(key);
      if (!(await V.ed25519Verify(s.public_key, s.signature, message))) {
        throw new V.VerifyError("cert_signature", `bad precommit signature of ${key}`);
      }
      signed += power.get(key);
    }
    if (cert.height !== BigInt(block.height) || !V.equal(cert.value_id, block.hash) ||
        3n * signed <= 2n * known.totalPower) {
      throw new V.VerifyError("cert_power", "the verified set did not sign it");
    }
  }

  // Compare `witness`'s header at block.height with the verified one; a
  // different header is verified from the root of trust with the witness's own
  // headers (never stored): if it verifies, the two nodes show a fork
  // (ForkError); if not, the witness lied (its VerifyError).
  // Mirrors LightClient.check_witness.
  async checkWitness(witness, block) {
    const other = await this.fetchReached(witness, block.height);
    if (other.hashHex === block.hashHex) return;
    const root = this.store.root();
    if (!root || root.height >= other.height) {
      await this.checkKnown(other, witness);
      return;
    }
    const scratch = new LightClient(new MemoryStore(this.chainId, root), witness, {
      periodMs: this.periodMs,
      clock: this.clock,
    });
    await scratch.verifyTo(other, witness);
    throw new ForkError(block.height, block.hashHex, other.hashHex, witness.url);
  }

  // The witness's header at `height`, asked again while it has not committed
  // it yet (or, from another origin, cannot say so). Mirrors
  // LightClient._fetch_reached.
  async fetchReached(witness, height) {
    const deadline = Date.now() + this.witnessWaitMs;
    for (;;) {
      try {
        return await this.fetch(witness, height);
      } catch (err) {
        if (!(err instanceof NodeError) || !["unknown_block", "unreachable", "http_404"].includes(err.code)) throw err;
        if (Date.now() >= deadline) {
          throw new NodeError("witness_lagging",
            `the witness ${witness.url} has no header ${height} after ${this.witnessWaitMs / 1000} s: it is behind the primary`);
        }
      }
      await new Promise((r) => setTimeout(r, WITNESS_POLL_MS));
    }
  }
}
