"use strict";
// Graphs: each running graph drawn as processes (boxes, in columns by their distance from the
// sources) and pipes (arrows labelled with throughput and backlog), and the same as a table.

const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 180;
const BOX_H = 54;
const GAP_X = 170;
const GAP_Y = 24;

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function rate(bytes) {
  if (bytes < 1024) return `${bytes} B/s`;
  if (bytes < 2 ** 20) return `${(bytes / 1024).toFixed(1)} KiB/s`;
  return `${(bytes / 2 ** 20).toFixed(1)} MiB/s`;
}

// Column of each process: the longest chain of pipes leading to it.
function columns(procs, pipes) {
  const col = new Map(procs.map((p) => [p.id, 0]));
  for (let round = 0; round < procs.length; round++) {
    for (const pipe of pipes) {
      const next = (col.get(pipe.from) ?? 0) + 1;
      if (col.has(pipe.to) && next > col.get(pipe.to)) col.set(pipe.to, next);
    }
  }
  return col;
}

function drawing(g) {
  const procs = g.procs || [];
  const pipes = g.pipes || [];
  const col = columns(procs, pipes);
  const rows = new Map();
  const at = new Map();
  for (const p of procs) {
    const c = col.get(p.id);
    const r = rows.get(c) || 0;
    rows.set(c, r + 1);
    at.set(p.id, { x: 10 + c * (BOX_W + GAP_X), y: 10 + r * (BOX_H + GAP_Y) });
  }
  const width = 20 + (Math.max(0, ...col.values()) + 1) * (BOX_W + GAP_X) - GAP_X;
  const height = 20 + Math.max(1, ...rows.values()) * (BOX_H + GAP_Y) - GAP_Y;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  svg.setAttribute("aria-label", `Graph ${g.name}: ${procs.length} processes, ${pipes.length} pipes`);
  const defs = el("defs", {});
  const marker = el("marker", {
    id: `arrow-${g.graph}`, viewBox: "0 0 10 10", refX: "10", refY: "5",
    markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse",
  });
  marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  for (const pipe of pipes) {
    const a = at.get(pipe.from);
    const b = at.get(pipe.to);
    if (!a || !b) continue;
    const x1 = a.x + BOX_W;
    const y1 = a.y + BOX_H / 2;
    const x2 = b.x;
    const y2 = b.y + BOX_H / 2;
    svg.appendChild(el("line", {
      x1, y1, x2, y2, class: `pipe pipe-${pipe.state}`, "marker-end": `url(#arrow-${g.graph})`,
    }));
    const label = el("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, class: "pipe-label" });
    label.textContent = `${rate(pipe.bytes_s)} · ${pipe.records_s} rec/s`;
    const backlog = el("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 + 14, class: "pipe-label" });
    backlog.textContent = `backlog ${pipe.backlog}`;
    svg.append(label, backlog);
  }
  for (const p of procs) {
    const { x, y } = at.get(p.id);
    const box = el("g", { class: `proc proc-${p.state}` });
    box.dataset.proc = p.id;
    box.append(
      el("rect", { x, y, width: BOX_W, height: BOX_H, rx: 6 }),
      el("text", { x: x + 10, y: y + 21, class: "proc-stage" }, p.stage || p.id),
      el("text", { x: x + 10, y: y + 41, class: "proc-where" }, `${p.id} on ${p.node} · ${p.state}`),
    );
    svg.appendChild(box);
  }
  return svg;
}

function pipeTable(g) {
  const stage = new Map((g.procs || []).map((p) => [p.id, p.stage || p.id]));
  const table = document.createElement("table");
  table.className = "pipes";
  const head = table.createTHead().insertRow();
  for (const h of ["Pipe", "From", "To", "Throughput", "Records/s", "Backlog", "State"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = h;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const p of g.pipes || []) {
    const tr = body.insertRow();
    tr.dataset.pipe = p.pipe;
    const cells = [
      p.pipe, `${stage.get(p.from) ?? p.from} (${p.from_node})`,
      `${stage.get(p.to) ?? p.to} (${p.to_node})`, rate(p.bytes_s), p.records_s, p.backlog, p.state,
    ];
    for (const c of cells) tr.insertCell().textContent = c;
  }
  return table;
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const res = await fetch("/api/graphs");
    if (res.status === 401) return location.replace("/");
    const body = await res.json();
    if (!res.ok) return say(body.error, true);
    const figures = body.graphs.map((g) => {
      const fig = document.createElement("figure");
      fig.className = "graph";
      fig.dataset.graph = g.graph;
      const cap = document.createElement("figcaption");
      cap.textContent = `${g.name} (${g.graph}), ${g.user}'s: ${g.state}`;
      const scroll = document.createElement("div");
      scroll.className = "scroll";
      scroll.appendChild(drawing(g));
      fig.append(cap, scroll, pipeTable(g));
      return fig;
    });
    byId("graphs").replaceChildren(...figures);
    const n = figures.length;
    say(n ? `${n} ${n === 1 ? "graph" : "graphs"}, at ${new Date().toLocaleTimeString()}.`
      : "No graph runs: start one with a pipeline in the λ shell, or plx osh.", false);
  } catch (e) {
    say("The node cannot be reached.", true);
  } finally {
    refreshing = false;
  }
}

startPage(() => {
  refresh();
  setInterval(refresh, 1000);
});
