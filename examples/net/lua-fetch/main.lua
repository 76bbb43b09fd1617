-- lua-fetch: fetches a URL with cella.net.http and prints the status, the
-- content type and the body's first line.
--
--   lua-fetch URL [POST_BODY]
--
-- The manifest's default is http://127.0.0.1:8000/ (a server on the host's
-- loopback: `python3 -m http.server 8000`), under the right
-- "net.connect:127.0.0.1:8000", which names that exact address and port: the
-- host's loopback is reached only so, and only once the user granted it
-- (`cella grant`, README.md: a right naming an address that is not public is
-- dangerous). Any other host needs its own
-- net.connect:HOST:PORT right in the manifest, and so does every host a redirect
-- leads to: each hop is checked again.
local app = require "cella.app"
local log = require "cella.log"
local net = require "cella.net"

local url, body = ...
if not url then
        log.error("usage: lua-fetch URL [POST_BODY]")
        app.exit(2)
        return
end

local ok, r = pcall(net.http.request, {
        url = url,
        method = body and "POST" or "GET",
        body = body,
        headers = {["User-Agent"] = "cella-lua-fetch/1.0"},
        timeout_ms = 10000,
})
if not ok then
        log.error("lua-fetch: %s", r)
        app.exit(1)
        return
end
print(("%d %s %d bytes from %s"):format(r.status, r.headers["content-type"] or "-", #r.body,
        r.address))
print((r.body:match("[^\n]*")))
if r.status >= 400 then app.exit(1) end
