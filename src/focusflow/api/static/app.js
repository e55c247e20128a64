// The node's web page: status, top particles, one particle and its links, recent
// blocks, the validators and their last votes, the exchange's pools, all kept
// live over the WebSocket /v1/ws. The API contract is docs/api.md. Plain
// modules, no framework; the one library, Cytoscape.js for the graph, ships in
// vendor/ (web/build). Every string from the node reaches the page through
// textContent, never as HTML.

import { ApiError, api, enc, nameRegistered, particleExists } from "./api.js";
import { Blocks } from "./blocks.js";
import { $, age, amount, clickable, duration, fill, h, percent, renderLive, shortCid, shortHex, textOf } from "./dom.js";
import { LinkGraph } from "./graph.js";
import { loadPools } from "./pools.js";
import { loadNetwork } from "./network.js";
import { Verifier, setMark } from "./verified.js";

const TOP_K = 20;
const LINKS_PAGE = 12; // neighbours each way on one page of the graph and the list
const REFRESH_GAP_MS = 400; // at most one status/top refresh per this interval
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const KNOWN_MAX = 5000; // CIDs remembered as in the graph, before the set starts over
const CID_RE = /^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{40,})$/;
const NAME_RE = /^[a-z][a-z0-9-]{1,30}[a-z0-9]$/;

// ---------------------------------------------------------------- small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Run fn at most once at a time and at most once per gap; calls made meanwhile
// fold into one more run afterwards.
function coalesce(fn, gap) {
  let running = false;
  let again = false;
  let last = 0;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const wait = last + gap - Date.now();
      if (wait > 0) await sleep(wait);
      last = Date.now();
      await fn();
    } finally {
      running = false;
      if (again) {
        again = false;
        run();
      }
    }
  };
  return run;
}

// Words people typed for a CID (text or name), remembered in this browser only:
// the chain keeps CIDs, not the text behind them.
const labels = (() => {
  const KEY = "focusflow.labels";
  let map = {};
  try {
    map = JSON.parse(localStorage.getItem(KEY) || "{}") || {};
  } catch {
    map = {};
  }
  return {
    get: (cid) => map[cid],
    set(cid, label) {
      map[cid] = label;
      const keys = Object.keys(map);
      if (keys.length > 500) delete map[keys[0]];
      try {
        localStorage.setItem(KEY, JSON.stringify(map));
      } catch {
        // private mode or full: labels last for this page only
      }
    },
  };
})();

// A particle's name on the page: the node's text of it when the answer carries
// one, else the words this browser searched it by, else its shortened CID.
const labelOf = (cid, text) => textOf(text) || labels.get(cid) || shortCid(cid);

// Particles this page has seen in the node's answers: opening one needs no check
// that it exists first (a particle, once in the graph, stays in it).
const known = new Set();

function seen(cids) {
  if (known.size > KNOWN_MAX) known.clear();
  for (const cid of cids) known.add(cid);
}

// ---------------------------------------------------------------- errors

function showError(err, context, source = "user") {
  const code = err instanceof ApiError ? err.code : "error";
  $("error-text").textContent = `${context}: ${err.message} (${code})`;
  $("error").dataset.code = code;
  $("error").dataset.source = source;
  $("error").hidden = false;
}

function clearError(source) {
  if (!source || $("error").dataset.source === source) $("error").hidden = true;
}

// ---------------------------------------------------------------- status

const state = {
  height: 0, particle: null, seq: 0, validator: null, chainId: null, top: null,
  info: null, lastName: null, pages: { in: 0, out: 0 },
};

// Verified mode (verified.js): checks the header and the values on show.
const verifier = new Verifier({ api, chainId: () => state.chainId });

// A mark for a checked value, shown in verified mode only.
function vmark(id) {
  const m = h("span", { class: "vmark", dataset: { verified: "pending" } }, "…");
  if (id) m.id = id;
  m.hidden = !verifier.on;
  return m;
}

