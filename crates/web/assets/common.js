"use strict";
// What every page of the desktop shares: who is logged in, logging out, the status line.
// Everything from the cluster is set with textContent: nothing from it is read as HTML.

const byId = (id) => document.getElementById(id);
let csrf = "";

function say(text, isError) {
  const status = byId("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// The session's user, or null (then the page goes back to the login notice).
async function signedIn() {
  const res = await fetch("/api/me");
  if (res.status === 401) {
    location.replace("/");
    return null;
  }
  return res.json();
}

// Shows who is logged in, wires the logout button, then starts the page with `page(me)`.
async function startPage(page) {
  byId("logout").addEventListener("click", async () => {
    try {
      await fetch("/api/logout", { method: "POST", headers: { "X-Plexus-CSRF": csrf } });
    } finally {
      location.replace("/");
    }
  });
  try {
    const me = await signedIn();
    if (!me) return;
    csrf = me.csrf;
    byId("who").textContent = `${me.name} on node ${me.node}`;
    page(me);
  } catch (e) {
    say("The node cannot be reached.", true);
  }
}

// A WebSocket to `path` on this node, opened again a second after it drops while the session
// lasts.
function live(path, handlers) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${path}`);
  ws.onopen = () => handlers.open && handlers.open(ws);
  ws.onmessage = (e) => handlers.message(JSON.parse(e.data));
  ws.onclose = () => {
    say("Lost the connection to the node; trying again…", true);
    const retry = async () => {
      try {
        if (await signedIn()) live(path, handlers);
      } catch (e) {
        setTimeout(retry, 2000);
      }
    };
    setTimeout(retry, 1000);
  };
  return ws;
}

// Sends a request that changes state (with the session's CSRF token) and gives
// `{ ok, body }`, the body being the node's JSON answer.
async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Plexus-CSRF": csrf },
    body: JSON.stringify(body || {}),
  });
  if (res.status === 401) location.replace("/");
  return { ok: res.ok, body: await res.json().catch(() => ({})) };
}
