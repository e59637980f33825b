-- wrk script: POST /v1/batch bodies (one a line, from gen_events.py --batch 100) round-robin,
-- authenticated as a demo tenant, over keep-alive connections.
local bodies = {}
local next_body = 1

function init(args)
  local path = args[1] or "batches.ndjson"
  for line in io.lines(path) do
    bodies[#bodies + 1] = line
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Basic d2tfZGVtb190MTAwMDo=" -- wk_demo_t1000:
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format(nil, "/v1/batch", nil, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write("------------------------------\n")
  for _, p in pairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("p%g: %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("messages/s: %.0f\n", summary.requests / (summary.duration / 1e6) * 100))
  io.write(string.format("non-2xx or socket errors: %d\n", (summary.errors.status or 0) + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
