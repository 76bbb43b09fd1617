"""Apps' life under cellad (docs/cli.md "cella start" and after, docs/api.md "Apps",
docs/design.md "App states"): start, stop, restart, freeze, thaw, kill, foreground,
background, inspect, ps (--json, --watch), logs -f, events and top against a bare
cellad with installed apps, and the refusals in the wrong state."""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from daemon_util import (CELLA, ControlError, call, call_as, cella, install_app, ps,
                         require_cellad, running_cellad, system_user, traversable_tmpdir)

TICKER = 'i=0\nwhile :; do echo "tick $i"; i=$((i+1)); sleep 0.02; done\n'


def make_app(root, app_id, kind="app", script=TICKER):
    d = Path(root) / app_id
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({
        "id": app_id, "runtime": "native", "entry": "main.sh", "kind": kind,
        "version": "1.0.0"}))
    (d / "main.sh").write_text("#!/bin/sh\n" + script)
    os.chmod(d / "main.sh", 0o755)
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def daemon(tmp_path):
    """cellad on tmp_path/state with three installed apps (two apps and a service)."""
    require_cellad()
    state = tmp_path / "state"
    src = tmp_path / "src"
    for app_id, kind in (("org.test.life.a", "app"), ("org.test.life.b", "app"),
                         ("org.test.life.svc", "service")):
        install_app(state, make_app(src, app_id, kind))
    with running_cellad(state, "--no-autostart") as d:
        yield d
        # An orderly stop: every app stopped, its cgroup removed (SIGKILL at the end
        # of running_cellad() would leave them to the next cellad's sweep).
        assert d.stop() == 0, d.log()
        leaf = f"@{d.pid}"
        left = []
        # Other kernels' cgroups come and go meanwhile: a folder gone is no error.
        for root, dirs, _ in os.walk("/sys/fs/cgroup", onerror=lambda e: None):
            left += [os.path.join(root, x) for x in dirs
                     if x.startswith("org.test.life.") and x.endswith(leaf)]
        assert not left, left


def state_of(d, app):
    return d.call("org.cella.Inspect", {"app": app})["state"]


def wait_state(d, app, want, timeout=30):
    """Waits for app's state to be want: a stream of ps snapshots (each sent on a state
    change), not a poll."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.sendall((json.dumps({"method": "org.cella.Ps", "parameters": {},
                               "more": True}) + "\n").encode())
        buf = b""
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"{app} never became {want}: {state_of(d, app)}"
            s.settimeout(left)
            while b"\n" not in buf:
                chunk = s.recv(65536)
                assert chunk, "cellad closed the stream"
                buf += chunk
            line, _, buf = buf.partition(b"\n")
            snap = json.loads(line)["parameters"]["apps"]
            if any(a["id"] == app and a["state"] == want for a in snap):
                return


def stream_until(d, method, params, done, timeout=30):
    """The replies of a "more" call until done(parameters) is true (that one included)."""
    out = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.settimeout(timeout)
        s.sendall((json.dumps({"method": method, "parameters": params,
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        while True:
            reply = json.loads(f.readline())
            assert "error" not in reply, reply
            out.append(reply["parameters"])
            if done(reply["parameters"]):
                return out


def log_size(d, app):
    p = d.state_dir / "logs" / f"{app}.log"
    return p.stat().st_size if p.exists() else 0


def wait_log_grows(d, app, size, timeout=30):
    """Follows the app's log through org.cella.Logs (more) until it holds more than
    size bytes: an event (a reply), not a poll."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.sendall((json.dumps({"method": "org.cella.Logs", "parameters": {"app": app},
                               "more": True}) + "\n").encode())
        buf = b""
        while log_size(d, app) <= size:
            left = deadline - time.monotonic()
            assert left > 0, f"the log of {app} did not grow past {size}"
            s.settimeout(left)
            chunk = s.recv(65536)
            assert chunk, "cellad closed the stream"
            buf += chunk


def test_start_roles_foreground_visible_background(daemon):
    d = daemon
    assert state_of(d, "org.test.life.a") == "installed"
    r = d.call("org.cella.Start", {"app": "org.test.life.a"})
    assert r["state"] == "foreground" and r["pid"] > 0
    assert d.call("org.cella.Start", {"app": "org.test.life.svc"})["state"] == "service"
    assert d.call("org.cella.Start", {"app": "org.test.life.b",
                                      "background": True})["state"] == "background"
    assert d.call("org.cella.Foreground", {"app": "org.test.life.b"})["state"] == "foreground"
    assert state_of(d, "org.test.life.a") == "visible"
    assert d.call("org.cella.Background", {"app": "org.test.life.a"})["state"] == "background"
    # cella ps asks every kernel: cellad is one, and its records carry the states.
    apps = ps(d.state_dir)
    assert apps["org.test.life.b"]["state"] == "foreground"
    assert apps["org.test.life.svc"]["state"] == "service"
    assert apps["org.test.life.a"]["state"] == "background"
    assert apps["org.test.life.b"]["kernel_pid"] == d.pid


