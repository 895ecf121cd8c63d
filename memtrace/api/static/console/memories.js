// Memories: filters (list or search), pages, a detail view, and forgetting with a dry run first.

import { call, get, post, seg } from "./api.js";
import { TYPES } from "./chart.js";
import { cut, h, mount, plural, shortTime } from "./dom.js";
import { clearError, showError } from "./errors.js";

const PAGE = 25;
const FIELDS = ["agent_id", "session_id", "tags", "since", "until", "q"];

// Ranked results (a text search) carry a score: the table then shows it first, best first.
export function memoryTable(memories, onOpen) {
  if (!memories.length) return h("p", { class: "muted" }, "No memories.");
  const ranked = memories.some((m) => typeof m.score === "number");
  const heads = [...(ranked ? ["score"] : []), "time", "agent", "session", "type", "event", "content", "tags"];
  return h("table", { class: ranked ? "memories ranked" : "memories" },
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", {}, t)))),
    h("tbody", {}, memories.map((m) => h("tr", { "data-id": m.id, class: m.event_type === "error" ? "error-row" : "",
      onclick: () => (onOpen ? onOpen(m) : (location.hash = `#/memories?id=${seg(m.id)}`)) },
    ...(ranked ? [h("td", { class: "score" }, m.score.toFixed(2))] : []),
    h("td", {}, shortTime(m.time)), h("td", {}, m.agent_id), h("td", {}, m.session_id), h("td", {}, m.memory_type),
    h("td", {}, m.event_type), h("td", { class: "content" }, cut(m.content, 90)), h("td", {}, m.tags.join(", "))))));
}

// Filters as the API wants them; several types or a text need POST /search (a text is ranked by relevance),
// anything else the plain list.
function request(filters, offset) {
  const types = filters.types;
  const tags = filters.tags ? filters.tags.split(",").map((t) => t.trim()).filter(Boolean) : [];
  if (filters.q || types.length > 1) {
    return post("/api/v1/search", {
      agent_id: filters.agent_id || undefined, session_id: filters.session_id || undefined,
      memory_types: types.length ? types : undefined, tags: tags.length ? tags : undefined,
      query: filters.q || undefined, since: filters.since || undefined, until: filters.until || undefined,
      limit: PAGE + 1, offset,
    }).then((r) => ({ memories: r.results.slice(0, PAGE), has_more: r.results.length > PAGE }));
  }
  return get("/api/v1/memories", { agent_id: filters.agent_id, session_id: filters.session_id,
    memory_type: types[0], tags: tags.join(","), since: filters.since, until: filters.until, limit: PAGE, offset });
}

// The forget contract's filter: the browser's filters (text search has no forget equivalent).
function forgetBody(filters) {
  const tags = filters.tags ? filters.tags.split(",").map((t) => t.trim()).filter(Boolean) : [];
  const body = {};
  if (filters.agent_id) body.agent_id = filters.agent_id;
  if (filters.session_id) body.session_id = filters.session_id;
  if (filters.types.length) body.memory_types = filters.types;
  if (tags.length) body.tags = tags;
  if (filters.since) body.since = filters.since;
  if (filters.until) body.until = filters.until;
  return body;
}

