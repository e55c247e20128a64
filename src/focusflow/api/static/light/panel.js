// The light client on the page: runs in verified mode, follows the node's head
// from a root of trust (client.js), samples each new head's square (da.js), and
// shows where it stands in #light: the synced height, since when and from what
// it trusts, the data-availability confidence of the newest block, what a node
// withheld or forged, and a fork alarm. The verified mode then checks headers
// against the synced set instead of the set the node names (trusted()).

import * as V from "../verify.js";
import { ForkError, LightClient, Node, NodeError } from "./client.js";
import { DEFAULT_SAMPLES, sampleBlock } from "./da.js";
import { personalFocus, prepareGraph } from "./focus.js";
import { gpuDevice } from "./gpu.js";
import { neighbourhood } from "./links.js";
import { LightStore, MemoryStore } from "./store.js";

const WITNESS_KEY = "focusflow.witness";
const WITNESS_GAP_MS = 5000; // at most one witness comparison per this interval
const DA_PROBLEMS_KEPT = 50;
const MAX_SAMPLES = 64; // ?samples= is bounded by what one request asks
const CHAIN_ID_RETRY_MS = 1000; // one look for the chain id pending at a time
const FOCUS_SHOWN = 10; // particles listed by personal focus
const FOCUS_SCALE = 1e-15; // a committed focus value's unit (chain/focus_commit.py)

const $ = (id) => document.getElementById(id);

function setText(id, text, data = {}) {
  const el = $(id);
  if (!el) return;
  el.textContent = text;
  for (const [k, v] of Object.entries(data)) el.dataset[k] = String(v);
}

// The witness URL: ?witness=URL (remembered), else the remembered one;
// ?witness= (empty) forgets it.
function witnessUrl() {
  const given = new URLSearchParams(location.search).get("witness");
  try {
    if (given !== null) {
      if (given) localStorage.setItem(WITNESS_KEY, given);
      else localStorage.removeItem(WITNESS_KEY);
    }
    return given || localStorage.getItem(WITNESS_KEY) || "";
  } catch {
    return given || "";
  }
}

