-- table.sort of 150,000 numbers with a Lua comparator, twice: the comparator
-- runs inside C (not yieldable), where a slice's end cannot preempt.
math.randomseed(7)
local sum = 0
for _ = 1, 2 do
        local a = {}
        for i = 1, 150000 do
                a[i] = math.random(1, 1000000)
        end
        table.sort(a, function(p, q) return p > q end)
        sum = sum + a[1] + a[#a]
end
print("sortcmp", sum)
