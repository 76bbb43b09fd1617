-- Recursive Fibonacci: Lua function calls and integer arithmetic.
-- Usage: fib.lua [SCALE]   (SCALE 1 is about 0.3 s on the bench VM)
local scale = tonumber((...)) or 1
local function fib(n)
        if n < 2 then
                return n
        end
        return fib(n - 1) + fib(n - 2)
end
local sum = 0
for _ = 1, scale do
        sum = sum + fib(32)
end
print("fib", sum)
