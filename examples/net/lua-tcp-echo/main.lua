-- lua-tcp-echo: sends a line to an echo server with cella.net.tcp, reads it
-- back, and checks it came back whole.
--
--   lua-tcp-echo HOST PORT MESSAGE
--
-- The manifest's default is 127.0.0.1:7007 (`socat TCP-LISTEN:7007,fork,bind=127.0.0.1
-- EXEC:cat` on the host) under the right "net.connect:127.0.0.1:7007".
local app = require "cella.app"
local log = require "cella.log"
local net = require "cella.net"

local host, port, msg = ...
port = tonumber(port)
if not host or not port or not msg then
        log.error("usage: lua-tcp-echo HOST PORT MESSAGE")
        app.exit(2)
        return
end

local ok, err = pcall(function()
        local c <close> = net.tcp.connect(host, port, {timeout_ms = 5000})
        c:write(msg .. "\n")
        local got = ""
        while #got < #msg + 1 do
                local s = c:read()
                if not s then break end
                got = got .. s
        end
        if got ~= msg .. "\n" then error(("echoed %q, sent %q"):format(got, msg .. "\n")) end
        print(("echoed %d bytes through %s (%s)"):format(#got, c:info().address, c:info().right))
end)
if not ok then
        log.error("lua-tcp-echo: %s", err)
        app.exit(1)
end