export class LightPanel {
  // chainId() -> the chain id the page shows; pin() -> the verified mode's pin
  // ({hash, ...} or null); problem(what, check, message) lists a problem.
  constructor({ chainId, pin, problem }) {
    this.chainId = chainId;
    this.pin = pin;
    this.problem = problem;
    this.node = new Node("");
    this.client = null;
    this.running = null;
    this.sampled = 0; // newest height sampled
    this.witness = witnessUrl();
    this.witnessAt = 0;
    this.fork = null;
    this.last = null; // the last sampling round
    const asked = Number(new URLSearchParams(location.search).get("samples"));
    this.samples = Number.isSafeInteger(asked) && asked >= 1 ? Math.min(asked, MAX_SAMPLES) : DEFAULT_SAMPLES;
    $("light-reset")?.addEventListener("click", () => this.reset());
    $("light-focus-form")?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.computeFocus($("light-focus-cid").value.trim());
    });
  }

  // Personal focus of `cid` over its proven neighbourhood (?hops=1..3, default 1),
  // computed here; each listed particle's committed global focus beside it,
  // verified against the same header.
  computeFocus(cid) {
    if (!this.focusing) this.focusing = this.focusRound(cid).finally(() => { this.focusing = null; });
    return this.focusing;
  }

  async focusRound(cid) {
    const status = (text, data) => setText("light-focus-status", text, data);
    const list = $("light-focus");
    list.replaceChildren();
    try {
      if (!this.client || !this.synced) await this.tick();
      if (!this.client || !this.synced) throw new V.VerifyError("not_synced", "the light client has not synced a header yet");
      const hops = Math.min(3, Math.max(1, Number(new URLSearchParams(location.search).get("hops")) || 1));
      status(`fetching the ${hops}-hop neighbourhood of ${cid} with proofs…`, { state: "fetching" });
      const hood = await neighbourhood(this.client, cid, { hops });
      // WebGPU on a hardware adapter; a software one only with ?gpu=1, none with ?gpu=0.
      if (this.gpu === undefined) {
        const asked = new URLSearchParams(location.search).get("gpu");
        const gpu = asked === "0" ? null : await gpuDevice();
        this.gpu = gpu && (!gpu.software || asked === "1") ? gpu : null;
      }
      const t0 = performance.now();
      const r = await personalFocus(prepareGraph(hood.n, hood.src, hood.dst, hood.w), [0], {}, { gpu: this.gpu });
      const ms = performance.now() - t0;
      const order = Array.from(r.focus.keys()).sort((a, b) => r.focus[b] - r.focus[a]).slice(0, FOCUS_SHOWN);
      const height = hood.heights[hood.heights.length - 1];
      const block = height ? await this.client.sync(height) : null;
      for (const i of order) {
        const li = document.createElement("li");
        const c = hood.cids[i];
        let global = "";
        if (block) {
          try {
            const answer = await this.node.get(`/v1/light/proofs/particle/${encodeURIComponent(c)}?height=${height}`);
            const { q } = await V.verifyParticleFocus(block.header, V.cidToBytes(c), answer);
            global = `, global ${(Number(q) * FOCUS_SCALE).toExponential(4)} (verified at ${height})`;
            li.dataset.globalQ = String(q);
          } catch (err) {
            if (err instanceof V.VerifyError) throw err; // a lie fails the whole answer
            global = `, global not read: ${err?.message || err}`; // e.g. stale_height: the node moved on
          }
        }
        Object.assign(li.dataset, { cid: c, focus: String(r.focus[i]) });
        li.textContent = `${c}: personal ${r.focus[i].toExponential(4)}${global}`;
        list.append(li);
      }
      const left = hood.cut ? "cut at the walk's bounds" : "complete as far as the node's word goes (a page's completeness is not provable)";
      status(`${hood.links} proven links over ${hood.n} particles, ${hood.unproven} unproven left out, ${left}; ` +
        `fetched in ${hood.ms.toFixed(0)} ms, computed in ${ms.toFixed(0)} ms on ${r.path === "webgpu" ? `WebGPU (${this.gpu.adapter})` : "the CPU"} ` +
        `(${r.iterations} iterations)`,
        { state: "done", links: hood.links, particles: hood.n, unproven: hood.unproven, cut: hood.cut, ms: ms.toFixed(1), path: r.path });
    } catch (err) {
      const why = err?.message || String(err);
      const check = err?.check || err?.code || "error";
      status(`not computed: ${why} (${check})`, { state: "failed", check });
      if (err instanceof V.VerifyError) this.problem(`links of ${cid}`, check, why);
    }
  }

  // Whether the root of trust is the node's word (header 1 taken as given).
  nodesWord() {
    return this.client?.store.rootNodesWord ?? true;
  }

  // The synced set as verifyHeader's `trusted`, or undefined before a sync.
  trusted() {
    const latest = this.client?.store.latest();
    if (!latest || !this.synced) return undefined;
    return {
      chain_id: latest.header.chain_id,
      hash: latest.header.validators_hash,
      validators: latest.validators,
      label: `synced (header ${latest.height})`,
    };
  }

  // The verified header at `height` if this client holds it (the page's own
  // header check must agree with it).
  known(height) {
    return this.client?.store.get(Number(height)) ?? null;
  }

  async reset() {
    if (this.running) await this.running.catch(() => {});
    await this.client?.store.clear();
    this.client = null;
    this.synced = false;
    this.sampled = 0;
    this.fork = null;
    $("fork-alarm").hidden = true;
    $("da-problems").replaceChildren();
    $("da-problems-box").hidden = true;
    setText("light-status", "starting again from the root of trust…", { state: "syncing", check: "" });
    this.tick();
  }

  // One round: open the store, take a root of trust if there is none, verify
  // the node's newest header, compare it with the witness, sample its square.
  tick() {
    if (this.running) return this.running;
    this.running = this.round().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  async round() {
    const chainId = this.chainId();
    if (!chainId) {
      // The page has not read the chain's id yet: look again soon rather than at
      // the next block, which a stalled chain may never make.
      this.retry ??= setTimeout(() => {
        this.retry = null;
        this.tick();
      }, CHAIN_ID_RETRY_MS);
      return;
    }
    try {
      if (!this.client) {
        let store;
        try {
          store = await LightStore.open(chainId);
        } catch {
          store = new MemoryStore(chainId); // IndexedDB refused: this page only
        }
        this.client = new LightClient(store, this.node);
        this.resumedAt = store.latest()?.height ?? null;
      }
      const client = this.client;
      const t0 = performance.now();
      const before = client.verified;
      const fromRoot = !client.store.root();
      if (fromRoot) await this.takeRoot(client);
      if (!this.synced) setText("light-status", "syncing from the root of trust…", { state: "syncing" });
      const head = await client.sync();
      this.synced = true;
      this.showSynced(head, client.verified - before, performance.now() - t0, fromRoot);
      if (this.witness && Date.now() - this.witnessAt > WITNESS_GAP_MS) {
        this.witnessAt = Date.now();
        await this.compare(client, head);
      }
      if (head.height > this.sampled) {
        this.sampled = head.height;
        await this.sample(head);
      }
    } catch (err) {
      this.failed(err);
    }
  }

  // Sample the square of a verified header; what goes wrong is about the
  // block's data, not the header.
  async sample(head) {
    try {
      this.showSample(await sampleBlock(this.node, head, this.samples));
    } catch (err) {
      const why = err?.message || String(err);
      const lie = err instanceof V.VerifyError;
      setText("light-da", `block ${head.height}: not sampled: ${why}`,
        { height: head.height, available: lie ? "false" : "unknown", confidence: 0, samples: 0, verifiedShares: 0 });
      if (lie) this.problem(`data of block ${head.height}`, err.check, why);
    }
  }

  // The witness's header at the head's height must be the head; a witness that
  // serves another one that does not verify lied (listed), one that verifies
  // shows a fork (thrown: the alarm).
  async compare(client, head) {
    try {
      await client.checkWitness(new Node(this.witness), head);
      setText("light-witness", `witness ${this.witness} agrees at height ${head.height}`,
        { height: head.height, state: "agrees" });
    } catch (err) {
      if (err instanceof ForkError) throw err;
      if (err instanceof V.VerifyError) {
        setText("light-witness", `witness ${this.witness} lied at height ${head.height}: ${err.message} (${err.check})`,
          { height: head.height, state: "lied" });
        this.problem("witness", err.check, err.message);
        return;
      }
      setText("light-witness", `witness ${this.witness} not compared: ${err.message}`,
        { height: head.height, state: "stale" });
    }
  }

  // The root of trust: the pinned set (header 1 when it names it, else the
  // node's newest header must), ?trust=HEIGHT:HASH, or else header 1 as the node gives it.
  async takeRoot(client) {
    const given = new URLSearchParams(location.search).get("trust");
    const pin = this.pin();
    if (given) {
      const m = /^(\d+):([0-9a-f]{64})$/.exec(given);
      if (!m) throw new V.VerifyError("malformed", "?trust= is HEIGHT:HASH (64 hex digits)");
      client.store.rootFrom = `header ${m[1]} of the hash given in the address`;
      await client.trustHash(Number(m[1]), m[2]);
    } else if (pin) {
      const setHash = V.fromHex(pin.hash);
      const first = await client.fetch(client.node, 1);
      client.store.rootFrom = `the pinned validator set ${pin.hash.slice(0, 12)}…`;
      if (V.equal(first.header.validators_hash, setHash)) await client.trustGenesis(setHash);
      else await client.trustSet(setHash);
    } else {
      client.store.rootFrom = "header 1 as this node gave it, the node's word (nothing pinned: pin a set, " +
        "or give ?trust=HEIGHT:HASH)";
      client.store.rootNodesWord = true;
      await client.trustGenesis(null);
    }
  }

  // `fromRoot`: this round took the root of trust; its count of verified
  // headers stays on #light-root (data-root-steps) after later rounds rewrite
  // the status line, as the cost of the first sync.
  showSynced(head, steps, ms, fromRoot = false) {
    const store = this.client.store;
    const root = store.root();
    const since = new Date(store.rootSince ?? Date.now()).toISOString().replace("T", " ").slice(0, 19);
    const resumed = this.resumedAt !== null ? `, resumed from stored header ${this.resumedAt}` : "";
    setText("light-status",
      `synced to header ${head.height} (${steps} header${steps === 1 ? "" : "s"} verified in ${ms.toFixed(0)} ms${resumed})`,
      { state: "synced", height: head.height, check: "" });
    setText("light-height", String(head.height), { height: head.height });
    setText("light-root", `root of trust: header ${root.height}, taken ${since} UTC from ${store.rootFrom}`,
      { height: root.height, since: store.rootSince ?? "", ...(fromRoot ? { rootSteps: steps } : {}) });
  }

  showSample(r) {
    this.last = r;
    const pct = (100 * r.confidence).toFixed(4);
    const whole = r.samples === r.width * r.width ? " (every share)" : "";
    setText("light-da",
      `block ${r.height}: ${r.badEncoding ? "BADLY ENCODED" : r.available ? "available" : "UNAVAILABLE"}, ` +
      `${r.verified} of ${r.samples} distinct shares ` +
      `verified${whole} of the ${r.width} x ${r.width} square; confidence ${pct} %`,
      { height: r.height, available: r.available, confidence: r.confidence, samples: r.samples, verifiedShares: r.verified });
    const list = $("da-problems");
    const listed = (kind, text, data = {}) => {
      const li = document.createElement("li");
      Object.assign(li.dataset, { kind, height: String(r.height), ...data });
      li.textContent = `block ${r.height}${text}`;
      list.prepend(li);
    };
    for (const [kind, items] of [["withheld", r.withheld], ["invalid", r.invalid]]) {
      for (const [row, col, why] of items) {
        listed(kind, `, share (${row}, ${col}): ` + (kind === "withheld" ? `not served: ${why}` : `does not verify: ${why}`),
          { row: String(row), col: String(col) });
      }
    }
    if (r.badEncoding) {
      const { axis, index } = r.badEncoding;
      listed("bad_encoding", `: badly encoded: a fraud proof shows ${axis} ${index} is not a Reed-Solomon codeword`,
        { axis, index: String(index) });
    }
    if (r.badFraudProof) listed("bad_fraud_proof", `: the node's fraud proof does not verify: ${r.badFraudProof}`);
    while (list.children.length > DA_PROBLEMS_KEPT) list.lastElementChild.remove();
    $("da-problems-box").hidden = !list.children.length;
  }

  failed(err) {
    const why = err?.message || String(err);
    if (err instanceof ForkError) {
      this.fork = err;
      const alarm = $("fork-alarm");
      alarm.hidden = false;
      alarm.dataset.height = String(err.height);
      alarm.textContent = `FORK at height ${err.height}: this node's verified header is ${err.ours}, ` +
        `${err.where} serves ${err.theirs}, and both carry valid signatures of the trusted validators. ` +
        "Trust neither until this is resolved.";
      this.problem(`light fork ${err.height}`, "fork", why);
      return;
    }
    if (err instanceof V.VerifyError) {
      setText("light-status", `not synced: ${why} (${err.check})`, { state: "failed", check: err.check });
      this.problem("header (light client)", err.check, why);
      return;
    }
    const code = err instanceof NodeError ? err.code : "error";
    setText("light-status", `not synced now: ${why}`, { state: "stale", check: code });
  }
}
