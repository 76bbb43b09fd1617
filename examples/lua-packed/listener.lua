-- A listener of the packed demo group (examples/lua-packed): counts the
-- messages of org.cella.example.lua_packed_counter.count (a topic the counter
-- exports) it gets and keeps a small state file in its own data directory; ends
-- after the counter's last message.
--
-- Every listener runs the same code under its own id, rights, priority and
-- data directory: cella.fs resolves "state.json" beneath this app's own
-- directory, so the nine state files never mix although the nine apps share one
-- process and one mount jail. The state counts messages over all runs:
-- {"runs":R,"received":M,"last_seq":S}.
local app = require "cella.app"
local bus = require "cella.bus"
local fs = require "cella.fs"
local json = require "cella.json"
local log = require "cella.log"
local timer = require "cella.timer"

local state = {runs = 0, received = 0, last_seq = 0}
if fs.exists("state.json") then
        local ok, saved = pcall(json.decode, fs.read("state.json"))
        if ok and type(saved) == "table" then
                state = saved
        end
end
state.runs = state.runs + 1

local got = 0
local function save()
        fs.write("state.json", json.encode(state))
end

bus.subscribe("org.cella.example.lua_packed_counter.count", function(msg)
        local m = json.decode(msg.data)
        if m.seq == 0 then
                return -- the counter checking that we listen
        end
        got = got + 1
        state.received = state.received + 1
        state.last_seq = m.seq
        save()
        if m.seq == m.last then
                local s = app.stats()
                log.info("%s: got %d of %d messages (priority %d, %d slices, %.1f ms of CPU)",
                         app.id(), got, m.last, s.priority, s.slices, s.cpu_ns / 1e6)
                app.exit(0)
        end
end)

-- Should the counter die, do not wait forever.
timer.after(60, function()
        log.warn("%s: no last message after 60 s (got %d); giving up", app.id(), got)
        save()
        app.exit(1)
end)
