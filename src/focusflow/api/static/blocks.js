// The recent blocks: the table, where a run of empty blocks folds into one row
// (most blocks of a quiet chain carry nothing), and one block opened in full with
// its transactions' outcomes.

import { api, enc } from "./api.js";
import { $, age, clickable, fill, h, renderLive, shortHex } from "./dom.js";

const SHOWN = 15;
const TXS_SHOWN = 20; // transactions of an opened block asked for their outcome
const EVENT_CHARS = 160;
const FOLD_KEY = "focusflow.foldEmpty";

const txCount = (b) => b.n_txs ?? b.txs?.length ?? 0;

function foldSetting() {
  try {
    return localStorage.getItem(FOLD_KEY) !== "false";
  } catch {
    return true;
  }
}

// One event of a transaction's receipt in a line: its type and its attributes.
function eventLine(e) {
  const attrs = Object.entries(e)
    .filter(([k]) => k !== "type")
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  const line = `${e.type} ${attrs}`.trim();
  return line.length > EVENT_CHARS ? `${line.slice(0, EVENT_CHARS - 1)}…` : line;
}

export class Blocks {
  // onOpen(height) opens a block (the page keeps it in its address).
  constructor({ onOpen }) {
    this.onOpen = onOpen;
    this.list = []; // newest first
    this.open = null; // height of the block on show
    this.seq = 0;
    this.fold = foldSetting();
    $("fold-empty").checked = this.fold;
    $("fold-empty").addEventListener("change", () => {
      this.fold = $("fold-empty").checked;
      try {
        localStorage.setItem(FOLD_KEY, String(this.fold));
      } catch {
        // private mode: the choice lasts for this page
      }
      this.render();
    });
    $("block-close").addEventListener("click", () => this.close());
  }

  newest() {
    return this.list[0]?.height;
  }

  // Blocks come from two sides (the list answer and the socket's events): merge
  // them by height, newest first.
  merge(blocks) {
    const byHeight = new Map(this.list.map((b) => [b.height, b]));
    for (const b of blocks) byHeight.set(b.height, b);
    this.list = [...byHeight.values()].sort((x, y) => y.height - x.height).slice(0, SHOWN);
    this.render();
  }

  async load() {
    const { blocks } = await api(`/v1/blocks?limit=${SHOWN}`);
    this.merge(blocks);
  }

  row(b) {
    const root = (v) => h("td", { class: "hex", title: v || "" }, shortHex(v));
    return clickable(
      h(
        "tr",
        { dataset: { height: b.height, txs: txCount(b) }, class: b.height === this.open ? "current" : "" },
        h("td", {}, h("button", { type: "button", class: "link" }, String(b.height))),
        h("td", { class: "age", dataset: { time: b.time_ms } }, age(b.time_ms)),
        h("td", {}, String(txCount(b))),
        root(b.hash),
        root(b.state_root),
        root(b.focus_root),
        root(b.data_root),
      ),
      () => this.onOpen(b.height),
    );
  }

  // A run of empty blocks as one row; a click shows them.
  foldRow(run) {
    const newest = run[0];
    const oldest = run[run.length - 1];
    const what = run.length === 1 ? `empty block ${newest.height}`
      : `${run.length} empty blocks ${oldest.height}–${newest.height}`;
    return clickable(
      h(
        "tr",
        { class: "folded", dataset: { from: oldest.height, to: newest.height, count: run.length } },
        h("td", { colspan: "7" }, h("button", { type: "button", class: "link" }, `${what} (show)`)),
      ),
      () => {
        $("fold-empty").checked = false;
        $("fold-empty").dispatchEvent(new Event("change"));
      },
    );
  }

  render() {
    renderLive($("blocks"), () => this.rows());
  }

  // The table's rows from the list, newest first, runs of empty blocks folded.
  rows() {
    const rows = [];
    let run = [];
    const flush = () => {
      if (run.length) rows.push(this.foldRow(run));
      run = [];
    };
    for (const b of this.list) {
      if (this.fold && txCount(b) === 0 && b.height !== this.open) {
        run.push(b);
        continue;
      }
      flush();
      rows.push(this.row(b));
    }
    flush();
    return rows;
  }

  close() {
    this.open = null;
    this.seq += 1;
    $("block").hidden = true;
    $("block").dataset.height = "";
    this.render();
  }

  // One block in full: its header fields and, for its first transactions, their
  // outcome and events.
  async show(height) {
    const seq = ++this.seq;
    this.open = height;
    this.render();
    const b = await api(`/v1/blocks/${enc(height)}`);
    const asked = b.txs.slice(0, TXS_SHOWN);
    const receipts = await Promise.all(asked.map((t) => api(`/v1/txs/${enc(t)}`)));
    if (seq !== this.seq) return; // another block was opened meanwhile
    const field = (name, value) => h("div", {}, h("dt", {}, name), h("dd", { class: "hex" }, value ?? "–"));
    fill($("block-info"),
      h("dl", { class: "fields" },
        field("hash", b.hash),
        field("time", new Date(b.time_ms).toLocaleString()),
        field("parent", b.parent),
        field("proposer", b.proposer),
        field("state root", b.state_root),
        field("focus root", b.focus_root),
        field("data root", b.data_root),
        field("validators hash", b.validators_hash),
        field("signatures", String(b.commit?.length ?? 0)),
      ),
      h("p", {}, `${txCount(b)} transactions`,
        txCount(b) > asked.length ? `, the first ${asked.length} shown` : ""),
      receipts.length
        ? h("table", { id: "block-txs" },
          h("thead", {}, h("tr", {}, h("th", {}, "hash"), h("th", {}, "result"), h("th", {}, "events"))),
          h("tbody", {}, ...receipts.map((r) => h("tr", { dataset: { hash: r.hash } },
            h("td", { class: "hex", title: r.hash }, shortHex(r.hash)),
            h("td", { title: r.log || "" }, r.code ?? r.status),
            h("td", { class: "events" }, ...(r.events || []).map((e) => h("div", {}, eventLine(e)))),
          ))))
        : null,
    );
    $("block-height").textContent = String(b.height);
    $("block").dataset.height = String(b.height);
    $("block").hidden = false;
  }
}
