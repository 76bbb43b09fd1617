"""Real Lua code in cella Lua apps (docs/lua-api.md "require", "io", "debug"):
popular pure-Lua libraries, as Debian packages them, run unchanged as part of an
app and print byte for byte what plain lua5.4 prints, alone (`cella run`) and in
a packed group (`cella boot`); require finds only the app's own text files; io
reaches only the app's /data and /tmp; and packed members cannot change each
other's strings."""
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import boot_cella, require_root, run_cella

LIBS_SCRIPT = Path(__file__).resolve().parents[1] / "lua" / "libs" / "main.lua"
LUA = shutil.which("lua5.4")
LUAC = shutil.which("luac5.4")
# Each library's files, looked for in /usr/share/lua/5.4 then 5.3 (Debian installs
# lua-messagepack and lua-inspect for 5.1-5.3 only; they are plain Lua 5.3 code).
LIBS = ["dkjson.lua", "MessagePack.lua", "pl", "argparse.lua", "inspect.lua", "luaunit.lua"]


def library_path(name):
    for v in ("5.4", "5.3"):
        p = Path("/usr/share/lua") / v / name
        if p.exists():
            return p
    return None


def make_app(folder, app_id, main, **manifest):
    folder.mkdir(parents=True)
    (folder / "main.lua").write_text(main)
    m = {"id": app_id, "runtime": "lua", "entry": "main.lua"}
    m.update(manifest)
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder


def world_readable(*roots):
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            os.chmod(dirpath, 0o755)
            for f in files:
                p = os.path.join(dirpath, f)
                if not os.path.islink(p):
                    os.chmod(p, 0o644)


def copy_libraries(folder):
    """Copies each library's files (symlinks followed: Debian's 5.4 files are
    links into 5.1) into folder, as an app would ship them."""
    missing = [n for n in LIBS if library_path(n) is None]
    if missing:
        pytest.skip(f"Debian Lua libraries not installed: {missing} (scripts/install-deps)")
    for name in LIBS:
        src = library_path(name)
        if src.is_dir():
            shutil.copytree(src, folder / name, symlinks=False)
        else:
            shutil.copy(src, folder / name)