function setStatus(s) {
  $("chain-id").textContent = s.chain_id;
  state.chainId = s.chain_id;
  state.validator = s.validator;
  setHeight(s.height, s.latest_block_time_ms);
  $("focus-iterations").textContent = s.focus?.iterations ?? "–";
  $("focus-seconds").textContent = duration(s.focus?.seconds);
  $("particles-count").textContent = s.focus?.particles ?? "–";
  $("links-count").textContent = s.focus?.links ?? "–";
  $("neurons-count").textContent = s.focus?.neurons ?? "–";
  $("mempool").textContent = s.mempool ? `${s.mempool.txs} txs` : "–";
}

function setHeight(height, timeMs) {
  if (height < state.height) return; // an older answer arriving late
  state.height = height;
  $("height").textContent = String(height);
  $("block-age").dataset.time = timeMs || "";
  $("block-age").textContent = age(timeMs);
}

async function loadStatus() {
  setStatus(await api("/v1/status"));
}

// ---------------------------------------------------------------- top particles

async function loadTop() {
  const top = await api(`/v1/focus/top?k=${TOP_K}`);
  const list = $("top-list");
  const max = top.particles[0]?.focus || 1;
  seen(top.particles.map((p) => p.cid));
  renderLive(list, () =>
    top.particles.map((p) =>
      clickable(
        h(
          "li",
          {
            dataset: { cid: p.cid, rank: p.rank, focusQ: p.focus_q },
            class: p.cid === state.particle ? "current" : "",
            title: `${p.cid}\nfocus ${p.focus}`,
          },
          h("button", { type: "button", class: "link" }, labelOf(p.cid, p.text)),
          h("span", { class: "focus" }, percent(p.focus), vmark()),
          h("span", { class: "bar", style: `width:calc((100% - 2.3rem) * ${(p.focus / max).toFixed(3)})` }),
        ),
        () => openParticle(p.cid),
      ),
    ),
  );
  $("top-empty").hidden = top.particles.length > 0;
  $("top-height").textContent = `at height ${top.height}`;
  state.top = top;
  verifyTop();
}

// Each focus in the top list against its particle's proof (verified mode).
function verifyTop() {
  const top = state.top;
  if (!verifier.on || !top) return;
  for (const p of top.particles) {
    verifier.focus(p.cid, p.focus_q, top.height, (r) => {
      const li = [...$("top-list").children].find((x) => x.dataset.cid === p.cid);
      if (li && li.dataset.focusQ === String(p.focus_q)) setMark(li.querySelector(".vmark"), r.state, r.title);
    });
  }
}

// ---------------------------------------------------------------- blocks

const blocks = new Blocks({ onOpen: (height) => go(`#/block/${height}`) });

async function openBlock(height) {
  try {
    await blocks.show(height);
    clearError("user");
  } catch (err) {
    showError(err, `block ${height}`);
  }
}

const fillBlockGap = coalesce(async () => {
  try {
    await blocks.load();
  } catch (err) {
    showError(err, "blocks", "refresh");
  }
}, 1000);

function addBlock(b) {
  const newest = blocks.newest();
  blocks.merge([b]);
  if (newest !== undefined && b.height > newest + 1) fillBlockGap(); // missed some
}

// ---------------------------------------------------------------- validators

function shortAddress(address) {
  return address.length > 16 ? `${address.slice(0, 10)}…${address.slice(-4)}` : address;
}

