-- cella.json: round trips, arrays and null, and every refusal of the contract
-- (docs/lua-api.md "cella.json"). Rights: none.
local json = require "cella.json"

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

assert(json.encode({b = 1, a = {1, 2, 3}, c = "x"}) == '{"a":[1,2,3],"b":1,"c":"x"}')
assert(json.encode({}) == "{}" and json.encode(json.array()) == "[]")
assert(json.encode(json.array({})) == "[]")
assert(json.encode(nil) == "null" and json.encode(json.null) == "null")
assert(json.encode(0.1) == "0.10000000000000001")
assert(json.decode(json.encode(0.1)) == 0.1)
assert(math.type(json.decode("42")) == "integer")
assert(json.encode("a\0b") == '"a\\u0000b"')
local v = json.decode('{"list":[1,null,"x"],"empty":[],"obj":{}}')
assert(v.list[2] == json.null and v.list[3] == "x" and #v.list == 3)
assert(json.encode(v.empty) == "[]" and json.encode(v.obj) == "{}")
assert(json.encode(json.decode('[1,{"a":[]}]')) == '[1,{"a":[]}]')

-- Refused: mixed or sparse tables, non-string keys, NaN/inf, invalid UTF-8,
-- functions, cycles, depth over 64, duplicate keys, input over 1 MiB.
refused(json.encode, {[1] = 1, [3] = 3})
refused(json.encode, {1, x = 2})
refused(json.encode, {[true] = 1})
refused(json.encode, 0 / 0)
refused(json.encode, math.huge)
refused(json.encode, "\xff\xfe")
refused(json.encode, print)
local cyc = {}
cyc.self = cyc
refused(json.encode, cyc)
refused(json.encode, json.array({x = 1}))
local deep = {}
for _ = 1, 64 do
        deep = {deep}
end
refused(json.encode, deep)
assert(json.decode(string.rep("[", 64) .. string.rep("]", 64)))
refused(json.decode, string.rep("[", 65) .. string.rep("]", 65))
refused(json.decode, string.rep("[", 100000)) -- a bracket bomb costs nothing
refused(json.decode, '{"a":1,"a":2}')
refused(json.decode, '{"a":')
refused(json.decode, '"' .. string.rep("x", 1024 * 1024) .. '"')
refused(json.encode, string.rep("x", 1024 * 1024))
local err = refused(json.decode, "nope")
assert(err:find("cella.json.decode", 1, true), err)
print("OK json")
