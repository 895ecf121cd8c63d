// Sessions: the list, and one session's context preview under a token budget, its memories, and closing it.

import { call, get, post, seg } from "./api.js";
import { legend, timelineChart } from "./chart.js";
import { h, mount, plural, shortTime } from "./dom.js";
import { clearError, showError } from "./errors.js";
import { memoryTable } from "./memories.js";

export function sessionTable(sessions) {
  if (!sessions.length) return h("p", { class: "muted" }, "No sessions.");
  return h("table", { class: "sessions" },
    h("thead", {}, h("tr", {}, ["session", "agent", "status", "created", "updated"].map((t) => h("th", {}, t)))),
    h("tbody", {}, sessions.map((s) => h("tr", { "data-session": s.id },
      h("td", {}, h("a", { href: `#/sessions/${seg(s.id)}` }, s.id)), h("td", {}, s.agent_id),
      h("td", { class: `status-${s.status}` }, s.status), h("td", {}, shortTime(s.created_at)),
      h("td", {}, shortTime(s.updated_at))))));
}

export async function sessionsPage(main, params) {
  const agent = h("input", { id: "s-agent", name: "agent_id", value: params.get("agent_id") || "", placeholder: "agent id or name" });
  const list = h("div", { id: "sessions" });
  async function load() {
    clearError();
    try {
      const { sessions } = await get("/api/v1/sessions", { agent_id: agent.value.trim() });
      mount(list, sessionTable(sessions));
    } catch (err) {
      showError(err);
    }
  }
  mount(main, h("h2", {}, "Sessions"),
    h("form", { class: "card", onsubmit: (e) => { e.preventDefault(); load(); } },
      h("label", {}, "agent ", agent), " ", h("button", { type: "submit" }, "Filter")), list);
  await load();
}

// The `- ... (K more)` lines are where the budget dropped lines: mark them so they stand out.
function renderContext(text) {
  return text.split("\n").map((line) => h("span", { class: /^- \.\.\. \(\d+ more\)$/.test(line) ? "dropped" : "" },
    line + "\n"));
}

// What the budget did. The headers and `(K more)` markers always stay, so a budget below them drops every
// line and still comes out over: say so rather than "N lines dropped to fit", which it did not.
function contextOutcome(ctx, tokens, budget) {
  if (!ctx.truncated) return "nothing dropped";
  const dropped = `${plural(ctx.omitted, "line")} dropped`;
  if (tokens > budget) {
    return `${dropped}: the headers alone (about ${plural(tokens, "token")}) exceed the budget of ` +
      `${plural(budget, "token")}; raise max_tokens to see memories`;
  }
  return `${dropped} to fit ${plural(budget, "token")} (lowest importance first, then oldest)`;
}

export async function sessionPage(main, id) {
  let session = await get(`/api/v1/sessions/${seg(id)}`);
  const head = h("div");
  const budget = h("input", { id: "max-tokens", type: "number", min: 1, max: 1000000, step: 1, placeholder: "no limit",
    size: 10 });
  const preview = h("div", { id: "context" });
  const memories = h("div", { id: "session-memories" });
  const chart = h("div", { id: "session-timeline" });

  function drawHead() {
    mount(head, h("p", {}, "agent ", h("a", { href: `#/agents/${seg(session.agent_id)}` }, session.agent_id),
      " · status ", h("strong", { id: "session-status", class: `status-${session.status}` }, session.status),
      ` · created ${shortTime(session.created_at)}`, session.closed_at ? ` · closed ${shortTime(session.closed_at)}` : "",
      " ", session.status === "active" ? h("button", { id: "close-session", onclick: close }, "Close session") : ""),
    h("pre", { class: "meta" }, JSON.stringify(session.metadata, null, 2)));
  }

  async function close() {
    clearError();
    try {
      session = await call("PUT", `/api/v1/sessions/${seg(id)}`, { body: { status: "closed" } });
      drawHead();
    } catch (err) {
      showError(err);
    }
  }

  let latest = 0;  // only the newest preview may draw
  async function render() {
    clearError();
    const body = budget.value ? { max_tokens: Number(budget.value) } : {};
    const mine = ++latest;
    try {
      const ctx = await post(`/api/v1/sessions/${seg(id)}/context`, body);
      if (mine !== latest) return;
      const tokens = Math.ceil(ctx.context.length / 4);
      mount(preview, h("p", { id: "context-summary", class: ctx.truncated ? "warn" : "muted" },
        `${plural(ctx.memory_count, "memory", "memories")} · about ${plural(tokens, "token")} · ` +
        contextOutcome(ctx, tokens, body.max_tokens)),
      h("pre", { class: "context" }, renderContext(ctx.context)));
    } catch (err) {
      showError(err);
    }
  }

  drawHead();
  mount(main, h("h2", {}, "Session ", h("span", { id: "session-id" }, id)), head,
    h("section", { class: "card" }, h("h3", {}, "Context preview"),
      h("form", { id: "context-form", onsubmit: (e) => { e.preventDefault(); render(); } },
        h("label", { for: "max-tokens" }, "max_tokens "), budget, " ", h("button", { type: "submit", id: "preview" }, "Preview")),
      preview),
    h("section", { class: "card" }, h("h3", {}, "Timeline (last 7 days)"), chart),
    h("section", { class: "card" }, h("h3", {}, "Memories"), memories));
  await render();
  const timeline = await get(`/api/v1/sessions/${seg(id)}/timeline`, { since: "7d", bucket: "1h" });
  mount(chart, timelineChart(timeline), legend());
  const list = await get(`/api/v1/sessions/${seg(id)}/memories`, { limit: 50 });
  mount(memories, memoryTable(list.memories));
}
