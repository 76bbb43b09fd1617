"""The Lua API end to end (docs/lua-api.md): each script of tests/lua runs as a
Lua app under `cella run`, with a manifest giving it the rights that test needs,
and must end with exit status 0 and a single `OK <name>` line; the limit tests
must end with exit codes 3 and 4, whatever the script does to catch them. Then
the Lua examples: lua-notes (persistence), lua-clock (publishes, stops on
revoke), lua-cpuhog and lua-memhog (exit codes and audit reasons) and the packed
group lua-packed under `cella boot`."""
import json
import os
import select
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import CELLA, LUA_CPU_MS, boot_cella, example, lua_budget_env, run_cella, wait_written

LUA_TESTS = Path(__file__).resolve().parents[1] / "lua"


def lua_app(tmp_path, script, app_id, folder=None, **manifest):
    """An app folder (world-readable) whose main.lua is tests/lua/<script>.lua."""
    d = tmp_path / (folder or f"lua-{script}")
    d.mkdir()
    shutil.copy(LUA_TESTS / f"{script}.lua", d / "main.lua")
    m = {"id": app_id, "runtime": "lua", "entry": "main.lua"}
    m.update(manifest)
    (d / "manifest.json").write_text(json.dumps(m))
    for p in (tmp_path, d, d / "main.lua", d / "manifest.json"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return d


def ok_lines(r):
    return [l for l in r.out.splitlines() if l.startswith("OK")]


def assert_ok(r, name):
    assert r.code == 0, (r.code, r.out, r.err)
    assert ok_lines(r) == [f"OK {name}"], (r.out, r.err)


def data_dir(state, app_id):
    return state / "apps" / app_id / "data"


def audit(state, app_id):
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--json", "--app", app_id],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def exit_records(state, app_id):
    return [r for r in audit(state, app_id) if r.get("what") == "exited"]


def app_log(state, app_id):
    f = state / "logs" / f"{app_id}.log"
    return f.read_text() if f.exists() else ""


# name -> (manifest keys, cella run options, script arguments, OK name)
SIMPLE = {
    "timer": ({}, [], [], "timer"),
    "json": ({}, [], [], "json"),
    "crypto": ({}, [], [], "crypto"),
    "allowlist": ({}, [], [], "allowlist"),
    "bus": ({"permissions": ["bus.publish:org.test.lua.bus.*", "bus.subscribe:org.test.lua.bus.*",
                             "bus.send:org.test.lua.bus"]}, [], [], "bus"),
    "perm": ({"permissions": ["notify", "location"]}, ["--no-prompt"], [], "perm"),
    "app": ({"name": "App test", "version": "1.2.3",
             "permissions": ["notify", "bus.publish:org.test.lua.app.x"]}, [], ["org.test.lua.app"], "app"),
    "notify": ({"permissions": ["notify"]}, [], ["granted"], "notify granted"),
}


@pytest.mark.parametrize("name", sorted(SIMPLE))
@pytest.mark.twin
def test_lua_api(tmp_path, state, name):
    manifest, opts, args, ok = SIMPLE[name]
    app = lua_app(tmp_path, name, f"org.test.lua.{name}", **manifest)
    r = run_cella(*opts, app, *args, state_dir=state, timeout=120)
    assert_ok(r, ok)


@pytest.mark.twin
def test_notify_without_the_right_raises(tmp_path, state):
    app = lua_app(tmp_path, "notify", "org.test.lua.nonotify")
    r = run_cella(app, "refused", state_dir=state)
    assert_ok(r, "notify refused")
    assert "notification from" not in r.err


@pytest.mark.twin
def test_notify_with_the_right_reaches_the_user(tmp_path, state):
    app = lua_app(tmp_path, "notify", "org.test.lua.notify", permissions=["notify"])
    r = run_cella(app, "granted", state_dir=state)
    assert_ok(r, "notify granted")
    assert "notification from org.test.lua.notify: lua notify test: the body" in r.err, r.err


@pytest.mark.twin
def test_app_exit_code_drops_what_was_pending(tmp_path, state):
    app = lua_app(tmp_path, "app", "org.test.lua.exit")
    r = run_cella(app, "org.test.lua.exit", "exit", "42", state_dir=state)
    assert r.code == 42, (r.code, r.out, r.err)
    assert r.event("exited")["exit_code"] == 42
    # app.exit ends the app at once, through pcall; the far timer never runs.
    assert r.out.splitlines() == ["exiting"], r.out


@pytest.mark.twin
def test_log_formats_and_escapes(tmp_path, state):
    d = tmp_path / "log"
    d.mkdir()
    (d / "main.lua").write_text(
        'local log = require "cella.log"\n'
        'log.info("x=%d s=%s", 42, "y")\n'
        'log.warn("line\\nforged: %s", "\\27[2J")\n'
        'log.error("single %d")\n'
        'print("OK log")\n')
    (d / "manifest.json").write_text(json.dumps(
        {"id": "org.test.lua.log", "runtime": "lua", "entry": "main.lua"}))
    for p in (tmp_path, d):
        os.chmod(p, 0o755)
    r = run_cella(d, state_dir=state)
    assert_ok(r, "log")
    lines = r.err.splitlines()
    assert "INFO: x=42 s=y" in lines, r.err
    assert "WARN: line\\nforged: \\x1b[2J" in lines, r.err
    assert "ERROR: single %d" in lines, r.err


@pytest.mark.parametrize("name", ["fs", "db"])
@pytest.mark.twin
def test_data_dir_escapes_are_refused(tmp_path, state, name):
    app_id = f"org.test.lua.{name}"
    app = lua_app(tmp_path, name, app_id)
    r = run_cella(app, "setup", state_dir=state)
    assert_ok(r, f"{name} setup")
    # Plant, as root on the host, what the app cannot make: symlinks out of its
    # data directory (and in it), and a FIFO.
    data = data_dir(state, app_id)
    assert data.is_dir(), data
    if name == "fs":
        os.symlink("/etc/passwd", data / "link-out")
        os.symlink("../../../..", data / "link-up")
        os.symlink("/etc", data / "link-abs-dir")
        os.symlink("sub/f.txt", data / "link-in")
        os.symlink("sub", data / "link-sub")
        os.mkfifo(data / "fifo", 0o666)
    else:
        os.symlink("/etc/passwd", data / "link.db")
        os.symlink("../../x.db", data / "up.db")
    before = Path("/etc/passwd").read_bytes()
    r = run_cella(app, "check", state_dir=state, timeout=120)
    assert_ok(r, name)
    assert Path("/etc/passwd").read_bytes() == before
    assert not (state / "apps" / app_id / "escaped.txt").exists()
    if name == "fs":
        # remove took the symlink, not /etc/passwd.
        assert not os.path.lexists(data / "link-out") and os.path.exists("/etc/passwd")


@pytest.mark.twin
def test_request_reply_between_two_apps(tmp_path, state):
    responder, requester = "org.test.lua.responder", "org.test.lua.requester"
    apps = tmp_path / "apps"
    apps.mkdir()
    # The responder takes requests and messages from any app: it exports bus.send.
    lua_app(apps, "bus_responder", responder, folder="responder", kind="service",
            exports=["bus.send"])
    lua_app(apps, "bus_requester", requester, folder="requester", kind="app",
            args=[responder], depends=[responder],
            permissions=[f"bus.send:{responder}", "bus.send:org.test.nobody"])
    os.chmod(tmp_path, 0o755)
    p, status = boot_cella(apps, state, "--no-prompt", timeout=120)
    log = app_log(state, requester)
    assert p.returncode == 0, p.stderr + log + app_log(state, responder)
    assert [l for l in log.splitlines() if l.startswith("OK")] == ["OK bus request"], log
    rlog = app_log(state, responder)
    assert "responder ready" in rlog, rlog
    # The handler's error was logged and answered; the direct message arrived.
    assert "responder was asked to fail" in rlog, rlog
    assert f"responder: direct message from {requester}: hi from the requester" in rlog, rlog


# Limits: the script catches with pcall, xpcall, coroutine.resume or a wrapped
# coroutine under pcall; none of them may save it.
@pytest.mark.parametrize("how", ["pcall", "xpcall", "coroutine", "wrap"])
@pytest.mark.twin
def test_memory_limit_cannot_be_caught(tmp_path, state, how):
    app_id = f"org.test.lua.mem{how}"
    # limits.memory 16M: the Lua cap is half of it below 16 MiB... and at 16M
    # exactly the limit less 8 MiB: 8 MiB either way.
    app = lua_app(tmp_path, "limits", app_id, limits={"memory": "16M"})
    r = run_cella(app, "memory", how, state_dir=state)
    assert r.code == 3, (r.code, r.out, r.err)
    assert f"memory limit of {8 << 20} bytes exceeded" in r.err, r.err
    assert "ESCAPED" not in r.out, r.out
    assert r.event("exited")["oom_killed"] is False


@pytest.mark.parametrize("how", ["pcall", "xpcall", "coroutine"])
@pytest.mark.twin(cellad_env=lua_budget_env())
def test_cpu_budget_cannot_be_caught(tmp_path, state, how):
    app = lua_app(tmp_path, "limits", f"org.test.lua.cpu{how}")
    r = run_cella(app, "cpu", how, state_dir=state, timeout=60, env=lua_budget_env())
    assert r.code == 4, (r.code, r.out, r.err)
    assert f"CPU budget of {LUA_CPU_MS} ms exceeded" in r.err, r.err
    assert "ESCAPED" not in r.out, r.out


# ---- the examples ------------------------------------------------------------

NOTES = "org.cella.example.lua_notes"
CLOCK = "org.cella.example.lua_clock"
CPUHOG = "org.cella.example.lua_cpuhog"
MEMHOG = "org.cella.example.lua_memhog"


@pytest.mark.twin
def test_lua_notes_keeps_notes_across_runs(state):
    app = example("lua-notes")
    r1 = run_cella(app, "first", "note", state_dir=state)
    assert r1.code == 0, (r1.out, r1.err)
    assert "lua-notes: 1 note(s)" in r1.out, r1.out
    assert "notification from org.cella.example.lua_notes: note saved: first note" in r1.err
    first = [l for l in r1.out.splitlines() if l.startswith("  1. [")]
    assert len(first) == 1 and first[0].split("] ", 1)[1].startswith("first note ("), r1.out
    r2 = run_cella(app, state_dir=state)
    assert r2.code == 0, (r2.out, r2.err)
    assert "lua-notes: 2 note(s)" in r2.out, r2.out
    # The second run lists the first's note, with the same random id.
    assert first[0] in r2.out.splitlines(), r2.out
    assert "  2. [" in r2.out and "note written at " in r2.out
    # The database is a file of the app's own /data.
    assert (data_dir(state, NOTES) / "notes.db").is_file()


LISTENER = """
local bus = require "cella.bus"
local json = require "cella.json"
local app = require "cella.app"
local last
bus.subscribe("org.cella.example.lua_clock.tick", function(msg)
        if msg.sender ~= "org.cella.example.lua_clock" then return end
        assert(msg.content_type == "application/json", msg.content_type)
        local t = json.decode(msg.data)
        assert(math.type(t.seq) == "integer" and math.abs(t.unix - os.time()) <= 5, msg.data)
        assert(last == nil or t.seq == last + 1, msg.data)
        last = t.seq
        print("tick " .. msg.data)
        if t.seq >= 3 then app.exit(0) end
end)
"""


@pytest.mark.twin
def test_lua_clock_publishes_ticks(tmp_path, state):
    apps = tmp_path / "apps"
    apps.mkdir()
    shutil.copytree(example("lua-clock"), apps / "lua-clock")
    listener = apps / "listener"
    listener.mkdir()
    (listener / "main.lua").write_text(LISTENER)
    (listener / "manifest.json").write_text(json.dumps({
        "id": "org.test.lua.listener", "runtime": "lua", "entry": "main.lua",
        "depends": [CLOCK], "permissions": ["bus.subscribe:org.cella.example.lua_clock.tick"]}))
    for p in [tmp_path, apps, *apps.iterdir()]:
        os.chmod(p, 0o755)
    p, status = boot_cella(apps, state, timeout=60)
    log = app_log(state, "org.test.lua.listener")
    assert p.returncode == 0, p.stderr + log + app_log(state, CLOCK)
    ticks = [l for l in log.splitlines() if l.startswith("tick ")]
    assert len(ticks) >= 1 and json.loads(ticks[-1][5:])["seq"] >= 3, log
    assert "lua-clock: publishing org.cella.example.lua_clock.tick every 1 s" in app_log(state, CLOCK)


@pytest.mark.twin
def test_lua_clock_stops_when_its_publish_right_is_revoked(tmp_path, state):
    folder = tmp_path / "apps"
    folder.mkdir()
    shutil.copytree(example("lua-clock"), folder / "lua-clock")
    for p in [tmp_path, folder, folder / "lua-clock"]:
        os.chmod(p, 0o755)
    rfd, wfd = os.pipe()
    p = subprocess.Popen([CELLA, "boot", "--state-dir", str(state), "--json-status", str(wfd),
                          str(folder)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, pass_fds=(wfd,))
    os.close(wfd)
    status = os.fdopen(rfd)
    try:
        assert json.loads(status.readline())["event"] == "started"
        # A publish is in the audit log: looked for again at each write there.
        wait_written(lambda: [r for r in audit(state, CLOCK) if r.get("op") == "bus.publish"],
                     state / "audit", 20, "lua-clock's first publish in the audit log", p.pid)
        r = subprocess.run([CELLA, "revoke", "--state-dir", str(state), CLOCK,
                            "bus.publish:org.cella.example.lua_clock.*"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        # The clock exits by itself (status 0), well before anyone stops it.
        ready, _, _ = select.select([status], [], [], 10)
        assert ready, "the clock did not stop after the revoke"
        rec = json.loads(status.readline())
        assert rec["event"] == "exited" and rec["app"] == CLOCK and rec["exit_code"] == 0, rec
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        status.close()
    log = app_log(state, CLOCK)
    assert ('lua-clock: the right "bus.publish:org.cella.example.lua_clock.*" was revoked'
            in log), log + err
    records = audit(state, CLOCK)
    revoked = [i for i, r in enumerate(records) if r.get("what") == "revoked-in-broker"]
    assert revoked, records
    # Nothing was published after the revoke reached the broker (a tick racing
    # the revocation event may have been tried, and refused).
    published = [r for r in records[revoked[0]:] if r.get("op") == "bus.publish"]
    assert not [r for r in published if r.get("decision") == "allowed"], published


@pytest.mark.twin
def test_lua_cpuhog_is_stopped_by_its_cpu_budget(state):
    # The default budget, 5000 ms: the tests' knob may shorten it, never lengthen it.
    r = run_cella(example("limits/lua-cpuhog"), state_dir=state, timeout=60,
                  env=lua_budget_env(60000))
    assert r.code == 4, (r.code, r.out, r.err)
    assert r.event("exited")["exit_code"] == 4
    assert "lua-cpuhog: spinning until the CPU budget stops me" in r.err
    assert "CPU budget of 5000 ms exceeded" in r.err, r.err
    assert "escaped" not in r.err
    (rec,) = exit_records(state, CPUHOG)
    assert rec["status"] == 4 and rec.get("reason") == "CPU budget exceeded", rec


@pytest.mark.twin
def test_lua_memhog_is_stopped_by_its_memory_cap(state):
    r = run_cella(example("limits/lua-memhog"), state_dir=state, timeout=60)
    assert r.code == 3, (r.code, r.out, r.err)
    ex = r.event("exited")
    assert ex["exit_code"] == 3 and ex["oom_killed"] is False, ex
    # limits.memory 24M: the Lua state's cap is 24 MiB less 8 MiB.
    assert f"memory limit of {16 << 20} bytes exceeded" in r.err, r.err
    assert "escaped" not in r.err
    (rec,) = exit_records(state, MEMHOG)
    assert rec["status"] == 3 and rec.get("reason") == "memory limit of the Lua state exceeded", rec


PACKED_COUNTER = "org.cella.example.lua_packed_counter"
LISTENERS = [f"org.cella.example.lua_packed_listener{i}" for i in range(1, 10)]


@pytest.mark.twin
def test_lua_packed_group_boots_and_ends(tmp_path, state):
    folder = tmp_path / "lua-packed"
    # A folder of app folders: example() checks one of them.
    built = example("lua-packed/counter").parent
    shutil.copytree(built, folder, ignore=shutil.ignore_patterns("*.p", "meson*"))
    for p in [tmp_path, folder, *folder.iterdir()]:
        os.chmod(p, 0o755)
    for run in (1, 2):
        p, status = boot_cella(folder, state, timeout=120)
        logs = {a: app_log(state, a) for a in [PACKED_COUNTER, *LISTENERS]}
        assert p.returncode == 0, p.stderr + json.dumps(logs, indent=1)
        assert "published 20 messages" in logs[PACKED_COUNTER], logs[PACKED_COUNTER]
        for i, a in enumerate(LISTENERS, 1):
            # The manifest's priority reached the host: (i - 5) * 3.
            assert f"{a}: got 20 of 20 messages (priority {(i - 5) * 3}," in logs[a], (a, logs[a])
            # Each listener's state is in its own data directory, over both runs.
            st = json.loads((data_dir(state, a) / "state.json").read_text())
            assert st == {"runs": run, "received": 20 * run, "last_seq": 20}, (a, st)
        # All ten ended with status 0, each recorded as its own exit; each called
        # the broker as itself, with its own rights.
        for a in [PACKED_COUNTER, *LISTENERS]:
            recs = exit_records(state, a)
            assert len(recs) == run and recs[-1]["status"] == 0, (a, recs)
        for a in LISTENERS:
            subs = [r for r in audit(state, a) if r.get("op") == "bus.subscribe"]
            assert len(subs) == run and all(r["decision"] == "allowed" for r in subs), (a, subs)
            assert not [r for r in audit(state, a) if r.get("op") == "bus.publish"]
        pubs = [r for r in audit(state, PACKED_COUNTER) if r.get("op") == "bus.publish"]
        # Identical records within a second are coalesced: a "suppressed" record
        # counts the repeats (docs/audit.md, "Repeated records").
        assert sum(r.get("count", 1) for r in pubs
                   if r["decision"] == "allowed" and r["delivered"] == 9) >= 20 * run
