"""A Lua app of a packed group joining its group's running host through cellad
(docs/lua-api.md "Joining a running host", docs/design.md section 11): `cella start
MEMBER` while the host runs hands the running cella-lua a new app (its own state,
broker channel, log and stats slot) over the host control channel; `cella stop
MEMBER` stops that member alone while others run. Real sandboxes, a real cellad."""
import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import require_root
from daemon_util import (CELLA, Cellad, ControlError, alive, cella, ps, require_cellad,
                         running_cellad, wait_for)

_TAG = f"{os.getpid() % 100000}"
GROUP = f"join{_TAG}"
RUNNING = ("foreground", "visible", "service", "background", "cached")
DEADLINE = 60.0


def member(root, app_id, source, **manifest):
    """A packed Lua app of GROUP in root/<id>: its folder, world-readable."""
    d = root / app_id
    d.mkdir(parents=True)
    m = {"id": app_id, "version": "1", "runtime": "lua", "entry": "main.lua",
         "isolation": "packed", "group": GROUP}
    m.update(manifest)
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "main.lua").write_text(textwrap.dedent(source))
    for p in (root, d):
        os.chmod(p, 0o755)
    for f in ("manifest.json", "main.lua"):
        os.chmod(d / f, 0o644)
    return d


def install(state, folder):
    p = cella("install", folder, state_dir=state)
    assert p.returncode == 0, p.stdout + p.stderr


def start(d, app_id):
    return d.call("org.cella.Start", {"app": app_id})


def stop(d, app_id, timeout=DEADLINE):
    return d.call("org.cella.Stop", {"app": app_id, "wait": True}, timeout=timeout)


def log(state, app_id):
    p = cella("logs", "-n", "1000", app_id, state_dir=state)
    assert p.returncode == 0, p.stderr
    return p.stdout


def runs(rec):
    return rec["state"] in RUNNING and rec["running"] is True


def started_records(state, app_id):
    """The app's lifecycle "started" audit records."""
    p = cella("audit", "--json", "--app", app_id, state_dir=state)
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        r = json.loads(line)
        det = r.get("detail") or r
        if det.get("what") == "started":
            out.append(det)
    return out


# The group's keeper (never ends by itself) and members that print a line per run
# and then wait (so `ps` sees them running) or end at once.
KEEPER = 'require("cella.timer").every(1, function() end)\n'
WAITER = """
    local bus = require "cella.bus"
    local app = require "cella.app"
    local timer = require "cella.timer"
    print("run", app.id(), "publish", (pcall(bus.publish, "{topic}", "hi")))
    timer.after(300, function() end)
"""
QUICK = 'print("run", require("cella.app").id())\n'


@pytest.fixture
def setup(tmp_path):
    require_root()
    require_cellad()
    return tmp_path / "apps", tmp_path / "state"


def stats_ids(state):
    """The app ids of `cella stats --json`'s one host, once it has started."""
    def get():
        p = cella("stats", "--json", state_dir=state)
        hosts = json.loads(p.stdout)["hosts"] if p.returncode == 0 else []
        return hosts[0]["apps"] if hosts else None
    return [a["id"] for a in wait_for("the host's stats", get)]


def group_of(state, ids):
    """ps records of ids once each is listed."""
    return wait_for("the members listed", lambda: (
        lambda p: p if all(a in p for a in ids) else None)(ps(state)))


def three_members(root):
    """GROUP's keeper and two WAITERs in root: j, which may publish on its topic
    <j>.x, and k, which may not. Returns their ids, the topic and their folders."""
    keeper, j, k = f"org.test.{GROUP}.keep", f"org.test.{GROUP}.j", f"org.test.{GROUP}.k"
    topic = f"{j}.x"
    folders = [member(root, keeper, KEEPER),
               member(root, j, WAITER.format(topic=topic), permissions=[f"bus.publish:{topic}"]),
               member(root, k, WAITER.format(topic=topic))]
    return keeper, j, k, topic, folders


