// A particle's neighbourhood as a small force-directed SVG graph.
//
// One centre particle, its in- and out-links around it. Nodes are circles whose
// area follows focus; edges are arrows whose width follows link weight. A click on
// a node calls onOpen(cid); dragging a node moves it and pins it where it is dropped.
// The layout is a plain O(n^2) simulation (repulsion, springs along edges, a pull
// to the middle) that cools down and stops: with at most ~100 nodes that is cheap.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 420;
const SPRING = 110; // rest length of an edge, in view-box units
const CLICK_SLOP = 4; // a press that moves less than this is a click, not a drag

function el(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

export class LinkGraph {
  constructor(svg, { onOpen, label }) {
    this.svg = svg;
    this.onOpen = onOpen;
    this.label = label;
    this.nodes = new Map(); // cid -> {cid, focus, x, y, vx, vy, pinned, g, circle}
    this.edges = [];
    this.alpha = 0;
    this.frame = 0;
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    const defs = el("defs");
    const marker = el("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "9", markerHeight: "9", markerUnits: "userSpaceOnUse", orient: "auto",
    });
    marker.append(el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }));
    defs.append(marker);
    this.edgeLayer = el("g", { class: "edges" });
    this.nodeLayer = el("g", { class: "nodes" });
    svg.append(defs, this.edgeLayer, this.nodeLayer);
  }

  clear() {
    this.nodes.clear();
    this.edges = [];
    this.edgeLayer.replaceChildren();
    this.nodeLayer.replaceChildren();
    this.svg.dataset.center = "";
  }

  // centre: {cid, focus}; inLinks/outLinks: [{cid, weight, focus}] as the API gives them.
  show(centre, inLinks, outLinks) {
    const old = this.svg.dataset.center === centre.cid ? this.nodes : new Map();
    this.nodes = new Map();
    this.edges = [];
    const add = (cid, focus, angle) => {
      let node = this.nodes.get(cid);
      if (!node) {
        const prev = old.get(cid);
        node = prev
          ? { ...prev, focus }
          : {
              cid, focus, vx: 0, vy: 0, pinned: false,
              x: WIDTH / 2 + Math.cos(angle) * SPRING * 1.3,
              y: HEIGHT / 2 + Math.sin(angle) * SPRING * 1.3,
            };
        this.nodes.set(cid, node);
      }
      return node;
    };
    const c = add(centre.cid, centre.focus, 0);
    if (!old.has(centre.cid)) Object.assign(c, { x: WIDTH / 2, y: HEIGHT / 2 });
    c.centre = true;
    // out-links fan out to the right, in-links to the left
    outLinks.forEach((l, i) => {
      const a = -Math.PI / 2 + (Math.PI * (i + 0.5)) / outLinks.length;
      this.edges.push({ source: c, target: add(l.cid, l.focus, a), weight: l.weight });
    });
    inLinks.forEach((l, i) => {
      const a = Math.PI / 2 + (Math.PI * (i + 0.5)) / inLinks.length;
      this.edges.push({ source: add(l.cid, l.focus, a), target: c, weight: l.weight });
    });
    this.svg.dataset.center = centre.cid;
    this.render();
    this.heat(old.size ? 0.3 : 1);
  }

  radius(node) {
    const max = Math.max(...[...this.nodes.values()].map((n) => n.focus || 0), 1e-300);
    return 6 + 22 * Math.sqrt(Math.max(node.focus || 0, 0) / max);
  }

  render() {
    const maxW = Math.max(...this.edges.map((e) => e.weight || 0), 1e-300);
    this.edgeLayer.replaceChildren(
      ...this.edges.map((e) => {
        e.line = el("line", {
          class: "edge", "marker-end": "url(#arrow)",
          "stroke-width": (1 + 3 * Math.sqrt(Math.max(e.weight || 0, 0) / maxW)).toFixed(2),
        });
        const title = el("title");
        title.textContent = `${e.source.cid} → ${e.target.cid}\nweight ${e.weight}`;
        e.line.append(title);
        return e.line;
      }),
    );
    this.nodeLayer.replaceChildren(
      ...[...this.nodes.values()].map((n) => {
        n.r = this.radius(n);
        n.g = el("g", { class: n.centre ? "node centre" : "node", "data-cid": n.cid, tabindex: "0" });
        n.g.append(el("circle", { r: n.r.toFixed(1) }));
        const text = el("text", { dy: (n.r + 12).toFixed(1), "text-anchor": "middle" });
        const label = this.label(n.cid);
        text.textContent = label.length > 24 ? `${label.slice(0, 23)}…` : label;
        const title = el("title");
        title.textContent = `${n.cid}\nfocus ${n.focus}`;
        n.g.append(text, title);
        this.bindPointer(n);
        n.g.addEventListener("keydown", (ev) => {
          if (ev.key === "Enter") this.onOpen(n.cid);
        });
        return n.g;
      }),
    );
    this.draw();
  }

  bindPointer(node) {
    node.g.addEventListener("pointerdown", (ev) => {
      ev.preventDefault();
      node.g.setPointerCapture(ev.pointerId);
      const start = this.toView(ev);
      const from = { x: node.x, y: node.y };
      let dragged = false;
      const move = (e) => {
        const p = this.toView(e);
        if (!dragged && Math.hypot(p.x - start.x, p.y - start.y) < CLICK_SLOP) return;
        dragged = true;
        node.pinned = true;
        node.x = from.x + p.x - start.x;
        node.y = from.y + p.y - start.y;
        node.vx = node.vy = 0;
        this.heat(0.3);
      };
      const up = () => {
        node.g.removeEventListener("pointermove", move);
        node.g.removeEventListener("pointerup", up);
        node.g.removeEventListener("pointercancel", up);
        if (!dragged) this.onOpen(node.cid);
      };
      node.g.addEventListener("pointermove", move);
      node.g.addEventListener("pointerup", up);
      node.g.addEventListener("pointercancel", up);
    });
  }

  toView(ev) {
    const m = this.svg.getScreenCTM();
    if (!m) return { x: ev.clientX, y: ev.clientY };
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m.inverse());
    return { x: p.x, y: p.y };
  }

  heat(alpha) {
    this.alpha = Math.max(this.alpha, alpha);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.tick());
  }

  tick() {
    this.frame = 0;
    const nodes = [...this.nodes.values()];
    const a = this.alpha;
    for (let i = 0; i < nodes.length; i++) {
      for (let j = i + 1; j < nodes.length; j++) {
        const p = nodes[i];
        const q = nodes[j];
        let dx = q.x - p.x;
        let dy = q.y - p.y;
        let d2 = dx * dx + dy * dy;
        if (d2 < 1) { dx = Math.random() - 0.5; dy = Math.random() - 0.5; d2 = 1; }
        const f = (900 * a) / d2;
        p.vx -= dx * f; p.vy -= dy * f;
        q.vx += dx * f; q.vy += dy * f;
      }
    }
    for (const e of this.edges) {
      const dx = e.target.x - e.source.x;
      const dy = e.target.y - e.source.y;
      const d = Math.hypot(dx, dy) || 1;
      const f = ((d - SPRING) / d) * 0.08 * a;
      e.source.vx += dx * f; e.source.vy += dy * f;
      e.target.vx -= dx * f; e.target.vy -= dy * f;
    }
    for (const n of nodes) {
      if (n.pinned) { n.vx = n.vy = 0; continue; }
      n.vx += (WIDTH / 2 - n.x) * 0.01 * a;
      n.vy += (HEIGHT / 2 - n.y) * 0.01 * a;
      n.vx *= 0.6; n.vy *= 0.6;
      n.x = Math.min(WIDTH - 10, Math.max(10, n.x + n.vx));
      n.y = Math.min(HEIGHT - 10, Math.max(10, n.y + n.vy));
    }
    this.draw();
    this.alpha *= 0.97;
    if (this.alpha > 0.005) this.heat(0);
    else this.alpha = 0;
  }

  draw() {
    for (const e of this.edges) {
      // stop the line at the rims so the arrow head stays visible
      const dx = e.target.x - e.source.x;
      const dy = e.target.y - e.source.y;
      const d = Math.hypot(dx, dy) || 1;
      const r0 = e.source.r ?? 0;
      const r1 = (e.target.r ?? 0) + 2;
      e.line.setAttribute("x1", (e.source.x + (dx * r0) / d).toFixed(1));
      e.line.setAttribute("y1", (e.source.y + (dy * r0) / d).toFixed(1));
      e.line.setAttribute("x2", (e.target.x - (dx * r1) / d).toFixed(1));
      e.line.setAttribute("y2", (e.target.y - (dy * r1) / d).toFixed(1));
    }
    for (const n of this.nodes.values()) {
      n.g.setAttribute("transform", `translate(${n.x.toFixed(1)},${n.y.toFixed(1)})`);
    }
  }
}
