-- wrk body script for the benchmark harness (bench/run.py).
-- wrk is closed-loop: each of its --connections keeps exactly one request in flight.
-- Environment:
--   BENCH_BODY_FILE  the JSON request body to POST
--   BENCH_AUTH       value of the Authorization header (optional)
--   BENCH_HEADERS    extra headers, "Name: value" separated by "\n" (optional)
--   BENCH_OUT        where done() writes its JSON summary
--   BENCH_DELAY_MS   pause each connection this long between requests (optional; soak.py
--                    uses it to hold a steady rate below the maximum)
local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.body = read_file(os.getenv("BENCH_BODY_FILE"))
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local extra = os.getenv("BENCH_HEADERS")
if extra and extra ~= "" then
  for line in string.gmatch(extra, "[^\n]+") do
    local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
    if name then
      wrk.headers[name] = value
    end
  end
end

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if delay_ms and delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  local e = summary.errors
  local pct = {}
  for _, p in ipairs({50, 90, 99, 99.9}) do
    pct[#pct + 1] = string.format('"p%s": %d', tostring(p), latency:percentile(p))
  end
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, %s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev, table.concat(pct, ", ")))
  out:close()
end
