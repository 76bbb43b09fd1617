-- cella.bus within one app: publish/subscribe roundtrip, refused topics,
-- direct messages and requests to itself through bus.on_message, bounds
-- (docs/lua-api.md "cella.bus").
-- Rights: bus.publish:org.test.lua.bus.*, bus.subscribe:org.test.lua.bus.*, bus.send:<own id>.
local app = require "cella.app"
local bus = require "cella.bus"
local timer = require "cella.timer"

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

local function wait_for(pred, what)
        local deadline = timer.now() + 10
        while not pred() do
                assert(timer.now() < deadline, "timed out waiting for " .. what)
                timer.sleep(0.01)
        end
end

-- Publish/subscribe roundtrip.
local got = {}
local sub = bus.subscribe("org.test.lua.bus.*", function(msg)
        got[#got + 1] = msg
end)
assert(math.type(sub) == "integer" and sub > 0, "subscription id")
assert(bus.publish("org.test.lua.bus.one", "hello", "text/plain") == 1,
       "queued for our subscription")
assert(bus.publish("org.test.lua.bus.two", string.rep("x", 64512)) == 1, "the largest payload")
wait_for(function() return #got == 2 end, "our two messages")
assert(got[1].topic == "org.test.lua.bus.one" and got[1].data == "hello", got[1].topic)
assert(got[1].sender == app.id(), got[1].sender)
assert(got[1].content_type == "text/plain", got[1].content_type)
assert(got[2].topic == "org.test.lua.bus.two" and #got[2].data == 64512)

-- Refused: topics outside the rights, a payload over 64512 bytes, bad arguments.
local err = refused(bus.publish, "other.topic", "x")
assert(err:find("cella.bus.publish", 1, true), err)
err = refused(bus.subscribe, "other.*", function() end)
assert(err:find("cella.bus.subscribe", 1, true), err)
err = refused(bus.publish, "org.test.lua.bus.big", string.rep("x", 64513))
assert(err:find("64512", 1, true), err)
refused(bus.publish, "", "x")
refused(bus.publish, "org.test.lua.bus.*", "x") -- a pattern is not a topic
refused(bus.subscribe, "org.test.lua.bus.*", "not a function")
refused(bus.send, "org.nowhere.app", "x") -- no bus.send right for it
refused(bus.request, app.id(), "m", "x", 0)
refused(bus.request, app.id(), "m", "x", 601)

-- Unsubscribe: true once, then false; nothing arrives after it.
assert(bus.unsubscribe(sub) == true)
assert(bus.unsubscribe(sub) == false)
assert(bus.publish("org.test.lua.bus.one", "after") == 0, "no subscriber left")

-- Direct messages and requests reach bus.on_message.
local direct = {}
bus.on_message(function(msg)
        if not msg.request then
                direct[#direct + 1] = msg
                return
        end
        if msg.topic == "upper" then
                return msg.data:upper(), "text/plain"
        elseif msg.topic == "fail" then
                error("asked to fail")
        end
        return nil -- an empty answer
end)
bus.send(app.id(), "direct one", "text/plain")
wait_for(function() return #direct == 1 end, "the direct message")
assert(direct[1].topic == "" and direct[1].data == "direct one" and direct[1].sender == app.id())

local data, ctype, responder = bus.request(app.id(), "upper", "shout", 5)
assert(data == "SHOUT" and ctype == "text/plain" and responder == app.id(), data)
data = bus.request(app.id(), "empty", "x", 5)
assert(data == "", data)
-- An error raised by the handler is the answer (EIO); the app carries on.
err = refused(bus.request, app.id(), "fail", "x", 5)
assert(err:find("cella.bus.request", 1, true), err)

-- With the handler removed and no subscription left, the app ends by itself.
bus.on_message(nil)
print("OK bus")
