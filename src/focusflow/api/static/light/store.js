// The browser light client's verified headers, kept in IndexedDB so that a
// reload resumes from them instead of from the root of trust.
//
// Only headers that verified are stored: the root of trust and those verified
// since, newest MAX_BLOCKS kept (the root and the newest always stay), one
// record per height under the chain id. Read back, each is re-checked against
// its hash and set hash, not its signatures (they were checked before it was
// written). Mirrors focusflow.light.store.LightStore.

import { parseLightBlock } from "./rules.js";

export const DB_NAME = "focusflow-light";
const DB_VERSION = 1;
// focusflow.light.store.MAX_BLOCKS
export const MAX_BLOCKS = 256;

const request = (req) =>
  new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

function openDb() {
  const req = indexedDB.open(DB_NAME, DB_VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    db.createObjectStore("blocks", { keyPath: ["chain_id", "height"] });
    db.createObjectStore("meta", { keyPath: "chain_id" });
  };
  return request(req);
}

const done = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });

export class LightStore {
  constructor(db, chainId) {
    this.db = db;
    this.chainId = chainId;
    this.blocks = new Map(); // height -> light block
    this.heights = []; // ascending
    this.rootHeight = null;
    this.rootSince = null; // when this browser took the root of trust (ms)
    this.rootFrom = null; // what it was taken from, in words
    this.rootNodesWord = false; // taken on the node's word (nothing pinned or given)
    this.added = new Set(); // heights added since the last save
    this.dropped = new Set(); // and dropped
  }

  // The store of `chainId` in this browser (empty when there is none yet).
  // Mirrors LightStore.open.
  static async open(chainId) {
    const db = await openDb();
    const store = new LightStore(db, chainId);
    const tx = db.transaction(["blocks", "meta"], "readonly");
    const range = IDBKeyRange.bound([chainId, 0], [chainId, Number.MAX_SAFE_INTEGER]);
    const [docs, meta] = await Promise.all([
      request(tx.objectStore("blocks").getAll(range)),
      request(tx.objectStore("meta").get(chainId)),
    ]);
    try {
      for (const d of docs) store.put(await parseLightBlock(d.doc, chainId, d.height, { signatures: false }));
      store.rootHeight = meta?.root_height ?? null;
      store.rootSince = meta?.root_since ?? null;
      store.rootFrom = meta?.root_from ?? null;
      store.rootNodesWord = meta?.root_nodes_word ?? false;
      if (store.rootHeight !== null && !store.blocks.has(store.rootHeight)) throw new Error("root block missing");
    } catch {
      // an unreadable store is started again from the root of trust
      await store.clear();
    }
    return store;
  }

  get size() {
    return this.heights.length;
  }

  put(block) {
    if (!this.blocks.has(block.height)) {
      let i = this.heights.length;
      while (i > 0 && this.heights[i - 1] > block.height) i--;
      this.heights.splice(i, 0, block.height);
    }
    this.blocks.set(block.height, block);
  }

  // Record a verified block (root: the root of trust); save() writes it.
  // Mirrors LightStore.add.
  async add(block, root = false) {
    this.put(block);
    if (root || this.rootHeight === null) {
      this.rootHeight = block.height;
      this.rootSince = Date.now();
    }
    this.added.add(block.height);
    while (this.heights.length > MAX_BLOCKS + 1) {
      const drop = this.heights.find((h) => h !== this.rootHeight);
      this.heights.splice(this.heights.indexOf(drop), 1);
      this.blocks.delete(drop);
      this.added.delete(drop);
      this.dropped.add(drop);
    }
  }

  // Write what was added and dropped since the last save, in one transaction
  // (all or nothing: a crash leaves the old store or the new one).
  // Mirrors LightStore.save.
  async save() {
    if (!this.added.size && !this.dropped.size) return;
    const tx = this.db.transaction(["blocks", "meta"], "readwrite");
    const blocks = tx.objectStore("blocks");
    for (const h of this.added) blocks.put({ chain_id: this.chainId, height: h, doc: this.blocks.get(h).doc });
    for (const h of this.dropped) blocks.delete([this.chainId, h]);
    this.added.clear();
    this.dropped.clear();
    tx.objectStore("meta").put({
      chain_id: this.chainId,
      root_height: this.rootHeight,
      root_since: this.rootSince,
      root_from: this.rootFrom,
      root_nodes_word: this.rootNodesWord,
    });
    await done(tx);
  }

  get(height) {
    return this.blocks.get(height) ?? null;
  }

  latest() {
    return this.heights.length ? this.blocks.get(this.heights[this.heights.length - 1]) : null;
  }

  root() {
    return this.rootHeight === null ? null : this.blocks.get(this.rootHeight);
  }

  // The newest verified block at `height` or below. Mirrors LightStore.at_or_below.
  atOrBelow(height) {
    for (let i = this.heights.length - 1; i >= 0; i--) {
      if (this.heights[i] <= height) return this.blocks.get(this.heights[i]);
    }
    return null;
  }

  // Forget this chain's headers (the user starts again from a root of trust).
  async clear() {
    this.blocks.clear();
    this.heights = [];
    this.added.clear();
    this.dropped.clear();
    this.rootHeight = null;
    this.rootSince = null;
    const tx = this.db.transaction(["blocks", "meta"], "readwrite");
    tx.objectStore("blocks").delete(IDBKeyRange.bound([this.chainId, 0], [this.chainId, Number.MAX_SAFE_INTEGER]));
    tx.objectStore("meta").delete(this.chainId);
    await done(tx);
  }
}

// A store that lives in memory only: a witness's chain is checked in one
// (focusflow.light.client._ScratchStore), and it serves when IndexedDB is refused.
export class MemoryStore extends LightStore {
  constructor(chainId, root = null) {
    super(null, chainId);
    if (root) {
      this.put(root);
      this.rootHeight = root.height;
      this.rootSince = Date.now();
    }
  }

  async save() {
    this.added.clear();
    this.dropped.clear();
  }

  async clear() {
    this.blocks.clear();
    this.heights = [];
    this.rootHeight = null;
  }
}
