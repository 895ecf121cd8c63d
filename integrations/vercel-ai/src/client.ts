/**
 * A small typed fetch client of the Memtrace HTTP API: only the routes the tools use.
 * Errors are the API's own `{"error": "..."}` sentences, thrown as MemtraceError with the HTTP status.
 */

export type MemoryType = "episodic" | "session" | "decision" | "entity";

export interface Memory {
  id: string;
  time: string;
  org_id: string;
  agent_id: string;
  session_id?: string | null;
  memory_type: MemoryType;
  event_type: string;
  content: string;
  metadata: Record<string, unknown>;
  tags: string[];
  dedup_key?: string | null;
  importance?: number | null;
  parent_id?: string | null;
  /** Relevance, when Memtrace ranks (ranked recall); absent for substring search. */
  score?: number;
}

export interface NewMemory {
  agent_id: string;
  content: string;
  memory_type?: MemoryType;
  event_type?: string;
  session_id?: string;
  metadata?: Record<string, unknown>;
  tags?: string[];
  dedup_key?: string;
  importance?: number;
  parent_id?: string;
}

export interface SearchQuery {
  agent_id?: string;
  session_id?: string;
  memory_types?: MemoryType[];
  event_types?: string[];
  tags?: string[];
  content_contains?: string;
  since?: string;
  until?: string;
  min_importance?: number;
  limit?: number;
  offset?: number;
  /** Free text: results by relevance, best first, each with `score`. */
  query?: string;
  order?: "relevance" | "asc" | "desc";
}

export interface SearchResults {
  results: Memory[];
  count: number;
  query_time_ms?: number;
}

export interface MemoryList {
  memories: Memory[];
  count: number;
  has_more: boolean;
}

export interface SessionContext {
  session_id: string;
  context: string;
  memory_count: number;
}

export interface Session {
  id: string;
  org_id: string;
  agent_id: string;
  status: "active" | "closed";
  metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  closed_at?: string | null;
}

export interface ListQuery {
  agent_id?: string;
  session_id?: string;
  memory_type?: MemoryType;
  event_type?: string;
  tags?: string[];
  since?: string;
  until?: string;
  limit?: number;
  offset?: number;
  order?: "asc" | "desc";
}

export interface ClientOptions {
  /** Memtrace's base URL, e.g. http://localhost:9100 */
  url: string;
  /** An `mtk_` API key of the org. */
  apiKey: string;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

export class MemtraceError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "MemtraceError";
  }
}

export class MemtraceClient {
  private readonly base: string;
  private readonly apiKey: string;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** POST /api/v1/memories; a 409 (the same memory within the dedup window) is a MemtraceError with status 409. */
  addMemory(memory: NewMemory): Promise<Memory> {
    return this.request<Memory>("POST", "/api/v1/memories", memory);
  }

  /** POST /api/v1/search: structured filters, newest first unless `order` says otherwise. */
  search(query: SearchQuery): Promise<SearchResults> {
    return this.request<SearchResults>("POST", "/api/v1/search", query);
  }

  /** GET /api/v1/memories with filters. */
  listMemories(query: ListQuery): Promise<MemoryList> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) params.set(key, Array.isArray(value) ? value.join(",") : String(value));
    }
    return this.request<MemoryList>("GET", `/api/v1/memories?${params}`);
  }

  /** POST /api/v1/sessions: open a session (an agent id that names no registered agent registers it). */
  createSession(agentId: string, metadata?: Record<string, unknown>): Promise<Session> {
    return this.request<Session>("POST", "/api/v1/sessions", { agent_id: agentId, metadata });
  }

  /** POST /api/v1/sessions/{id}/context: the session's markdown summary cut to `max_tokens`. */
  sessionContext(
    sessionId: string,
    body: { max_tokens?: number; include_types?: MemoryType[]; since?: string } = {},
  ): Promise<SessionContext> {
    return this.request<SessionContext>("POST", `/api/v1/sessions/${encodeURIComponent(sessionId)}/context`, body);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { "x-api-key": this.apiKey, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await this.fetchImpl(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try {
        const parsed = JSON.parse(text) as { error?: unknown };
        if (typeof parsed.error === "string" && parsed.error) message = parsed.error;
      } catch {
        if (text.trim()) message = text.trim().slice(0, 200);
      }
      throw new MemtraceError(message, response.status);
    }
    return JSON.parse(text) as T;
  }
}
