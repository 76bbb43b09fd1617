"""Lua apps ("runtime": "lua") under cella-lua in the app's normal sandbox."""
import textwrap

import pytest

from conftest import LUA_CPU_MS, lua_budget_env, run_cella


def lua_app(make_app, app_id, source, **manifest):
    files = {"main.lua": (textwrap.dedent(source), 0o644)}
    return make_app(app_id, files=files, entry="main.lua", runtime="lua", **manifest)


@pytest.mark.twin
def test_hello_prints_with_args(state, make_app):
    app = lua_app(make_app, "org.test.luahello", """
        print("hello from lua", ...)
        print(io.popen, os.execute, string.dump, package.loadlib, debug.getlocal)
    """)
    r = run_cella(app, "one", "two", state_dir=state)
    assert r.code == 0, (r.code, r.out, r.err)
    assert "hello from lua\tone\ttwo" in r.out
    assert "nil\tnil\tnil\tnil\tnil" in r.out


@pytest.mark.twin
def test_uncaught_error_prints_traceback_and_exits_1(state, make_app):
    app = lua_app(make_app, "org.test.luaerr", """
        local function f() error("it broke") end
        f()
    """)
    r = run_cella(app, state_dir=state)
    assert r.code == 1, (r.code, r.out, r.err)
    assert "/app/main.lua:2: it broke" in r.err and "stack traceback:" in r.err


@pytest.mark.twin
def test_memory_hog_stops_at_the_manifest_limit(state, make_app):
    # limits.memory 32M: the Lua cap is 24 MiB (32M less 8 MiB for the process),
    # reached before the cgroup's OOM killer; pcall cannot catch it.
    app = lua_app(make_app, "org.test.luamem", """
        local t = {}
        print(pcall(function()
            for i = 1, 1e9 do t[i] = string.rep("x", 1000) .. i end
        end))
        print("caught it")
    """, limits={"memory": "32M"})
    r = run_cella(app, state_dir=state)
    assert r.code == 3, (r.code, r.out, r.err)
    assert f"cella-lua: memory limit of {24 << 20} bytes exceeded" in r.err
    assert "caught it" not in r.out


@pytest.mark.twin(cellad_env=lua_budget_env())
def test_cpu_hog_stops_at_the_callback_budget(state, make_app):
    # The budget per callback (the tests' short one, not the default 5 s: the
    # default is test_lua_apps.py's lua-cpuhog) stops the loop, in its coroutine,
    # under pcall.
    app = lua_app(make_app, "org.test.luacpu", """
        local co = coroutine.create(function() while true do end end)
        print(pcall(coroutine.resume, co))
        print("caught it")
    """)
    r = run_cella(app, state_dir=state, timeout=60, env=lua_budget_env())
    assert r.code == 4, (r.code, r.out, r.err)
    assert f"cella-lua: CPU budget of {LUA_CPU_MS} ms exceeded" in r.err
    assert "caught it" not in r.out
    ex = r.event("exited")
    assert ex["exit_code"] == 4 and ex["oom_killed"] is False