function validatorRow(v, total) {
  const vote = v.last_vote;
  const share = total > 0 ? ` (${percent(v.power / total)})` : "";
  return h(
    "tr",
    {
      dataset: {
        address: v.address,
        proposer: String(v.proposer),
        voteHeight: vote ? vote.height : "",
        voteType: vote ? vote.type : "",
      },
      class: v.proposer ? "proposer" : "",
    },
    h("td", { class: "hex", title: `${v.address}\npublic key ${v.public_key}` },
      shortAddress(v.address),
      v.address === state.validator ? h("span", { class: "self" }, "this node") : null),
    h("td", {}, `${v.power}${share}`),
    h("td", {}, String(v.proposer_priority)),
    h("td", {}, v.proposer ? "proposes" : ""),
    h("td", { class: "vote-type" }, vote ? vote.type : "none seen"),
    h("td", {}, vote ? `${vote.height}/${vote.round}` : "–"),
    h("td", { class: "hex", title: vote ? vote.value_id || "nil" : "" },
      vote ? (vote.value_id ? shortHex(vote.value_id) : "nil") : "–"),
    vote ? h("td", { class: "age", dataset: { time: vote.time_ms } }, age(vote.time_ms)) : h("td", {}, "–"),
  );
}

async function loadValidators() {
  const c = await api("/v1/validators");
  $("consensus-position").textContent = `height ${c.height}, round ${c.round}, ${c.step}`;
  $("validators").replaceChildren(...c.validators.map((v) => validatorRow(v, c.total_power)));
}

// ---------------------------------------------------------------- one particle

const graph = new LinkGraph($("graph"), {
  onOpen: (cid) => openParticle(cid),
  onMore: (direction) => turnPage(direction, 1),
  label: labelOf,
});

function stat(label, id, value) {
  return h("div", {}, h("dt", {}, label), h("dd", { id }, value));
}

// One row of the open particle's links list: a click anywhere on it opens the
// neighbour.
function linkRow(l, direction) {
  return clickable(
    h("tr", { dataset: { cid: l.cid, direction }, title: `${l.cid}\nweight ${l.weight}` },
      h("td", { class: "direction" }, direction === "in" ? "← in" : "out →"),
      h("td", {}, h("button", { type: "button", class: "link" }, labelOf(l.cid, l.text))),
      h("td", { class: "num", title: `weight ${l.weight}` }, amount(l.weight)),
      h("td", { class: "num" }, percent(l.focus))),
    () => openParticle(l.cid),
  );
}

// "in 13–24 of 300 ‹ ›": where the list and the graph are in a direction's links.
function pager(direction, page) {
  const { offset, total } = page;
  const last = Math.min(offset + page.links.length, total);
  const span = total ? `${offset + 1}–${last} of ${total}` : "none";
  const prev = h("button", { type: "button", id: `${direction}-prev`, "aria-label": `previous links ${direction}`,
    onclick: () => turnPage(direction, -1) }, "‹");
  const next = h("button", { type: "button", id: `${direction}-next`, "aria-label": `next links ${direction}`,
    onclick: () => turnPage(direction, 1) }, "›");
  prev.disabled = offset === 0;
  next.disabled = offset + page.links.length >= total;
  return h("span", { class: "pager", id: `pager-${direction}`, dataset: { offset, total } },
    `${direction === "in" ? "links in" : "links out"} ${span} `, prev, next);
}

function renderLinks(inPage, outPage) {
  renderLive($("links-pager"), () => [pager("in", inPage), pager("out", outPage)]);
  renderLive($("links"), () => [
    ...inPage.links.map((l) => linkRow(l, "in")),
    ...outPage.links.map((l) => linkRow(l, "out")),
  ]);
  $("links-box").hidden = inPage.total + outPage.total === 0;
}

