-- cella.crypto: random, hash, secretbox, signatures, and their refusals
-- (docs/lua-api.md "cella.crypto"). Rights: none.
local crypto = require "cella.crypto"

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

assert(#crypto.random(0) == 0 and #crypto.random(65536) == 65536)
assert(crypto.random(16) ~= crypto.random(16))
refused(crypto.random, 65537)
refused(crypto.random, -1)

-- BLAKE2b-256 of "" (RFC 7693 parameters, 32-byte output).
assert(crypto.hash("") == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
assert(#crypto.hash("x", nil, true) == 32)
local key16 = string.rep("k", 16)
assert(crypto.hash("x", key16) ~= crypto.hash("x"))
refused(crypto.hash, "x", string.rep("k", 15))
refused(crypto.hash, "x", string.rep("k", 65))
refused(crypto.hash, string.rep("x", 1024 * 1024 + 1))

local key = crypto.secretbox_keygen()
assert(#key == 32)
local box = crypto.secretbox("secret", key)
assert(#box == 24 + 6 + 16)
assert(crypto.secretbox_open(box, key) == "secret")
local forged = box:sub(1, -2) .. string.char((box:byte(-1) + 1) % 256)
local msg, why = crypto.secretbox_open(forged, key)
assert(msg == nil and type(why) == "string")
assert(crypto.secretbox_open(box, crypto.secretbox_keygen()) == nil)
assert(crypto.secretbox_open("short", key) == nil)
refused(crypto.secretbox, "m", "short key")
refused(crypto.secretbox_open, box, "short key")

local pk, sk = crypto.sign_keypair()
assert(#pk == 32 and #sk == 64)
local sig = crypto.sign_detached("message", sk)
assert(#sig == 64)
assert(crypto.verify(sig, "message", pk) == true)
assert(crypto.verify(sig, "messagf", pk) == false)
assert(crypto.verify("short", "message", pk) == false)
refused(crypto.verify, sig, "message", "short pk")
refused(crypto.sign_detached, "m", "short sk")
print("OK crypto")
