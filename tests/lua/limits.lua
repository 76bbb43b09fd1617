-- The limits (docs/lua-api.md "Limits"): a memory or CPU error dooms the app;
-- pcall, xpcall (its handler is not called) and coroutines do not catch it.
--   limits.lua memory|cpu pcall|xpcall|coroutine|wrap
-- Exits 3 (memory) or 4 (CPU); prints "ESCAPED ..." if anything caught it.
local what, how = ...

local work
if what == "memory" then
        local hoard = {}
        work = function()
                for i = 1, math.maxinteger do
                        hoard[i] = string.rep("m", 1000) .. i
                end
        end
elseif what == "cpu" then
        work = function()
                local x = 0
                while true do
                        x = x + 1
                end
        end
else
        error("usage: limits.lua memory|cpu pcall|xpcall|coroutine|wrap")
end

local ok, err
if how == "pcall" then
        ok, err = pcall(work)
elseif how == "xpcall" then
        ok, err = xpcall(work, function(e)
                print("ESCAPED: the xpcall handler ran: " .. tostring(e))
                return e
        end)
elseif how == "coroutine" then
        ok, err = coroutine.resume(coroutine.create(work))
elseif how == "wrap" then
        ok, err = pcall(coroutine.wrap(work))
else
        error("usage: limits.lua memory|cpu pcall|xpcall|coroutine|wrap")
end
print("ESCAPED: " .. how .. " returned " .. tostring(ok) .. ", " .. tostring(err))
-- Even if it were caught, no Lua instruction may run after it.
local n = 0
for i = 1, 10 do
        n = n + i
end
print("ESCAPED: still running, n = " .. n)
