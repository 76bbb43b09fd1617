-- The counter of the packed demo group (examples/lua-packed): publishes
-- org.cella.example.lua_packed_counter.count N times, then ends.
--
--   counter [N [SUBSCRIBERS]]      (defaults 20 and 9)
--
-- Apps of a packed group start in one cella-lua host, each with its own
-- rights, data directory, memory cap and CPU budget (docs/lua-api.md "Packed
-- mode"). The counter first publishes {"seq":0} every 0.1 s until the bus says
-- SUBSCRIBERS apps are listening (or 10 s pass), so no one misses the start;
-- then {"seq":1..N,"last":N} every 0.1 s, and exits. Each subscriber exits
-- after the last message, and `cella boot examples/lua-packed` ends.
local app = require "cella.app"
local bus = require "cella.bus"
local json = require "cella.json"
local log = require "cella.log"
local timer = require "cella.timer"

local args = {...}
local n = math.tointeger(tonumber(args[1] or "20"))
local want = math.tointeger(tonumber(args[2] or "9"))
assert(n and n >= 1 and n <= 100000, "N must be an integer from 1 to 100000")
assert(want and want >= 0 and want <= 1000, "SUBSCRIBERS must be an integer from 0 to 1000")

-- A topic in the counter's own namespace, exported to subscribers (manifest.json).
local TOPIC = "org.cella.example.lua_packed_counter.count"

local function publish(msg)
        -- The bus rate-limits publishers: a refused tick is retried by the next one.
        local ok, delivered = pcall(bus.publish, TOPIC, json.encode(msg), "application/json")
        return ok and delivered or -1
end

local deadline = timer.now() + 10
while publish({seq = 0}) < want and timer.now() < deadline do
        timer.sleep(0.1)
end

local seq = 1
while seq <= n do
        if publish({seq = seq, last = n}) >= 0 then
                seq = seq + 1
        end
        timer.sleep(0.1)
end
local s = app.stats()
log.info("counter: published %d messages (%d callbacks, %.1f ms of CPU)", n, s.callbacks,
         s.cpu_ns / 1e6)
