"""The memory manager's actions (docs/memory.md, "Actions"; issue 13), each done by
hand through org.cella.MemoryAction against real sandboxes of a real cellad: trim
reaches a native app through libcella's trim handler and Lua apps' cella.app.on_trim
(a packed member's too); reclaim lowers the soft limit and restore puts it back;
freeze makes an app cached (cgroup.freeze) and a start or foreground thaws it; kill
empties the cgroup and is a low-memory kill for the restart policy; every app
process's oom_score_adj follows its band, and cellad's own is -1000. Every action is
in `cella events` (status records) and in the audit log (replayed)."""
import json
import os
import socket
import time
from pathlib import Path

import pytest

from daemon_util import (CELLA, ControlError, call, install_app, require_cellad,
                         running_cellad, wait_log_line)

TRIM_PROBE = Path(os.environ.get(
    "CELLA_TRIM_PROBE", str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "trim-probe")))
TICKER = 'i=0\nwhile :; do echo "tick $i"; i=$((i+1)); sleep 0.02; done\n'
LUA_TRIM = ('local app = require("cella.app")\n'
            'app.on_trim(function(level) print("trim " .. level) end)\n'
            'print("ready")\n'
            'require("cella.timer").every(1, function() end)\n')
DEADLINE = float(os.environ.get("MEMTEST_DEADLINE", "60"))


def make_app(root, app_id, script=TICKER, kind="app", restart=None, runtime="native", **extra):
    d = Path(root) / app_id
    d.mkdir(parents=True)
    m = {"id": app_id, "runtime": runtime, "kind": kind, "version": "1.0.0",
         "entry": "main.lua" if runtime == "lua" else "main.sh"}
    if restart:
        m["restart"] = restart
    m.update(extra)
    (d / "manifest.json").write_text(json.dumps(m))
    if runtime == "lua":
        (d / "main.lua").write_text(script)
        os.chmod(d / "main.lua", 0o644)
    else:
        (d / "main.sh").write_text("#!/bin/sh\n" + script)
        os.chmod(d / "main.sh", 0o755)
    os.chmod(d, 0o755)
    return d


def native_probe(root, app_id):
    if not os.access(TRIM_PROBE, os.X_OK):
        pytest.skip(f"no trim-probe at {TRIM_PROBE} (build the tests, or set CELLA_TRIM_PROBE)")
    d = Path(root) / app_id
    d.mkdir(parents=True)
    (d / "trim-probe").write_bytes(TRIM_PROBE.read_bytes())
    os.chmod(d / "trim-probe", 0o755)
    (d / "manifest.json").write_text(json.dumps({
        "id": app_id, "runtime": "native", "entry": "trim-probe", "version": "1.0.0"}))
    os.chmod(d, 0o755)
    return d


