// Small pieces the page's modules share: building elements and spelling values.
// Every string from the node goes into the page through these as text
// (textContent, attributes), never as HTML.

// Longest text a label carries into the page: the node's text of a particle is
// anyone's words, of any length.
const LABEL_CHARS = 200;

export const $ = (id) => document.getElementById(id);

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// Replace a node's children, leaving out the null ones (conditional parts).
export function fill(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

// Parts of the page built again as blocks arrive: the top particles, the recent
// blocks, an open particle's links and their pager. A click is a press and a
// release on one element, so a part replaced between the two would swallow the
// click, or open the row that slid under the pointer. While a button is down
// inside such a part its new content waits, and goes in just after the release
// has made its click (a task after the release's events), or after HOLD_MS if no
// release comes.
const HOLD_MS = 3000;
const hold = { target: null, turn: 0, timer: 0 };
const waiting = new Map(); // part -> builder of its content, the latest one asked

function release(turn) {
  if (turn !== hold.turn || hold.target === null) return;
  hold.target = null;
  clearTimeout(hold.timer);
  const due = [...waiting];
  waiting.clear();
  for (const [part, build] of due) part.replaceChildren(...build());
}

document.addEventListener("pointerdown", (e) => {
  const turn = ++hold.turn;
  hold.target = e.target;
  clearTimeout(hold.timer);
  hold.timer = setTimeout(() => release(turn), HOLD_MS);
}, true);
for (const type of ["pointerup", "pointercancel"]) {
  document.addEventListener(type, () => {
    const turn = hold.turn;
    setTimeout(() => release(turn), 0);
  }, true);
}

// Put build()'s elements into a live part of the page now, or after a press held
// inside it. build runs when they go in, so they show the page's state of then.
export function renderLive(part, build) {
  if (hold.target !== null && part.contains(hold.target)) {
    waiting.set(part, build);
    return;
  }
  part.replaceChildren(...build());
}

// A row that opens what it stands for wherever it is clicked, not only on its
// link; a click that ends a text selection inside it opens nothing.
export function clickable(row, open) {
  row.classList.add("opens");
  row.addEventListener("click", () => {
    const selection = window.getSelection();
    if (selection && !selection.isCollapsed && row.contains(selection.anchorNode)) return;
    open();
  });
  return row;
}

export function shortHex(hex) {
  return hex ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : "–";
}

export function shortCid(cid) {
  return cid.length > 16 ? `${cid.slice(0, 6)}…${cid.slice(-6)}` : cid;
}

// A particle's text as the node gives it (a string, or null when it knows none),
// one line and bounded; null for anything else.
export function textOf(value) {
  if (typeof value !== "string") return null;
  const line = value.replace(/\s+/g, " ").trim();
  if (!line) return null;
  return line.length > LABEL_CHARS ? `${line.slice(0, LABEL_CHARS - 1)}…` : line;
}

export function percent(focus) {
  if (!(focus > 0)) return "0 %";
  const p = focus * 100;
  return `${p >= 0.01 ? p.toPrecision(3) : p.toExponential(2)} %`;
}

// A quantity such as a link's weight (stake summed over the edge's links), spelled
// for people: 4.76e10 reads "47.6B", 1234 "1.23K". Callers put the exact number in
// the element's title. Below a thousandth the exponent stays (it is the only
// honest short form).
const COMPACT = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 3 });

export function amount(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  if (value !== 0 && Math.abs(value) < 1e-3) return value.toExponential(2);
  return COMPACT.format(value);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`;
}

export function age(ms) {
  if (!ms) return "–";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return new Date(ms).toLocaleString();
}
