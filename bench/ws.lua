-- wrk script for the http-ws case (driver.py): a working set of WS_KEYS
-- distinct cache keys of one body size, `<url path>?k=N` for N in 0..WS_KEYS
-- (the origin ignores the query and serves the same static file; the cache
-- keys of nginx proxy_cache, Varnish and ours include the query).
--
-- Environment (read when the script loads, in every Lua state of wrk):
--   WS_KEYS  number of keys K (default 1)
--   WS_MODE  "random": N uniform in 0..K per request (the measured run)
--            "seq":    N = 0, 1, 2, ... K-1, 0, ... (the warm pass: one pass
--                      over every key); after WS_STOP responses it prints
--                      "ws-warm-done" and exits wrk at once (wrk's own stop
--                      would still wait out -d, which only bounds the pass)
--   WS_SEED  random seed (default 1), so every system gets the same sequence
-- Run with -t1: the round-robin counter is per wrk thread.

local keys = tonumber(os.getenv("WS_KEYS") or "1")
local mode = os.getenv("WS_MODE") or "random"
local stop_after = tonumber(os.getenv("WS_STOP") or "0")
local sent, done = 0, 0

math.randomseed(tonumber(os.getenv("WS_SEED") or "1"))

function request()
   local n
   if mode == "seq" then
      n = sent % keys
      sent = sent + 1
   else
      n = math.random(0, keys - 1)
   end
   return wrk.format(nil, wrk.path .. "?k=" .. n)
end

-- Defined only for the warm pass: a `response` function makes wrk parse and
-- copy every response into Lua, which would load the measured run's client.
if mode == "seq" and stop_after > 0 then
   function response(status, headers, body)
      done = done + 1
      if done >= stop_after then
         io.stdout:write("ws-warm-done " .. done .. "\n")
         io.stdout:flush()
         os.exit(0)
      end
   end
end
