-- The requester of the two-app request/reply test: asks bus_responder.lua
-- (another app, another sandbox) and checks the answers (docs/lua-api.md
-- "cella.bus"). Rights: bus.send:<responder id>.
--   bus_requester.lua RESPONDER_ID
local bus = require "cella.bus"
local timer = require "cella.timer"
local responder = ...

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

-- The responder may still be starting: retry while it is not running.
local data, ctype, from
local deadline = timer.now() + 20
while true do
        local ok, a, b, c = pcall(bus.request, responder, "upper", "hello", 10)
        if ok then
                data, ctype, from = a, b, c
                break
        end
        assert(timer.now() < deadline, "no answer: " .. tostring(a))
        timer.sleep(0.1)
end
assert(data == "HELLO" and ctype == "text/plain" and from == responder,
       tostring(data) .. " " .. tostring(ctype) .. " " .. tostring(from))

-- An error raised by the responder's handler is the answer; it carries on.
local err = refused(bus.request, responder, "fail", "x", 10)
assert(err:find("cella.bus.request", 1, true), err)
assert(bus.request(responder, "upper", "again", 10) == "AGAIN")

-- A timeout raises; other tasks run while a request waits.
local ticked = 0
local t = timer.every(0.1, function() ticked = ticked + 1 end)
err = refused(bus.request, responder, "slow", "x", 0.5)
assert(err:find("cella.bus.request", 1, true), err)
assert(ticked >= 2, "the timer did not run while the request waited")
timer.cancel(t)

-- A direct message: the responder handles it before the next request (its
-- messages arrive in order), so it is logged before we end.
bus.send(responder, "hi from the requester")
assert(bus.request(responder, "count", "", 10) == "5", "upper, fail, upper, slow, count")

-- Requests and messages to an app without the right: refused.
err = refused(bus.request, "org.test.nobody", "upper", "x", 1)
assert(err:find("cella.bus.request", 1, true), err)
refused(bus.send, "org.test.nobody", "x")
print("OK bus request")
