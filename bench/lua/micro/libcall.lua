-- 10^7 calls of a library function through its table: string.len("abc").
-- With the argument "proxy" (lua5.4 only), `string` is first replaced by an
-- empty read-only proxy whose metatable's __index is the real table, as
-- cella-lua's library tables were until issue 10 (the cost they had).
local mode = ...
if mode == "proxy" then
        local real = string
        string = setmetatable({}, {
                __index = real,
                __newindex = function() error("read-only") end,
                __metatable = false,
        })
end
local n = 0
for _ = 1, 10000000 do
        n = n + string.len("abc")
end
print("libcall", n)