def test_a_member_joins_the_running_host_with_its_own_grants(setup):
    """The first member's start starts the host (with a slot for each installed
    member, not started); each other member's start joins that host (same pid) and
    runs its entry; its kernel calls are decided by its own grants, not another
    member's; stopped alone it leaves the others running; started again it joins
    again; the host ends with its last member."""
    root, state = setup
    keeper, j, k, topic, folders = three_members(root)
    with running_cellad(state) as d:
        for f in folders:
            install(state, f)
        assert start(d, keeper)["state"] in RUNNING
        p = group_of(state, (keeper, j, k))
        host = p[keeper]["pid"]
        assert host > 0 and runs(p[keeper]), p
        # j and k have slots in the host, and are not started by the keeper's start;
        # `cella stats` shows the apps that ran in the host, not its empty slots.
        assert p[j]["state"] == "installed" and p[k]["state"] == "installed", p
        assert stats_ids(state) == [keeper]
        for a in (j, k):
            rep = start(d, a)
            assert rep["state"] in RUNNING and rep["pid"] == host, rep
        wait_for("both members' first run", lambda: log(state, j).count("run") == 1 and
                 log(state, k).count("run") == 1)
        p = ps(state)
        assert all(runs(p[a]) and p[a]["pid"] == host for a in (keeper, j, k)), p
        assert sorted(stats_ids(state)) == sorted([keeper, j, k])
        # inspect tells the same: running in the host, its group, its own stats.
        ins = d.call("org.cella.Inspect", {"app": j})
        assert ins["running"] is True and ins["pid"] == host and ins["group"] == GROUP, ins
        # Each by its own grants: j holds bus.publish on its topic, k does not.
        assert "publish\ttrue" in log(state, j), log(state, j)
        assert "publish\tfalse" in log(state, k), log(state, k)
        # Stopped alone: the host and the others go on.
        assert stop(d, j)["state"] == "stopped"
        p = ps(state)
        assert runs(p[keeper]) and runs(p[k]) and p[k]["pid"] == host, p
        assert not runs(p[j]) and p[j]["state"] == "stopped", p
        # Started again: it joins the same host once more.
        assert start(d, j)["pid"] == host
        wait_for("j's second run", lambda: log(state, j).count("run") == 2)
        assert log(state, j).count("publish\ttrue") == 2, log(state, j)
        sj = started_records(state, j)
        assert [x.get("joined") for x in sj] == [True, True], sj
        assert [x.get("joined") for x in started_records(state, keeper)] == [False]
        # A restart of a member is a stop alone and a join: the same host.
        d.call("org.cella.Restart", {"app": k}, timeout=DEADLINE)
        wait_for("k's second run", lambda: log(state, k).count("run") == 2)
        p = ps(state)
        assert runs(p[k]) and p[k]["pid"] == host and runs(p[j]), p
        # A member started with the host (run 0 of its slot) stops alone too.
        assert stop(d, keeper)["state"] == "stopped"
        p = ps(state)
        assert runs(p[j]) and runs(p[k]) and p[j]["pid"] == host, p
        # The last member's stop ends the host.
        for a in (j, k):
            stop(d, a)
        wait_for("the host to end", lambda: not os.path.exists(f"/proc/{host}"))
        p = ps(state)
        assert not any(runs(p[a]) for a in (keeper, j, k)), p
        # A start now starts a new host with that member only.
        rep = start(d, j)
        assert rep["pid"] != host and rep["state"] in RUNNING, rep
        p = ps(state)
        assert not runs(p[keeper]) and not runs(p[k]), p
        # cellad's SIGTERM stops every member and the host (a STOP each).
        assert start(d, keeper)["pid"] == rep["pid"]
        assert d.stop() == 0, d.log()


