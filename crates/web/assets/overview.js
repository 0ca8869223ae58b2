"use strict";
// The overview: the node's view of the cluster, pushed every second (and at once when a
// node's health changes) over a WebSocket.

const KEEP = 60; // points per chart: a minute at one a second
const SVG = "http://www.w3.org/2000/svg";
const seen = new Map(); // node name → { cpu: [], mem: [] }

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function num(x) {
  return typeof x === "number" ? x : Number.NaN;
}

function memUsed(n) {
  const total = num(n["mem.total"]);
  const avail = num(n["mem.avail"]);
  return total > 0 ? (100 * (total - avail)) / total : Number.NaN;
}

function cpu(n) {
  const cores = num(n.cores);
  return cores > 0 ? Math.min(100, (100 * num(n.load)) / cores) : Number.NaN;
}

function gib(bytes) {
  return (bytes / 2 ** 30).toFixed(1) + " GiB";
}

function table(nodes) {
  const rows = nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.name;
    const name = cell(tr, n.name);
    if (n.leader) {
      const mark = document.createElement("span");
      mark.className = "leader";
      mark.textContent = "leader";
      name.appendChild(mark);
    }
    cell(tr, n.health, "health health-" + n.health);
    cell(tr, n.role);
    cell(tr, n.addr || "–");
    const tags = Object.entries(n.tags || {}).map(([k, v]) => (v ? k + "=" + v : k));
    cell(tr, tags.join(", ") || "–");
    cell(tr, typeof n.load === "number" ? n.load.toFixed(2) : "–");
    const used = memUsed(n);
    cell(tr, Number.isNaN(used) ? "–" : `${used.toFixed(0)} % of ${gib(n["mem.total"])}`);
    return tr;
  });
  byId("nodes").tBodies[0].replaceChildren(...rows);
  // When the cluster was first on screen, for the User Timing API (plx bench web).
  if (rows.length && !performance.getEntriesByName("plx-nodes-shown").length) {
    performance.mark("plx-nodes-shown");
  }
}

function line(values) {
  const svg = document.createElementNS(SVG, "svg");
  // A margin above and below, so that lines at 0 and 100 % stay visible.
  svg.setAttribute("viewBox", `0 -4 ${KEEP - 1} 108`);
  svg.setAttribute("preserveAspectRatio", "none");
  const poly = document.createElementNS(SVG, "polyline");
  // One point alone draws nothing: it starts as a flat line.
  const shown = values.length === 1 ? [values[0], values[0]] : values;
  const start = KEEP - shown.length;
  poly.setAttribute(
    "points",
    shown.map((v, i) => `${start + i},${Number.isNaN(v) ? 100 : 100 - v}`).join(" "),
  );
  svg.appendChild(poly);
  return svg;
}

function chart(kind, label, values) {
  const div = document.createElement("div");
  div.className = "chart " + kind;
  const last = values[values.length - 1];
  const now = Number.isNaN(last) ? "unknown" : `${last.toFixed(0)} %`;
  const caption = document.createElement("span");
  caption.textContent = `${label} ${now}`;
  const svg = line(values);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label} over the last minute, now ${now}`);
  div.append(caption, svg);
  return div;
}

function charts(nodes) {
  const figures = nodes.map((n) => {
    const h = seen.get(n.name) || { cpu: [], mem: [] };
    h.cpu = [...h.cpu, cpu(n)].slice(-KEEP);
    h.mem = [...h.mem, memUsed(n)].slice(-KEEP);
    seen.set(n.name, h);
    const fig = document.createElement("figure");
    const cap = document.createElement("figcaption");
    cap.textContent = `${n.name} (${n.health})`;
    fig.append(cap, chart("cpu", "CPU", h.cpu), chart("mem", "Memory", h.mem));
    return fig;
  });
  byId("charts").replaceChildren(...figures);
}

function show(view) {
  if (view.error) {
    say(view.error, true);
    return;
  }
  table(view.nodes);
  charts(view.nodes);
  say(`Seen from node ${view.node} at ${new Date().toLocaleTimeString()}.`, false);
}

startPage(() => live("/api/live", { message: show }));
