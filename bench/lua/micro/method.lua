-- 10^7 calls of a string method: s:len() (the strings' metatable).
local n, s = 0, "abc"
for _ = 1, 10000000 do
        n = n + s:len()
end
print("method", n)
