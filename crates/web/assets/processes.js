"use strict";
// Processes: the cluster's process table, refreshed every second; start a program (with the
// scheduler's explanation first, if wished), kill one, follow one's output.

let following = null; // the process whose output is shown

// Splits a command line into words: spaces separate them, except inside '…' or "…".
function words(line) {
  const out = [];
  let word = null;
  let quote = null;
  for (const c of line) {
    if (quote) {
      if (c === quote) quote = null;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word = word ?? "";
    } else if (/\s/.test(c)) {
      if (word !== null) out.push(word);
      word = null;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) out.push(word);
  return out;
}

function request(dry) {
  const tags = byId("tags").value.split(",").map((t) => t.trim()).filter((t) => t);
  return { command: words(byId("command").value), on: byId("on").value, tags, dry };
}

async function start(dry) {
  const placement = byId("placement");
  const { ok, body } = await post("/api/procs", request(dry));
  placement.classList.toggle("error", !ok);
  if (!ok) placement.textContent = body.error || "The node refused.";
  else if (dry) placement.textContent = body.text;
  else {
    placement.textContent = `Started ${body.id} on ${body.node}.`;
    follow(body.id);
  }
  refresh();
}

function button(label, title, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.setAttribute("aria-label", title);
  b.addEventListener("click", action);
  return b;
}

function row(p) {
  const tr = document.createElement("tr");
  tr.dataset.proc = p.id;
  const cells = [
    p.name ? `${p.id} (${p.name})` : p.id,
    p.node,
    p.state + (p.code !== undefined && p.code !== null ? ` (${p.code})` : ""),
    p.user,
    typeof p.cpu === "number" ? `${p.cpu.toFixed(1)} %` : "–",
    typeof p.rss === "number" ? `${(p.rss / 2 ** 20).toFixed(1)} MiB` : "–",
    (p.command || []).map((w) => (/[\s"']/.test(w) ? JSON.stringify(w) : w)).join(" "),
  ];
  for (const [i, text] of cells.entries()) {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 2) td.className = "state";
    if (i === 6) td.className = "command";
    tr.appendChild(td);
  }
  const actions = document.createElement("td");
  actions.className = "actions";
  actions.appendChild(button("Output", `Output of ${p.id}`, () => follow(p.id)));
  if (p.state === "running") {
    actions.appendChild(
      button("Kill", `Kill ${p.id}`, async () => {
        const { ok, body } = await post(`/api/procs/${encodeURIComponent(p.id)}/kill`);
        if (!ok) say(body.error || "The node refused.", true);
        refresh();
      }),
    );
  }
  tr.appendChild(actions);
  return tr;
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const res = await fetch("/api/procs");
    if (res.status === 401) return location.replace("/");
    const body = await res.json();
    if (!res.ok) return say(body.error, true);
    byId("procs").tBodies[0].replaceChildren(...body.procs.map(row));
    const n = body.procs.length;
    say(`${n} ${n === 1 ? "process" : "processes"}, at ${new Date().toLocaleTimeString()}.`, false);
    if (following) await showOutput();
  } catch (e) {
    say("The node cannot be reached.", true);
  } finally {
    refreshing = false;
  }
}

async function showOutput() {
  const res = await fetch(`/api/procs/${encodeURIComponent(following)}/logs`);
  const body = await res.json();
  byId("stdout").textContent = res.ok ? body.stdout : body.error;
  byId("stderr").textContent = res.ok ? body.stderr : "";
}

function follow(id) {
  following = id;
  byId("logs").hidden = false;
  byId("logs-title").textContent = `Output of ${id}`;
  showOutput();
}

async function nodes() {
  const res = await fetch("/api/nodes");
  if (!res.ok) return;
  const body = await res.json();
  const options = body.nodes.map((n) => {
    const o = document.createElement("option");
    o.value = n.name;
    o.textContent = `${n.name} (${n.health})`;
    return o;
  });
  byId("on").append(...options);
}

byId("start").addEventListener("submit", (e) => {
  e.preventDefault();
  start(false);
});
byId("explain").addEventListener("click", () => start(true));

startPage(() => {
  nodes();
  refresh();
  setInterval(refresh, 1000);
});
