// A particle's links and neighbourhood in the browser, each link proven.
//
// `verifyLinks` mirrors focusflow.light.answers.verify_links: a page of
// GET /v1/light/proofs/links/{cid} names a block the light client verified,
// and every link it returns lies in a /graph/links/<height,tx,msg> message
// whose value is proven against that block's state root. What it cannot
// prove is that a page holds all of a particle's links: the state commits
// links per message, with no per-particle index, so a node may leave links
// out (docs/light.md). `neighbourhood` walks pages hop by hop into a graph the
// page computes personal focus on (focus.js), bounded in links, particles and
// requests, and says it is complete only as far as the node's word goes.

import * as V from "../verify.js";
import { checkAnchor, provenValue } from "./rules.js";

const utf8 = new TextEncoder();
export const LINKS_PREFIX = utf8.encode("/graph/links/");
export const LINKS_KEY_BYTES = LINKS_PREFIX.length + 8 + 4 + 2; // focusflow.state_schema.links
export const PAGE_LIMIT = 100; // focusflow.api.routes_light.MAX_LINKS
// A walk's bounds: what one personal-focus computation may fetch at most.
export const MAX_WALK_LINKS = 100_000;
export const MAX_WALK_REQUESTS = 2_000;
export const MAX_HOPS = 3;

const fail = (check, message) => {
  throw new V.VerifyError(check, message);
};

