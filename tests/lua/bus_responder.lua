-- The responder of the two-app request/reply test (bus_requester.lua): a
-- service answering requests through bus.on_message (docs/lua-api.md
-- "cella.bus"). Rights: none (bus.reply needs none).
--   "upper": the data in capitals, text/plain; "fail": an error (EIO);
--   "slow": answers after 2 s; "count": how many requests so far.
local bus = require "cella.bus"
local log = require "cella.log"
local timer = require "cella.timer"

local n = 0
bus.on_message(function(msg)
        if not msg.request then
                log.info("responder: direct message from %s: %s", msg.sender, msg.data)
                return
        end
        n = n + 1
        if msg.topic == "upper" then
                return msg.data:upper(), "text/plain"
        elseif msg.topic == "fail" then
                error("responder was asked to fail")
        elseif msg.topic == "slow" then
                timer.sleep(2)
                return "late"
        elseif msg.topic == "count" then
                return tostring(n)
        end
        error("unknown method " .. msg.topic)
end)
print("responder ready")
