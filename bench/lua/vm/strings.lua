-- String work as apps do it: string.format, concatenation, table.concat,
-- string.rep, find, gsub, sub and byte through the library tables
-- (string.x: a global lookup then a field read, as ordinary code writes it).
-- Usage: strings.lua [SCALE]
local scale = tonumber((...)) or 1
local total = 0
for round = 1, 40 * scale do
        local parts = {}
        for i = 1, 5000 do
                parts[#parts + 1] = string.format("%d:%s", i, string.rep("x", i % 8))
        end
        local s = table.concat(parts, ",")
        local n = 0
        for _ in string.gmatch(s, "%d+") do
                n = n + 1
        end
        local t = string.gsub(s, "x+", function(m) return #m end)
        local acc = ""
        for i = 1, 200 do
                acc = acc .. string.sub(t, i, i + 3)
        end
        total = total + n + #t + #acc + string.byte(t, round % #t + 1)
        if string.find(s, "4999:") then
                total = total + 1
        end
        total = total + #(("k" .. round):upper())
end
print("strings", total)