export async function memoriesPage(main, params) {
  const inputs = Object.fromEntries(FIELDS.map((name) => [name, h("input", { name, id: `f-${name}`,
    value: params.get(name) || "", size: name === "q" ? 28 : 16,
    placeholder: { since: "24h, 7d, 2026-02-07", until: "optional", tags: "a,b", q: "words to find, best first" }[name] })]));
  const wanted = (params.get("types") || "").split(",").filter(Boolean);
  const boxes = TYPES.map((t) => h("input", { type: "checkbox", name: "types", value: t, id: `f-type-${t}`,
    checked: wanted.includes(t) }));
  const results = h("div", { id: "results" });
  const detail = h("div", { id: "detail" });
  const forgetBox = h("div", { id: "forget" });
  const pager = h("div", { class: "pager" });
  let offset = Number(params.get("offset") || 0);
  let latest = 0;  // answers can arrive out of order: only the newest request may draw

  const filters = () => ({ ...Object.fromEntries(FIELDS.map((n) => [n, inputs[n].value.trim()])),
    types: boxes.filter((b) => b.checked).map((b) => b.value) });

  async function load() {
    clearError();
    const mine = ++latest;
    let page;
    try {
      page = await request(filters(), offset);
    } catch (err) {
      if (mine === latest) showError(err);
      return;
    }
    if (mine !== latest) return;
    mount(results, memoryTable(page.memories, (m) => openDetail(m.id)));
    mount(pager,
      h("button", { id: "prev", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } },
        filters().q ? "← better" : "← newer"),
      h("span", { id: "page-info" }, ` ${offset + 1}–${offset + page.memories.length} `),
      h("button", { id: "next", disabled: !page.has_more, onclick: () => { offset += PAGE; load(); } },
        filters().q ? "worse →" : "older →"));
  }

  async function openDetail(id) {
    try {
      const m = await get(`/api/v1/memories/${seg(id)}`);
      mount(detail, memoryDetail(m, openDetail, () => { mount(detail); load(); }));
    } catch (err) {
      showError(err);
    }
  }

  async function forgetMatching() {
    const body = forgetBody(filters());
    if (!Object.keys(body).length) {
      mount(forgetBox, h("p", { class: "warn" }, "Set at least one filter before forgetting (an empty filter would match everything)."));
      return;
    }
    clearError();
    try {
      const dry = await post("/api/v1/forget", { ...body, dry_run: true });
      mount(forgetBox, h("div", { class: "confirm" },
        h("p", { id: "forget-count" }, `${plural(dry.matched, "memory matches", "memories match")} these filters. ` +
          `Forget ${dry.matched === 1 ? "it" : "them"} for good?`),
        h("button", { id: "forget-confirm", class: "danger", onclick: async () => {
          try {
            const done = await post("/api/v1/forget", { ...body, dry_run: false });
            mount(forgetBox, h("p", { id: "forget-done" }, `Forgot ${plural(done.deleted, "memory", "memories")}.`));
            offset = 0;
            await load();
          } catch (err) {
            showError(err);
          }
        } }, `Forget ${dry.matched}`), " ",
        h("button", { id: "forget-cancel", onclick: () => mount(forgetBox) }, "Cancel")));
    } catch (err) {
      showError(err);
    }
  }

  const form = h("form", { id: "filters", class: "card", onsubmit: (event) => { event.preventDefault(); offset = 0; load(); } },
    ...FIELDS.map((n) => h("label", {}, `${n === "q" ? "text" : n} `, inputs[n])),
    h("span", { class: "types" }, "types ", boxes.map((b) => h("label", {}, b, b.value))),
    h("button", { type: "submit", id: "apply" }, "Apply"), " ",
    h("button", { type: "button", id: "forget-matching", class: "danger", onclick: forgetMatching }, "Forget matching…"));
  mount(main, h("h2", {}, "Memories"), form, forgetBox,
    h("div", { class: "split" }, h("div", {}, results, pager), detail));
  await load();
  if (params.get("id")) await openDetail(params.get("id"));
}

function memoryDetail(m, open, forgotten) {
  const confirmBox = h("div");
  const forget = () => mount(confirmBox, h("div", { class: "confirm" },
    h("p", {}, "Forget this memory for good? It leaves every read, the journal and Arc."),
    h("button", { id: "forget-one-confirm", class: "danger", onclick: async () => {
      try {
        await call("DELETE", `/api/v1/memories/${seg(m.id)}`);
        forgotten();
      } catch (err) {
        showError(err);
      }
    } }, "Forget"), " ", h("button", { onclick: () => mount(confirmBox) }, "Cancel")));
  const row = (label, value) => h("tr", {}, h("th", {}, label), h("td", {}, value));
  return h("section", { class: "card detail", "data-id": m.id },
    h("h3", {}, "Memory"),
    h("table", {}, row("id", m.id), row("time", m.time), row("agent", m.agent_id), row("session", m.session_id || "—"),
      row("type", m.memory_type), row("event", m.event_type), row("importance", String(m.importance)),
      row("tags", m.tags.length ? m.tags.join(", ") : "—"), row("dedup key", m.dedup_key),
      row("parent", m.parent_id ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); open(m.parent_id); } },
        m.parent_id) : "—")),
    h("h4", {}, "Content"), h("pre", { class: "content" }, m.content),
    h("h4", {}, "Metadata"), h("pre", { id: "metadata" }, JSON.stringify(m.metadata, null, 2)),
    h("button", { id: "forget-one", class: "danger", onclick: forget }, "Forget this memory…"), confirmBox);
}
