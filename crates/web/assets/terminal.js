"use strict";
// The terminal: messages evaluated on the node as the λ shell's are, over a WebSocket
// (protocol in crates/web/src/term.rs).

const screen = byId("screen");
const line = byId("line");
const prompt = byId("prompt");
// What was typed, for ↑ and ↓, kept in this browser as the shell keeps its history.
const HISTORY = "plx-history";
const KEPT = 500;
const typed = (() => {
  try {
    const kept = JSON.parse(localStorage.getItem(HISTORY) || "[]");
    return Array.isArray(kept) ? kept.filter((t) => typeof t === "string").slice(-KEPT) : [];
  } catch {
    return [];
  }
})();
let back = 0; // how far back in `typed` the line is
let socket = null;
let asking = false; // a service waits for a line
let running = false;
let attached = false; // a program reads what is typed

function write(text, className) {
  const span = document.createElement("span");
  span.textContent = text;
  if (className) span.className = className;
  screen.appendChild(span);
  screen.scrollTop = screen.scrollHeight;
}

function remember(text) {
  if (typed[typed.length - 1] !== text) typed.push(text);
  typed.splice(0, Math.max(0, typed.length - KEPT));
  try {
    localStorage.setItem(HISTORY, JSON.stringify(typed));
  } catch {
    // A browser that keeps nothing still has this page's history.
  }
}

function ready() {
  running = false;
  asking = false;
  attached = false;
  prompt.textContent = "λ";
  line.type = "text";
  byId("stop").hidden = true;
}

function stop() {
  if (running && socket) socket.send(JSON.stringify({ cancel: true }));
}

const handlers = {
  open(ws) {
    socket = ws;
    say("Connected: messages and the λ shell's commands (help lists them) run as you, on this node.", false);
  },
  message(m) {
    if ("say" in m) write(m.say);
    else if ("out" in m) write(m.out, m.err ? "stderr" : "");
    else if ("clear" in m) screen.replaceChildren();
    else if ("attached" in m) {
      attached = true;
      prompt.textContent = "⇢";
    }
    else if ("ask" in m) {
      asking = true;
      prompt.textContent = m.ask || "?";
      line.type = m.secret ? "password" : "text";
      line.focus();
    } else if ("value" in m) {
      write(m.value + "\n");
      ready();
    } else if ("nothing" in m) ready();
    else if ("error" in m) {
      write(`error: ${m.error}\n`, "stderr");
      ready();
    }
  },
};

byId("entry").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = line.value;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  if (asking) {
    write(prompt.textContent + (line.type === "password" ? "" : text) + "\n");
    socket.send(JSON.stringify({ line: text }));
    asking = false;
    prompt.textContent = "…";
    line.type = "text";
  } else if (running && attached) {
    write(text + "\n", "echo");
    socket.send(JSON.stringify({ input: text }));
  } else if (!running && text.trim()) {
    write(`λ ${text}\n`, "echo");
    remember(text);
    back = 0;
    running = true;
    byId("stop").hidden = false;
    prompt.textContent = "…";
    socket.send(JSON.stringify({ eval: text }));
  } else {
    return;
  }
  line.value = "";
});

byId("stop").addEventListener("click", stop);

line.addEventListener("keydown", (e) => {
  if (e.ctrlKey && e.key === "c" && running && !line.selectionEnd) {
    e.preventDefault();
    stop();
    return;
  }
  if (e.ctrlKey && e.key === "d" && running && attached && !line.value) {
    // The end of the program's input, as Ctrl-D at a terminal.
    e.preventDefault();
    socket.send(JSON.stringify({ input: null }));
    return;
  }
  if (asking || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) return;
  e.preventDefault();
  back = Math.max(0, Math.min(typed.length, back + (e.key === "ArrowUp" ? 1 : -1)));
  line.value = back ? typed[typed.length - back] : "";
});

startPage(() => {
  live("/api/term", handlers);
  line.focus();
});
