// The console's shell: sign-in, navigation by URL hash, and one place that shows errors.

import { get, key } from "./api.js";
import { h, mount } from "./dom.js";
import { clearError, onUnauthorized, showError } from "./errors.js";
import { agentPage, agentsPage } from "./agents.js";
import { memoriesPage } from "./memories.js";
import { sessionPage, sessionsPage } from "./sessions.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");

function signOut(clearBanner = true) {
  key.clear();
  if (clearBanner) clearError();
  nav.hidden = true;
  signInPage();
}

function signInPage() {
  const input = h("input", { type: "password", id: "api-key", name: "api-key", placeholder: "mtk_…",
    autocomplete: "off", required: true, size: 48 });
  const form = h("form", { id: "sign-in", class: "card", onsubmit: async (event) => {
    event.preventDefault();
    key.set(input.value.trim());
    try {
      await get("/api/v1/agents");
    } catch (err) {
      showError(err);
      return;
    }
    clearError();
    route();  // the page asked for before signing in
  } },
  h("h2", {}, "Sign in"),
  h("p", {}, "Paste an API key. It stays in this browser tab only (session storage) and is sent as the x-api-key header."),
  h("label", { for: "api-key" }, "API key "), input, " ", h("button", { type: "submit" }, "Sign in"));
  mount(main, form);
  input.focus();
}

// Each view renders into its own fresh element: a slow answer for a page already left lands off-screen.
const routes = [
  [/^#\/agents\/([^/]+)$/, (view, m) => agentPage(view, decodeURIComponent(m[1]))],
  [/^#\/memories(?:\?(.*))?$/, (view, m) => memoriesPage(view, new URLSearchParams(m[1] || ""))],
  [/^#\/sessions\/([^/]+)$/, (view, m) => sessionPage(view, decodeURIComponent(m[1]))],
  [/^#\/sessions(?:\?(.*))?$/, (view, m) => sessionsPage(view, new URLSearchParams(m[1] || ""))],
  [/^(?:#\/agents)?$/, (view) => agentsPage(view)],
];

async function route() {
  if (!key.get()) {
    nav.hidden = true;
    signInPage();
    return;
  }
  nav.hidden = false;
  const hash = location.hash === "#/" ? "" : location.hash;
  for (const link of nav.querySelectorAll("a[data-section]")) {
    link.classList.toggle("active", hash.startsWith(`#/${link.dataset.section}`) ||
      (hash === "" && link.dataset.section === "agents"));
  }
  for (const [pattern, view] of routes) {
    const m = pattern.exec(hash);
    if (!m) continue;
    clearError();
    const loading = h("p", { class: "muted loading" }, "Loading…");
    const target = h("div", { class: "view" }, loading);
    mount(main, target);
    try {
      await view(target, m);
    } catch (err) {
      if (!target.isConnected) return;
      showError(err);
      // a page that failed before drawing anything must not say "Loading…" for ever
      if (loading.isConnected) mount(target, h("p", { class: "muted", id: "nothing" }, "Nothing to show here. ",
        h("a", { href: "#/agents" }, "Back to agents")));
    }
    return;
  }
  mount(main, h("p", {}, "Nothing here. ", h("a", { href: "#/agents" }, "Back to agents")));
}

onUnauthorized(() => signOut(false));
document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
