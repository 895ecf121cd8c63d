-- One memory per request, unique content (so dedup never answers 409), rotating agents, sessions and keys.
-- Env: MT_KEYS = comma-separated API keys (empty for the baseline), MT_AGENTS (default 50), MT_SESSIONS (200).
local keys = {}
for k in string.gmatch(os.getenv("MT_KEYS") or "", "[^,]+") do keys[#keys + 1] = k end
local agents = tonumber(os.getenv("MT_AGENTS") or "50")
local sessions = tonumber(os.getenv("MT_SESSIONS") or "200")
local run = os.getenv("MT_RUN") or tostring(os.time())
local counter = 0
-- `tid` is a global set per thread by setup() (never declare it local: request() would see the local).
statuses = {}

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
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

-- Each thread counts its own statuses; done() runs in the main state and merges the threads' copies.
function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  for status, n in pairs(merged) do
    io.write(string.format("status %d: %d\n", status, n))
  end
end
