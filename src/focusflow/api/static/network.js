// The network of rollups this node belongs to (GET /v1/rollup, docs/rollups.md):
// on the hub, each rollup with the height the hub's light client of it last
// verified, the last rank the hub accepted from it and whether it is held
// stale, and the global snapshot's round and age (GET /v1/global/status); on a
// rollup, its bucket and its hub. A chain on its own hides the panel.

import { api } from "./api.js";
import { $, h } from "./dom.js";

// An age in milliseconds as the page shows it.
export function ageText(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return "–";
  const s = Number(ms) / 1000;
  return s < 120 ? `${s.toFixed(1)} s` : `${Math.round(s / 60)} min`;
}

export function rollupRow(r) {
  const rank = r.last_rank ? `round ${r.last_rank.round} at hub height ${r.last_rank.height}` : "none yet";
  return h(
    "tr",
    { dataset: { bucket: String(r.bucket), stale: String(Boolean(r.stale)) } },
    h("td", { class: "num" }, String(r.bucket)),
    h("td", { class: "chain" }, r.chain_id),
    h("td", { class: "num height" }, String(r.height)),
    h("td", { class: "rank" }, rank),
    h("td", { class: "state" }, r.frozen ? "client frozen" : r.stale ? "stale" : "live"),
  );
}

export async function loadNetwork() {
  const place = await api("/v1/rollup");
  const panel = $("network");
  if (place.role === "single") {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  if (place.role !== "hub") {
    const hub = place.hub.apis.length ? ` (${place.hub.apis[0]})` : "";
    $("network-summary").textContent =
      `rollup of bucket ${place.bucket} of ${place.buckets}; hub ${place.hub.chain_id}${hub}`;
    $("network-table").hidden = true;
    return;
  }
  const doc = await api("/v1/global/status");
  const snap = doc.snapshot;
  $("network-summary").textContent = snap
    ? `global snapshot ${snap.round} at hub height ${snap.height}, ${snap.particles} particles, ` +
      `age ${ageText(doc.age_ms)}` + (snap.stale.length ? `, stale buckets ${snap.stale.join(", ")}` : "")
    : "no global snapshot yet";
  $("network-age").textContent = snap ? ageText(doc.age_ms) : "";
  $("network-rollups").replaceChildren(...doc.rollups.map(rollupRow));
  $("network-table").hidden = false;
}
