-- lua-ws-echo: a WebSocket echo client with cella.net.websocket. Sends COUNT text
-- messages and one binary one, checks each comes back whole, pings, and closes.
--
--   lua-ws-echo URL [COUNT]      (COUNT 1..1000, default 3)
--
-- The manifest's default is ws://127.0.0.1:8765/ (an echo server on the host's
-- loopback, see README.md) under the right "net.connect:127.0.0.1:8765". A wss://
-- URL is verified against the system's CA store.
local app = require "cella.app"
local log = require "cella.log"
local net = require "cella.net"

local url, count = ...
count = tonumber(count or "3")
if not url or not count or count < 1 or count > 1000 then
        log.error("usage: lua-ws-echo URL [COUNT]   (COUNT 1..1000, default 3)")
        app.exit(2)
        return
end

local ok, err = pcall(function()
        local ws <close> = net.websocket.connect(url, {timeout_ms = 5000})
        for i = 1, count do
                local msg = ("message %d: héllo"):format(i)
                ws:send(msg)
                local got, kind = ws:receive()
                if got ~= msg or kind ~= "text" then
                        error(("sent %q, got %q (%s)"):format(msg, tostring(got), tostring(kind)))
                end
        end
        local bin = ("\0\1\2\255"):rep(1024)
        ws:send(bin, "binary")
        local got, kind = ws:receive()
        if got ~= bin or kind ~= "binary" then error("the binary message did not come back whole") end
        ws:ping("are you there")
        print(("echoed %d text messages and %d binary bytes from %s; closed %s"):format(
                count, #bin, ws:info().address, ws:close() and "cleanly" or "without the peer's close"))
end)
if not ok then
        log.error("lua-ws-echo: %s", err)
        app.exit(1)
end
