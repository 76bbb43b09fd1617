-- cella.app: id, info, stats, launch refused without its right, exit codes
-- (docs/lua-api.md "cella.app").
--   app.lua ID            checks everything, prints OK app
--   app.lua ID exit N     calls app.exit(N) from a timer callback: the app ends at
--                         once, even under pcall; nothing after it runs
-- Rights: notify, bus.publish:org.test.lua.app.x.
local app = require "cella.app"
local timer = require "cella.timer"

local args = {...}
assert(app.id() == args[1], "app.id() is " .. app.id())

if args[2] == "exit" then
        timer.after(3600, function() print("a timer after exit ran") end)
        timer.after(0.05, function()
                print("exiting")
                print(pcall(app.exit, tonumber(args[3])))
                print("ESCAPED: ran after app.exit")
        end)
        return
end

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

local info = app.info()
assert(info.id == args[1])
assert(info.name == "App test" and info.version == "1.2.3", info.name)
assert(info.kind == "app" and info.runtime == "lua", info.kind .. " " .. info.runtime)
local function has(list, x)
        for _, v in ipairs(list) do
                if v == x then
                        return true
                end
        end
        return false
end
assert(type(info.requested) == "table" and has(info.requested, "notify"))
assert(has(info.requested, "bus.publish:org.test.lua.app.x"))
assert(type(info.granted) == "table" and has(info.granted, "notify"))
assert(type(info.limits) == "table")

local s = app.stats()
for _, k in ipairs({"slices", "callbacks", "cpu_ns", "memory_bytes", "memory_peak_bytes",
                    "priority", "weight"}) do
        assert(math.type(s[k]) == "integer", "app.stats()." .. k)
end
assert(s.memory_bytes > 0 and s.memory_peak_bytes >= s.memory_bytes)
assert(s.priority == 0 and s.weight == 1024, "priority 0 has weight 1024")

-- No app.launch right: refused, naming the function.
local err = refused(app.launch, "org.cella.example.hello")
assert(err:find("cella.app.launch", 1, true), err)
refused(app.launch, "")
refused(app.exit, 256)
refused(app.exit, -1)
print("OK app")
