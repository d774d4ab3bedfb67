-- wrk script for scripts/soak.sh: mixed session traffic against `tessera serve`.
--
-- Run with one connection per thread (wrk -tN -cN), so each thread's requests and responses
-- strictly alternate and the per-thread state machine below always knows which request a
-- response answers. Each thread loops over one session's life:
--
--   create -> verify(checkDatabase) -> refresh -> verify (promotes the new refresh token)
--   -> PUT session data -> PUT jwt data -> regenerate -> refresh (current token)
--   -> JWKS -> session info -> remove (3 cycles in 4; the 4th session is kept, so the
--   database grows a little) -> verify the removed session (must be UNAUTHORISED)
--
-- A response is an error when its HTTP status is not 200 or its JSON is not the one the
-- protocol requires at that step (status OK, same session handle, tokens present, …).
-- Environment: SOAK_DELAY_MS (pause before each request on a connection, default 5).

local threads = {}
local thread_counter = 0

function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("tid", thread_counter)
  table.insert(threads, thread)
end

local headers = { ["content-type"] = "application/json", ["cdi-version"] = "5.4", ["rid"] = "session" }
local delay_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "5") or 5

-- Per-thread state (each wrk thread has its own Lua state).
bad, sample = 0, ""
ops = {}
local step, cycle = 1, 0
local handle, at, rt, user = nil, nil, nil, nil

local function count(name) ops[name] = (ops[name] or 0) + 1 end

local function fail(why, status, body)
  bad = bad + 1
  if sample == "" then
    sample = string.format("step %d (%s): HTTP %s %s", step, why, tostring(status), (body or ""):sub(1, 300))
  end
end

local function field_token(body, field)
  local obj = body:match('"' .. field .. '":(%b{})')
  return obj and obj:match('"token":"([^"]+)"')
end

local function session_handle(body)
  local s = body:match('"session":(%b{})')
  return s and s:match('"handle":"([^"]+)"')
end

local function post(path, body) return wrk.format("POST", path, headers, body) end
local function put(path, body) return wrk.format("PUT", path, headers, body) end
local function get(path) return wrk.format("GET", path, { ["cdi-version"] = "5.4" }) end

local function verify_body(check_db)
  return '{"accessToken":"' .. at .. '","doAntiCsrfCheck":false,"enableAntiCsrf":false,"checkDatabase":'
    .. (check_db and "true" or "false") .. '}'
end

local function refresh_body()
  return '{"refreshToken":"' .. rt .. '","enableAntiCsrf":false,"useDynamicSigningKey":true}'
end

local steps = {
  { name = "create", req = function()
      cycle = cycle + 1
      user = "soak-t" .. tostring(tid) .. "-" .. cycle
      return post("/public/recipe/session", '{"userId":"' .. user .. '","enableAntiCsrf":false,'
        .. '"userDataInJWT":{"role":"user"},"userDataInDatabase":{"n":0},"useDynamicSigningKey":true}')
    end, res = function(body)
      handle, at, rt = session_handle(body), field_token(body, "accessToken"), field_token(body, "refreshToken")
      return body:find('"status":"OK"', 1, true) and handle and at and rt
    end },
  { name = "verify", req = function() return post("/recipe/session/verify", verify_body(true)) end,
    res = function(body)
      return body:find('"status":"OK"', 1, true) and session_handle(body) == handle
    end },
  { name = "refresh", req = function() return post("/recipe/session/refresh", refresh_body()) end,
    res = function(body)
      local ok = body:find('"status":"OK"', 1, true) and session_handle(body) == handle
      at, rt = field_token(body, "accessToken"), field_token(body, "refreshToken")
      return ok and at and rt
    end },
  { name = "verify", req = function() return post("/recipe/session/verify", verify_body(false)) end,
    res = function(body)
      -- The new access token names its parent, so this verify promotes the new refresh
      -- token and mints a replacement access token.
      local ok = body:find('"status":"OK"', 1, true) and session_handle(body) == handle
      local new = field_token(body, "accessToken")
      if new then at = new end
      return ok and new
    end },
  { name = "session_data", req = function()
      return put("/recipe/session/data", '{"sessionHandle":"' .. handle .. '","userDataInDatabase":{"n":' .. cycle .. '}}')
    end, res = function(body) return body:find('"status":"OK"', 1, true) end },
  { name = "jwt_data", req = function()
      return put("/recipe/jwt/data", '{"sessionHandle":"' .. handle .. '","userDataInJWT":{"role":"user","c":' .. cycle .. '}}')
    end, res = function(body) return body:find('"status":"OK"', 1, true) end },
  { name = "regenerate", req = function()
      return post("/recipe/session/regenerate", '{"accessToken":"' .. at .. '","userDataInJWT":{"role":"admin","c":' .. cycle .. '}}')
    end, res = function(body)
      local ok = body:find('"status":"OK"', 1, true) and session_handle(body) == handle
      local new = field_token(body, "accessToken")
      if new then at = new end
      return ok and new and body:find('"role":"admin"', 1, true)
    end },
  { name = "refresh", req = function() return post("/recipe/session/refresh", refresh_body()) end,
    res = function(body)
      local ok = body:find('"status":"OK"', 1, true) and session_handle(body) == handle
      at, rt = field_token(body, "accessToken"), field_token(body, "refreshToken")
      return ok and at and rt
    end },
  { name = "jwks", req = function() return get("/.well-known/jwks.json") end,
    res = function(body) return body:find('"keys":[', 1, true) and body:find('"kid":"d-', 1, true) end },
  { name = "info", req = function() return get("/recipe/session?sessionHandle=" .. handle) end,
    res = function(body)
      return body:find('"status":"OK"', 1, true) and body:find('"userId":"' .. user .. '"', 1, true)
    end },
  { name = "remove", req = function()
      if cycle % 4 == 0 then
        -- Keep this session: read it instead of revoking it.
        return get("/recipe/session?sessionHandle=" .. handle)
      end
      return post("/recipe/session/remove", '{"sessionHandles":["' .. handle .. '"]}')
    end, res = function(body)
      if cycle % 4 == 0 then return body:find('"status":"OK"', 1, true) end
      return body:find('"status":"OK"', 1, true) and body:find('"sessionHandlesRevoked":["' .. handle .. '"]', 1, true)
    end },
  { name = "verify_after", req = function() return post("/recipe/session/verify", verify_body(true)) end,
    res = function(body)
      if cycle % 4 == 0 then
        return body:find('"status":"OK"', 1, true)
      end
      return body:find('"status":"UNAUTHORISED"', 1, true)
    end },
}

function delay() return delay_ms end

function request()
  return steps[step].req()
end

function response(status, hdrs, body)
  local s = steps[step]
  count(s.name)
  if status ~= 200 then
    fail(s.name, status, body)
    step = 1 -- start a new session
    return
  end
  if not s.res(body) then
    fail(s.name, status, body)
    step = 1
    return
  end
  step = step % #steps + 1
end

function done(summary, latency, requests)
  local bad_total, first = 0, ""
  local per = {}
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    if first == "" then first = t:get("sample") end
    local o = t:get("ops")
    for k, v in pairs(o) do per[k] = (per[k] or 0) + v end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d bad=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    bad_total, latency:percentile(50), latency:percentile(99)))
  local names = {}
  for k in pairs(per) do table.insert(names, k) end
  table.sort(names)
  local parts = {}
  for _, k in ipairs(names) do table.insert(parts, k .. "=" .. per[k]) end
  io.write("OPS " .. table.concat(parts, " ") .. "\n")
  if first ~= "" then io.write("FIRST_BAD " .. first .. "\n") end
end
