-- Popular pure-Lua libraries, unchanged (Debian's lua-dkjson, lua-messagepack,
-- lua-penlight, lua-argparse, lua-inspect, lua-unit), used as an app would use
-- them. tests/integration/test_lua_libs.py copies the libraries beside this file
-- and compares its output under plain lua5.4 and as a cella Lua app, byte for byte.
local function section(name)
        print("== " .. name)
end

section("dkjson")
local json = require "dkjson"
local text = json.encode({name = "cella", list = {1, 2, 3.5, "x"}, nested = {ok = true}},
                         {keyorder = {"name", "list", "nested"}})
print(text)
local v, pos, err = json.decode('{"a":[1,2,{"b":null}],"c":"\\u00e9t\\u00e9","d":1e3}')
print(v.a[1], v.a[3].b, v.c, v.d, pos, err)
print(json.decode('{"a":'))

section("MessagePack")
local mp = require "MessagePack"
local packed = mp.pack({1, 2, 3, {x = "y"}, true, 2 ^ 40, -7, 1.5})
print((packed:gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
local u = mp.unpack(packed)
print(u[1], u[4].x, u[5], u[6], u[7], u[8])

section("penlight")
local class = require "pl.class"
local Animal = class()
function Animal:_init(name) self.name = name end
function Animal:__tostring() return self.name .. " the " .. self:kind() end
function Animal:kind() return "animal" end
local Dog = class(Animal)
function Dog:kind() return "dog" end
print(tostring(Dog("Rex")), Dog:class_of(Dog("a")), Animal:class_of(Dog("b")), Dog:class_of(Animal("c")))
local List = require "pl.List"
local l = List {3, 1, 2}
l:sort()
print(l, l:map(function(x) return x * 10 end), l:reduce("+"))
local tablex = require "pl.tablex"
print(tablex.size({a = 1, b = 2}), table.concat(tablex.keys({z = 1}), ","),
      tablex.deepcompare({1, {2}}, {1, {2}}))
local stringx = require "pl.stringx"
print(stringx.split("a,b,,c", ","), stringx.strip("  hi  "), stringx.startswith("cella", "ce"))
local pretty = require "pl.pretty"
print(pretty.write({1, 2, x = {y = "z"}}, ""))
local OrderedMap = require "pl.OrderedMap"
local om = OrderedMap()
om:set("one", 1)
om:set("two", 2)
print(om)
local utils = require "pl.utils"
print(table.concat(utils.split("x y  z"), "|"), utils.quote_arg("a b"))
local seq = require "pl.seq"
print(seq.sum({1, 2, 3, 4}), seq.count({1, 2, 3}, function(x) return x > 1 end))
local text_t = require "pl.text"
print(text_t.Template("hello $who"):substitute({who = "world"}))

section("argparse")
local argparse = require "argparse"
local parser = argparse("app", "An example.")
parser:argument("input", "Input file.")
parser:option("-o --output", "Output file.", "a.out")
parser:option("-I --include", "Include locations."):count("*")
parser:flag("-v --verbose", "Verbose.")
local args = parser:parse({"in.txt", "-I", "x", "-Iy", "-v"})
print(args.input, args.output, table.concat(args.include, ","), args.verbose)
print(parser:pparse({"--nope"}))
print(parser:get_help())

section("inspect")
local inspect = require "inspect"
print(inspect({1, 2, a = {b = {c = "d"}}, [true] = false}))
print(inspect(setmetatable({x = 1}, {__index = {}}), {depth = 1}))

section("luaunit")
local lu = require "luaunit"
TestMath = {}
function TestMath:testAdd() lu.assertEquals(1 + 1, 2) end
function TestMath:testStringCoercion() lu.assertEquals("10" + 1, 11) end
function TestMath:testFails() lu.assertEquals({1, 2}, {1, 3}) end
function TestMath:testError() error("boom") end
local runner = lu.LuaUnit.new()
runner:setOutputType("nil")
local failures = runner:runSuite("--pattern", "Test")
print("failures", failures, runner.result.runCount, runner.result.successCount,
      runner.result.failureCount, runner.result.errorCount)
for _, t in ipairs(runner.result.allTests) do
        print(t.testName, t.status, (t.msg or ""):gsub("^.-:%d+: ", ""))
end

section("language")
print("10" + 1, "3" * "4", 10 .. 1, ("x"):rep(3), -"2", "0x10" + 0, "2" ^ 2, 7 // "2")
print(select(2, pcall(function() return "x" + 1 end)):gsub("^.-:%d+: ", ""))
print(require "utf8" == utf8, require "string" == string, require "table" == table)
print(utf8.char(72, 233, 8364), utf8.len("hé€"), ("%5.2f|%-3d|%q"):format(3.14159, 7, "a\nb"))
print(select("#", require "dkjson"), package.loaded["dkjson"] == json)
print(string.format("%s %s", math.type(1), math.type(1.0)), math.tointeger(3.0), 7 // 2, 7 / 2)
io.write("io.write ", 3.0, " ", 2 ^ 63, " ", 7, " ", -0.0, "\n")
io.stdout:write("io.stdout ", 1 / 3, "\n")
print(io.type(io.stdout), io.type(42), os.getenv("CELLA_SURELY_UNSET"))

section("io")
-- A relative path: the app's /data in cella, the current folder under plain lua.
local f = assert(io.open("libs-test.txt", "w"))
print(io.type(f), f:write("line one\n", 42, " ", 3.0, " ", 0.1, "\n", "0x1F rest\n", "last") == f)
print(f:close(), io.type(f), tostring(f))
f = assert(io.open("libs-test.txt", "r"))
print(f:read("l"), f:read("n", "n", "n"), f:read("n"), f:read("L"), f:read(2), f:read("a"))
print(f:read("a"), f:read("l"), f:read(0), f:seek("set", 5), f:read(3), f:seek("end"))
f:close()
for l in io.lines("libs-test.txt") do io.write("[", l, "]") end
print()
for a, b in io.lines("libs-test.txt", 4, "l") do print(a, b) end
f = assert(io.open("libs-test.txt", "a+"))
f:write("\nappended")
f:seek("set")
local all = f:read("a")
print(#all, select(2, all:gsub("\n", "")))
f:close()
print(pcall(f.read, f))
print(io.open("no-such-file.txt"))
f = assert(io.open("libs-num.txt", "w"))
f:write("1-2 0x1Fp1 .5e3 -7 abc 12")
f:close()
f = assert(io.open("libs-num.txt"))
print(f:read("n", "n", "n", "n", "n", "n"))
print(f:read("a"))
f:close()