function renderParticle(info, inPage, outPage) {
  const box = $("particle");
  box.dataset.cid = info.cid;
  box.dataset.focusQ = info.focus_q;
  const text = textOf(info.text);
  const words = labels.get(info.cid);
  const named = state.lastName?.cid === info.cid ? state.lastName.name : null;
  fill(box,
    text ? h("p", { class: "label", id: "particle-text" }, text) : null,
    words && words !== text ? h("p", { class: "label" }, h("span", { id: "particle-label" }, words),
      named ? vmark("name-mark") : null) : null,
    h("p", {}, h("code", { id: "particle-cid", class: "cid" }, info.cid)),
    h(
      "dl",
      { class: "stats" },
      h("div", {}, h("dt", {}, "focus"),
        h("dd", {}, h("span", { id: "particle-focus" }, percent(info.focus)), vmark("particle-focus-mark"))),
      stat("rank", "particle-rank", String(info.rank)),
      stat("links in", "particle-links-in", String(info.links_in)),
      stat("links out", "particle-links-out", String(info.links_out)),
      stat("at height", "particle-height", String(info.height)),
    ),
  );
  seen([...inPage.links, ...outPage.links].map((l) => l.cid));
  graph.show({ cid: info.cid, focus: info.focus, text: info.text }, inPage, outPage);
  renderLinks(inPage, outPage);
  state.info = info;
  verifyParticle();
}

// The open particle's focus, and the name it was opened by (verified mode).
function verifyParticle() {
  const info = state.info;
  if (!verifier.on || !info || $("particle").dataset.cid !== info.cid) return;
  const q = String(info.focus_q);
  verifier.focus(info.cid, info.focus_q, info.height, (r) => {
    if ($("particle").dataset.cid === info.cid && $("particle").dataset.focusQ === q) {
      setMark($("particle-focus-mark"), r.state, r.title);
    }
  });
  const named = state.lastName;
  if (named?.cid === info.cid) {
    verifier.name(named.name, named.cid, (r) => {
      if ($("particle").dataset.cid === named.cid) setMark($("name-mark"), r.state, r.title);
    });
  }
}

// A CID nobody linked yet: the page still shows it, since it is the CID to link.
function renderUnknown(cid) {
  const box = $("particle");
  box.dataset.cid = cid;
  state.info = null;
  fill(box,
    labels.get(cid) ? h("p", { class: "label", id: "particle-label" }, labels.get(cid)) : null,
    h("p", {}, h("code", { id: "particle-cid", class: "cid" }, cid)),
    h("p", { class: "empty", id: "particle-unknown" },
      "Not in the graph yet. Link it to another particle and it gets focus."),
  );
  graph.clear();
  $("links").replaceChildren();
  $("links-box").hidden = true;
}

// Whether cid is in the graph, asked without an HTTP error for a miss; a node
// that cannot say (its query slots busy, say) is asked for the particle itself.
async function inGraph(cid) {
  if (known.has(cid) || !CID_RE.test(cid)) return true;
  try {
    return await particleExists(cid);
  } catch {
    return true;
  }
}

async function loadParticle(cid) {
  const seq = ++state.seq;
  if (!(await inGraph(cid))) {
    if (seq === state.seq) renderUnknown(cid);
    return;
  }
  let info;
  try {
    info = await api(`/v1/focus/particles/${enc(cid)}`);
  } catch (err) {
    if (seq !== state.seq) return;
    if (err.code === "unknown_particle") {
      renderUnknown(cid);
      return;
    }
    throw err;
  }
  const page = (dir) =>
    api(`/v1/particles/${enc(cid)}/links?direction=${dir}&offset=${state.pages[dir]}&limit=${LINKS_PAGE}`);
  const [inPage, outPage] = await Promise.all([page("in"), page("out")]);
  if (seq !== state.seq) return; // another particle was opened meanwhile
  renderParticle(info, inPage, outPage);
  live.subscribeFocus(cid);
}

async function openParticle(cid) {
  if (cid !== state.particle) state.pages = { in: 0, out: 0 };
  state.particle = cid;
  if (location.hash !== `#/particle/${cid}`) history.pushState(null, "", `#/particle/${cid}`);
  for (const li of $("top-list").children) li.classList.toggle("current", li.dataset.cid === cid);
  try {
    await loadParticle(cid);
    clearError("user");
  } catch (err) {
    showError(err, `particle ${shortCid(cid)}`);
  }
}

