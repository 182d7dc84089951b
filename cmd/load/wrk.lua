-- wrk script for the webhook: each request is the next pre-signed body from a
-- file written by `go run ./cmd/load -requests N`, so every request carries a
-- new wamid. Thread i of T takes lines i, i+T, i+2T, ... so none repeats.
-- Usage: wrk -t2 -c32 -d10s -s cmd/load/wrk.lua http://127.0.0.1:8080/ -- requests.tsv 2
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  sigs, bodies, next = {}, {}, 1
  local n = 0
  for line in io.lines(path) do
    if n % nthreads == id then
      local tab = line:find("\t", 1, true)
      table.insert(sigs, line:sub(1, tab - 1))
      table.insert(bodies, line:sub(tab + 1))
    end
    n = n + 1
  end
end

function request()
  local i = next
  next = next % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = sigs[i]}, bodies[i])
end