def test_a_joined_member_is_adopted_after_a_sigkill_and_stops_alone(setup):
    """A member that joined the running host is held by the keeper (its record names
    its run), and the keeper holds the host control channel: after a SIGKILL of
    cellad the next cellad adopts the host with both members (the same host pid),
    serves the joined one (its calls answered: it publishes again after it is
    stopped and joins once more), stops it alone (its run named: the host and the
    other member go on), and a start of it joins the adopted host again. A member
    with a slot but no record (never started) joins the adopted host too, into a
    free slot, once its folder is found in the host's jail; one installed after
    the host started, or updated since, is refused, saying so."""
    root, state = setup
    keeper, j, k, topic, folders = three_members(root)
    upd, late = f"org.test.{GROUP}.upd", f"org.test.{GROUP}.late"
    folders.append(member(root, upd, QUICK))
    d = Cellad(state).start()
    d2 = None
    try:
        for f in folders:
            install(state, f)
        assert start(d, keeper)["state"] in RUNNING
        host = group_of(state, (keeper, j, k))[keeper]["pid"]
        # After the host started: upd updated (not running: no restart), late
        # installed. The host's jail holds upd's version 1 and no late.
        m = json.loads((root / upd / "manifest.json").read_text())
        m["version"] = "2"
        (root / upd / "manifest.json").write_text(json.dumps(m))
        p = cella("update", root / upd, state_dir=state)
        assert p.returncode == 0, p.stdout + p.stderr
        install(state, member(root, late, QUICK))
        # j joins, is stopped alone and joins again: its run is not the host's 0.
        assert start(d, j)["pid"] == host
        wait_for("j's first run", lambda: log(state, j).count("run") == 1)
        assert stop(d, j)["state"] == "stopped"
        assert start(d, j)["pid"] == host
        wait_for("j's second run", lambda: log(state, j).count("run") == 2)
        d.send(signal.SIGKILL)
        d.proc.wait(timeout=DEADLINE)
        assert os.path.exists(f"/proc/{host}"), "the host died with cellad"

        d2 = Cellad(state).start()
        assert "adopted 2 app(s)" in d2.log(), d2.log()
        p = ps(state)
        assert runs(p[keeper]) and runs(p[j]), p
        assert p[keeper]["pid"] == host and p[j]["pid"] == host, p
        # Stopped alone through the adopted host's control channel, naming its run:
        # the host and the keeper member go on.
        try:
            rep = stop(d2, j, timeout=15)
        except TimeoutError:
            pytest.fail("the adopted joined member did not stop: " + d2.log()[-3000:])
        assert rep["state"] == "stopped", rep
        p = ps(state)
        assert runs(p[keeper]) and p[keeper]["pid"] == host, p
        assert not runs(p[j]), p
        # Started again: it joins the adopted host (its slot known from its record),
        # runs its entry a third time, under its own grants.
        assert start(d2, j)["pid"] == host
        wait_for("j's third run", lambda: log(state, j).count("run") == 3)
        assert log(state, j).count("publish\ttrue") == 3, log(state, j)
        # k had a slot but no record (never started): its folder is in the host's
        # jail, so it joins into a free slot and runs under its own grants.
        assert start(d2, k)["pid"] == host
        wait_for("k's run in the adopted host", lambda: "run" in log(state, k))
        assert "publish\tfalse" in log(state, k), log(state, k)
        assert f"{k} takes slot" in d2.log(), d2.log()
        p = ps(state)
        assert runs(p[k]) and runs(p[j]) and p[k]["pid"] == host, p
        # Its stats are its own slot's (not another member's record).
        assert k in stats_ids(state)
        # upd was updated after the host started (its jail holds version 1) and
        # late installed after it: both refused with the reason and the way out.
        for app_id, why in ((upd, "updated"), (late, "installed")):
            with pytest.raises(ControlError) as e:
                start(d2, app_id)
            msg = json.dumps(e.value.args)
            assert "does not hold" in msg and f"it was {why} after the host started" in msg \
                and "stop the group's apps" in msg, msg
            assert not runs(ps(state)[app_id])
        assert runs(ps(state)[j])
        assert d2.stop() == 0, d2.log()
        # Ended (its parent was the killed cellad: a zombie until init reaps it).
        wait_for("the adopted host to end", lambda: not alive(host))
    finally:
        if d2:
            d2.close()
        d.close()