// The next (step 1) or previous (step -1) page of the open particle's links one way.
function turnPage(direction, step) {
  const total = Number($(`pager-${direction}`)?.dataset.total || 0);
  const offset = state.pages[direction] + step * LINKS_PAGE;
  if (!state.particle || offset < 0 || offset >= total) return;
  state.pages[direction] = offset;
  openParticle(state.particle);
}

const refreshParticle = coalesce(async () => {
  // only a particle on show: not one whose opening failed (a malformed CID, say)
  if (!state.particle || $("particle").dataset.cid !== state.particle) return;
  try {
    await loadParticle(state.particle);
    clearError("refresh");
  } catch (err) {
    showError(err, `particle ${shortCid(state.particle)}`, "refresh");
  }
}, 1000);

// ---------------------------------------------------------------- search

// Most matches of the node's text index listed under the search box, and the
// longest words it is asked for (the API's bound: longer ones are only hashed).
const SEARCH_RESULTS = 10;
const SEARCH_MAX_CHARS = 256;

// The particles whose text the node keeps matches the words, without case: the
// whole text first, then by prefix, then by substring (GET /v1/particles/search).
// A node that keeps no texts (or an older one) finds nothing, and the words are
// then taken as text to hash, as before the index existed.
async function searchTexts(query) {
  if (query.length > SEARCH_MAX_CHARS) return [];
  try {
    const doc = await api(`/v1/particles/search?q=${enc(query)}&limit=${SEARCH_RESULTS}`);
    return Array.isArray(doc.results) ? doc.results.filter((r) => typeof r.cid === "string" && CID_RE.test(r.cid)) : [];
  } catch {
    return [];
  }
}

// The matches as a list under the search form, each opening its particle.
function showResults(query, results) {
  let list = $("search-results");
  if (!list) {
    list = h("ul", { id: "search-results", "aria-label": "particles found" });
    $("search-form").after(list);
  }
  fill(list, ...results.map((r) => clickable(
    h("li", { dataset: { cid: r.cid, match: String(r.match) } },
      h("b", {}, textOf(r.text) ?? shortCid(r.cid)), " ", h("small", {}, `${shortCid(r.cid)} · ${r.match}`)),
    () => {
      labels.set(r.cid, textOf(r.text) ?? query);
      openParticle(r.cid).catch((err) => showError(err, `particle ${shortCid(r.cid)}`));
    },
  )));
  list.hidden = results.length === 0;
}

async function resolve(query, mode) {
  if (mode === "auto") mode = CID_RE.test(query) ? "cid" : NAME_RE.test(query) ? "name?" : "text";
  if (mode === "cid") return query;
  // in auto mode a word that names nothing is text: whether it names something is
  // asked first, so that the miss is an answer and not an HTTP error
  if (mode === "name" || (mode === "name?" && (await nameRegistered(query)))) {
    const { cid } = await api(`/v1/names/${enc(query)}`);
    labels.set(cid, query);
    state.lastName = { name: query, cid };
    return cid;
  }
  const found = await searchTexts(query);
  showResults(query, found);
  if (found.length) {
    labels.set(found[0].cid, textOf(found[0].text) ?? query);
    return found[0].cid;
  }
  const { cid } = await api(`/v1/cid?text=${enc(query)}`);
  labels.set(cid, query);
  return cid;
}

async function search(ev) {
  ev.preventDefault();
  const query = $("search").value.trim();
  if (!query) return;
  clearError("user");
  try {
    await openParticle(await resolve(query, $("search-mode").value));
  } catch (err) {
    showError(err, `search "${query}"`);
  }
}

// ---------------------------------------------------------------- refresh and live updates

const refresh = coalesce(async () => {
  try {
    await Promise.all([loadStatus(), loadTop(), loadValidators(), loadPools(), loadNetwork()]);
    verifier.head();
    // a focus shown at another height than its proof's is checked again
    if (verifier.on && $("particle-focus-mark")?.dataset.verified === "stale") refreshParticle();
    clearError("refresh");
  } catch (err) {
    showError(err, "refresh", "refresh");
  }
}, REFRESH_GAP_MS);