def test_wrong_state_is_refused_with_its_name(daemon):
    d = daemon
    for method in ("org.cella.Freeze", "org.cella.Thaw", "org.cella.Kill",
                   "org.cella.Foreground", "org.cella.Background"):
        with pytest.raises(ControlError) as e:
            d.call(method, {"app": "org.test.life.a"})
        assert e.value.error == "org.cella.AppState", method
        assert e.value.parameters["state"] == "installed"
        assert "not running" in e.value.parameters["message"]
    d.call("org.cella.Start", {"app": "org.test.life.svc"})
    with pytest.raises(ControlError) as e:
        d.call("org.cella.Start", {"app": "org.test.life.svc"})
    assert e.value.error == "org.cella.AppState" and e.value.parameters["state"] == "service"
    with pytest.raises(ControlError) as e:
        d.call("org.cella.Foreground", {"app": "org.test.life.svc"})
    assert e.value.error == "org.cella.AppState"
    with pytest.raises(ControlError) as e:
        d.call("org.cella.Start", {"app": "org.test.nobody"})
    assert e.value.error == "org.cella.NoSuchApp"
    with pytest.raises(ControlError) as e:
        d.call("org.cella.Start", {"app": "../etc"})
    assert e.value.error == "org.cella.InvalidParameter"
    with pytest.raises(ControlError) as e:
        d.call("org.cella.Kill", {"app": "org.test.life.svc", "signal": 99})
    assert e.value.error == "org.cella.InvalidParameter"


def test_freeze_stops_the_app_and_thaw_resumes_it(daemon):
    d = daemon
    app = "org.test.life.a"
    d.call("org.cella.Start", {"app": app})
    wait_log_grows(d, app, 0)
    r = d.call("org.cella.Freeze", {"app": app})
    assert r["state"] == "frozen"
    rec = d.call("org.cella.Inspect", {"app": app})
    assert rec["state"] == "frozen" and rec["cgroup"]["frozen"] is True
    # Its cgroup's own word for it, in the file the kernel keeps: cgroup.events of the
    # cgroup2 leaf (v2, hybrid), freezer.state of the v1 freezer leaf.
    paths = rec["cgroup_paths"]
    if "unified" in paths:
        assert "frozen 1" in (Path(paths["unified"]) / "cgroup.events").read_text()
    else:
        assert (Path(paths["freezer"]) / "freezer.state").read_text().strip() == "FROZEN"
    size = log_size(d, app)
    # Nothing can be waited for here: a frozen app does nothing. A window of 0.5 s
    # in which a running app writes ~25 lines.
    time.sleep(0.5)
    assert log_size(d, app) == size, "a frozen app's output went on"
    with pytest.raises(ControlError) as e:
        d.call("org.cella.Kill", {"app": app, "signal": signal.SIGTERM})
    assert e.value.error == "org.cella.AppState" and "thaw it first" in e.value.parameters["message"]
    assert d.call("org.cella.Thaw", {"app": app})["state"] == "foreground"
    wait_log_grows(d, app, size)


def test_kill_stop_restart(daemon):
    d = daemon
    d.call("org.cella.Start", {"app": "org.test.life.svc"})
    # SIGKILL is sent; the state changes when the kernel sees the exit.
    assert d.call("org.cella.Kill", {"app": "org.test.life.svc"})["state"] in (
        "service", "stopping", "failed")
    wait_state(d, "org.test.life.svc", "failed")
    rec = d.call("org.cella.Inspect", {"app": "org.test.life.svc"})
    assert rec["last_exit"]["how"] == "killed" and rec["last_exit"]["status"] == signal.SIGKILL
    assert rec["last_exit"]["time_ms"] > 0

    first = d.call("org.cella.Start", {"app": "org.test.life.a"})["pid"]
    again = d.call("org.cella.Restart", {"app": "org.test.life.a", "wait": True})
    assert again["state"] == "foreground" and again["pid"] not in (0, first)
    stopped = d.call("org.cella.Stop", {"app": "org.test.life.a", "wait": True})
    assert stopped["state"] == "stopped" and stopped["pid"] == 0
    with pytest.raises(ControlError) as e:
        d.call("org.cella.Stop", {"app": "org.test.life.a"})
    assert e.value.error == "org.cella.AppState" and e.value.parameters["state"] == "stopped"


