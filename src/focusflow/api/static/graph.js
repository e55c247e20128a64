// The open particle's neighbourhood, drawn by Cytoscape.js (vendor/, MIT licence).
//
// The particle sits in the middle, one page of its in-links in a column on its
// left and one page of its out-links in a column on its right, heaviest link
// first. Each label stands on the outer side of its node, one line cut with an
// ellipsis, so labels of one column are a row apart and never meet the other
// column's. A hub with hundreds of links is never drawn whole: a column holds one
// page, and a "+N more" node at its foot asks for the next page. Node size follows
// focus, edge width link weight. A tap on a particle opens it; nodes can be dragged.
//
// The Cytoscape instance is the container's `cy` property (for the browser's
// console and the tests).

// Cytoscape.js is most of the page's script bytes: it is fetched when the first
// graph is drawn, not with the page.
let cytoscapeLoad = null;
function loadCytoscape() {
  cytoscapeLoad ??= import("./vendor/cytoscape.esm.min.mjs").then((m) => m.default);
  return cytoscapeLoad;
}

const ROW = 36; // distance between two nodes of a column, in model units
const SIDE = 210; // distance of a column from the centre
const LABEL_WIDTH = 150; // widest label, before its ellipsis
const NODE_MIN = 10;
const NODE_MAX = 28; // below ROW: nodes of a column never touch
const CENTRE = 40;

