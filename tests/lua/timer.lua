-- cella.timer: after/every/cancel/sleep, their order, their bounds, and the
-- app staying alive for a pending timer (docs/lua-api.md "cella.timer").
-- Rights: none (host timers need no right).
local timer = require "cella.timer"

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end
local nop = function() end

-- Bounds: seconds 0..2592000 (every: 0.001..), a function.
refused(timer.after, -1, nop)
refused(timer.after, 2592001, nop)
refused(timer.after, 0 / 0, nop)
refused(timer.every, 0, nop)
refused(timer.every, 2592001, nop)
refused(timer.after, 1, "not a function")
refused(timer.sleep, -0.5)
refused(timer.sleep, 2592001)
assert(type(timer.now()) == "number")

-- At most 1024 timers per app.
local many = {}
for i = 1, 1024 do
        many[i] = timer.after(3600, nop)
end
local err = refused(timer.after, 3600, nop)
assert(err:find("cella.timer.after", 1, true), err)
for i = 1, 1024 do
        assert(timer.cancel(many[i]) == true)
end

-- Order: callbacks run by deadline, a cancelled one never, an "every" until
-- cancelled, and the main chunk's sleep lets them all run meanwhile.
local order = {}
local function mark(what)
        order[#order + 1] = what
end
local t0 = timer.now()
timer.after(0.6, function() mark("after 0.6") end)
local first
first = timer.after(0.1, function(t)
        assert(t == first, "a callback gets its own timer")
        mark("after 0.1")
end)
local cancelled = timer.after(0.2, function() mark("cancelled one ran") end)
assert(timer.cancel(cancelled) == true)
assert(timer.cancel(cancelled) == false, "cancelling twice")
local ticks, every = 0, nil
every = timer.every(0.3, function(t)
        assert(t == every)
        ticks = ticks + 1
        if ticks == 3 then
                assert(timer.cancel(t) == true)
                mark("every x3")
        end
end)
-- A callback that sleeps: other callbacks run while it waits.
timer.after(0, function()
        mark("sleeper starts")
        timer.sleep(0.35)
        mark("sleeper wakes")
end)

timer.sleep(1.2)
mark("main wakes")
assert(timer.now() - t0 >= 1.2 - 0.001, "slept too short")
local want = {"sleeper starts", "after 0.1", "sleeper wakes", "after 0.6", "every x3", "main wakes"}
assert(table.concat(order, ", ") == table.concat(want, ", "), table.concat(order, ", "))
assert(ticks == 3, "every kept running after cancel")
timer.sleep(0)

-- An "every" that falls behind gets one call, not a burst: the main chunk keeps
-- the CPU for 0.5 s (ten periods) without waiting.
local burst = 0
local b = timer.every(0.05, function() burst = burst + 1 end)
local busy = timer.now()
while timer.now() - busy < 0.5 do
end
timer.sleep(0.001)
assert(burst >= 1 and burst <= 2, "a burst of " .. burst .. " calls")
assert(timer.cancel(b))

-- After the main chunk, a pending timer keeps the app alive; when nothing is
-- left to wait for, cella-lua exits 0.
timer.after(0.2, function()
        assert(timer.now() - t0 >= 1.9 - 0.001)
        print("OK timer")
end)
