/**
 * memtraceTools against a real Memtrace + embedded Arc (MEMTRACE_URL / MEMTRACE_API_KEY, set by
 * tests/test_vercel_ai.py), driven by the AI SDK's own mock language model through generateText's tool loop.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { generateText, stepCountIs } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import type { LanguageModelV3GenerateResult } from "@ai-sdk/provider";

import { MemtraceClient, MemtraceError, memtraceTools } from "../src/index.js";

const url = process.env["MEMTRACE_URL"];
const apiKey = process.env["MEMTRACE_API_KEY"];
if (!url || !apiKey) throw new Error("set MEMTRACE_URL and MEMTRACE_API_KEY (tests/test_vercel_ai.py does)");

const usage = {
  inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 1, text: 1, reasoning: undefined },
};

function call(toolName: string, input: Record<string, unknown>): LanguageModelV3GenerateResult {
  return {
    content: [
      { type: "tool-call", toolCallId: `call_${randomUUID().slice(0, 8)}`, toolName, input: JSON.stringify(input) },
    ],
    finishReason: { unified: "tool-calls", raw: "tool_calls" },
    usage,
    warnings: [],
  };
}

function say(text: string): LanguageModelV3GenerateResult {
  return { content: [{ type: "text", text }], finishReason: { unified: "stop", raw: "stop" }, usage, warnings: [] };
}

/** The tool results the model was shown in its last call. */
function shownResults(model: MockLanguageModelV3): unknown[] {
  const prompt = model.doGenerateCalls.at(-1)?.prompt ?? [];
  return prompt.flatMap((message) =>
    message.role === "tool"
      ? message.content.flatMap((part) => (part.type === "tool-result" ? [part.output] : []))
      : [],
  );
}

const uid = (prefix: string) => `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 10)}`;

test("an agent remembers in one run and recalls in a fresh one", async () => {
  const agentId = uid("vercel");
  const fact = `the user drinks genmaicha-${randomUUID().slice(0, 6)} every morning`;

  const first = new MockLanguageModelV3({
    doGenerate: [call("remember", { content: fact, eventType: "user_preference", tags: ["prefs"] }), say("Noted.")],
  });
  const run1 = await generateText({
    model: first, tools: memtraceTools({ url, apiKey, agentId }), stopWhen: stepCountIs(4), prompt: `Remember: ${fact}`,
  });
  assert.equal(run1.text, "Noted.");
  const stored = run1.steps[0]?.toolResults[0]?.output;
  assert.match(String(stored), /^remembered as mem_/);

  // a fresh run: new tools, new client; the model searches and is shown the fact
  const second = new MockLanguageModelV3({
    doGenerate: [call("search", { query: "GENMAICHA" }), say("You drink genmaicha.")],
  });
  const run2 = await generateText({
    model: second, tools: memtraceTools({ url, apiKey, agentId }), stopWhen: stepCountIs(4), prompt: "What do I drink?",
  });
  assert.equal(run2.text, "You drink genmaicha.");
  const [shown] = shownResults(second);
  assert.equal((shown as { type: string }).type, "text");
  const text = (shown as { value: string }).value;
  assert.match(text, /^1 memories, most relevant first:\n- \[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] vercel_\w+ user_preference: /);
  assert.ok(text.endsWith(fact), text);

  const memories = await new MemtraceClient({ url, apiKey }).search({ agent_id: agentId });
  assert.deepEqual(memories.results.map((m) => [m.content, m.tags, m.event_type]),
                   [[fact, ["prefs"], "user_preference"]]);
});

test("decide, recall and session context inside one session; a repeated remember is reported", async () => {
  const agentId = uid("vercel");
  const client = new MemtraceClient({ url, apiKey });
  const session = await client.createSession(agentId);
  const tools = memtraceTools({ url, apiKey, agentId, sessionId: session.id, tags: ["study"] });
  const note = `competitor x charges 12 EUR ${randomUUID().slice(0, 6)}`;
  const model = new MockLanguageModelV3({
    doGenerate: [
      call("remember", { content: note }),
      call("remember", { content: note }),
      call("decide", { decision: "Price at 10 EUR", reasoning: "undercut competitor x" }),
      call("recall", { since: "1h" }),
      call("sessionContext", { maxTokens: 500 }),
      say("done"),
    ],
  });
  const run = await generateText({ model, tools, stopWhen: stepCountIs(8), prompt: "Research pricing." });
  assert.equal(run.text, "done");
  const outputs = run.steps.flatMap((step) => step.toolResults.map((r) => String(r.output)));
  assert.equal(outputs[1], "already remembered (an identical memory was stored recently)");
  assert.match(outputs[2] ?? "", /^decision recorded as mem_/);
  assert.match(outputs[3] ?? "",
               /^2 memories, newest first:\n.* decision: Price at 10 EUR \(why: undercut competitor x\)\n.* note: competitor x/);
  assert.match(outputs[4] ?? "", /Decisions Made \(1\)[\s\S]*Price at 10 EUR/);

  const stored = await client.listMemories({ session_id: session.id, order: "asc" });
  assert.deepEqual(stored.memories.map((m) => [m.memory_type, m.tags]),
                   [["episodic", ["study"]], ["decision", ["study"]]]);
  const unbound = await memtraceTools({ url, apiKey, agentId }).sessionContext.execute!(
    { maxTokens: 100 }, { toolCallId: "c", messages: [] });
  assert.equal(unbound, "no session is bound to these tools (pass sessionId to memtraceTools)");
});

test("API errors are MemtraceErrors carrying Memtrace's sentence and status", async () => {
  await assert.rejects(new MemtraceClient({ url, apiKey: "mtk_wrong" }).search({}), (error: unknown) => {
    assert.ok(error instanceof MemtraceError);
    assert.equal(error.status, 401);
    assert.ok(error.message.length > 0 && !error.message.startsWith("HTTP"), error.message);
    return true;
  });
  await assert.rejects(new MemtraceClient({ url, apiKey }).search({ since: "yesterday-ish" }), /since/);
});
