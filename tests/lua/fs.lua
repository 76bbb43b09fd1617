-- cella.fs: files in the data directory, and every way out refused
-- (docs/lua-api.md "cella.fs"). Rights: none.
--   fs.lua setup   writes the files below and prints OK fs setup
--   fs.lua check   run after the test planted, beside them (as root, on the host):
--                  link-out -> /etc/passwd, link-up -> ../../../.., link-abs-dir -> /etc,
--                  link-in -> sub/f.txt, link-sub -> sub, fifo (a FIFO)
local fs = require "cella.fs"
local mode = ...

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end
-- Refused as a way out: by the kernel (openat2 RESOLVE_BENEATH: "escapes the
-- data directory") or, for an absolute path, before it is tried.
local function escapes(fn, ...)
        local err = refused(fn, ...)
        assert(err:find("escapes", 1, true) or err:find("absolute path", 1, true), err)
        return err
end

if mode == "setup" then
        assert(fs.write("a.txt", "alpha") == true)
        assert(fs.mkdir("sub") == true)
        assert(fs.mkdir("sub") == false, "mkdir of an existing directory")
        assert(fs.write("sub/f.txt", "inside"))
        print("OK fs setup")
        return
end
assert(mode == "check", "usage: fs.lua setup|check")

-- Allowed.
assert(fs.read("a.txt") == "alpha")
assert(fs.append("a.txt", "+beta") and fs.read("a.txt") == "alpha+beta")
refused(fs.read, "a.txt", 5)
assert(fs.read("./sub/../a.txt") == "alpha+beta", "dots that stay inside")
assert(fs.read("link-in") == "inside", "a symlink that stays inside")
assert(fs.read("link-sub/f.txt") == "inside")
assert(fs.exists("sub/f.txt") and not fs.exists("nothing"))
local names = table.concat(fs.list(), ",")
assert(names == "a.txt,fifo,link-abs-dir,link-in,link-out,link-sub,link-up,sub", names)
assert(table.concat(fs.list("sub"), ",") == "f.txt")
assert(fs.write("big", string.rep("x", 1024 * 1024)))
assert(#fs.read("big") == 1024 * 1024)
refused(fs.write, "big", string.rep("x", 1024 * 1024 + 1))
assert(fs.remove("big") and not fs.exists("big"))
refused(fs.read, "nothing")

-- Out of the data directory: .., absolute paths, symlinks out, through a link.
escapes(fs.read, "../x")
escapes(fs.read, "sub/../../x")
escapes(fs.write, "../escaped.txt", "x")
escapes(fs.read, "/etc/passwd")
escapes(fs.write, "/tmp/escaped.txt", "x")
escapes(fs.read, "link-out")
escapes(fs.read, "link-up/etc/passwd")
escapes(fs.read, "link-abs-dir/passwd")
escapes(fs.write, "link-abs-dir/escaped", "x")
escapes(fs.list, "..")
escapes(fs.list, "/")
escapes(fs.exists, "../anything") -- an error, not false
escapes(fs.mkdir, "../newdir")
escapes(fs.append, "link-out", "x")
-- remove takes the symlink itself, never its target.
assert(fs.remove("link-out") and not fs.exists("link-out"))

-- Bad paths: empty, NUL, over 1024 bytes; a FIFO is refused without blocking.
refused(fs.read, "")
refused(fs.read, "a\0b")
refused(fs.read, string.rep("a", 1025))
refused(fs.read, "fifo")
refused(fs.read, "sub") -- a directory
refused(fs.remove, "sub") -- not empty
print("OK fs")
