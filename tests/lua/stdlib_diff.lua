-- cella-lua's own string.find/match/gmatch/gsub/rep and table functions
-- (src/lua/libstring.c, libtable.c) against liblua's: the same calls in a plain
-- lua_State and in an app must give the same results and errors, line by line
-- (tests/unit/test-lua.c: test_string_table_match_liblua).
local out, n = {}, 0
local function put(s) n = n + 1; out[n] = s end
-- Error messages without what differs between a plain lua_State and an app's:
-- the function's name (plain Lua finds it in package.loaded) and the position
-- in cella's table.sort, which is Lua code.
local function clean(v)
  if type(v) == 'table' then return 'tbl' end
  local msg = tostring(v)
  local i = msg:find(" to '", 1, true)
  if i then msg = msg:sub(1, i + 4) .. msg:sub((msg:find("'", i + 5, true))) end
  -- liblua 5.4.4's table.remove names argument #1 for a bad position (#2 is meant)
  if msg:find("(position out of bounds)", 1, true) then msg = "position out of bounds" end
  if msg:sub(1, 11) == "table.sort:" then msg = msg:sub((msg:find(": ", 1, true)) + 2) end
  return msg
end
local function ser(ok, ...)
  local t = {ok and 'ok' or 'err'}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    t[#t + 1] = type(v) .. ':' .. clean(v)
  end
  return table.concat(t, '|')
end
local names = {}
for k, v in pairs(string) do names[v] = 'string.' .. k end
for k, v in pairs(table) do names[v] = 'table.' .. k end
local function try(f, ...)
  local a = {}
  for i = 1, select('#', ...) do local v = select(i, ...); a[i] = type(v) == 'string' and string.format('%q', v) or type(v) == 'table' and 'tbl' or type(v) == 'function' and 'fn' or tostring(v) end
  return (names[f] or '?') .. '(' .. table.concat(a, ',') .. ') => ' .. ser(pcall(f, ...))
end
local subjects = {"", "hello world", "  a1b2c3 ", "(foo(bar))baz", "THE (quick) fox",
  "a.b-c+d*e?f", "\0a\0b", "aaa", "x=1, y=22, z=333", "\195\164\195\182", "[[x]]", "%d",
  "abc$", "^abc", "xyxxy", "key = value\nother=2\n"}
local patterns = {"", "a", "^a", "a$", "^$", ".", "..", "%a+", "%d+", "%s*", "%w-", "(%a+)",
  "()a()", "(a)(b)?", "%bxy", "%b()", "%f[%w]%w+", "%f[%W]", "[a-c]+", "[^%s]+", "[%]]", "[]]",
  "[^]]", "[a-]", "(h)(e)(l)", "%1", "(a)%1", "(.)%1", "x*", "a-b", "a?b", ".-b", "[%a_][%w_]*",
  "%", "[a", "(()", "%g+", "%p+", "%c", "%x+", "%u%l*", "%L+", "%D", "(%d+)%.?",
  "^(%s*)(.-)(%s*)$", "%z", "%0", "(a", "a)", "%f", "%fa", "%b", "%ba", "$", "^", "a*$",
  "[%d-z]", "[]", "[^]", "\0", "%z+", "(%w+)%s*=%s*(%w+)", "^(%w+)", "[%a-]+", "(x)(y)%2%1",
  "[a-%%]", "((a)(b))", "%.", "[.]", "y$", "x*y-", "%s*$", "()%1", "().-%1", "()(a)%2%1",
  "(a)()%2"}
local inits = {1, 2, -1, -3, 0, 100, 3}
local tbl = {a = "A", b = false, x = "X", hello = 1}
for _, s in ipairs(subjects) do
  for _, p in ipairs(patterns) do
    put(try(string.find, s, p))
    put(try(string.match, s, p))
    put(try(string.find, s, p, 1, true))
    for _, i in ipairs(inits) do
      put(try(string.find, s, p, i))
      put(try(string.match, s, p, i))
    end
    put(try(string.gsub, s, p, "<%0>"))
    put(try(string.gsub, s, p, "%1-%%"))
    put(try(string.gsub, s, p, "%2"))
    put(try(string.gsub, s, p, "%x"))
    put(try(string.gsub, s, p, "[%0]", 2))
    put(try(string.gsub, s, p, tbl))
    put(try(string.gsub, s, p, function(...) return select('#', ...) .. tostring((...)) end))
    put(try(string.gsub, s, p, function() return {} end))
    put(try(string.gsub, s, p, function() return false end))
    put(try(string.gsub, s, p, 5))
    for _, i in ipairs(inits) do
      put(try(function()
        local r = {}
        for a, b in string.gmatch(s, p, i) do r[#r + 1] = tostring(a) .. '/' .. tostring(b) end
        return table.concat(r, ';')
      end))
    end
  end
end
put(try(string.gsub, "abc", ".", true))
put(try(string.gsub, "abc", ".", nil))
put(try(string.gsub, "abc", "(", "x"))
put(try(string.rep, "ab", 3, ","))
put(try(string.rep, "ab", 3))
put(try(string.rep, "", 5))
put(try(string.rep, "x", 0))
put(try(string.rep, "x", -1))
put(try(string.rep, "x", 1, "sep"))
-- filled by doubling: every count up to 40, with and without a separator
for k = 1, 40 do
  put(try(string.rep, "abc", k))
  put(try(string.rep, "ab", k, "-+"))
  put(try(string.rep, "", k, ","))
end
put(try(string.find))
put(try(string.find, "a"))
put(try(string.match, "a", ("(a)"):rep(33)))
put(try(string.match, ("a"):rep(300), ("a?"):rep(300) .. ("a"):rep(300)))
put(try(string.find, ("a"):rep(300), ("(a"):rep(32)))
-- table functions
local function tt(t) local r = {} for i = 1, 12 do r[i] = tostring(rawget(t, i)) end return table.concat(r, ',') end
put(try(table.concat, {1, 2, 3}, ", "))
put(try(table.concat, {1, 2, 3}, ", ", 2, 3))
put(try(table.concat, {1, 2, 3}, ", ", 3, 2))
put(try(table.concat, {1, {}, 3}))
put(try(table.concat, {}, "x"))
put(try(table.concat, {"a", "b"}, nil, 1, 5))
put(try(table.concat, 5))
for _, args in ipairs{{1}, {1, 'v'}, {3, 'v'}, {0, 'v'}, {5, 'v'}, {4, 'v'}, {1, 2, 3}} do
  local t = {1, 2, 3}
  put(try(table.insert, t, table.unpack(args)) .. tt(t))
end
for _, pos in ipairs{false, 1, 3, 4, 0, 5, -1} do
  local t = {1, 2, 3}
  put(try(table.remove, t, pos or nil) .. tt(t))
  put(try(table.remove, {}, pos or nil))
end
for _, a in ipairs{{1, 3, 2}, {1, 3, 3}, {2, 3, 1}, {1, 0, 5}, {1, 3, 3, true},
                   {math.mininteger, 2, 1}, {1, math.maxinteger, 2}, {1, 2, math.maxinteger}} do
  local t = {1, 2, 3, 4, 5}
  local dst = a[4] and {} or nil
  put(try(table.move, t, a[1], a[2], a[3], dst) .. tt(t) .. (dst and tt(dst) or ''))
end
put(try(table.unpack, {1, 2, 3}))
put(try(table.unpack, {1, 2, 3}, 2))
put(try(table.unpack, {1, 2, 3}, -1, 1))
put(try(table.unpack, {1, 2, 3}, 3, 2))
put(try(table.unpack, {}, 1, 1e8))
put(try(table.unpack, {}, math.mininteger, math.maxinteger))
local mt = setmetatable({}, {__index = function(_, i) return i * 2 end, __len = function() return 4 end})
put(try(table.concat, mt, "+"))
put(try(table.unpack, mt))
-- sort: same result for distinct keys, same errors
local seed = 7
local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return seed end
for _, size in ipairs{0, 1, 2, 3, 5, 11, 12, 13, 14, 50, 200, 1000} do
  local t = {}
  for i = 1, size do t[i] = rnd() end
  local a, b = {table.unpack(t)}, {table.unpack(t)}
  put(try(table.sort, a) .. (size > 0 and (a[1] .. ':' .. a[size]) or ''))
  local ok = true
  for i = 2, size do ok = ok and a[i - 1] <= a[i] end
  put(tostring(ok))
  put(try(table.sort, b, function(x, y) return x > y end))
  ok = true
  for i = 2, size do ok = ok and b[i - 1] >= b[i] end
  put(tostring(ok))
  local c = {}
  for i = 1, size do c[i] = tostring(t[i]) end
  put(try(table.sort, c))
  ok = true
  for i = 2, size do ok = ok and c[i - 1] <= c[i] end
  put(tostring(ok))
end
put(try(table.sort, {3, 1, "x"}))
put(try(table.sort, {3, 1, 2}, 5))
put(try(table.sort))
put(try(table.sort, 5))
local bad = {}
for i = 1, 100 do bad[i] = i % 7 end
put((try(table.sort, bad, function(a, b) return true end)))
return table.concat(out, "\n")
