// Agents: the org's agents with their stats, and one agent's timeline, latest memories and sessions.

import { get, seg } from "./api.js";
import { legend, timelineChart } from "./chart.js";
import { cut, h, mount, plural, shortTime } from "./dom.js";
import { clearError, showError } from "./errors.js";
import { memoryTable } from "./memories.js";
import { sessionTable } from "./sessions.js";

const MAX_STATS = 50;  // stats are one request per agent: the first 50 get them
export const RANGES = { "24h": "1h", "7d": "1h", "30d": "1d" };

export async function agentsPage(main) {
  const { agents } = await get("/api/v1/agents");
  const rows = agents.map((agent) => {
    const cells = [h("td", {}, h("a", { href: `#/agents/${seg(agent.name)}` }, agent.name)),
      h("td", { class: "muted" }, cut(agent.description || "", 60))];
    const stats = ["memory_count", "memories_24h", "errors_24h", "session_count", "active_sessions"]
      .map((name) => h("td", { class: "num", "data-stat": name }, "…"));
    return { agent, tr: h("tr", { "data-agent": agent.name }, cells, stats,
      h("td", {}, shortTime(agent.last_active_at))), stats };
  });
  mount(main, h("h2", {}, `Agents (${agents.length})`),
    agents.length ? h("table", { id: "agents" },
      h("thead", {}, h("tr", {}, ["name", "description", "memories", "24 h", "errors 24 h", "sessions", "active",
        "last active"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((r) => r.tr)))
      : h("p", { class: "muted", id: "no-agents" }, "No agents registered yet in this org."));
  if (!agents.length) await firstMemoryHint(main);
  await Promise.all(rows.slice(0, MAX_STATS).map(async ({ agent, stats }) => {
    const s = await get(`/api/v1/agents/${seg(agent.id)}/stats`);
    stats.forEach((td) => { td.textContent = String(s[td.dataset.stat]); });
  }));
}

// An org with no memory at all: show how to write the first one. The key stays a `$MTK` placeholder: the
// page never prints the secret it was signed in with.
async function firstMemoryHint(main) {
  const { memories } = await get("/api/v1/memories", { limit: 1 });
  if (memories.length) return;
  const command = `export MTK=mtk_...   # the API key you signed in with\n` +
    `curl -s -X POST ${location.origin}/api/v1/memories \\\n` +
    `  -H "x-api-key: $MTK" -H "content-type: application/json" \\\n` +
    `  -d '{"agent_id": "researcher", "session_id": "sess_demo", "content": "My first memory"}'`;
  main.append(h("section", { class: "card", id: "first-memory" }, h("h3", {}, "No memories yet"),
    h("p", {}, "Write the first one into this key's org from a shell, then reload this page:"),
    h("pre", { class: "first-memory" }, command),
    h("p", { class: "muted" }, "Every endpoint: ", h("a", { href: "/docs" }, "API docs"), ".")));
}

export async function agentPage(main, name) {
  const agent = await get(`/api/v1/agents/${seg(name)}`);
  const chartBox = h("div", { id: "timeline" });
  const range = h("select", { id: "range", onchange: () => { clearError(); drawTimeline().catch(showError); } },
    Object.keys(RANGES).map((r) => h("option", { value: r, selected: r === "7d" }, `last ${r}`)));
  const memoriesBox = h("div", { id: "agent-memories" });

  let latest = 0;  // a slow answer for a range no longer selected must not draw over the current one
  async function drawTimeline() {
    const since = range.value;
    const mine = ++latest;
    const timeline = await get(`/api/v1/agents/${seg(agent.id)}/timeline`, { since, bucket: RANGES[since] });
    if (mine !== latest) return;
    const total = timeline.buckets.reduce((n, b) => n + b.count, 0);
    const errors = timeline.buckets.reduce((n, b) => n + b.errors, 0);
    mount(chartBox, h("p", { class: "muted", id: "timeline-summary" },
      `${plural(total, "memory", "memories")}, ${plural(errors, "error")} in ` +
      `${plural(timeline.buckets.length, "bucket")} of ${timeline.bucket}`),
    timelineChart(timeline), legend());
    const recent = await get(`/api/v1/agents/${seg(agent.id)}/memories`, { since, limit: 20 });
    if (mine === latest) mount(memoriesBox, memoryTable(recent.memories));
  }

  const { sessions } = await get("/api/v1/sessions", { agent_id: agent.id });
  mount(main,
    h("h2", {}, "Agent ", h("span", { id: "agent-name" }, agent.name)),
    h("p", { class: "muted" }, `${agent.id} · created ${shortTime(agent.created_at)}`,
      agent.description ? ` · ${agent.description}` : ""),
    h("section", { class: "card" }, h("h3", {}, "Timeline ", range), chartBox),
    h("section", { class: "card" }, h("h3", {}, "Latest memories ",
      h("a", { href: `#/memories?agent_id=${seg(agent.name)}` }, "browse all")), memoriesBox),
    h("section", { class: "card" }, h("h3", {}, `Sessions (${sessions.length})`), sessionTable(sessions)));
  await drawTimeline();
}
