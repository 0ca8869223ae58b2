"use strict";
// Files: the cluster's file tree. Browse directories; view text and pictures; edit text and
// save it; download; upload with progress.

const TEXT_MOST = 1 << 20; // the largest text opened for editing
const PICTURES = /\.(png|jpe?g|gif|webp)$/i;
let here = "/"; // the directory shown, or the file's directory
let opened = null; // the file shown

const content = (path, view) =>
  `/api/files/content?path=${encodeURIComponent(path)}${view ? "&view=true" : ""}`;
const join = (dir, name) => (dir === "/" ? `/${name}` : `${dir}/${name}`);

function crumb(label, path) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", () => open(path));
  return b;
}

function trail(path) {
  const parts = path.split("/").filter((p) => p);
  const crumbs = [crumb("/", "/")];
  parts.forEach((p, i) => {
    if (i) crumbs.push(" / ");
    crumbs.push(crumb(p, "/" + parts.slice(0, i + 1).join("/")));
  });
  byId("trail").replaceChildren(...crumbs);
}

function size(n) {
  if (typeof n !== "number") return "–";
  if (n < 1024) return `${n} B`;
  if (n < 2 ** 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}

function showDir(path, entries) {
  here = path;
  opened = null;
  byId("file").hidden = true;
  byId("dir").hidden = false;
  const rows = entries.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.entry = e.name;
    const name = document.createElement("td");
    name.appendChild(crumb(e.kind === "dir" ? `${e.name}/` : e.name, join(path, e.name)));
    tr.appendChild(name);
    const when = typeof e.mtime === "number" ? new Date(e.mtime).toLocaleString() : "–";
    for (const text of [e.kind, size(e.size), e.mode, e.user, when]) {
      const td = document.createElement("td");
      td.textContent = text ?? "–";
      tr.appendChild(td);
    }
    return tr;
  });
  byId("entries").tBodies[0].replaceChildren(...rows);
  say(`${entries.length} ${entries.length === 1 ? "entry" : "entries"} in ${path}.`, false);
}

async function showFile(path, stat) {
  opened = path;
  here = path.slice(0, path.lastIndexOf("/")) || "/";
  byId("dir").hidden = true;
  byId("file").hidden = false;
  byId("file-name").textContent = path;
  byId("download").href = content(path, false);
  const picture = byId("picture");
  const edit = byId("edit");
  picture.hidden = !PICTURES.test(path);
  edit.hidden = true;
  if (!picture.hidden) {
    picture.src = content(path, true);
    picture.alt = path;
  } else if (stat.size <= TEXT_MOST) {
    const res = await fetch(content(path, true));
    byId("text").value = await res.text();
    edit.hidden = false;
  }
  say(`${path}: ${size(stat.size)}, mode ${stat.mode}, ${stat.user}'s.`, false);
}

async function open(path) {
  const res = await fetch(`/api/files?path=${encodeURIComponent(path)}`);
  if (res.status === 401) return location.replace("/");
  const body = await res.json();
  if (!res.ok) return say(body.error, true);
  trail(path);
  if (body.stat.kind === "dir") showDir(path, body.entries);
  else await showFile(path, body.stat);
}

byId("edit").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!opened) return;
  const res = await fetch(content(opened, false), {
    method: "PUT",
    headers: { "X-Plexus-CSRF": csrf },
    body: byId("text").value,
  });
  const body = await res.json().catch(() => ({}));
  if (res.ok) say(`Saved ${opened} (${size(body.size)}).`, false);
  else say(body.error || "The node refused.", true);
});

byId("upload").addEventListener("submit", (e) => {
  e.preventDefault();
  const file = byId("upload-file").files[0];
  if (!file) return say("Choose a file to upload first.", true);
  const path = join(here, file.name);
  const progress = byId("progress");
  progress.hidden = false;
  progress.value = 0;
  const xhr = new XMLHttpRequest(); // fetch cannot tell how much of an upload is sent
  xhr.open("PUT", content(path, false));
  xhr.setRequestHeader("X-Plexus-CSRF", csrf);
  xhr.upload.onprogress = (p) => {
    if (p.lengthComputable) progress.value = p.loaded / p.total;
  };
  xhr.onload = () => {
    let body = {};
    try {
      body = JSON.parse(xhr.responseText);
    } catch (err) {
      body = {};
    }
    if (xhr.status === 200) {
      progress.value = 1;
      open(here).then(() => say(`Uploaded ${path} (${size(body.size)}).`, false));
    } else {
      say(body.error || `The upload failed (${xhr.status}).`, true);
    }
  };
  xhr.onerror = () => say("The node cannot be reached.", true);
  xhr.send(file);
});

startPage(() => open("/").catch(() => say("The node cannot be reached.", true)));
