-- lua-cpuhog: an app that never stops computing, to show cella-lua's CPU budget
-- (docs/lua-api.md "Limits").
--
-- Every callback (the main chunk is one) may use at most CELLA_LUA_CPU_MS of
-- CPU, 5000 ms by default (no manifest key sets it). This loop passes it: the
-- budget error ends the app with exit code 4 and the line
-- "cella-lua: CPU budget of 5000 ms exceeded" in its log; the audit's exit
-- record says "CPU budget exceeded". The loop runs inside a coroutine inside
-- pcall, and neither saves it: limit errors cannot be caught.
local log = require "cella.log"

log.info("lua-cpuhog: spinning until the CPU budget stops me")

local spin = coroutine.wrap(function()
        local x = 0
        while true do
                x = (x + 1) % 1000003
        end
end)

local ok, err = pcall(spin)
-- Never reached: pcall re-raises the budget error instead of returning it.
log.error("lua-cpuhog: escaped the CPU budget (pcall returned %s, %s)", tostring(ok),
          tostring(err))
