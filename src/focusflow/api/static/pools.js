// The exchange's pools (GET /v1/pools, docs/api.md): each pair with its reserves,
// the price of one of its first denom in the other now, and that price's
// time-weighted average (TWAP) at the head, as the chain's circuit breaker and
// the economy's premium signal read it.

import { api } from "./api.js";
import { $, h } from "./dom.js";

// A price for the page: six significant digits without trailing zeros, or an
// exponent where that would be a long run of zeros.
export function priceText(value) {
  const x = Number(value);
  if (!Number.isFinite(x)) return "–";
  if (x === 0) return "0";
  const size = Math.abs(x);
  return size >= 1e-4 && size < 1e9 ? String(Number(x.toPrecision(6))) : x.toExponential(3);
}

// One pool's row: data-pair "a/b" (the pair in the chain's order), data-halted
// the last height its circuit breaker halts it (-1: not halted).
export function poolRow(p) {
  const halted = Number.isInteger(p.halted_until) && p.halted_until >= 0;
  return h(
    "tr",
    { dataset: { pair: `${p.a}/${p.b}`, a: p.a, b: p.b, halted: String(p.halted_until) } },
    h("td", { class: "pair", title: `shares: ${p.share_denom}` }, `${p.a}/${p.b}`),
    h("td", { class: "num reserve-a" }, `${String(p.reserve_a)} ${p.a}`),
    h("td", { class: "num reserve-b" }, `${String(p.reserve_b)} ${p.b}`),
    h("td", { class: "num price", title: `Q64: ${p.price_q64}` }, `1 ${p.a} = ${priceText(p.price)} ${p.b}`),
    h("td", { class: "num twap", title: `Q64: ${p.twap_q64}` }, `1 ${p.a} = ${priceText(p.twap)} ${p.b}`),
    h("td", { class: "num" }, String(p.shares)),
    h("td", { class: "halted" }, halted ? `halted until ${p.halted_until}` : ""),
  );
}

export async function loadPools() {
  const doc = await api("/v1/pools");
  $("pools").replaceChildren(...doc.pools.map(poolRow));
  $("pools-table").hidden = doc.pools.length === 0;
  $("pools-empty").hidden = doc.pools.length > 0;
  $("pools-height").textContent = `at height ${doc.height}`;
}
