-- wrk script of scripts/bench-server.sh, bench-growth.sh and bench-scale.sh: one session call per
-- request against `tessera serve` (CDI 5.4 bodies, as supertokens-node sends them).
--
--   wrk ... -s session_load.lua URL -- <mode> <threads> [tokens file]
--   mode    hello    GET /hello (the baseline: the HTTP stack plus a store ping; answers "Hello")
--           create   POST /public/recipe/session (a new session per request)
--           verify   POST /recipe/session/verify with checkDatabase true (tokens: access tokens,
--                    used round-robin)
--           refresh  POST /recipe/session/refresh; each token is used once and replaced by the
--                    one the answer carries, so every request is a valid rotation
--   threads the wrk -t value: thread i uses tokens i, i+threads, … so no two threads share one
--
-- With TESSERA_WRK_PORTS=p1,p2,… in the environment, thread i connects to 127.0.0.1 and the
-- (i mod n)-th port (bench-scale: the same wrk spreads its threads over the instances).
-- Every answer that is not HTTP 200 with "status":"OK" (for hello: the body "Hello") counts as bad; done() prints one RESULT
-- line (the format scripts/lib/bench_peers.py reads) and the first bad answer.
local threads = {}
local started = 0

function setup(thread)
  thread:set("id", started)
  local ports = os.getenv("TESSERA_WRK_PORTS")
  if ports and #ports > 0 then
    local list = {}
    for p in ports:gmatch("%d+") do table.insert(list, p) end
    thread.addr = wrk.lookup("127.0.0.1", list[(started % #list) + 1])[1]
  end
  started = started + 1
  table.insert(threads, thread)
end

local headers = { ["content-type"] = "application/json", ["cdi-version"] = "5.4" }
local mode, tokens, counter, next_token = nil, {}, 0, 1
bad, sample = 0, ""

function init(args)
  mode = args[1]
  local n = tonumber(args[2]) or 1
  if args[3] then
    local i = 0
    for line in io.lines(args[3]) do
      if #line > 0 then
        if i % n == id then table.insert(tokens, line) end
        i = i + 1
      end
    end
  end
end

local function json_str(s) return '"' .. s:gsub('[\\"]', '\\%0') .. '"' end

function request()
  counter = counter + 1
  if mode == "hello" then
    return wrk.format("GET", "/hello")
  elseif mode == "create" then
    local body = '{"userId":"growth-create-' .. id .. '-' .. counter .. '","enableAntiCsrf":false,'
      .. '"userDataInJWT":{"role":"user"},"userDataInDatabase":{}}'
    return wrk.format("POST", "/public/recipe/session", headers, body)
  elseif mode == "verify" then
    local token = tokens[next_token]
    next_token = (next_token % #tokens) + 1
    local body = '{"accessToken":' .. json_str(token) .. ',"doAntiCsrfCheck":false,'
      .. '"enableAntiCsrf":false,"checkDatabase":true}'
    return wrk.format("POST", "/recipe/session/verify", headers, body)
  else -- refresh: the oldest waiting token; its successor is queued by response()
    local token = table.remove(tokens, 1) or "no-token-left"
    local body = '{"refreshToken":' .. json_str(token) .. ',"enableAntiCsrf":false,'
      .. '"useDynamicSigningKey":true}'
    return wrk.format("POST", "/recipe/session/refresh", headers, body)
  end
end

function response(status, hdrs, body)
  local ok
  if mode == "hello" then
    ok = status == 200 and body == "Hello"
  else
    ok = status == 200 and body:find('"status":"OK"', 1, true) ~= nil
  end
  if mode == "refresh" and ok then
    local rt = body:match('"refreshToken":(%b{})')
    local token = rt and rt:match('"token":"([^"]+)"')
    if token then table.insert(tokens, token) else ok = false end
  end
  if not ok then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. body:sub(1, 200) end
  end
end

function done(summary, latency, requests)
  local bad_total, first = 0, ""
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    if first == "" then first = t:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d "
    .. "bad=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    bad_total, latency:percentile(50), latency:percentile(99)))
  if first ~= "" then io.write("FIRST_BAD " .. first .. "\n") end
end