function startsWith(bytes, prefix) {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

// One page of `cid`'s links in `direction` ("out" or "in") against the verified
// block of the page's height: {links: [{from, to, neuron}], unproven, total, height}.
// Links no message made (genesis links) are counted in `unproven` and left out.
export async function verifyLinks(doc, block, cid, direction) {
  checkAnchor(doc, block);
  const raw = V.cidToBytes(cid);
  const { messages, links } = doc;
  if (!Array.isArray(messages) || !Array.isArray(links)) fail("malformed", "links and messages are lists");
  if (messages.length > PAGE_LIMIT || links.length > PAGE_LIMIT) fail("malformed", `a page holds at most ${PAGE_LIMIT} links`);
  const proven = [];
  for (const part of messages) {
    if (!part || typeof part !== "object" || typeof part.key !== "string") fail("malformed", "a key proof is a JSON object");
    const key = V.fromHex(part.key, "message key");
    if (key.length !== LINKS_KEY_BYTES || !startsWith(key, LINKS_PREFIX)) {
      fail("wrong_value", "a proven message key is not a /graph/links key");
    }
    const value = await provenValue(part, key, block, `link message ${part.key}`);
    if (value === null) fail("bad_proof", `link message ${part.key} is proven absent`);
    const row = V.cborDecode(value, "link message");
    if (!(Array.isArray(row) && row.length === 2 && Array.isArray(row[1]))) {
      fail("wrong_value", "the proven link message is not [neuron, links]");
    }
    proven.push(row);
  }
  const out = [];
  let unproven = 0;
  for (const link of links) {
    if (!link || typeof link !== "object") fail("malformed", "a link is a JSON object");
    let src, dst;
    try {
      src = V.cidToBytes(link.from);
      dst = V.cidToBytes(link.to);
    } catch {
      fail("malformed", "a link's from/to is not a CID");
    }
    if (!V.equal(direction === "out" ? src : dst, raw)) fail("wrong_value", `link ${link.from} -> ${link.to} does not touch ${cid}`);
    const m = link.message;
    if (m === null || m === undefined) {
      unproven++;
      continue;
    }
    if (!(Number.isInteger(m) && m >= 0 && m < proven.length)) fail("malformed", "a link names no proven message");
    const [neuron, pairs] = proven[m];
    const inMessage = pairs.some((p) => Array.isArray(p) && p.length >= 2 &&
      p[0] instanceof Uint8Array && p[1] instanceof Uint8Array && V.equal(p[0], src) && V.equal(p[1], dst));
    if (!inMessage) fail("wrong_value", `link ${link.from} -> ${link.to} is not in its proven message`);
    out.push({ from: link.from, to: link.to, neuron: neuron instanceof Uint8Array ? V.toHex(neuron) : String(neuron) });
  }
  return { links: out, unproven, total: Number.isInteger(doc.total) ? doc.total : -1, height: doc.height };
}

// Every page of `cid`'s links in `direction`, each verified against the light
// client's header of its height; at most `budget.links` links and
// `budget.requests` requests are spent (budget is shared by a walk).
export async function allLinks(client, cid, direction, budget) {
  const got = [];
  let unproven = 0, total = 0, offset = 0, height = null;
  for (;;) {
    if (budget.requests <= 0 || budget.links <= 0) return { links: got, unproven, total, height, cut: true };
    budget.requests--;
    const path = `/v1/light/proofs/links/${encodeURIComponent(cid)}?direction=${direction}` +
      `&offset=${offset}&limit=${PAGE_LIMIT}`;
    const doc = await client.node.get(path);
    if (!Number.isSafeInteger(doc?.height) || doc.height < 1) fail("malformed", "a links page names no height");
    const block = await client.sync(doc.height);
    const page = await verifyLinks(doc, block, cid, direction);
    height = page.height;
    total = page.total;
    const served = page.links.length + page.unproven;
    const kept = Math.min(page.links.length, budget.links);
    got.push(...page.links.slice(0, kept));
    budget.links -= kept;
    unproven += page.unproven;
    offset += served;
    if (kept < page.links.length) return { links: got, unproven, total, height, cut: true };
    if (served === 0 || offset >= total) return { links: got, unproven, total, height, cut: false };
  }
}

// The `hops`-hop neighbourhood of `cid` (both directions), as proven links: a
// graph for focus.js ({n, cids, src, dst, w}: each distinct (from, to, neuron)
// link weighs 1, since a neuron's stake per link needs its count of links, which
// the state does not commit) with what was fetched and what was left out.
export async function neighbourhood(client, cid, { hops = 1, maxLinks = MAX_WALK_LINKS, maxRequests = MAX_WALK_REQUESTS } = {}) {
  if (!(Number.isInteger(hops) && hops >= 1 && hops <= MAX_HOPS)) fail("malformed", `hops is 1 to ${MAX_HOPS}`);
  const t0 = performance.now();
  // Particles by their bytes: a CID spelled two ways is one particle.
  const keyOf = (c) => V.toHex(V.cidToBytes(c)); // refuses a start that is no CID before any request
  const index = new Map([[keyOf(cid), 0]]);
  const cids = [cid];
  const seen = new Set();
  const src = [], dst = [], w = [];
  const budget = { links: maxLinks, requests: maxRequests };
  let unproven = 0, cut = false, frontier = [cid];
  const heights = new Set();
  const at = (c) => {
    const k = keyOf(c);
    let i = index.get(k);
    if (i === undefined) {
      i = cids.length;
      index.set(k, i);
      cids.push(c);
      fresh.push(c);
    }
    return i;
  };
  let fresh = [];
  for (let hop = 0; hop < hops && frontier.length && !cut; hop++) {
    fresh = [];
    for (const p of frontier) {
      for (const direction of ["out", "in"]) {
        const page = await allLinks(client, p, direction, budget);
        if (page.height !== null) heights.add(page.height);
        unproven += page.unproven;
        cut ||= page.cut;
        for (const link of page.links) {
          const key = `${keyOf(link.from)} ${keyOf(link.to)} ${link.neuron}`;
          if (seen.has(key)) continue; // the same link, seen from its other end
          seen.add(key);
          const a = at(link.from), b = at(link.to);
          src.push(a);
          dst.push(b);
          w.push(1);
        }
        if (cut) break;
      }
      if (cut) break;
    }
    frontier = fresh;
  }
  return {
    n: cids.length, cids, src, dst, w,
    links: src.length, unproven, cut,
    heights: [...heights].sort((a, b) => a - b),
    requests: maxRequests - budget.requests,
    ms: performance.now() - t0,
  };
}
