-- cella.notify: posted with the right, refused without it, bounds
-- (docs/lua-api.md "cella.notify").
--   notify.lua granted    (right: notify)
--   notify.lua refused    (no notify right)
local notify = require "cella.notify"
local mode = ...

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

if mode == "refused" then
        local err = refused(notify.post, "not allowed", "body")
        assert(err:find("cella.notify.post", 1, true), err)
        print("OK notify refused")
        return
end
assert(mode == "granted", "usage: notify.lua granted|refused")

local id = notify.post("lua notify test", "the body", {urgency = "low", tag = "t1"})
assert(math.type(id) == "integer" and id > 0, tostring(id))
local id2 = notify.post("title only")
assert(math.type(id2) == "integer" and id2 ~= id)
assert(notify.post(string.rep("t", 255), string.rep("b", 4095),
                   {urgency = "critical", tag = string.rep("g", 63)}))

-- Bounds are checked before the kernel is asked.
refused(notify.post, "")
refused(notify.post, string.rep("t", 256))
refused(notify.post, "t", string.rep("b", 4096))
refused(notify.post, "t", "b", {urgency = "panic"})
refused(notify.post, "t", "b", {tag = string.rep("g", 64)})
print("OK notify granted")
