/**
 * memtraceTools: AI SDK tool() definitions that let a model remember, recall, search, record decisions and read
 * a session's context in Memtrace. Answers are short text for the model; API errors reach it as the tool's error.
 */

import { tool } from "ai";
import { z } from "zod";

import { type Memory, type MemoryType, MemtraceClient, MemtraceError, type SearchQuery } from "./client.js";

export interface MemtraceToolsOptions {
  /** Memtrace's base URL, e.g. http://localhost:9100 */
  url: string;
  /** An `mtk_` API key of the org. */
  apiKey: string;
  /** Whose memories these are: writes carry it, recall and search read it. */
  agentId: string;
  /** A Memtrace session: writes carry it and `sessionContext` summarises it. */
  sessionId?: string;
  /** Tags added to every write. */
  tags?: string[];
  /** A client to use instead of one built from url and apiKey (tests, custom fetch). */
  client?: MemtraceClient;
}

// Conversation items are `session` memories; recall and search leave them out, as the Python tools do.
const RECALLED_TYPES: MemoryType[] = ["episodic", "decision", "entity"];
const LINE_CHARS = 300;

function line(memory: Memory): string {
  let content = memory.content.split(/\s+/).join(" ");
  const reasoning = memory.memory_type === "decision" ? memory.metadata["reasoning"] : undefined;
  if (typeof reasoning === "string" && reasoning) content += ` (why: ${reasoning})`;
  if (content.length > LINE_CHARS) content = content.slice(0, LINE_CHARS) + "...";
  return `- [${memory.time.slice(0, 19)}Z] ${memory.agent_id} ${memory.event_type}: ${content}`;
}

function render(memories: Memory[], empty: string, order = "newest first"): string {
  if (memories.length === 0) return empty;
  return `${memories.length} memories, ${order}:\n` + memories.map(line).join("\n");
}

function tagsWith(bound: string[], extra: string[] | undefined): string[] | undefined {
  const tags = [...new Set([...bound, ...(extra ?? [])])];
  return tags.length > 0 ? tags : undefined;
}

/** The one place the tools ask Memtrace for memories relevant to a query. */
export function retrieval(query: string, filters: Omit<SearchQuery, "content_contains" | "query">): SearchQuery {
  return { ...filters, query };
}

export function memtraceTools(options: MemtraceToolsOptions) {
  const client = options.client ?? new MemtraceClient({ url: options.url, apiKey: options.apiKey });
  const { agentId, sessionId } = options;
  const bound = options.tags ?? [];

  return {
    remember: tool({
      description: "Store a fact, observation or result worth remembering later.",
      inputSchema: z.object({
        content: z.string().min(1).describe("What happened or what was learned, in one to three sentences."),
        eventType: z
          .string()
          .regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/)
          .default("note")
          .describe("Short snake_case label such as note, finding, user_preference or error."),
        importance: z.number().min(0).max(1).default(0.5).describe("How much this should weigh, from 0 to 1."),
        tags: z.array(z.string()).optional().describe("Extra labels to filter by later."),
      }),
      execute: async ({ content, eventType, importance, tags }) => {
        try {
          const memory = await client.addMemory({
            agent_id: agentId, content, event_type: eventType, importance, session_id: sessionId,
            tags: tagsWith(bound, tags),
          });
          return `remembered as ${memory.id}`;
        } catch (error) {
          if (error instanceof MemtraceError && error.status === 409) {
            return "already remembered (an identical memory was stored recently)";
          }
          throw error;
        }
      },
    }),

    recall: tool({
      description: "List what you remembered and decided recently, newest first.",
      inputSchema: z.object({
        since: z.string().default("24h").describe("Time window such as 30m, 2h, 7d or 4w."),
        limit: z.number().int().min(1).max(100).default(20).describe("Maximum number of memories."),
      }),
      execute: async ({ since, limit }) => {
        const found = await client.search({ agent_id: agentId, memory_types: RECALLED_TYPES, since, limit,
                                            order: "desc" });
        return render(found.results, `nothing remembered in the last ${since}`);
      },
    }),

    search: tool({
      description: "Find your memories most relevant to a query, best first (ranked by the words they share).",
      inputSchema: z.object({
        query: z.string().min(1).describe('What to look for, in words, e.g. "pricing" or "what did the user prefer".'),
        limit: z.number().int().min(1).max(50).default(10).describe("Maximum number of memories."),
      }),
      execute: async ({ query, limit }) => {
        const found = await client.search(retrieval(query, { agent_id: agentId, memory_types: RECALLED_TYPES,
                                                             limit }));
        return render(found.results, `no memory mentions ${JSON.stringify(query)}`, "most relevant first");
      },
    }),

    decide: tool({
      description: "Record a decision with why it was made, so later steps and other agents can follow it.",
      inputSchema: z.object({
        decision: z.string().min(1).describe("The decision, in one sentence."),
        reasoning: z.string().min(1).describe("Why this option was chosen over the alternatives."),
        importance: z.number().min(0).max(1).default(0.7).describe("From 0 to 1."),
      }),
      execute: async ({ decision, reasoning, importance }) => {
        try {
          const memory = await client.addMemory({
            agent_id: agentId, content: decision, memory_type: "decision", event_type: "decision",
            metadata: { reasoning }, importance, session_id: sessionId, tags: tagsWith(bound, undefined),
          });
          return `decision recorded as ${memory.id}`;
        } catch (error) {
          if (error instanceof MemtraceError && error.status === 409) return "this decision was already recorded";
          throw error;
        }
      },
    }),

    sessionContext: tool({
      description: "Summarise the current session: actions, decisions, errors and entities, as markdown.",
      inputSchema: z.object({
        maxTokens: z.number().int().min(50).max(8000).default(1000).describe("Token budget of the summary."),
      }),
      execute: async ({ maxTokens }) => {
        if (!sessionId) return "no session is bound to these tools (pass sessionId to memtraceTools)";
        const context = await client.sessionContext(sessionId, { max_tokens: maxTokens,
                                                                 include_types: RECALLED_TYPES });
        return context.context;
      },
    }),
  };
}
