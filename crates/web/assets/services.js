"use strict";
// Services: which nodes provide each service, and each one's help as text.

function helpInto(details, service) {
  let asked = false;
  details.addEventListener("toggle", async () => {
    if (!details.open || asked) return;
    asked = true;
    const pre = details.querySelector("pre");
    try {
      const res = await fetch(`/api/help/${encodeURIComponent(service)}`);
      const body = await res.json();
      pre.textContent = res.ok ? body.text : body.error;
      pre.classList.toggle("error", !res.ok);
    } catch (e) {
      pre.textContent = "The node cannot be reached.";
      asked = false;
    }
  });
}

async function show() {
  const res = await fetch("/api/services");
  const body = await res.json();
  if (!res.ok) {
    say(body.error, true);
    return;
  }
  const entries = Object.entries(body.services || {}).map(([service, nodes]) => {
    const details = document.createElement("details");
    details.dataset.service = service;
    const summary = document.createElement("summary");
    const name = document.createElement("span");
    name.className = "service";
    name.textContent = service;
    const where = document.createElement("span");
    where.className = "nodes";
    where.textContent = `on ${nodes.join(", ")}`;
    summary.append(name, " ", where);
    const pre = document.createElement("pre");
    pre.className = "help";
    pre.textContent = "Asking for its help…";
    details.append(summary, pre);
    helpInto(details, service);
    return details;
  });
  byId("services").replaceChildren(...entries);
  say(`${entries.length} services.`, false);
}

startPage(() => show().catch(() => say("The node cannot be reached.", true)));
