-- cella.perm: query, request, list and on_revoke (docs/lua-api.md "cella.perm").
-- Rights: notify (normal: granted at install), location (dangerous: undecided;
-- run with --no-prompt, so a request is refused, not asked).
local perm = require "cella.perm"

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

assert(perm.query("notify") == "granted", perm.query("notify"))
assert(perm.query("location") == "ask", perm.query("location"))
assert(perm.query("camera") == "not-requested", perm.query("camera"))

-- A normal right in the manifest: granted, not one-time.
local granted, one_time = perm.request("notify", "to say hello")
assert(granted == true and one_time == false, tostring(granted) .. " " .. tostring(one_time))
-- A dangerous one with nobody to ask (--no-prompt): the kernel refuses the
-- call (EACCES), so it raises, naming the function and the way to grant it.
local err = refused(perm.request, "location", "to test")
assert(err:find("cella.perm.request", 1, true) and err:find("nobody to ask", 1, true), err)
assert(perm.query("location") == "ask")

-- Not in the manifest, or a signature right: errors naming the function.
err = refused(perm.request, "camera")
assert(err:find("cella.perm.request", 1, true), err)
err = refused(perm.request, "system.admin")
assert(err:find("cella.perm.request", 1, true), err)
refused(perm.query, "")
refused(perm.query, string.rep("a", 300))

local list = perm.list()
local seen = {}
for _, p in ipairs(list) do
        assert(type(p.permission) == "string" and type(p.state) == "string", "list entry")
        assert(type(p.level) == "string" and type(p.one_time) == "boolean", "list entry")
        seen[p.permission] = p
end
assert(seen.notify and seen.notify.state == "granted" and seen.notify.level == "normal")
assert(seen.location and seen.location.level == "dangerous")
assert(not seen.camera)

-- on_revoke takes a function or nil, and does not keep the app alive.
perm.on_revoke(function() end)
perm.on_revoke(nil)
perm.on_revoke(function() end)
refused(perm.on_revoke, 42)
print("OK perm")
