"""The seams between cellad's parts (docs/store.md "Updates and running apps",
docs/daemon.md): an installed app's start runs the version installed at that moment
with that version's rights, whatever the kernel registered before; an update restarts
a running app into its new version; Remove and ClearData take a stopped app and drop
its instance, so that a later install of the id starts afresh. Real sandboxes under a
bare cellad, through the CLI and the control socket."""
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from daemon_util import CELLA, ControlError, require_cellad, running_cellad

APP = "org.test.integ"
# Says its version (from its own folder, /app), then runs until stopped.
MAIN = '#!/bin/sh\necho "version $(cat /app/version.txt)"\nwhile :; do sleep 0.05; done\n'


def write_app(d, version, permissions=()):
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    (d / "manifest.json").write_text(json.dumps({
        "id": APP, "version": version, "runtime": "native", "entry": "main.sh",
        "kind": "service", "permissions": list(permissions)}))
    (d / "main.sh").write_text(MAIN)
    os.chmod(d / "main.sh", 0o755)
    (d / "version.txt").write_text(version + "\n")
    return d


def cella(state, *args, check=0):
    p = subprocess.run([CELLA, *map(str, args), "--state-dir", str(state)],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check is not None:
        assert p.returncode == check, f"cella {args}: {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def wait_version(d, version, timeout=30):
    """Follows the app's log until its start says `version`."""
    wait_text(d, APP, f"version {version}", timeout)


def wait_text(d, app, want, timeout=30):
    """Follows app's log (org.cella.Logs, more: each reply is an event) until it
    holds want."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.settimeout(timeout)
        s.sendall((json.dumps({"method": "org.cella.Logs",
                               "parameters": {"app": app, "lines": 1000},
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        while True:
            line = f.readline()
            assert line, f"cellad ended the log stream before '{want}'"
            reply = json.loads(line)
            assert "error" not in reply, reply
            text = json.dumps(reply["parameters"])
            if want in text:
                return


def inspect(d):
    return d.call("org.cella.Inspect", {"app": APP})


@pytest.fixture
def daemon(tmp_path):
    require_cellad()
    with running_cellad(tmp_path / "state", "--no-autostart") as d:
        yield d


def test_a_stopped_app_starts_its_newest_version_after_two_updates(daemon, tmp_path):
    """Registered at 1.0, stopped, updated twice (the store deletes 1.0 at the second
    update): its next start runs 3.0, not the folder that is gone."""
    state, src = daemon.state_dir, tmp_path / "src"
    cella(state, "install", write_app(src, "1.0"))
    cella(state, "start", APP)
    wait_version(daemon, "1.0")
    cella(state, "stop", APP)
    for v in ("2.0", "3.0"):
        cella(state, "update", write_app(src, v))
    assert not (state / "apps" / APP / "1.0").exists()
    cella(state, "start", APP)
    wait_version(daemon, "3.0")
    assert inspect(daemon)["app_dir"].endswith(f"/apps/{APP}/3.0")
    cella(state, "stop", APP)


def test_an_update_restarts_a_running_app_into_the_new_version(daemon, tmp_path):
    state, src = daemon.state_dir, tmp_path / "src"
    cella(state, "install", write_app(src, "1.0"))
    cella(state, "start", APP)
    wait_version(daemon, "1.0")
    p = cella(state, "update", "--json", write_app(src, "2.0"))
    assert json.loads(p.stdout).get("restarted") is True, p.stdout
    wait_version(daemon, "2.0")
    # Twice more: a running app never runs a version the store has deleted.
    cella(state, "update", write_app(src, "3.0"))
    wait_version(daemon, "3.0")
    assert inspect(daemon)["app_dir"].endswith("/3.0")
    cella(state, "stop", APP)


def test_rights_follow_the_version_that_starts(daemon, tmp_path):
    """1.0 requests timer and notify (normal: granted at install); 2.0 only timer:
    once 2.0 starts, notify is no longer granted; 3.0 asks for it again."""
    state, src = daemon.state_dir, tmp_path / "src"

    def granted():
        return {g["right"] for g in inspect(daemon)["grants"] or []}

    cella(state, "install", write_app(src, "1.0", ["timer", "notify"]))
    cella(state, "start", APP)
    wait_version(daemon, "1.0")
    assert {"timer", "notify"} <= granted()
    cella(state, "update", write_app(src, "2.0", ["timer"]))
    wait_version(daemon, "2.0")
    assert "timer" in granted() and "notify" not in granted(), granted()
    cella(state, "stop", APP)
    cella(state, "update", write_app(src, "3.0", ["timer", "notify"]))
    cella(state, "start", APP)
    wait_version(daemon, "3.0")
    assert {"timer", "notify"} <= granted()
    cella(state, "stop", APP)


def test_remove_and_clear_data_take_a_stopped_app(daemon, tmp_path):
    """A stopped app is not in use: ClearData and Remove go through, the instance is
    dropped (ps no longer lists it), and the id installed again starts afresh."""
    state, src = daemon.state_dir, tmp_path / "src"
    cella(state, "install", write_app(src, "1.0"))
    cella(state, "start", APP)
    wait_version(daemon, "1.0")
    # Running: refused, with the state.
    with pytest.raises(ControlError) as e:
        daemon.call("org.cella.Remove", {"id": APP})
    assert e.value.error == "org.cella.AppState"
    cella(state, "stop", APP)
    daemon.call("org.cella.ClearData", {"id": APP})
    daemon.call("org.cella.Remove", {"id": APP})
    apps = daemon.call("org.cella.Ps", {"all": True})["apps"]
    assert APP not in {a["id"] for a in apps}, apps
    with pytest.raises(ControlError) as e:
        daemon.call("org.cella.Start", {"app": APP})
    assert e.value.error == "org.cella.NoSuchApp"
    cella(state, "install", write_app(src, "5.0"))
    assert inspect(daemon)["state"] == "installed"
    cella(state, "start", APP)
    wait_version(daemon, "5.0")
    assert inspect(daemon)["last_exit"] is None
    cella(state, "stop", APP)


LOGGER = "org.test.integ.logger"
# 30,000 numbered lines (1.6 MB: the log rotates at 1 MiB, supervisor/applog.h),
# then an ill-formed byte, a character cut by nothing, and a marker.
LOGGER_MAIN = ('#!/bin/sh\nseq -f "line %g of the app that writes a lot" 0 29999\n'
               "printf 'bad \\377 byte, \\342\\202\\254 euro\\n'\n"
               "echo all-written\nwhile :; do sleep 1; done\n")


def test_logs_through_the_daemon_are_the_files_lines(daemon, tmp_path):
    """org.cella.Logs gives what `cella logs` prints from the files, the rotated one
    included, for -n N across the rotation and for the whole log; an ill-formed
    byte does not fail it (U+FFFD in JSON)."""
    state = daemon.state_dir
    d = tmp_path / "logger"
    d.mkdir()
    os.chmod(d, 0o755)
    (d / "manifest.json").write_text(json.dumps({
        "id": LOGGER, "version": "1.0", "runtime": "native", "entry": "main.sh",
        "kind": "service"}))
    (d / "main.sh").write_text(LOGGER_MAIN)
    os.chmod(d / "main.sh", 0o755)
    cella(state, "install", d)
    cella(state, "start", LOGGER)
    wait_text(daemon, LOGGER, "all-written")
    assert (state / "logs" / f"{LOGGER}.log.1").exists(), "the log did not rotate"
    for n in (5, 12000, 29000, 0):
        files = subprocess.run([CELLA, "logs", "--state-dir", str(state), LOGGER,
                                *(["-n", str(n)] if n else [])],
                               capture_output=True, timeout=60).stdout
        params = {"app": LOGGER, **({"lines": n} if n else {})}
        got = daemon.call("org.cella.Logs", params)
        want = files.decode("utf-8", errors="replace")
        assert got["data"] == want, (n, len(got["data"]), len(want))
        assert got["truncated"] is False
    assert "bad \ufffd byte, \u20ac euro\n" in got["data"]
    assert got["data"].startswith("line 0 of")
    cella(state, "stop", LOGGER)


def _cgroups(pid):
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f.read().splitlines():
            _, ctrl, path = line.split(":", 2)
            out[ctrl] = path
    return out


def test_two_bare_daemons_do_not_share_a_cgroup_base(tmp_path):
    """Two cellads of different state directories started from one cgroup each have
    a base of their own (cellad-<tag>), so that one's orderly stop (which
    removes its cella/ when empty) never races the other's start of an app (seen:
    ENOENT "create cgroup"). Then the race itself: one daemon started and stopped
    again and again while the other starts and stops an app."""
    require_cellad()
    import threading
    from daemon_util import Cellad

    src = tmp_path / "src"
    src.mkdir()
    app = write_app(src / "app", "1.0")
    with running_cellad(tmp_path / "a", "--no-autostart") as a, \
            running_cellad(tmp_path / "b", "--no-autostart") as b:
        ca, cb = _cgroups(a.pid), _cgroups(b.pid)
        for ctrl in ca:
            if ca[ctrl].endswith("/supervisor"):
                assert cb[ctrl].endswith("/supervisor"), (ctrl, cb)
                base_a, base_b = ca[ctrl].rsplit("/", 1)[0], cb[ctrl].rsplit("/", 1)[0]
                assert base_a != base_b, f"both daemons under {base_a} ({ctrl or 'cgroup2'})"
                assert base_a.rsplit("/", 1)[1].startswith("cellad-r"), base_a
        assert b.stop() == 0
        cella(a.state_dir, "install", app)
        errors, done = [], threading.Event()

        def churn():
            try:
                for i in range(6):
                    if done.is_set():
                        return
                    c = Cellad(tmp_path / "c", "--no-autostart")
                    try:
                        c.start()
                        assert c.stop() == 0, c.log()
                    finally:
                        c.close()
            except Exception as e:  # reported by the main thread
                errors.append(e)

        t = threading.Thread(target=churn)
        t.start()
        try:
            for i in range(6):
                cella(a.state_dir, "start", APP)
                wait_version(a, "1.0")
                cella(a.state_dir, "stop", APP)
        finally:
            done.set()
            t.join()
        assert not errors, errors


AUDIT_APPEND = os.environ.get(
    "CELLA_AUDIT_APPEND", str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "audit-append"))


def test_an_events_replay_does_not_stall_the_daemon(tmp_path):
    """org.cella.Events "since" reads the whole audit log (its hash chain from the
    first record): 100,000 records two days old, none of them after "since", so the
    replay sends nothing and only reads. A Ping sent while it reads (the daemon has
    the log's first file open) is answered before the replay ends: the replay runs
    off the loop (src/daemon/replay.c). Then a replay of all of them reaches a client
    that reads slowly in full (backpressure, not the output bound's drop)."""
    require_cellad()
    if not os.access(AUDIT_APPEND, os.X_OK):
        pytest.skip(f"no audit-append at {AUDIT_APPEND} (set CELLA_AUDIT_APPEND)")
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    rec = json.dumps({"event": "lifecycle", "app": "org.test.integ.old", "what": "state",
                      "state": "stopped", "from": "background", "time": "2000-01-01T00:00:00Z"})
    for _ in range(10):
        subprocess.run([AUDIT_APPEND, "--file-max", "1M", str(state)] + [rec] * 10000, check=True)
    first = (state / "audit" / "log.000001.jsonl").resolve()
    with running_cellad(state, "--no-autostart") as d:
        def reading():
            for fd in os.listdir(f"/proc/{d.pid}/fd"):
                try:
                    if os.readlink(f"/proc/{d.pid}/fd/{fd}") == str(first):
                        return True
                except OSError:
                    pass
            return False

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ev, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ping:
            ev.connect(str(d.socket))
            ping.connect(str(d.socket))
            ev.settimeout(300)
            ping.settimeout(300)
            ev.sendall(b'{"method":"org.cella.Events","parameters":{"since":"1d"},"more":true}\n')
            deadline = time.monotonic() + 30
            while not reading():
                assert time.monotonic() < deadline, "the daemon never opened the audit log"
            ping.sendall(b'{"method":"org.cella.Ping","parameters":{}}\n')
            pong = json.loads(ping.makefile("rb").readline())
            assert pong["parameters"]["pid"] == d.pid
            # The replay was still reading when the Ping was answered.
            still = reading()
            live = json.loads(ev.makefile("rb").readline())
            assert live["parameters"] == {"live": True, "replayed": 0, "dropped": 0}, live
            assert still, "the replay ended before the Ping was answered: it ran on the loop"

        # All 100,000 to a client that reads them slowly (a 64 KiB buffer at a time).
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ev:
            ev.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            ev.connect(str(d.socket))
            ev.settimeout(300)
            ev.sendall(b'{"method":"org.cella.Events","parameters":{"since":"2000-01-01"},'
                       b'"more":true}\n')
            f = ev.makefile("rb")
            n = 0
            while True:
                line = f.readline()
                assert line, f"the daemon dropped the client after {n} events"
                r = json.loads(line)
                assert "error" not in r, (n, r)
                if "live" in r["parameters"]:
                    break
                n += 1
            assert n == 100000 and r["parameters"]["replayed"] == 100000, (n, r)
