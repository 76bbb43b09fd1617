-- A numeric loop (the figure in docs/lua-api.md "Limits"): integer arithmetic
-- in one for loop, no calls.
-- Usage: loop.lua [SCALE]
local scale = tonumber((...)) or 1
local x = 0
for i = 1, 20000000 * scale do
        x = x + i % 7
end
print("loop", x)
