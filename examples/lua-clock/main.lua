-- lua-clock: a service publishing the time on the bus, as examples/clock in C.
--
--   lua-clock [PERIOD_SECONDS]      (default 1; 0.001..3600)
--
-- Every PERIOD_SECONDS (a host timer: cella.timer needs no right) it publishes
-- topic "org.cella.example.lua_clock.tick" (right
-- "bus.publish:org.cella.example.lua_clock.*": its own id's namespace; the
-- manifest exports the topic to subscribers), content type
-- "application/json", body {"seq":N,"unix":T}: N counts ticks from 1, T is the
-- wall clock in seconds since 1970-01-01 UTC. When the user revokes its publish
-- right it says so and stops (app.exit(0)): a service that cannot do its job
-- does not retry what it may no longer do.
local app = require "cella.app"
local bus = require "cella.bus"
local json = require "cella.json"
local log = require "cella.log"
local perm = require "cella.perm"
local timer = require "cella.timer"

local period = tonumber((...) or "1")
if not period or period < 0.001 or period > 3600 then
        log.error("usage: lua-clock [PERIOD_SECONDS]   (0.001..3600, default 1)")
        app.exit(2)
        return
end

local seq = 0

perm.on_revoke(function(permission, reason)
        log.info("lua-clock: the right \"%s\" was revoked (%s); stopping after %d ticks",
                 permission, reason, seq)
        app.exit(0)
end)

timer.every(period, function()
        seq = seq + 1
        local body = json.encode({seq = seq, unix = os.time()})
        -- A refused publish means the right is gone: the revocation event says why
        -- and stops us; until it arrives, skip the tick rather than die.
        local ok, err = pcall(bus.publish, "org.cella.example.lua_clock.tick", body,
                              "application/json")
        if not ok then
                log.warn("tick %d not published: %s", seq, err)
        end
end)

log.info("lua-clock: publishing org.cella.example.lua_clock.tick every %g s", period)