def wait_state(d, app, want, timeout=DEADLINE):
    """Waits for app's state through a stream of ps snapshots (one per change)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.sendall((json.dumps({"method": "org.cella.Ps", "parameters": {},
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"{app} never became {want}"
            s.settimeout(left)
            snap = json.loads(f.readline())["parameters"]["apps"]
            if any(a["id"] == app and a["state"] == want for a in snap):
                return


def audit_records(d, what):
    """The audit log's records with "what" == what, replayed by org.cella.Events."""
    out = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.settimeout(DEADLINE)
        s.sendall((json.dumps({"method": "org.cella.Events", "parameters": {"since": "1h"},
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        while True:
            p = json.loads(f.readline())["parameters"]
            if p.get("live"):
                return out
            ev = p.get("event", {})
            if ev.get("what") == what:
                out.append(ev)


def memory_action(d, app, action, level=None):
    params = {"app": app, "action": action}
    if level:
        params["level"] = level
    return d.call("org.cella.MemoryAction", params)


def oom_adj(pid):
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def app_pids(d, app):
    rec = d.call("org.cella.Inspect", {"app": app})
    return rec, [p for p in rec.get("pids", []) if Path(f"/proc/{p}").exists()]


@pytest.fixture
def daemon(tmp_path):
    require_cellad()
    state = tmp_path / "state"
    src = tmp_path / "src"
    install_app(state, make_app(src, "org.test.mem.a"))
    install_app(state, make_app(src, "org.test.mem.b"))
    install_app(state, make_app(src, "org.test.mem.svc", kind="service", restart="on-failure"))
    install_app(state, make_app(src, "org.test.mem.again", restart="always"))
    install_app(state, make_app(src, "org.test.mem.lua", LUA_TRIM, runtime="lua"))
    with running_cellad(state, "--no-autostart") as d:
        yield d


def test_trim_reaches_native_lua_and_packed_apps(tmp_path):
    require_cellad()
    state = tmp_path / "state"
    src = tmp_path / "src"
    install_app(state, native_probe(src, "org.test.trim.native"))
    install_app(state, make_app(src, "org.test.trim.lua", LUA_TRIM, runtime="lua"))
    for m in ("org.test.trim.pk1", "org.test.trim.pk2"):
        install_app(state, make_app(src, m, LUA_TRIM, runtime="lua", kind="service",
                                    isolation="packed", group="trimgroup"))
    with running_cellad(state, "--no-autostart") as d:
        for app in ("org.test.trim.native", "org.test.trim.lua", "org.test.trim.pk1",
                    "org.test.trim.pk2"):
            d.call("org.cella.Start", {"app": app})
        wait_log_line(d, "org.test.trim.native", "ready", timeout=DEADLINE)
        for app in ("org.test.trim.lua", "org.test.trim.pk1", "org.test.trim.pk2"):
            wait_log_line(d, app, "ready", timeout=DEADLINE)

        r = memory_action(d, "org.test.trim.native", "trim", "low")
        assert r["action"] == "trim" and r["level"] == "low"
        text = wait_log_line(d, "org.test.trim.native", "event 0x8004", timeout=DEADLINE)
        # The trim handler ran, before the event callback, with the wire's level 2.
        lines = text.splitlines()
        trim = [l for l in lines if l.startswith("trim ")]
        assert len(trim) == 1 and trim[0].split()[1] == "2", lines
        assert int(trim[0].split()[2]) > 0  # its memory in use
        assert lines.index(trim[0]) < lines.index("event 0x8004")

        memory_action(d, "org.test.trim.lua", "trim", "critical")
        wait_log_line(d, "org.test.trim.lua", "trim critical", timeout=DEADLINE)
        # A packed member: its own handler, the other member's not called.
        memory_action(d, "org.test.trim.pk2", "trim", "moderate")
        wait_log_line(d, "org.test.trim.pk2", "trim moderate", timeout=DEADLINE)
        memory_action(d, "org.test.trim.pk1", "trim")
        wait_log_line(d, "org.test.trim.pk1", "trim moderate", timeout=DEADLINE)
        pk2 = (state / "logs" / "org.test.trim.pk2.log").read_text().splitlines()
        assert pk2.count("trim moderate") == 1, pk2

        # Bad levels and actions are refused before anything is done.
        for params, bad in (({"action": "trim", "level": "normal"}, "level"),
                            ({"action": "trim", "level": "high"}, "level"),
                            ({"action": "squeeze"}, "action")):
            with pytest.raises(ControlError) as e:
                d.call("org.cella.MemoryAction", {"app": "org.test.trim.lua", **params})
            assert e.value.error == "org.cella.InvalidParameter", params
            assert e.value.parameters.get("parameter", bad) == bad

        recs = audit_records(d, "memory.trim")
        got = {(r["app"], r["level"]) for r in recs}
        assert {("org.test.trim.native", "low"), ("org.test.trim.lua", "critical"),
                ("org.test.trim.pk2", "moderate"), ("org.test.trim.pk1", "moderate")} <= got
        assert all(r["current_bytes"] > 0 for r in recs), recs


def _soft_limit(rec):
    paths = rec["cgroup_paths"]
    if "memory" in paths and paths["memory"] != paths.get("unified"):
        v = int(Path(paths["memory"], "memory.soft_limit_in_bytes").read_text())
        return None if v >= 1 << 62 else v
    v = Path(paths["unified"], "memory.high").read_text().strip()
    return None if v == "max" else int(v)


def test_reclaim_lowers_the_soft_limit_and_restore_puts_it_back(daemon):
    d = daemon
    app = "org.test.mem.a"
    d.call("org.cella.Start", {"app": app})
    # A foreground app is never reclaimed from.
    with pytest.raises(ControlError) as e:
        memory_action(d, app, "reclaim", "low")
    assert e.value.error == "org.cella.AppState"
    d.call("org.cella.Background", {"app": app})
    rec = d.call("org.cella.Inspect", {"app": app})
    assert _soft_limit(rec) is None
    memory_action(d, app, "reclaim", "critical")
    got = audit_records(d, "memory.reclaim")[-1]
    assert got["app"] == app and got["level"] == "critical" and got["previous_bytes"] is None
    # 50% of its use at critical, and at least the 4 MiB floor.
    assert got["soft_limit_bytes"] == max(got["usage_bytes"] // 2, 4 << 20), got
    assert _soft_limit(rec) == got["soft_limit_bytes"]
    memory_action(d, app, "restore")
    assert _soft_limit(rec) is None
    assert audit_records(d, "memory.restore")[-1]["soft_limit_bytes"] is None


def test_freeze_stops_the_app_and_start_or_foreground_thaws_it(daemon):
    d = daemon
    app = "org.test.mem.b"
    d.call("org.cella.Start", {"app": app, "background": True})
    wait_log_line(d, app, "tick 1", timeout=DEADLINE)
    rec = d.call("org.cella.Inspect", {"app": app})
    if "unified" not in rec["cgroup_paths"]:
        # A pure cgroup v1 host: the memory manager never uses the v1 freezer.
        with pytest.raises(ControlError) as e:
            memory_action(d, app, "freeze")
        assert e.value.parameters["errno"] == 95 and "v1 freezer" in e.value.parameters["message"]
        pytest.skip("no cgroup2 hierarchy: no freeze by the memory manager on this host")
    unified = Path(rec["cgroup_paths"]["unified"])
    r = memory_action(d, app, "freeze")
    assert r["state"] == "cached"
    assert "frozen 1" in (unified / "cgroup.events").read_text()
    # The v1 freezer (hybrid hosts have one) is not what froze it.
    assert "freezer" not in rec["cgroup_paths"]
    cpu = d.call("org.cella.Inspect", {"app": app})["cgroup"]["cpu_usage_usec"]
    # A frozen app does nothing, so nothing can be waited for: a window in which the
    # running ticker would use CPU for ~25 lines.
    time.sleep(0.5)
    assert d.call("org.cella.Inspect", {"app": app})["cgroup"]["cpu_usage_usec"] == cpu
    # A start thaws it, in the role it had.
    assert d.call("org.cella.Start", {"app": app})["state"] == "background"
    assert "frozen 0" in (unified / "cgroup.events").read_text()
    memory_action(d, app, "freeze")
    # Foreground thaws it too.
    assert d.call("org.cella.Foreground", {"app": app})["state"] == "foreground"
    assert "frozen 0" in (unified / "cgroup.events").read_text()
    # Only a background app is cached.
    with pytest.raises(ControlError) as e:
        memory_action(d, app, "freeze")
    assert e.value.error == "org.cella.AppState"
    thaws = [r for r in audit_records(d, "memory.thaw") if r["app"] == app]
    assert [r["reason"] for r in thaws] == ["start", "foreground"], thaws
    assert len([r for r in audit_records(d, "memory.freeze") if r["app"] == app]) == 2


def test_kill_empties_the_cgroup_and_is_a_low_memory_kill(daemon):
    d = daemon
    app = "org.test.mem.again"  # restart: always
    first = d.call("org.cella.Start", {"app": app, "background": True})["pid"]
    wait_log_line(d, app, "tick 1", timeout=DEADLINE)
    rec, pids = app_pids(d, app)
    assert pids
    memory_action(d, app, "kill", "critical")
    # Back only once its cgroup is empty: every process it had has exited, or is in
    # its last steps of exit with its memory given back (a task leaves its cgroup in
    # do_exit(), after exit_mm(): no address space, vsize 0), or is a zombie (its
    # init, cellad's child, waits for cellad to reap it).
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        assert fields[0] in ("Z", "X") or fields[20] == "0", (pid, fields)
    kill = [k for k in audit_records(d, "memory.kill") if k["app"] == app][-1]
    assert kill["level"] == "critical" and kill["band"] == 700
    assert kill["usage_bytes"] > 0 and 0 <= kill["freed_bytes"] <= kill["usage_bytes"]
    assert kill["duration_us"] >= 0
    for k in ("pressure_some_avg10", "host_pressure_some_avg10"):
        assert k in kill and (kill[k] is None or 0 <= kill[k] <= 10000), kill
    # restart "always": started again, the restart's reason the low-memory kill.
    deadline = time.monotonic() + DEADLINE
    while True:
        restarts = [x for x in audit_records(d, "restart") if x["app"] == app]
        if restarts:
            break
        assert time.monotonic() < deadline, "no restart record"
        wait_state(d, app, "background")
    assert restarts[-1]["reason"] == "low-memory", restarts
    # cella inspect shows the last kill with its figures.
    shown = d.call("org.cella.Inspect", {"app": app})["memory_kill"]
    # on-failure: not restarted, and stopped rather than failed.
    d.call("org.cella.Start", {"app": "org.test.mem.svc"})
    wait_log_line(d, "org.test.mem.svc", "tick 1", timeout=DEADLINE)
    memory_action(d, "org.test.mem.svc", "kill", "low")
    wait_state(d, "org.test.mem.svc", "stopped")
    assert not [x for x in audit_records(d, "restart") if x["app"] == "org.test.mem.svc"]
    assert shown["level"] == "critical" and shown["freed_bytes"] == kill["freed_bytes"]
    assert shown["time_ms"] > 0
    wait_state(d, app, "background")
    assert d.call("org.cella.Inspect", {"app": app})["pid"] not in (0, first)


def can_lower_oom_score_adj():
    """Whether this process may lower an oom_score_adj below 0: CAP_SYS_RESOURCE
    (proc(5)), which a container may withhold even from root."""
    eff = next(l for l in Path("/proc/self/status").read_text().splitlines()
               if l.startswith("CapEff:"))
    return bool(int(eff.split()[1], 16) & (1 << 24))  # CAP_SYS_RESOURCE


def test_cellad_runs_at_oom_score_adj_minus_1000(daemon):
    d = daemon
    if not can_lower_oom_score_adj():
        # It says so, and runs on.
        assert "cannot set cellad's oom_score_adj to -1000" in d.log()
        pytest.skip("no CAP_SYS_RESOURCE here: cellad cannot lower its oom_score_adj")
    # Never the OOM killer's choice.
    assert oom_adj(d.pid) == -1000


def test_oom_score_adj_follows_the_band(daemon):
    d = daemon
    d.call("org.cella.Start", {"app": "org.test.mem.a"})
    wait_log_line(d, "org.test.mem.a", "tick 1", timeout=DEADLINE)
    d.call("org.cella.Start", {"app": "org.test.mem.svc"})
    wait_log_line(d, "org.test.mem.svc", "tick 1", timeout=DEADLINE)

    def adjs(app):
        _, pids = app_pids(d, app)
        assert pids, app
        return {oom_adj(p) for p in pids}

    assert adjs("org.test.mem.a") == {0}
    assert adjs("org.test.mem.svc") == {200}
    d.call("org.cella.Start", {"app": "org.test.mem.b"})
    wait_log_line(d, "org.test.mem.b", "tick 1", timeout=DEADLINE)
    assert adjs("org.test.mem.b") == {0}
    assert adjs("org.test.mem.a") == {100}  # visible now
    d.call("org.cella.Background", {"app": "org.test.mem.a"})
    assert adjs("org.test.mem.a") == {700}
    # Every process of a sandbox, a Lua host the warm pool forked before the app
    # was known included, has the app's band (700: started in the background).
    d.call("org.cella.Start", {"app": "org.test.mem.lua", "background": True})
    wait_log_line(d, "org.test.mem.lua", "ready", timeout=DEADLINE)
    _, pids = app_pids(d, "org.test.mem.lua")
    assert len(pids) >= 2, pids  # its init and the host
    assert adjs("org.test.mem.lua") == {700}
    rec, _ = app_pids(d, "org.test.mem.a")
    if "unified" in rec["cgroup_paths"]:
        memory_action(d, "org.test.mem.a", "freeze")
        assert adjs("org.test.mem.a") == {900}
        d.call("org.cella.Foreground", {"app": "org.test.mem.a"})
        assert adjs("org.test.mem.a") == {0}
        assert adjs("org.test.mem.b") == {100}


def test_an_intent_thaws_a_cached_app(tmp_path):
    """app.launch of a running app the memory manager froze thaws it (reason
    "intent") before the intent is delivered. The launcher is a Lua app whose trim
    handler launches the target: the trim is the test's trigger, no timing."""
    require_cellad()
    state = tmp_path / "state"
    src = tmp_path / "src"
    target = "org.test.intent.target"
    install_app(state, make_app(src, target, exports=["app.launch"]))
    install_app(state, make_app(
        src, "org.test.intent.launcher",
        'local app = require("cella.app")\n'
        'app.on_trim(function() print("launch " .. app.launch("%s")) end)\n'
        'print("ready")\n'
        'require("cella.timer").every(1, function() end)\n' % target,
        runtime="lua", permissions=[f"app.launch:{target}"]))
    with running_cellad(state, "--no-autostart") as d:
        d.call("org.cella.Start", {"app": target, "background": True})
        wait_log_line(d, target, "tick 1", timeout=DEADLINE)
        rec = d.call("org.cella.Inspect", {"app": target})
        if "unified" not in rec["cgroup_paths"]:
            pytest.skip("no cgroup2 hierarchy: no freeze by the memory manager on this host")
        assert memory_action(d, target, "freeze")["state"] == "cached"
        d.call("org.cella.Start", {"app": "org.test.intent.launcher"})
        wait_log_line(d, "org.test.intent.launcher", "ready", timeout=DEADLINE)
        memory_action(d, "org.test.intent.launcher", "trim")
        wait_log_line(d, "org.test.intent.launcher", "launch delivered", timeout=DEADLINE)
        assert d.call("org.cella.Inspect", {"app": target})["state"] == "background"
        unified = Path(rec["cgroup_paths"]["unified"])
        assert "frozen 0" in (unified / "cgroup.events").read_text()
        thaws = [r for r in audit_records(d, "memory.thaw") if r["app"] == target]
        assert [r["reason"] for r in thaws] == ["intent"], thaws
