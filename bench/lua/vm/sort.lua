-- Tables: table.insert of random numbers, table.sort with the default order
-- and with a Lua comparator, table.remove, ipairs/pairs walks.
-- Usage: sort.lua [SCALE]
local scale = tonumber((...)) or 1
math.randomseed(42)
local sum = 0
for _ = 1, 2 * scale do
        local a = {}
        for i = 1, 50000 do
                table.insert(a, math.random(1, 1000000))
        end
        local b = {}
        for i, v in ipairs(a) do
                b[i] = {key = v, id = i}
        end
        table.sort(a)
        table.sort(b, function(p, q) return p.key > q.key end)
        local h = {}
        for i = 1, #a, 3 do
                h["k" .. a[i]] = i
        end
        for k, v in pairs(h) do
                sum = sum + v + #k
        end
        while #a > 40000 do
                sum = sum + table.remove(a)
        end
        sum = (sum + a[1] + b[1].key) % 1000000007
end
print("sort", sum)
