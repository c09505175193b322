-- wrk script for bench/load.py: POST a webhook body per request, each with a participant session id of its
-- own. Arguments: the body template file, the placeholder in it, and a prefix that makes ids unique per run.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local template = file:read("*a")
  file:close()
  parts = {}  -- the template cut at each placeholder
  local from = 1
  while true do
    local at = string.find(template, args[2], from, true)
    if not at then break end
    table.insert(parts, string.sub(template, from, at - 1))
    from = at + #args[2]
  end
  table.insert(parts, string.sub(template, from))
  prefix = args[3] .. "-" .. thread_number .. "-"
  sent = 0
  statuses = {}
end

function request()
  sent = sent + 1
  local body = table.concat(parts, prefix .. sent)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local line = string.format("rollcall-bench %d %d %d", summary.requests, latency:percentile(50),
    latency:percentile(99))
  for status, count in pairs(counts) do
    line = line .. " " .. status .. ":" .. count
  end
  print(line)
end
