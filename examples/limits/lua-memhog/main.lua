-- lua-memhog: an app that keeps everything it makes, to show cella-lua's memory
-- cap (docs/lua-api.md "Limits").
--
-- limits.memory is 24M: the cgroup stops the process at 24 MiB, and the Lua
-- state is capped at 16 MiB (the limit less 8 MiB for the binary, liblua and
-- the stacks), so the Lua error comes first. The allocator refuses the
-- allocation past the cap; after an emergency collection fails to make room the
-- app ends with exit code 3 and "cella-lua: memory limit of 16777216 bytes
-- exceeded" in its log; the audit's exit record says "memory limit of the Lua
-- state exceeded". The growth runs under pcall, and pcall does not save it.
local log = require "cella.log"

log.info("lua-memhog: growing a table until the memory limit stops me")

local hoard = {}
local ok, err = pcall(function()
        for i = 1, math.maxinteger do
                hoard[i] = string.rep("m", 4096) .. i -- a fresh 4 KiB string each time
        end
end)
-- Never reached: pcall re-raises the memory error instead of returning it.
log.error("lua-memhog: escaped the memory limit (pcall returned %s, %s; %d entries)",
          tostring(ok), tostring(err), #hoard)