async function refreshAll() {
  try {
    await Promise.all([
      loadStatus(), loadTop(), blocks.load(), loadValidators(), loadPools(), loadNetwork(),
    ]);
    verifier.head(true);
    clearError("refresh");
  } catch (err) {
    showError(err, "loading", "refresh");
  }
}

function onBlock(msg) {
  const b = msg.block;
  setHeight(b.height, b.time_ms);
  if (msg.focus) {
    $("focus-iterations").textContent = msg.focus.iterations;
    $("focus-seconds").textContent = duration(msg.focus.seconds);
  }
  addBlock(b);
  refresh();
  if (state.particle && (b.n_txs ?? b.txs?.length ?? 0) > 0) refreshParticle();
}

function onFocus(msg) {
  const p = msg.particles.find((x) => x.cid === state.particle);
  if (!p || !$("particle-focus")) return;
  $("particle-focus").textContent = percent(p.focus);
  $("particle-rank").textContent = String(p.rank);
  if (state.info && state.info.cid === p.cid) {
    state.info = { ...state.info, focus: p.focus, focus_q: p.focus_q, height: msg.height };
    $("particle").dataset.focusQ = p.focus_q;
    verifyParticle();
  }
}

// The socket: subscribes to blocks (and to the open particle's focus), and comes
// back after a drop with growing pauses; a successful open resets the pause and
// reloads everything, since blocks may have passed while it was down.
class Live {
  constructor() {
    this.ws = null;
    this.attempt = 0;
    this.dropped = false;
    this.focusCid = null;
  }

  url() {
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  }

  setState(s, text) {
    $("live").dataset.state = s;
    $("live").textContent = text;
  }

  connect() {
    this.setState("connecting", "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState("open", "live");
      this.send({ subscribe: "blocks" });
      if (this.focusCid) this.send({ subscribe: "focus", particles: [this.focusCid] });
      if (this.dropped) {
        refreshAll();
        refreshParticle();
      }
    };
    ws.onmessage = (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      if (msg.type === "block") onBlock(msg);
      else if (msg.type === "focus") onFocus(msg);
      else if (msg.type === "error" && msg.error?.code !== "unknown_particle") {
        showError(new ApiError(msg.error?.code || "error", msg.error?.message || ""), "live updates", "live");
      }
    };
    ws.onclose = () => {
      if (this.ws === ws) this.retry();
    };
  }

  retry() {
    this.ws = null;
    this.dropped = true;
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.setState("down", `reconnecting in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(() => this.connect(), delay);
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  subscribeFocus(cid) {
    if (this.focusCid === cid) return;
    if (this.focusCid) this.send({ unsubscribe: "focus" });
    this.focusCid = cid;
    this.send({ subscribe: "focus", particles: [cid] });
  }
}

const live = new Live();

// ---------------------------------------------------------------- start

// The address names what is open: #/particle/<cid> or #/block/<height>.
function fromHash() {
  const particle = location.hash.match(/^#\/particle\/(.+)$/);
  if (particle && decodeURIComponent(particle[1]) !== state.particle) {
    openParticle(decodeURIComponent(particle[1]));
  }
  const block = location.hash.match(/^#\/block\/(\d{1,19})$/);
  if (block && Number(block[1]) !== blocks.open) openBlock(Number(block[1]));
}

function go(hash) {
  if (location.hash !== hash) history.pushState(null, "", hash);
  fromHash();
}

$("search-form").addEventListener("submit", search);
$("error-close").addEventListener("click", () => clearError());
window.addEventListener("popstate", fromHash);
window.addEventListener("hashchange", fromHash);
setInterval(() => {
  for (const cell of document.querySelectorAll("[data-time]")) {
    cell.textContent = age(Number(cell.dataset.time));
  }
}, 1000);

verifier.onRecheck = () => {
  verifyTop();
  verifyParticle();
};
verifier.start();
refreshAll();
fromHash();
live.connect();
