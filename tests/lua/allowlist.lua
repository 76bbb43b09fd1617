-- The allowlist: every removed function is really absent or refused; the
-- library tables are the app's own (docs/lua-api.md "Allowlist"). Rights: none.
local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

-- Absent names.
for _, name in ipairs({"dofile", "loadfile", "warn", "require_path",
                       "module", "loadstring", "setfenv", "getfenv", "unpack"}) do
        assert(_ENV[name] == nil, name .. " is reachable")
end
assert(os.execute == nil and os.remove == nil and os.getenv("HOME") == nil)
assert(os.rename == nil and os.tmpname == nil and os.setlocale == nil)
local os_names = {}
for k in pairs(os) do
        os_names[#os_names + 1] = k
end
table.sort(os_names)
assert(table.concat(os_names, ",") == "clock,date,difftime,exit,getenv,time",
       table.concat(os_names, ","))
assert(debug.getmetatable == nil and debug.sethook == nil and debug.getregistry == nil)
assert(debug.getlocal == nil and debug.setupvalue == nil and debug.upvalueid == nil)
assert(type(debug.traceback) == "function")
assert(string.dump == nil)
assert(coroutine.close == nil)
assert(type(string.format) == "function" and type(table.concat) == "function")
assert(type(math.floor) == "function" and type(utf8.char) == "function")

-- The strings' metatable is the app's own, as in plain Lua; no registry.
assert(getmetatable("").__index == string and "10" + 1 == 11)
assert(_G == _ENV)
assert(package.loadlib == nil and package.searchers == nil and package.cpath == "")

-- require: the standard library by name, the cella.* modules, the app's own
-- files (tests/integration/test_lua_libs.py); nothing else.
assert(require "os" == os and require "io" == io and require "debug" == debug)
refused(require, "cella.nope")
refused(require, "/etc/passwd")
assert(type(require("cella.json")) == "table")

-- load: text only, a string only.
local f = load("return 1 + 1")
assert(f() == 2)
assert(load("\27Lua\x54\0binary chunk", "bin", "b") == nil)
assert(load("\27Lua\x54\0binary chunk", "bin", "bt") == nil)
refused(load, function() return nil end)
-- A loaded chunk sees the app's _ENV by default.
assert(load("return io")() == io)

-- collectgarbage: collect, count, step (bounded); the pacing options are the host's.
collectgarbage()
collectgarbage("collect")
assert(type(collectgarbage("count")) == "number")
collectgarbage("step", 1)
for _, opt in ipairs({"stop", "restart", "generational", "incremental", "setpause",
                      "setstepmul"}) do
        refused(collectgarbage, opt)
end
refused(collectgarbage, "step", 2 ^ 20 + 1)

-- setmetatable: no finalizers.
refused(setmetatable, {}, {__gc = function() end})
assert(setmetatable({}, {__index = {x = 1}}).x == 1)

-- The library tables are the app's own (luaunit replaces os.exit): a change
-- stays in this app's lua_State.
math.pi = 3
assert(math.pi == 3)
rawset(string, "x", 1)
assert(("").x == 1)
-- An app may set its own globals.
mine = 1
assert(_ENV.mine == 1)
print("OK allowlist")