def test_a_member_installed_after_its_host_started_is_refused_clearly(setup):
    """The host's jail, cgroup limits and stats file were made for the members
    installed when it started: one installed later has no slot (the group is full
    for it) and its start says so and what to do; the running members are not
    touched; once the host has ended, the next start takes it in."""
    root, state = setup
    keeper, late = f"org.test.{GROUP}.keep", f"org.test.{GROUP}.late"
    with running_cellad(state) as d:
        install(state, member(root, keeper, KEEPER))
        host = start(d, keeper)["pid"]
        install(state, member(root, late, QUICK))
        with pytest.raises(ControlError) as e:
            start(d, late)
        msg = json.dumps(e.value.args)
        assert "does not hold" in msg and "it was installed after the host started" in msg \
            and "stop the group's apps" in msg, msg
        p = ps(state)
        assert runs(p[keeper]) and p[keeper]["pid"] == host, p
        assert not runs(p[late]), p
        stop(d, keeper)
        wait_for("the host to end", lambda: not os.path.exists(f"/proc/{host}"))
        assert start(d, keeper)["pid"] != host
        assert start(d, late)["state"] in RUNNING
        wait_for("the late member's run", lambda: "run" in log(state, late))


def test_a_removed_member_gets_no_slot_and_the_group_still_starts(setup):
    """A member that had a slot and was removed from the store since: the next
    start of the host leaves it out (no slot, said in cellad's log) and starts
    the others; it cannot be started (not installed)."""
    root, state = setup
    keeper, gone = f"org.test.{GROUP}.keep", f"org.test.{GROUP}.gone"
    with running_cellad(state) as d:
        install(state, member(root, keeper, KEEPER))
        install(state, member(root, gone, QUICK))
        host = start(d, keeper)["pid"]
        assert ps(state)[gone]["state"] == "installed"
        stop(d, keeper)
        wait_for("the host to end", lambda: not os.path.exists(f"/proc/{host}"))
        p = cella("remove", gone, state_dir=state)
        assert p.returncode == 0, p.stdout + p.stderr
        rep = start(d, keeper)
        assert rep["state"] in RUNNING and rep["pid"] != host, rep
        assert f"{gone} gets no slot in the host" in d.log(), d.log()
        with pytest.raises(ControlError):
            start(d, gone)
        assert runs(ps(state)[keeper])