// A colour of the page's style sheet, so the graph follows light and dark.
function cssColour(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function style() {
  const accent = cssColour("--accent", "#2f7d5b");
  const soft = cssColour("--accent-soft", "#d6ece1");
  const text = cssColour("--text", "#1d1f21");
  const muted = cssColour("--muted", "#6b7075");
  const panel = cssColour("--panel", "#ffffff");
  return [
    {
      selector: "node",
      style: {
        width: "data(size)",
        height: "data(size)",
        "background-color": soft,
        "border-color": accent,
        "border-width": 1.5,
        label: "data(label)",
        color: text,
        "font-size": 12,
        "font-family": "ui-monospace, DejaVu Sans Mono, Menlo, Consolas, monospace",
        "text-wrap": "ellipsis",
        "text-max-width": LABEL_WIDTH,
        "text-valign": "center",
        "text-background-color": panel,
        "text-background-opacity": 0.85,
        "text-background-padding": 2,
        "min-zoomed-font-size": 7,
      },
    },
    { selector: "node.in", style: { "text-halign": "left", "text-margin-x": -6 } },
    { selector: "node.out", style: { "text-halign": "right", "text-margin-x": 6 } },
    {
      selector: "node.centre",
      style: { "background-color": accent, "text-valign": "bottom", "text-margin-y": 6 },
    },
    {
      selector: "node.more",
      style: {
        shape: "round-rectangle",
        width: 18,
        height: 18,
        "background-color": panel,
        "border-style": "dashed",
        "border-color": muted,
        color: muted,
      },
    },
    {
      selector: "edge",
      style: {
        width: "data(width)",
        "line-color": muted,
        "line-opacity": 0.6,
        "curve-style": "bezier",
        "target-arrow-shape": "triangle",
        "target-arrow-color": muted,
        "arrow-scale": 0.8,
      },
    },
    { selector: "edge.more", style: { "line-style": "dashed", "target-arrow-shape": "none" } },
    { selector: "node:active, node:selected", style: { "border-width": 3, "overlay-opacity": 0 } },
  ];
}

// A column's neighbours, heaviest first, with a "+N more" node when the page
// does not hold all of them. page: {links: [{cid, weight, focus, text?}], total, offset}.
function column(page, side, x, centreId, seen, label, elements) {
  const links = page.links.filter((l) => !seen.has(l.cid));
  const more = page.total - page.offset - page.links.length;
  const rows = links.length + (more > 0 ? 1 : 0);
  const maxFocus = Math.max(...page.links.map((l) => l.focus || 0), 1e-300);
  const maxWeight = Math.max(...page.links.map((l) => l.weight || 0), 1e-300);
  links.forEach((l, i) => {
    seen.add(l.cid);
    const size = NODE_MIN + (NODE_MAX - NODE_MIN) * Math.sqrt(Math.max(l.focus || 0, 0) / maxFocus);
    elements.push({
      group: "nodes",
      classes: side,
      data: { id: l.cid, cid: l.cid, label: label(l.cid, l.text), focus: l.focus, size },
      position: { x, y: (i - (rows - 1) / 2) * ROW },
    });
  });
  // an edge per link of the page, also to a neighbour the other column holds
  for (const l of page.links) {
    const [source, target] = side === "in" ? [l.cid, centreId] : [centreId, l.cid];
    elements.push({
      group: "edges",
      data: {
        id: `${side}:${l.cid}`,
        source,
        target,
        weight: l.weight,
        width: 1 + 3 * Math.sqrt(Math.max(l.weight || 0, 0) / maxWeight),
      },
    });
  }
  if (more > 0) {
    const id = `more:${side}`;
    elements.push({
      group: "nodes",
      classes: `more ${side}`,
      data: { id, more: more, direction: side, label: `+${more} more`, size: 18 },
      position: { x, y: (rows - 1 - (rows - 1) / 2) * ROW },
    });
    const [source, target] = side === "in" ? [id, centreId] : [centreId, id];
    elements.push({ group: "edges", classes: "more", data: { id: `${id}:edge`, source, target, width: 1 } });
  }
}

export class LinkGraph {
  // container: an empty block element; onOpen(cid) opens a particle, onMore(direction)
  // shows the next page of a column, label(cid, text) names a particle.
  constructor(container, { onOpen, onMore, label }) {
    this.container = container;
    this.label = label;
    this.key = "";
    this.cy = null;
    this.onOpen = onOpen;
    this.onMore = onMore;
    // shows run in order: the first waits for Cytoscape, later ones queue behind it
    this.queue = Promise.resolve();
  }

  make(cytoscape) {
    const { container, onOpen, onMore } = this;
    this.cy = cytoscape({
      container,
      style: style(),
      layout: { name: "preset" },
      minZoom: 0.3,
      maxZoom: 1.2,
      userZoomingEnabled: false, // the mouse wheel scrolls the page
      boxSelectionEnabled: false,
      autounselectify: true,
    });
    container.cy = this.cy;
    // Cytoscape keeps where its container is on the page until a resize or a
    // scroll, but content above the graph can change height without either (an
    // error shown, the status line wrapping): measured again as a press begins,
    // a tap lands on the node under the pointer and not where it was drawn before.
    for (const type of ["pointerdown", "touchstart"]) {
      container.addEventListener(type, () => this.cy.resize(), { capture: true, passive: true });
    }
    this.cy.on("tap", "node", (ev) => {
      const node = ev.target;
      if (node.hasClass("more")) onMore(node.data("direction"));
      else if (!node.hasClass("centre")) onOpen(node.data("cid"));
    });
    // the page's colours can change under it (the system's light or dark)
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      this.cy.style(style());
    });
  }

  clear() {
    this.queue = this.queue.then(() => {
      this.cy?.elements().remove();
      this.key = "";
      this.container.dataset.center = "";
      this.container.dataset.nodes = "0";
    });
  }

  // centre: {cid, focus, text?}; inPage, outPage: a page of links each way as the
  // API gives it ({links, total, offset}). Drawn once Cytoscape is loaded.
  show(centre, inPage, outPage) {
    this.queue = this.queue
      .then(async () => {
        if (this.cy === null) this.make(await loadCytoscape());
        this.draw(centre, inPage, outPage);
      })
      .catch((err) => console.warn("graph not drawn:", err));
    return this.queue;
  }

  draw(centre, inPage, outPage) {
    const cy = this.cy;
    const seen = new Set([centre.cid]);
    const elements = [
      {
        group: "nodes",
        classes: "centre",
        data: { id: centre.cid, cid: centre.cid, label: this.label(centre.cid, centre.text), size: CENTRE },
        position: { x: 0, y: 0 },
      },
    ];
    column(outPage, "out", SIDE, centre.cid, seen, this.label, elements);
    column(inPage, "in", -SIDE, centre.cid, seen, this.label, elements);
    const ids = elements.map((e) => e.data.id).join(" ");
    if (ids === this.key) {
      // the same nodes: new labels, sizes and widths, and the places the user dragged them to
      cy.batch(() => {
        for (const e of elements) cy.getElementById(e.data.id).data(e.data);
      });
      return;
    }
    this.key = ids;
    cy.batch(() => {
      cy.elements().remove();
      cy.add(elements);
    });
    cy.layout({ name: "preset", fit: true, padding: 24 }).run();
    this.container.dataset.center = centre.cid;
    this.container.dataset.nodes = String(cy.nodes().length);
  }
}
