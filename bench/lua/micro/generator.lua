-- 10^6 resumes of coroutine.wrap generators (locals: no library lookups).
local yield, wrap = coroutine.yield, coroutine.wrap
local function gen(n)
        return wrap(function()
                for i = 1, n do
                        yield(i)
                end
        end)
end
local t = 0
for _ = 1, 100 do
        for v in gen(10000) do
                t = t + v
        end
end
print("generator", t)
