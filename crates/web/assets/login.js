"use strict";
// The token is in the fragment: browsers never send it to a server, so it stays out of logs
// and Referer headers, and a link previewer that fetches the URL cannot use it up.
async function logIn() {
  const status = document.getElementById("status");
  const token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", "/login");
  status.classList.remove("error");
  if (!token) {
    status.textContent = "This link has no login token. Run plx web to get one.";
    return;
  }
  status.textContent = "Logging in…";
  try {
    const res = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
    });
    if (res.ok) {
      location.replace("/");
      return;
    }
    const body = await res.json().catch(() => ({}));
    status.textContent = body.error || "The node refused the login.";
  } catch (e) {
    status.textContent = "The node cannot be reached.";
  }
  status.classList.add("error");
}

logIn();
// A link opened in a tab already on this page changes only the fragment.
window.addEventListener("hashchange", logIn);
