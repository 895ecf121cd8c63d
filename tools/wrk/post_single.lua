-- One memory per request, unique content (so dedup never answers 409), rotating agents, sessions and keys.
-- Env: MT_KEYS = comma-separated API keys (empty for the baseline), MT_AGENTS (default 50), MT_SESSIONS (200).
local keys = {}
for k in string.gmatch(os.getenv("MT_KEYS") or "", "[^,]+") do keys[#keys + 1] = k end
local agents = tonumber(os.getenv("MT_AGENTS") or "50")
local sessions = tonumber(os.getenv("MT_SESSIONS") or "200")
local run = os.getenv("MT_RUN") or tostring(os.time())
local counter = 0
local tid = 0
local statuses = {}

local thread_ids = 0
function setup(thread)
  thread_ids = thread_ids + 1
  thread:set("tid", thread_ids)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local n = counter
  local headers = { ["Content-Type"] = "application/json" }
  if #keys > 0 then headers["x-api-key"] = keys[(n % #keys) + 1] end
  local body = string.format(
    '{"agent_id":"agent_%d","session_id":"sess_%d","event_type":"tool_call","content":"run %s thread %d request %d: the agent read a file and decided to refactor it","tags":["load","perf"],"metadata":{"tool":"grep","n":%d},"importance":0.7}',
    n % agents, n % sessions, run, tid, n, n)
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

-- per-thread status counts are not merged by wrk; print what the main thread's copy of `done` can see
function done(summary, latency, requests)
end