def test_inspect_record(daemon):
    d = daemon
    d.call("org.cella.Start", {"app": "org.test.life.a", "args": ["x", "y"]})
    rec = d.call("org.cella.Inspect", {"app": "org.test.life.a"})
    assert rec["manifest"]["id"] == "org.test.life.a" and rec["manifest"]["kind"] == "app"
    assert rec["args"] == ["x", "y"]
    assert rec["pid"] > 0 and rec["pid"] in rec["pids"] or rec["pids"]
    cg = rec["cgroup"]
    for k in ("memory_current", "memory_peak", "cpu_usage_usec", "pids_current", "oom_kills"):
        assert isinstance(cg[k], int), k
    assert cg["memory_current"] > 0 and cg["pids_current"] >= 1
    assert rec["restarts"] == 0 and rec["last_exit"] is None
    assert isinstance(rec["grants"], list)


def test_events_stream_and_replay(daemon):
    d = daemon
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.settimeout(30)
        s.sendall((json.dumps({"method": "org.cella.Events", "parameters": {},
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        assert json.loads(f.readline())["parameters"]["live"] is True
        d.call("org.cella.Start", {"app": "org.test.life.b"})
        seen = []
        while not any(e.get("event") == "state" and e.get("state") == "foreground"
                      for e in seen):
            seen.append(json.loads(f.readline())["parameters"]["event"])
        assert any(e["event"] == "started" and e["app"] == "org.test.life.b" for e in seen)
        assert all(e["kind"] == "lifecycle" for e in seen)
    # Replayed from the audit log: the same changes, as lifecycle records.
    past = call(d.socket, "org.cella.Events", {"since": "1h"})
    assert past["replayed"] > 0
    rep = stream_until(d, "org.cella.Events", {"since": "1h"}, lambda r: r.get("live"))
    recs = [r["event"] for r in rep if "event" in r]
    assert any(r.get("what") == "state" and r.get("state") == "foreground"
               and r["app"] == "org.test.life.b" for r in recs)


def test_ps_watch_bounded(daemon):
    d = daemon
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.settimeout(30)
        s.sendall((json.dumps({"method": "org.cella.Ps", "parameters": {"all": True},
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        first = json.loads(f.readline())["parameters"]["apps"]
        assert {a["id"]: a["state"] for a in first} == {
            "org.test.life.a": "installed", "org.test.life.b": "installed",
            "org.test.life.svc": "installed"}
        t0 = time.monotonic()
        d.call("org.cella.Start", {"app": "org.test.life.a"})
        d.call("org.cella.Start", {"app": "org.test.life.b"})
        snaps = []
        while True:
            snap = {a["id"]: a["state"] for a in json.loads(f.readline())["parameters"]["apps"]}
            snaps.append((time.monotonic(), snap))
            if snap.get("org.test.life.b") == "foreground":
                break
        # At most one snapshot per 100 ms.
        times = [t0] + [t for t, _ in snaps]
        assert len(snaps) <= 1 + int((times[-1] - t0) / 0.1) + 1


def test_cli_commands(daemon):
    d = daemon
    st = d.state_dir
    p = cella("start", "org.test.life.a", state_dir=st)
    assert p.returncode == 0, p.stderr
    assert "org.test.life.a" in p.stdout and "foreground" in p.stdout
    p = cella("start", "--background", "org.test.life.b", state_dir=st)
    assert p.returncode == 0 and "background" in p.stdout, p.stderr
    p = cella("freeze", "org.test.life.a", state_dir=st)
    assert p.returncode == 0 and "frozen" in p.stdout, p.stderr
    p = cella("freeze", "org.test.life.a", state_dir=st)
    assert p.returncode == 1 and "frozen already" in p.stderr
    p = cella("thaw", "org.test.life.a", state_dir=st)
    assert p.returncode == 0, p.stderr
    p = cella("foreground", "org.test.life.b", state_dir=st)
    assert p.returncode == 0, p.stderr
    p = cella("inspect", "--json", "org.test.life.a", state_dir=st)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["state"] == "visible"
    p = cella("inspect", "org.test.life.a", state_dir=st)
    assert p.returncode == 0 and "visible" in p.stdout
    p = cella("restart", "org.test.life.a", state_dir=st)
    assert p.returncode == 0, p.stderr
    p = cella("kill", "-s", "TERM", "org.test.life.b", state_dir=st)
    assert p.returncode == 0, p.stderr
    p = cella("kill", "-s", "NOSUCH", "org.test.life.b", state_dir=st)
    assert p.returncode == 240
    p = cella("stop", "org.test.life.a", state_dir=st)
    assert p.returncode == 0, p.stderr
    p = cella("ps", "--all", "--json", state_dir=st)
    assert p.returncode == 0, p.stderr
    apps = {a["id"]: a for a in json.loads(p.stdout)}
    assert apps["org.test.life.svc"]["state"] == "installed"
    p = cella("logs", "-n", "2", "org.test.life.a", state_dir=st)
    assert p.returncode == 0 and p.stdout.count("\n") >= 2, p.stdout
    p = cella("events", "--since", "1h", "--no-follow", "--json", state_dir=st)
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert any(r.get("what") == "state" and r.get("app") == "org.test.life.a" for r in recs)
    p = cella("top", "-n", "1", state_dir=st)
    assert p.returncode == 0, p.stderr
    assert "APP" in p.stdout and "CPU%" in p.stdout and "org.test.life.b" in p.stdout
    assert "\033[" not in p.stdout


def test_no_color_and_no_daemon(tmp_path):
    """Colour only on a terminal and never with NO_COLOR; the daemon's commands
    without a daemon say so and how to start one."""
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    p = cella("start", "org.test.none", state_dir=state)
    assert p.returncode == 3, p.stderr
    assert f"no cellad is running for {state}" in p.stderr
    assert "(start it with 'cellad' or 'systemctl start cellad')" in p.stderr
    import pty
    for no_color, want in (("1", False), ("", True)):
        env = dict(os.environ, NO_COLOR=no_color, TERM="xterm")
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(CELLA, [CELLA, "top", "-n", "1", "--state-dir", str(state)], env)
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        assert (b"\033[1m" in out) == want, (no_color, out[:200])


BUILD = Path(CELLA).resolve().parents[2]  # build/src/cli/cella -> build


def bash_complete(line, env=None):
    """The words bash completion offers for the command line `line` (the cursor at
    its end), from the generated completion/cella."""
    words = line.split(" ")
    script = f"""
source {BUILD / 'completion' / 'cella'}
COMP_WORDS=({' '.join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
_{words[0]}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})), timeout=30)
    assert p.returncode == 0, p.stderr
    return set(p.stdout.split())


def test_completion_from_the_command_table(tmp_path):
    """Generated from `cella --help` and each command's: every command and its options."""
    if not (BUILD / "completion" / "cella").exists():
        pytest.skip(f"no generated completion in {BUILD}/completion")
    cmds = bash_complete("cella ")
    helptext = subprocess.run([CELLA, "--help"], capture_output=True, text=True).stdout
    listed = {line.split()[0] for line in helptext.split("Commands:")[1].splitlines()
              if line.startswith("  ") and line.split()}
    assert listed <= cmds and {"start", "freeze", "thaw", "top", "events"} <= cmds
    assert bash_complete("cella st") == {"start", "stop", "stats"}
    assert {"--signal", "-s", "--json", "--state-dir"} <= bash_complete("cella kill -")
    assert {"--all", "--watch"} <= bash_complete("cella ps --")
    assert bash_complete("cellad --cgroup-mode ") == {"auto", "v1", "v2", "hybrid"}
    # An app argument: the installed apps of the state directory named.
    state = tmp_path / "state"
    (state / "apps" / "org.test.life.one").mkdir(parents=True)
    assert bash_complete(f"cella freeze --state-dir {state} org.test.li") == {"org.test.life.one"}
    zsh = subprocess.run(["which", "zsh"], capture_output=True, text=True).stdout.strip()
    if not zsh:
        pytest.skip("no zsh here to check the zsh completion's syntax")
    p = subprocess.run([zsh, "-n", str(BUILD / "completion" / "_cella")], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr


def test_man_pages_from_help():
    for page, says in (("cella.1", ["cella start", "cella freeze", "--background", "NO_COLOR"]),
                       ("cellad.1", ["--state-dir", "--ready-fd"])):
        path = BUILD / "completion" / page
        if not path.exists():
            pytest.skip(f"no {path}")
        p = subprocess.run(["man", "-l", str(path)], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="100"))
        assert p.returncode == 0, p.stderr
        for s in says:
            assert s in p.stdout, (page, s)


def test_logs_timestamps_since_and_follow(daemon):
    """cella logs -t (each line after its time), --since (only the lines from then on),
    -f (what comes after), from the log's time index."""
    d = daemon
    st = d.state_dir
    app = "org.test.life.a"
    d.call("org.cella.Start", {"app": app})
    wait_log_grows(d, app, 200)
    p = cella("logs", "-t", "-n", "3", app, state_dir=st)
    assert p.returncode == 0, p.stderr
    rows = p.stdout.splitlines()
    # The last 3 when it looked, and what the app wrote while it printed them.
    assert len(rows) >= 3, rows
    stamps = []
    for row in rows:
        when, text = row.split(" ", 1)
        assert text.startswith("tick "), row
        stamps.append(when)
        # RFC 3339, UTC, microseconds, within the last minute.
        t = time.mktime(time.strptime(when[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert abs(t - time.time()) < 60, row
    assert stamps == sorted(stamps)
    # --since a moment ago: only what came since, which starts later than the first
    # line of the log.
    everything = cella("logs", app, state_dir=st).stdout.splitlines()
    since = stamps[-1]
    size = log_size(d, app)
    wait_log_grows(d, app, size + 100)
    later = cella("logs", "--since", since, app, state_dir=st)
    assert later.returncode == 0, later.stderr
    lines = later.stdout.splitlines()
    assert lines and lines[0] != everything[0], (lines[:2], everything[:2])
    assert len(lines) < len(cella("logs", app, state_dir=st).stdout.splitlines())
    future = cella("logs", "--since", "2999-01-01", app, state_dir=st)
    assert future.returncode == 0 and future.stdout == ""
    bad = cella("logs", "--since", "yesterday-ish", app, state_dir=st)
    assert bad.returncode == 240 and "--since" in bad.stderr
    # -f -t: the next lines, stamped, as they come.
    f = subprocess.Popen([CELLA, "logs", "-f", "-t", "-n", "0", app, "--state-dir", str(st)],
                         stdout=subprocess.PIPE, text=True)
    try:
        row = f.stdout.readline()
        assert row.split(" ", 1)[1].startswith("tick "), row
    finally:
        f.kill()
        f.wait()
    # The daemon's Logs: the last lines, then (more) what comes.
    r = d.call("org.cella.Logs", {"app": app, "lines": 2})
    assert r["data"].count("\n") == 2 and r["data"].startswith("tick ")
    seen = []
    stream_until(d, "org.cella.Logs", {"app": app, "lines": 1},
                 lambda r: seen.append(r) or len(seen) >= 2)
    assert seen[0]["data"].count("\n") == 1 and seen[1]["data"].startswith("tick ")


def test_sigterm_of_cellad_thaws_a_frozen_app_first(daemon):
    """cellad's orderly stop (SIGTERM) of a frozen app: thawed, so its SIGTERM works
    at once, not after the 5 s grace's SIGKILL."""
    d = daemon
    d.call("org.cella.Start", {"app": "org.test.life.a"})
    d.call("org.cella.Freeze", {"app": "org.test.life.a"})
    t0 = time.monotonic()
    assert d.stop() == 0, d.log()
    assert time.monotonic() - t0 < 4.5, "the frozen app waited for the stop's SIGKILL"
    assert "org.test.life.a: stopped" in d.log() or "org.test.life.a: exited" in d.log(), d.log()


@pytest.fixture
def life_user():
    """A system user of its own, removed at the end: (name, uid, gid)."""
    with system_user("cella-test-life") as pw:
        yield pw.pw_name, pw.pw_uid, pw.pw_gid


def test_read_and_manage_methods_for_a_real_user(tmp_path, life_user):
    """Ps, Inspect, Logs, Events are read methods: a user the daemon opens them to
    reads, and is still refused Start, Stop, Freeze, Kill, ... (manage)."""
    require_cellad()
    name, uid, gid = life_user
    with traversable_tmpdir("cellad-life-") as top:
        state = top / "state"
        install_app(state, make_app(tmp_path / "src", "org.test.life.a"))
        with running_cellad(state, "--no-autostart", "--read-users", f"root,{name}") as d:
            d.call("org.cella.Start", {"app": "org.test.life.a"})
            app = {"app": "org.test.life.a"}
            for method, params in (("org.cella.Ps", {}), ("org.cella.Inspect", app),
                                   ("org.cella.Logs", app), ("org.cella.Events", {})):
                r = call_as(uid, gid, d.socket, method, params)
                assert "error" not in r, (method, r)
            for method in ("org.cella.Start", "org.cella.Stop", "org.cella.Restart",
                           "org.cella.Freeze", "org.cella.Thaw", "org.cella.Kill",
                           "org.cella.Foreground", "org.cella.Background"):
                r = call_as(uid, gid, d.socket, method, app)
                assert r.get("error") == "org.cella.PermissionDenied", (method, r)
            # Refused means nothing happened: it still runs in the foreground.
            assert state_of(d, "org.test.life.a") == "foreground"
            # cella logs as that user: the files are root's, cellad's Logs is not.
            wait_log_grows(d, "org.test.life.a", 0)

            def drop():
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)

            p = subprocess.run([CELLA, "logs", "-n", "1", "org.test.life.a", "--state-dir",
                                str(state)], preexec_fn=drop, capture_output=True, text=True,
                               timeout=60, cwd="/")
            assert p.returncode == 0, p.stderr
            assert p.stdout.startswith("tick "), p.stdout
            p = subprocess.run([CELLA, "freeze", "org.test.life.a", "--state-dir", str(state)],
                               preexec_fn=drop, capture_output=True, text=True, timeout=60,
                               cwd="/")
            assert p.returncode == 242 and "PermissionDenied" not in p.stderr, p.stderr
            assert d.stop() == 0
        with running_cellad(state, "--no-autostart") as d:
            # Not opened to it: not even Ps.
            r = call_as(uid, gid, d.socket, "org.cella.Ps", {})
            assert r.get("error") == "org.cella.PermissionDenied", r
            assert d.stop() == 0


def test_packed_apps_share_a_host_so_freeze_and_kill_are_refused(tmp_path):
    """A packed Lua app runs in its group's host: freezing or killing it alone would
    reach the group's other apps, so both are refused with the reason; a start
    starts the group, a stop stops it."""
    require_cellad()
    state = tmp_path / "state"
    src = tmp_path / "src"
    for app_id in ("org.test.life.pk.a", "org.test.life.pk.b"):
        d = src / app_id
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({
            "id": app_id, "runtime": "lua", "entry": "main.lua", "kind": "service",
            "isolation": "packed", "group": "lifegroup", "version": "1"}))
        (d / "main.lua").write_text('require("cella.timer").every(1, function() end)\n')
        os.chmod(d / "main.lua", 0o644)
        os.chmod(d, 0o755)
        install_app(state, d)
    with running_cellad(state, "--no-autostart") as d:
        # The group's first member known starts the group with the members it knows.
        r = d.call("org.cella.Start", {"app": "org.test.life.pk.a"})
        assert r["state"] == "service" and r["pid"] > 0
        for method in ("org.cella.Freeze", "org.cella.Kill"):
            with pytest.raises(ControlError) as e:
                d.call(method, {"app": "org.test.life.pk.a"})
            assert e.value.error == "org.cella.Failed", method
            assert "group lifegroup" in e.value.parameters["message"], e.value.parameters
            assert e.value.parameters["errno"] == 95  # EOPNOTSUPP
        assert state_of(d, "org.test.life.pk.a") == "service"
        r = d.call("org.cella.Stop", {"app": "org.test.life.pk.a", "wait": True})
        assert r["state"] == "stopped", r
        assert d.stop() == 0


def test_cli_ps_watch_and_json_errors(daemon):
    """cella ps --watch --json: one array a line, a new one when a state changes;
    --json errors are the error reply on stdout."""
    d = daemon
    st = d.state_dir
    w = subprocess.Popen([CELLA, "ps", "--watch", "--json", "--all", "--state-dir", str(st)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = {a["id"]: a["state"] for a in json.loads(w.stdout.readline())}
        assert first["org.test.life.b"] == "installed"
        d.call("org.cella.Start", {"app": "org.test.life.b", "background": True})
        while True:
            snap = {a["id"]: a["state"] for a in json.loads(w.stdout.readline())}
            if snap.get("org.test.life.b") == "background":
                break
    finally:
        w.kill()
        w.wait()
    p = cella("thaw", "--json", "org.test.life.b", state_dir=st)
    assert p.returncode == 1
    err = json.loads(p.stdout)
    assert err["error"] == "org.cella.AppState" and err["parameters"]["state"] == "background"
    p = cella("inspect", "--json", "org.test.nobody", state_dir=st)
    assert p.returncode == 1 and json.loads(p.stdout)["error"] == "org.cella.NoSuchApp"
