"use strict";
// Store: io.store as a tree, one level at a time: the path, the entries below it, and the
// unit there in text notation.

function crumb(label, at) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", () => open(at));
  return b;
}

async function open(at) {
  const res = await fetch(`/api/store?at=${encodeURIComponent(JSON.stringify(at))}`);
  if (res.status === 401) return location.replace("/");
  const body = await res.json();
  const trail = [crumb("store", [])];
  at.forEach((segment, i) => trail.push(" . ", crumb(segment, at.slice(0, i + 1))));
  byId("trail").replaceChildren(...trail);
  if (!res.ok) {
    byId("entries").replaceChildren();
    byId("about").textContent = "";
    byId("unit").textContent = "";
    say(body.error, true);
    return;
  }
  const entries = body.entries.map((e) => {
    const b = crumb(e, [...at, e]);
    b.dataset.entry = e;
    return b;
  });
  byId("entries").replaceChildren(...entries);
  const size = typeof body.size === "number" ? `, ${body.size} bytes` : "";
  byId("about").textContent = `A ${body.kind}${size}${body.cut ? " (shown in part)" : ""}.`;
  byId("unit").textContent = body.text;
  say(at.length ? `At @${at.join(".")}.` : "The whole store.", false);
}

startPage(() => open([]).catch(() => say("The node cannot be reached.", true)));