def plain_lua(folder):
    if not LUA:
        pytest.skip("lua5.4 not installed")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LUA_PATH": "./?.lua;./?/init.lua",
           "LUA_CPATH": ""}
    p = subprocess.run([LUA, "main.lua"], cwd=folder, capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p.stdout


@pytest.mark.twin
def test_popular_libraries_give_plain_lua_output_alone_and_packed(tmp_path, state):
    require_root()
    app = tmp_path / "apps" / "libs"
    make_app(app, "org.test.lualibs", LIBS_SCRIPT.read_text())
    copy_libraries(app)
    world_readable(tmp_path)
    expected = plain_lua(app)
    # Each library really ran: its section and a line of its work.
    for marker in ("== dkjson\n{\"name\":\"cella\"", "== MessagePack\n98", "Rex the dog",
                   "in.txt\ta.out\tx,y\ttrue", "c = \"d\"", "failures\t2\t4\t2\t1\t1",
                   "11\t12\t101\txxx\t-2\t16"):
        assert marker in expected, (marker, expected)

    r = run_cella(app, state_dir=state)
    assert r.code == 0, (r.code, r.out, r.err)
    assert r.out == expected

    # The same app twice in one packed host, beside each other.
    group = tmp_path / "group"
    for n in ("a", "b"):
        d = group / n
        shutil.copytree(app, d)
        m = json.loads((d / "manifest.json").read_text())
        m.update(id=f"org.test.libpacked.{n}", isolation="packed", group="libs")
        (d / "manifest.json").write_text(json.dumps(m))
    world_readable(group)
    p, status = boot_cella(group, state)
    exits = {s["app"]: s["exit_code"] for s in status if s.get("event") == "exited"}
    assert exits == {"org.test.libpacked.a": 0, "org.test.libpacked.b": 0}, (exits, p.stderr)
    for n in ("a", "b"):
        log = (state / "logs" / f"org.test.libpacked.{n}.log").read_text()
        assert log == expected


WALLS = r"""
local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

-- String coercion and methods, as in Lua 5.4.
assert("10" + 1 == 11 and "3" * "4" == 12 and 10 .. 1 == "101" and ("x"):rep(3) == "xxx")
assert(math.type("10" + 1) == "integer" and "1.5" + 1 == 2.5 and -"2" == -2)
assert(refused(function() return "x" + 1 end):find("attempt to add a 'string' with a 'number'"))
assert(getmetatable("").__index == string)

-- The standard library by name: the same tables as the globals.
for _, name in ipairs({"string", "table", "math", "utf8", "coroutine", "os", "io", "debug"}) do
        assert(require(name) == _G[name], name)
end
assert(require "_G" == _G and require "package" == package and package.loaded.utf8 == utf8)

-- The app's own modules: nested, cached, with their loader data; a cycle is named.
local b, where = require "a.b"
assert(b.name == "a.b" and where == "./a/b.lua", where)
assert(require "a.b" == b and package.loaded["a.b"] == b)
assert(require "pkg" == "pkg init" and select(2, require "a.b") == nil)
assert(refused(require, "cycle1"):find("loop requiring module 'cycle1'", 1, true))
local msg = refused(require, "nope.deeper")
assert(msg:find("module 'nope.deeper' not found:\n\tno field package.preload['nope.deeper']\n" ..
                "\tno file './nope/deeper.lua'\n\tno file './nope/deeper/init.lua'", 1, true), msg)
assert(not msg:find("/app") and not msg:find("/apps/"), msg)
package.preload.virtual = function(name, data) return name .. " " .. data end
assert(require "virtual" == "virtual :preload:")
assert(package.searchpath("a.b", package.path) == "./a/b.lua")

-- Ways out: all refused.
msg = refused(require, "bytecode")
assert(msg:find("attempt to load a binary chunk"), msg)
msg = refused(require, "outlink")
assert(msg:find("no file './outlink.lua' (outside the app's folder)", 1, true), msg)
assert(refused(require, "../outside"):find("not found"))
package.path = "../?.lua"
msg = refused(require, "outside")
assert(msg:find("no file '../outside.lua' (outside the app's folder)", 1, true), msg)
package.path = "/etc/?;./?/../../?.lua"
msg = refused(require, "passwd")
assert(msg:find("no file '/etc/passwd' (outside the app's folder)", 1, true), msg)
package.path = "./?.lua"
assert(package.loadlib == nil and package.cpath == "" and package.searchers == nil)
assert(refused(require, "fifo"):find("not a regular file", 1, true))
-- Modules still see the app's own globals.
shared_value = 42
assert(require "readsglobal" == 42)

-- io: the app's own /data and /tmp only.
local f = assert(io.open("/data/notes.txt", "w"))
assert(f:write("one\n", 2, "\n", 3.5, "\n") == f)
f:close()
assert(io.type(f) == "closed file" and io.type(io.stdout) == "file" and io.type(42) == nil)
local lines = {}
for l in io.lines("/data/notes.txt") do lines[#lines + 1] = l end
assert(table.concat(lines, ",") == "one,2,3.5", table.concat(lines, ","))
f = assert(io.open("notes.txt", "a+"))
f:write("four\n")
f:seek("set")
assert(f:read("l") == "one" and f:read("n") == 2 and f:read("a") == "\n3.5\nfour\n")
f:close()
f = assert(io.open("/tmp/scratch", "w+"))
f:write("tmp works")
f:seek("set", 0)
assert(f:read(3) == "tmp")
f:close()
local nf, err, code = io.open("/etc/passwd")
assert(nf == nil and err == "/etc/passwd: outside the app's /data and /tmp" and code == 13, err)
nf, err = io.open("../x", "w")
assert(nf == nil and err:find("escapes"), err)
nf, err = io.open("/data/../../etc/passwd")
assert(nf == nil and err:find("escapes"), err)
nf, err = io.open("/tmp/../etc/passwd")
assert(nf == nil and err:find("escapes"), err)
nf, err = io.open("/app/main.lua")
assert(nf == nil, err)
nf, err = io.open("/data")
assert(nf == nil and err:find("not a regular file"), err)
assert(io.popen == nil and io.tmpfile == nil)
assert(getmetatable(io.stdout) == "cella.io.file")
assert(refused(io.open, "/data/x", "rw"):find("invalid mode"))
io.write("via io.write ", 1, "\n")
io.stdout:write("via io.stdout\n")

-- debug: traceback and getinfo only, no function of the stack.
assert(debug.getlocal == nil and debug.setlocal == nil and debug.getupvalue == nil)
assert(debug.setupvalue == nil and debug.sethook == nil and debug.getregistry == nil)
assert(debug.getmetatable == nil and debug.setmetatable == nil and debug.upvaluejoin == nil)
local info = debug.getinfo(1, "Sl")
assert(info.currentline > 0 and info.what == "main" and info.func == nil)
assert(debug.getinfo(1).func == nil and debug.getinfo(print).what == "C")
assert(refused(debug.getinfo, 1, "f"):find("option 'f'"))
assert(refused(debug.getinfo, 1, "nf"):find("option 'f'"))
assert(debug.traceback("x"):find("stack traceback"))

-- os: the app's own exit and no environment.
assert(os.getenv("PATH") == nil and os.execute == nil and os.remove == nil)
print("OK walls")
os.exit(0)
"""


@pytest.mark.twin
def test_require_io_and_debug_stay_inside_the_app(tmp_path, state):
    require_root()
    if not LUAC:
        pytest.skip("luac5.4 not installed")
    app = make_app(tmp_path / "apps" / "walls", "org.test.luawalls", WALLS)
    (app / "a").mkdir()
    (app / "a" / "b.lua").write_text("return {name = ..., where = select(2, ...)}\n")
    (app / "pkg").mkdir()
    (app / "pkg" / "init.lua").write_text("return 'pkg init'\n")
    (app / "cycle1.lua").write_text("return require 'cycle2'\n")
    (app / "cycle2.lua").write_text("return require 'cycle1'\n")
    (app / "readsglobal.lua").write_text("return shared_value\n")
    src = tmp_path / "bc.lua"
    src.write_text("return 'bytecode ran'\n")
    subprocess.run([LUAC, "-o", str(app / "bytecode.lua"), str(src)], check=True)
    (tmp_path / "apps" / "outside.lua").write_text("return 'escaped'\n")
    (tmp_path / "outlink-target.lua").write_text("return 'escaped'\n")
    os.symlink(tmp_path / "outlink-target.lua", app / "outlink.lua")
    os.mkfifo(app / "fifo.lua")
    world_readable(tmp_path)
    r = run_cella(app, state_dir=state)
    assert r.code == 0, (r.code, r.out, r.err)
    assert r.out.splitlines() == ["via io.write 1", "via io.stdout", "OK walls"], r.out
    assert (state / "apps" / "org.test.luawalls" / "data" / "notes.txt").read_text() == \
        "one\n2\n3.5\nfour\n"


@pytest.mark.twin
def test_a_module_may_wait_and_another_task_may_require_it_meanwhile(tmp_path, state):
    # The loader runs under lua_pcallk: a module's main chunk may wait for the
    # kernel (timer.sleep suspends the task); a callback that requires the same
    # module meanwhile loads it again, as plain Lua would, instead of a "loop".
    require_root()
    app = make_app(tmp_path / "apps" / "slow", "org.test.luaslowmod", textwrap.dedent("""
        local timer = require "cella.timer"
        local other
        timer.after(0.01, function() other = require "slow" end)
        local mine = require "slow"
        while not other do timer.sleep(0.01) end
        print(loads, mine.n, other.n, package.loaded.slow == other or package.loaded.slow == mine)
        print(select(2, pcall(require, "selfish")))
    """))
    (app / "slow.lua").write_text(textwrap.dedent("""
        loads = (loads or 0) + 1
        local n = loads
        require("cella.timer").sleep(0.05)
        return {n = n}
    """))
    (app / "selfish.lua").write_text("require('cella.timer').sleep(0.01) return require 'selfish'\n")
    world_readable(tmp_path)
    r = run_cella(app, state_dir=state)
    assert r.code == 0, (r.code, r.out, r.err)
    lines = r.out.splitlines()
    assert lines[0] == "2\t1\t2\ttrue", r.out
    assert "loop requiring module 'selfish'" in lines[1], r.out


@pytest.mark.twin
def test_os_exit_ends_the_app_with_its_code(tmp_path, state):
    require_root()
    app = make_app(tmp_path / "apps" / "exit", "org.test.luaexit",
                   "print('before') os.exit(7) print('after')\n")
    world_readable(tmp_path)
    r = run_cella(app, state_dir=state)
    assert r.code == 7 and r.out == "before\n", (r.code, r.out, r.err)


# Each member marks its own strings, then checks on every tick that the marks it
# sees are its own: with one metatable or string table shared, the other
# member's later mark would show. Member a also replaces string.upper and the
# strings' __add; b must not see either.
TAMPER = """
local timer = require "cella.timer"
local app = require "cella.app"
local me = app.id()
local mt = getmetatable("")
mt.owner = me
string.owner = me
if me:sub(-1) == "a" then
        string.upper = function() return "pwned" end
        mt.__add = function() return "pwned" end
        mt.__index = setmetatable({owner = me}, {__index = string})
end
local ticks = 0
timer.every(0.02, function()
        ticks = ticks + 1
        assert(getmetatable("").owner == me and string.owner == me, "sees another app's mark")
        assert(("x").owner == me)
        if me:sub(-1) == "b" then
                assert(("a"):upper() == "A" and "1" + 1 == 2, "sees another app's string methods")
        end
        if ticks == 30 then
                print("OK " .. me)
                app.exit(0)
        end
end)
"""


@pytest.mark.twin
def test_packed_members_cannot_touch_each_others_strings(tmp_path, state):
    require_root()
    group = tmp_path / "group"
    for n in ("a", "b"):
        make_app(group / n, f"org.test.luatamper.{n}", textwrap.dedent(TAMPER),
                 isolation="packed", group="tamper")
    world_readable(group)
    p, status = boot_cella(group, state)
    exits = {s["app"]: s["exit_code"] for s in status if s.get("event") == "exited"}
    assert exits == {"org.test.luatamper.a": 0, "org.test.luatamper.b": 0}, (exits, p.stderr)
    for n in ("a", "b"):
        log = (state / "logs" / f"org.test.luatamper.{n}.log").read_text()
        assert log == f"OK org.test.luatamper.{n}\n", log


@pytest.mark.twin
def test_a_shebang_line_and_a_bom_are_skipped_as_plain_lua_does(tmp_path, state):
    """lua5.4 skips a UTF-8 BOM and a first line starting with '#' (a "#!" line) in
    the script it runs and in every module it requires (luaL_loadfilex); so does
    cella-lua, with the line numbers of the file."""
    require_root()
    main = ("#!/usr/bin/env lua\n"
            "local m = require 'mod'\n"
            "print(m.value, require('bom').value)\n"
            "print(pcall(m.fail))\n"
            "print(debug.getinfo(1, 'l').currentline)\n")
    app = make_app(tmp_path / "apps" / "shebang", "org.test.luashebang", main)
    (app / "mod.lua").write_text("#!/usr/bin/lua5.4 -W\nlocal M = {value = 'mod'}\n"
                                 "function M.fail() error('on line 3') end\nreturn M\n")
    (app / "bom.lua").write_bytes(b"\xef\xbb\xbf# a comment line\nreturn {value = 'bom'}\n")
    world_readable(tmp_path)
    want = plain_lua(app)
    assert want == "mod\tbom\nfalse\t./mod.lua:3: on line 3\n5\n", want
    r = run_cella(app, state_dir=state)
    assert r.code == 0 and r.out == want, (r.code, r.out, r.err)