def test_under_cella_boot_a_launched_member_joins_the_running_host(setup, tmp_path):
    """Embedded mode: `cella boot` of a set with a group starts the group's host
    with all its members, as before; a member that ended by itself and is
    launched again (app.launch by another app) joins the running host: its log
    shows each run, all in the host's pid, with the group's other member running
    on. Then the boot's Ctrl-C ends it all cleanly."""
    import signal
    from daemon_util import CELLA as cella_bin
    root = tmp_path / "set"
    keeper, quick = f"org.test.{GROUP}.keep", f"org.test.{GROUP}.quick"
    member(root, keeper, KEEPER)  # an app, not a service: the boot lasts while it runs
    member(root, quick, 'print("run", require("cella.app").id())\n', exports=["app.launch"])
    launcher = root / "org.test.launcher"
    launcher.mkdir()
    (launcher / "manifest.json").write_text(json.dumps(
        {"id": "org.test.launcher", "runtime": "lua", "entry": "main.lua", "kind": "service",
         "permissions": [f"app.launch:{quick}"]}))
    (launcher / "main.lua").write_text(textwrap.dedent(f"""
        local app = require "cella.app"
        local timer = require "cella.timer"
        timer.every(0.2, function() print(pcall(app.launch, "{quick}")) end)
    """))
    os.chmod(launcher, 0o755)
    os.chmod(launcher / "main.lua", 0o644)
    state = tmp_path / "bstate"
    p = subprocess.Popen([cella_bin, "boot", "--state-dir", str(state), str(root)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def logq():
            f = state / "logs" / f"{quick}.log"
            return f.read_text() if f.exists() else ""
        wait_for("three runs of the launched member", lambda: logq().count("run") >= 3)
        p_ = ps(state)
        assert runs(p_[keeper]), p_
        recs = started_records(state, quick)
        host = {r.get("pid") for r in recs}
        assert len(host) == 1 and p_[keeper]["pid"] in host, (recs, p_)
        assert recs[0].get("joined") is False and all(r.get("joined") for r in recs[1:]), recs
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    assert "did not stop within" not in err, err


RETRY = ("is ending", "still being read", "runs already", "is stopping", "being cleaned up")


def test_a_join_racing_the_hosts_exit_is_taken_or_refused_never_lost(setup):
    """The host ends when its last member ends; a start that comes as it ends is
    either taken (the member runs: its log shows the run) or refused with "is
    ending" (then started again once the host has gone), never accepted and lost:
    every "started" record of the member has its run in its log, and nothing is
    left running."""
    root, state = setup
    short, quick = f"org.test.{GROUP}.short", f"org.test.{GROUP}.quick"
    # short lives a moment; quick ends at once. Each round starts short (a new host)
    # then starts quick as often as it can until short's host has ended.
    src = 'require("cella.timer").after(0.05, function() print("short done") end)\n'
    with running_cellad(state) as d:
        install(state, member(root, short, src))
        install(state, member(root, quick, QUICK))
        taken = refused = 0
        why = {}
        for _ in range(5):
            host = start(d, short)["pid"]
            while os.path.exists(f"/proc/{host}/stat"):
                try:
                    rep = start(d, quick)
                    taken += rep.get("pid") == host
                except ControlError as e:
                    msg = json.dumps(e.args)
                    # The host ending, or not cleaned up yet; or quick's last run's
                    # end not recorded yet (ps says so too): each says to retry.
                    k = next((w for w in RETRY if w in msg), None)
                    assert k, msg
                    refused += 1
                    why[k] = why.get(k, 0) + 1
            wait_for("both ended", lambda: not any(runs(r) for r in (
                lambda p: [p[short], p[quick]])(ps(state))))
        n_started = len(started_records(state, quick))
        wait_for("every started run of quick in its log",
                 lambda: log(state, quick).count("run") == n_started)
        print("race: taken", taken, "refused", refused, why)
        assert taken >= 1, (taken, refused)


def test_a_stopped_members_record_is_not_shown_as_its_memory(setup):
    """A member's slot in the host's stats file holds its last run's record after it
    ended (and until the host takes its next JOIN): `cella ps` and inspect show a
    member's heap only while it runs, from the record of the run it runs as, as for
    an app alone (no memory_bytes once stopped), not the ended run's last heap."""
    root, state = setup
    keeper, j = f"org.test.{GROUP}.keep", f"org.test.{GROUP}.mem"
    big = """
        local t = {}
        for i = 1, 20000 do t[i] = string.rep("x", 64) .. i end
        require("cella.timer").every(1, function() return #t end)
    """
    folders = [member(root, keeper, KEEPER), member(root, j, big)]
    with running_cellad(state) as d:
        for f in folders:
            install(state, f)
        assert start(d, keeper)["state"] in RUNNING
        assert start(d, j)["state"] in RUNNING
        rec = wait_for("j's heap in ps", lambda: (
            lambda p: p[j] if p[j].get("memory_bytes", 0) > 1024 * 1024 else None)(ps(state)))
        assert runs(rec), rec
        assert stop(d, j)["state"] == "stopped"
        p = ps(state)
        assert runs(p[keeper]) and not runs(p[j]), p
        assert "memory_bytes" not in p[j], p[j]
        ins = d.call("org.cella.Inspect", {"app": j})
        assert ins["running"] is False and "memory_bytes" not in ins, ins
        assert d.stop() == 0, d.log()
