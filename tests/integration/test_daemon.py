"""cellad run bare (docs/daemon.md): its start, its lock, its signals, its socket,
its cgroup layout. Each test starts a real cellad on a fresh state directory and
waits for its READY line (daemon_util.py); nothing waits on a sleep."""
import contextlib
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import pid_alive
from daemon_util import (CELLAD, Cellad, ControlError, DaemonError, call, call_as,  # noqa: F401
                         cellad, install_app, ps, require_cellad, running_cellad, system_user,
                         traversable_tmpdir)


def test_help_and_version():
    require_cellad()
    p = subprocess.run([CELLAD, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "--state-dir" in p.stdout and "SIGHUP" in p.stdout
    p = subprocess.run([CELLAD, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("cellad ")


@pytest.mark.parametrize("args, what", [
    (["--bogus"], "unrecognized option"),
    (["--ready-fd", "x"], "--ready-fd"),
    (["--ready-fd", "1"], "--ready-fd"),
    (["--cgroup-mode", "v3"], "--cgroup-mode"),
    (["--socket", "relative.sock"], "--socket"),
    (["stray"], "unexpected argument"),
])
def test_bad_options_are_usage_errors(tmp_path, args, what):
    require_cellad()
    p = subprocess.run([CELLAD, "--state-dir", str(tmp_path / "s"), *args],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert what in p.stderr
    assert not (tmp_path / "s").exists()


def test_starts_and_stops_on_sigterm(cellad):
    assert (cellad.state_dir / "cellad.lock").read_text() == f"{cellad.pid}\n"
    assert cellad.stop(signal.SIGTERM) == 0
    assert "every app has stopped" in cellad.log()


def test_sigint_stops_too(cellad):
    assert cellad.stop(signal.SIGINT) == 0


def test_a_second_cellad_on_the_same_state_dir_is_refused(cellad):
    p = subprocess.run([CELLAD, "--state-dir", str(cellad.state_dir)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert f"another cellad (pid {cellad.pid}) holds {cellad.state_dir}" in p.stderr
    # The first one is untouched: still the lock's holder, running, answering.
    assert cellad.proc.poll() is None
    assert (cellad.state_dir / "cellad.lock").read_text() == f"{cellad.pid}\n"
    assert cellad.call("org.cella.Ping") == {"pid": cellad.pid}


def test_the_lock_goes_with_the_process(tmp_path):
    """A SIGKILLed cellad leaves its lock file, not its lock: the next one starts."""
    require_cellad()
    state = tmp_path / "state"
    with running_cellad(state) as d:
        d.stop(signal.SIGKILL)
    with running_cellad(state) as d2:
        assert (state / "cellad.lock").read_text() == f"{d2.pid}\n"
        assert d2.stop() == 0


def test_a_state_dir_others_can_write_is_refused(tmp_path):
    require_cellad()
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    os.chmod(state, 0o777)
    d = Cellad(state)
    try:
        with pytest.raises(Exception) as e:
            d.start()
        assert getattr(e.value, "code", None) == 1, d.log()
        assert str(state) in d.log()
        assert not (state / "cellad.lock").exists()
    finally:
        d.close()


def _procs(cgroup):
    """The pids in cgroup's cgroup.procs, or None if the cgroup is gone."""
    try:
        return {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
    except FileNotFoundError:
        return None


def _cgroups(pid):
    """{controllers: path} of /proc/PID/cgroup."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrl, path = line.split(":", 2)
        out[ctrl] = path
    return out


@pytest.mark.parametrize("mode", ["auto", "v1"])
def test_cgroup_layout(tmp_path, mode):
    """The daemon in a supervisor/ leaf in every hierarchy cella uses; nothing of it
    left after an orderly stop. (Each bare daemon has a base "cellad-<tag>" of its
    state directory made beside the shell's cgroup.)"""
    require_cellad()
    before = _cgroups(os.getpid())
    with running_cellad(tmp_path / "state", "--cgroup-mode", mode) as d:
        cg = _cgroups(d.pid)
        used = [c for c in ("memory", "pids", "cpu", "cpu,cpuacct") if c in cg]
        if mode == "auto" and "" in cg and Path("/sys/fs/cgroup/unified").is_dir():
            used.append("")
        assert used, cg
        dirs = {}
        for c in used:
            assert cg[c].endswith("/supervisor"), (c, cg)
            mount = "unified" if c == "" else c
            dirs[c] = Path(f"/sys/fs/cgroup/{mount}{cg[c]}")
            assert str(d.pid) in (dirs[c] / "cgroup.procs").read_text().split()
        if mode == "v1":
            assert cg[""] == before[""], "v1 mode leaves the cgroup2 hierarchy alone"
        assert d.stop() == 0
    for c, leaf in dirs.items():
        # Gone, or kept by another daemon that shares the base (which may be going
        # at this very moment).
        procs = _procs(leaf)
        assert procs is None or procs, leaf
        assert not list((leaf.parent / "cella").glob(f"*@{d.pid}")), leaf
    assert _cgroups(os.getpid()) == before


# ---- the systemd units ----

UNITS = Path(CELLAD).resolve().parents[2] / "systemd"  # the build's systemd/


def _verify(folder, *units):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *units], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def test_units_pass_systemd_analyze_verify(tmp_path):
    """cellad.service and cellad.socket as ninja builds them, ExecStart pointed at the
    built cellad (the installed path does not exist here): no error, no warning (an
    unknown key is only a warning, so the output must be empty too)."""
    require_cellad()
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    service = (UNITS / "cellad.service").read_text()
    assert "ExecStart=" in service and "@bindir@" not in service
    (tmp_path / "cellad.service").write_text(
        re.sub(r"^ExecStart=.*$", f"ExecStart={CELLAD}", service, flags=re.M))
    shutil.copy(UNITS / "cellad.socket", tmp_path / "cellad.socket")
    for needed in ("Type=notify", "Delegate=yes", "KillMode=mixed", "NotifyAccess=main",
                   "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec="):
        assert needed in service, needed
    socket_unit = (tmp_path / "cellad.socket").read_text()
    assert "ListenStream=/var/lib/cella/cellad.sock" in socket_unit
    assert "SocketMode=0666" in socket_unit
    p = _verify(tmp_path, "./cellad.service", "./cellad.socket")
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), p.stdout + p.stderr

    # The check can fail: a misspelt key is reported.
    (tmp_path / "cellad.service").write_text(
        (tmp_path / "cellad.service").read_text().replace("KillMode=", "KilMode="))
    p = _verify(tmp_path, "./cellad.service")
    assert "KilMode" in p.stdout + p.stderr


# ---- apps: autostart, the orderly stop, the apps' cgroups ----

SERVICE = """\
trap 'echo "svc: stopping"; exit 0' TERM
echo "svc: up"
sleep 600 & wait
"""
APP = """\
trap 'echo "app: stopping"; exit 0' TERM
echo "app: up"
sleep 600 & wait
"""


def _app(folder, app_id, script, **manifest):
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)
    m = {"id": app_id, "runtime": "native", "entry": "main.sh", **manifest}
    (folder / "manifest.json").write_text(json.dumps(m))
    (folder / "main.sh").write_text("#!/bin/sh\n" + script)
    os.chmod(folder / "main.sh", 0o755)
    return folder


def _src_dir(tmp_path):
    """tmp_path/src, made, for the app folders a test installs; tmp_path and src
    mode 0755 (pytest makes tmp_path 0700)."""
    src = tmp_path / "src"
    src.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(src, 0o755)
    return src


def _installed(tmp_path):
    """state with: org.test.svc (a service, restart on-failure), org.test.app (an app
    depending on it, restart always), org.test.idle (no restart policy: not started)."""
    state = tmp_path / "state"
    src = _src_dir(tmp_path)
    install_app(state, _app(src / "svc", "org.test.svc", SERVICE, kind="service",
                            restart="on-failure"))
    install_app(state, _app(src / "app", "org.test.app", APP, depends=["org.test.svc"],
                            restart="always"))
    install_app(state, _app(src / "idle", "org.test.idle", APP))
    return state


def test_autostart_then_sigterm_stops_apps_first_services_last(tmp_path):
    require_cellad()
    state = _installed(tmp_path)
    with running_cellad(state) as d:
        apps = ps(state)
        assert set(apps) == {"org.test.svc", "org.test.app"}, apps
        assert all(a["running"] for a in apps.values()), apps
        pids = [a["pid"] for a in apps.values()]
        assert all(pid_alive(p) for p in pids)
        assert d.stop(signal.SIGTERM) == 0
        log = d.log()
    assert not any(pid_alive(p) for p in pids)
    assert log.index("org.test.app: exited") < log.index("org.test.svc: exited"), log
    # Each app's own log says it was asked to stop (SIGTERM, not a kill).
    assert "app: stopping" in (state / "logs" / "org.test.app.log").read_text()
    assert "svc: stopping" in (state / "logs" / "org.test.svc.log").read_text()


def test_no_autostart(tmp_path):
    require_cellad()
    state = _installed(tmp_path)
    with running_cellad(state, "--no-autostart") as d:
        assert ps(state) == {}
        assert d.stop() == 0


def test_an_app_whose_dependency_is_not_installed_is_not_started(tmp_path):
    require_cellad()
    state = tmp_path / "state"
    src = _src_dir(tmp_path)
    install_app(state, _app(src / "app", "org.test.app", APP, depends=["org.test.gone"],
                            restart="always"))
    with running_cellad(state) as d:
        assert ps(state) == {}
        assert "org.test.app: not started: it depends on org.test.gone, which is not " \
               "installed" in d.log()
        assert d.stop() == 0


def _owner_tag(state):
    """The owner tag of cellad's app leaves: its state directory's tag, cellad.tag
    (src/daemon/cgroup.c, docs/daemon.md "Cgroups", "Restart and adoption")."""
    from daemon_util import state_tag
    return state_tag(state)


@pytest.mark.parametrize("mode", ["auto", "v1"])
def test_apps_cgroups_are_beside_the_daemons_leaf(tmp_path, mode):
    """Each app's leaf is in <B>/cella/, <B>/supervisor holds the daemon and no app;
    on a hybrid host the cgroup2 hierarchy too (auto), not with --cgroup-mode v1."""
    require_cellad()
    state = _installed(tmp_path)
    hybrid = mode == "auto" and Path("/sys/fs/cgroup/unified/cgroup.controllers").exists()
    with running_cellad(state, "--cgroup-mode", mode) as d:
        own = _cgroups(d.pid)
        # Named after the state directory, not cellad's pid: its apps outlive a
        # crash of cellad (docs/daemon.md, "Restart and adoption").
        tag = _owner_tag(state)
        for app in ps(state).values():
            cg = _cgroups(app["pid"])
            # The leaf inspect reports: <id>@<tag> for a cold start, or for a start
            # through the warm pool (--warm's default) on pure v1 (the leaf renamed);
            # warm-<cellad pid>-<n>@<tag> through the pool where cgroup2 is used
            # (no rename there: docs/daemon.md, "The warm pool").
            paths = d.call("org.cella.Inspect", {"app": app["id"]})["cgroup_paths"]
            names = {os.path.basename(p) for p in paths.values()}
            assert len(names) == 1, paths
            leaf = names.pop()
            assert re.fullmatch(rf"({re.escape(app['id'])}|warm-{d.pid}-[0-9]+)@{tag}",
                                leaf), leaf
            if mode == "v1":
                # No cgroup2 used: every leaf, warm or not, has the app's name.
                assert leaf == f"{app['id']}@{tag}", leaf
            for ctrl in ("memory", "pids") + (("",) if hybrid else ()):
                base = own[ctrl][: -len("/supervisor")]
                assert cg[ctrl].startswith(f"{base}/cella/{leaf}"), (ctrl, cg, own, leaf)
        for ctrl in ("memory", "pids"):
            procs = Path(f"/sys/fs/cgroup/{ctrl}{own[ctrl]}/cgroup.procs").read_text().split()
            assert str(d.pid) in procs, procs
            assert not {str(a["pid"]) for a in ps(state).values()} & set(procs), procs
        assert d.stop() == 0


# ---- journald ----

def test_journald_entries_carry_the_records_fields(tmp_path):
    """With stderr the journal ($JOURNAL_STREAM names it), the kernel's messages and
    each lifecycle record go to journald as entries with CELLA_* fields. No journald
    here: fake_journald.py binds the journal's socket in a mount namespace of its own
    and collects what cellad sends."""
    require_cellad()
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    state = tmp_path / "state"
    src = _src_dir(tmp_path)
    install_app(state, _app(src / "svc", "org.test.svc", SERVICE, kind="service",
                            restart="on-failure"))
    install_app(state, _app(src / "once", "org.test.once", "echo once\nexit 0\n",
                            restart="on-failure"))
    p = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                        str(Path(__file__).parent / "fake_journald.py"), CELLAD, str(state),
                        "org.test.once exited", "org.test.svc started"],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    out, code, err = p.stdout.splitlines()[-3:]
    entries = json.loads(out)
    assert int(code) == 0, json.loads(err)
    assert json.loads(err) == "", "nothing on stderr when it is the journal"

    def find(**kw):
        return [e for e in entries if all(e.get(k) == v for k, v in kw.items())]

    assert all(e.get("SYSLOG_IDENTIFIER") == "cellad" for e in entries), entries
    started = find(CELLA_APP="org.test.once", CELLA_EVENT="started")
    assert len(started) == 1, entries
    assert int(started[0]["CELLA_PID"]) > 1 and started[0]["PRIORITY"] == "6"
    assert started[0]["MESSAGE"].startswith("org.test.once: started")
    exited = find(CELLA_APP="org.test.once", CELLA_EVENT="exited")
    assert len(exited) == 1 and exited[0]["CELLA_EXIT_STATUS"] == "0", entries
    assert exited[0]["CELLA_PID"] == started[0]["CELLA_PID"]
    assert exited[0]["CELLA_HOW"] == "exited" and exited[0]["CELLA_OOM_KILLED"] == "false"
    # The service stopped by the SIGTERM: its exit is there too, after the start.
    assert find(CELLA_APP="org.test.svc", CELLA_EVENT="exited"), entries
    # The kernel's own messages, with their priority and no "cella: " prefix.
    ready = [e for e in entries if e["MESSAGE"].startswith("ready: ")]
    assert len(ready) == 1 and ready[0]["PRIORITY"] == "6" and "CELLA_EVENT" not in ready[0]
    assert any(e["MESSAGE"] == "every app has stopped; exiting" for e in entries)


# ---- sd_notify ----

class NotifySocket:
    """$NOTIFY_SOCKET as systemd makes it for a Type=notify service: a datagram socket
    whose messages are "KEY=VALUE" lines (sd_notify(3))."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def wait_for(self, pred, timeout=60):
        """Reads messages until pred(message) holds for one; returns it."""
        deadline = time.monotonic() + timeout
        for m in self.messages:
            if pred(m):
                return m
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such notify message in {self.messages}")
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                m = self.sock.recv(65536).decode()
                self.messages.append(m)
                if pred(m):
                    return m

    def close(self):
        self.sock.close()


def test_sd_notify_ready_status_watchdog_stopping(tmp_path):
    require_cellad()
    state = _installed(tmp_path)
    n = NotifySocket(tmp_path / "notify")
    env = dict(os.environ, NOTIFY_SOCKET=n.path, WATCHDOG_USEC="100000")
    d = Cellad(state, env=env)
    try:
        d.start()
        ready = n.wait_for(lambda m: "READY=1" in m)
        # The STATUS= before READY=1 counts the apps started by then.
        status = [m for m in n.messages if m.startswith("STATUS=")]
        # The memory manager's triggers on the 2 s fallback window are said after the
        # counts (docs/daemon.md; on this host root lacks CAP_SYS_RESOURCE), the same
        # as `cella inspect` says.
        degraded = d.call("org.cella.Inspect", {"app": "org.test.svc"})[
            "memory_manager"].get("degraded", False)
        suffix = "; memory manager degraded (2 s PSI windows)" if degraded else ""
        assert status and status[-1] == "STATUS=2 app(s): 1 service, 1 background" + suffix, \
            n.messages
        assert n.messages.index(status[-1]) < n.messages.index(ready)
        # WATCHDOG=1 at half of WATCHDOG_USEC: two in a row come.
        n.wait_for(lambda m: m == "WATCHDOG=1")
        n.wait_for(lambda m: m == "WATCHDOG=1" and n.messages.count("WATCHDOG=1") >= 2)
        assert d.stop() == 0
        n.wait_for(lambda m: m.startswith("STOPPING=1"))
        # Each app's exit changed the counts.
        last = n.wait_for(lambda m: m.startswith("STATUS=2 app(s): 2 ") and "running" not in m)
        assert last == n.messages[-1], n.messages
    finally:
        d.close()
        n.close()


# ---- the control socket ----

def test_ping_and_version(cellad):
    assert (cellad.state_dir / "cellad.sock").is_socket()
    assert stat.S_IMODE(os.stat(cellad.state_dir / "cellad.sock").st_mode) == 0o666
    assert cellad.call("org.cella.Ping") == {"pid": cellad.pid}
    v = cellad.call("org.cella.Version")
    assert v["api"] == 2 and v["pid"] == cellad.pid and v["state_dir"] == str(cellad.state_dir)
    assert re.fullmatch(r"\d+\.\d+\.\d+", v["version"]), v
    with pytest.raises(ControlError) as e:
        cellad.call("org.cella.NoSuchMethod")
    assert e.value.error == "org.cella.MethodNotFound"
    # The kernel's own socket too: cellad is a kernel `cella ps` sees.
    assert (cellad.state_dir / "run" / f"{cellad.pid}.sock").is_socket()


def test_ready_comes_after_the_socket_answers(tmp_path):
    """At READY the socket exists and answers at the first try, every time."""
    require_cellad()
    for i in range(5):
        with running_cellad(tmp_path / f"state{i}") as d:
            assert call(d.socket, "org.cella.Ping")["pid"] == d.pid
            assert d.stop() == 0
        assert not (tmp_path / f"state{i}" / "cellad.sock").exists()


def test_socket_option(tmp_path):
    require_cellad()
    sock = tmp_path / "elsewhere.sock"
    with running_cellad(tmp_path / "state", "--socket", sock) as d:
        assert call(sock, "org.cella.Ping")["pid"] == d.pid
        assert not (tmp_path / "state" / "cellad.sock").exists()
        assert d.stop() == 0


def test_shutdown_stops_the_apps_and_exits_0(tmp_path):
    require_cellad()
    state = _installed(tmp_path)
    with running_cellad(state) as d:
        pids = [a["pid"] for a in ps(state).values()]
        assert len(pids) == 2
        assert d.call("org.cella.Shutdown") == {}
        assert d.proc.wait(timeout=60) == 0
        log = d.log()
    assert not any(pid_alive(p) for p in pids)
    assert "org.cella.Shutdown: stopping every app" in log
    assert log.index("org.test.app: exited") < log.index("org.test.svc: exited"), log


def test_socket_activation(tmp_path):
    """A listening socket passed as systemd does (fd 3, LISTEN_FDS, LISTEN_PID):
    cellad serves on it and makes no socket of its own."""
    require_cellad()
    path = tmp_path / "activated.sock"
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(str(path))
    lsock.listen(16)
    # A client already waiting in the backlog before cellad runs is served.
    early = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    early.connect(str(path))
    early.sendall(b'{"method":"org.cella.Ping","parameters":{}}\n')
    d = Cellad(tmp_path / "state", listen_fd=lsock.fileno())
    try:
        d.start()
        lsock.close()
        early.settimeout(30)
        assert json.loads(early.makefile().readline()) == {"parameters": {"pid": d.pid}}
        assert call(path, "org.cella.Ping")["pid"] == d.pid
        assert not (tmp_path / "state" / "cellad.sock").exists()
        assert d.stop() == 0
        # systemd's socket: not cellad's to remove.
        assert path.is_socket()
    finally:
        early.close()
        d.close()


def test_socket_activation_refuses_a_fd_that_is_not_a_listening_socket(tmp_path):
    require_cellad()
    with open(tmp_path / "file", "w") as f:
        d = Cellad(tmp_path / "state", listen_fd=f.fileno())
        try:
            with pytest.raises(DaemonError) as e:
                d.start()
            assert e.value.code == 1
            assert "is not a listening Unix stream socket" in e.value.log
        finally:
            d.close()


@pytest.fixture
def unprivileged_user():
    """A system user of its own, removed at the end: (uid, gid)."""
    with system_user("cella-test-daemon") as pw:
        yield pw.pw_uid, pw.pw_gid


def test_shutdown_is_roots_only(unprivileged_user):
    require_cellad()
    uid, gid = unprivileged_user
    # A folder others may traverse (pytest's tmp_path is in root's 0700 folder).
    with contextlib.ExitStack() as stack:
        top = stack.enter_context(traversable_tmpdir("cellad-access-"))
        d = stack.enter_context(running_cellad(top / "state"))
        # The state directory is 0711: a user can reach the socket, not list the dir.
        assert call_as(uid, gid, d.socket, "org.cella.Ping") == {"parameters": {"pid": d.pid}}
        r = call_as(uid, gid, d.socket, "org.cella.Shutdown")
        assert r["error"] == "org.cella.PermissionDenied", r
        assert d.proc.poll() is None
        assert d.call("org.cella.Ping")["pid"] == d.pid
        assert d.stop() == 0


def test_sighup_reexecutes_in_place(tmp_path):
    """SIGHUP: the cellad binary again, same pid (what systemd's MAINPID and the lock
    need), RELOADING=1 then READY=1 again; the lock never let go."""
    require_cellad()
    n = NotifySocket(tmp_path / "notify")
    d = Cellad(tmp_path / "state", env=dict(os.environ, NOTIFY_SOCKET=n.path))
    try:
        d.start()
        n.wait_for(lambda m: m == "READY=1")
        first = len(n.messages)
        exe = os.readlink(f"/proc/{d.pid}/exe")
        sock_ino = os.stat(d.socket).st_ino
        with open(f"/proc/{d.pid}/stat") as f:
            start_time = f.read().rsplit(")", 1)[1].split()[19]
        d.send(signal.SIGHUP)
        n.wait_for(lambda m: m.startswith("RELOADING=1\nMONOTONIC_USEC="))
        n.wait_for(lambda m: m == "READY=1" and n.messages[first:].count("READY=1") >= 1)
        # The same process (pid and start time), a new image: it answers.
        with open(f"/proc/{d.pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[19] == start_time
        assert os.readlink(f"/proc/{d.pid}/exe") == exe
        assert d.call("org.cella.Ping")["pid"] == d.pid
        assert (d.state_dir / "cellad.lock").read_text() == f"{d.pid}\n"
        p = subprocess.run([CELLAD, "--state-dir", str(d.state_dir)], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 3 and f"another cellad (pid {d.pid})" in p.stderr
        # The new image runs from the same cgroup leaf, not one below it.
        assert re.search(r"/cellad-r[0-9a-f]{16}/supervisor$", _cgroups(d.pid)["pids"])
        assert "SIGHUP: re-executing" in d.log()
        # The socket was handed over, not bound again: the same file, never gone.
        assert os.stat(d.socket).st_ino == sock_ino
        assert d.stop() == 0
        assert not d.socket.exists()
    finally:
        d.close()
        n.close()


def test_read_users_open_the_read_methods(unprivileged_user):
    """Version is a read method: refused to a user, allowed once --read-users names
    them (or a group of theirs); Shutdown stays root's."""
    require_cellad()
    uid, gid = unprivileged_user
    with contextlib.ExitStack() as stack:
        top = stack.enter_context(traversable_tmpdir("cellad-access-"))
        d = stack.enter_context(running_cellad(top / "state"))
        r = call_as(uid, gid, d.socket, "org.cella.Version")
        assert r["error"] == "org.cella.PermissionDenied", r
        assert d.stop() == 0
        d = stack.enter_context(running_cellad(top / "state", "--read-users",
                                               f"root,{pwd.getpwuid(uid).pw_name}"))
        assert call_as(uid, gid, d.socket, "org.cella.Version")["parameters"]["pid"] == d.pid
        assert call_as(uid, gid, d.socket, "org.cella.Shutdown")["error"] == \
            "org.cella.PermissionDenied"
        assert d.stop() == 0
        d = stack.enter_context(running_cellad(top / "state", "--read-groups", str(gid)))
        assert call_as(uid, gid, d.socket, "org.cella.Version")["parameters"]["pid"] == d.pid
        assert d.stop() == 0


def test_read_users_names_must_exist(tmp_path):
    require_cellad()
    d = Cellad(tmp_path / "state", "--read-users", "no-such-user-cella")
    try:
        with pytest.raises(DaemonError) as e:
            d.start()
        assert e.value.code == 1
        assert "--read-users: no such user: 'no-such-user-cella'" in e.value.log
    finally:
        d.close()
    p = subprocess.run([CELLAD, "--read-groups", "a,,b"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "--read-groups" in p.stderr


@pytest.mark.parametrize("plant", ["symlink", "other-owner", "group-writable"])
def test_a_planted_lock_is_refused(tmp_path, plant):
    """cellad.lock is opened O_NOFOLLOW and must be root's, not writable by others: a
    lock someone else holds or swaps could keep the daemon from starting or let two
    run on one state directory."""
    require_cellad()
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    target = tmp_path / "elsewhere"
    lock = state / "cellad.lock"
    if plant == "symlink":
        lock.symlink_to(target)
    else:
        lock.write_text("")
        if plant == "other-owner":
            os.chown(lock, 65534, 65534)
        else:
            os.chmod(lock, 0o664)
    d = Cellad(state)
    try:
        with pytest.raises(DaemonError) as e:
            d.start()
        assert e.value.code == 1, e.value.log
        assert str(state) in e.value.log
    finally:
        d.close()
    assert not target.exists()


def test_sighup_keeps_the_socket_systemd_passed(tmp_path):
    """Over the in-place re-exec, systemd's socket stays open at fd 3 (LISTEN_FDS and
    LISTEN_PID still hold: same pid) and the new image serves on it."""
    require_cellad()
    path = tmp_path / "activated.sock"
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(str(path))
    lsock.listen(16)
    n = NotifySocket(tmp_path / "notify")
    d = Cellad(tmp_path / "state", listen_fd=lsock.fileno(),
               env=dict(os.environ, NOTIFY_SOCKET=n.path))
    try:
        d.start()
        lsock.close()
        n.wait_for(lambda m: m == "READY=1")
        d.send(signal.SIGHUP)
        n.wait_for(lambda m: m == "READY=1" and n.messages.count("READY=1") >= 2)
        assert call(path, "org.cella.Ping")["pid"] == d.pid
        assert not (tmp_path / "state" / "cellad.sock").exists()
        assert d.stop() == 0
    finally:
        d.close()
        n.close()


def test_lock_fd_must_be_the_lock(tmp_path):
    """--lock-fd (what a re-exec hands over) is taken only if it is this state
    directory's cellad.lock: another open file is refused."""
    require_cellad()
    other = open(tmp_path / "other", "w")
    try:
        d = Cellad(tmp_path / "state", "--lock-fd", str(other.fileno()),
                   pass_fds=(other.fileno(),))
        try:
            with pytest.raises(DaemonError) as e:
                d.start()
            assert e.value.code == 1
            assert f"--lock-fd {other.fileno()} is not {tmp_path / 'state'}/cellad.lock" \
                in e.value.log
        finally:
            d.close()
    finally:
        other.close()


def test_a_thousand_clients_at_once(tmp_path):
    """cellad raises its soft RLIMIT_NOFILE to the hard one before its control server
    sizes its bound on clients: a thousand clients connected at once (started from a
    shell whose soft limit is 1024, as a login's) are all answered."""
    require_cellad()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"the hard RLIMIT_NOFILE here is {hard}: too low for 1,000 clients")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2200), hard))

    def login_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    clients = []
    try:
        with running_cellad(tmp_path / "state", preexec_fn=login_limit) as d:
            limits = Path(f"/proc/{d.pid}/limits").read_text()
            line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
            assert int(line.split()[3]) > 1024, line
            req = b'{"method":"org.cella.Ping","parameters":{}}\n'
            for _ in range(1000):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(d.socket))
                clients.append(s)
            for s in clients:
                s.sendall(req)
            for s in clients:
                s.settimeout(60)
                assert json.loads(s.makefile().readline()) == {"parameters": {"pid": d.pid}}
            assert d.stop() == 0
    finally:
        for s in clients:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_after_a_sigkill_the_next_cellad_leaves_no_app_unsupervised(tmp_path):
    """cellad SIGKILLed with apps running; the next one on the state directory: every
    installed app that should run runs under it, and no cgroup of the old one holds a
    process no kernel lists (swept, or adopted where a keeper held the app)."""
    require_cellad()
    state = _installed(tmp_path)
    with running_cellad(state) as d:
        old = d.pid
        base = Path("/sys/fs/cgroup/pids" + _cgroups(d.pid)["pids"]).parent
        assert set(ps(state)) == {"org.test.svc", "org.test.app"}
        d.stop(signal.SIGKILL)
    with running_cellad(state) as d2:
        apps = ps(state)
        assert set(apps) == {"org.test.svc", "org.test.app"}
        assert all(a["running"] for a in apps.values()), apps
        listed = {a["pid"] for a in apps.values()}
        for leaf in (base / "cella").glob("org.test.*@*"):
            if not leaf.name.endswith((f"@{old}", f"@{d2.pid}")):
                continue
            # Gone by now is fine: another test's cellad sharing the base sweeps too.
            procs = _procs(leaf)
            assert procs is None or procs & listed, (leaf, procs, apps)  # swept if empty
        assert d2.stop() == 0


def test_listen_fd_must_be_a_socket_bound_for_the_daemons_path(tmp_path):
    """--listen-fd (the socket a re-exec hands over) is taken only if it listens at
    this daemon's socket path."""
    require_cellad()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(tmp_path / "other.sock"))
    other.listen(1)
    try:
        d = Cellad(tmp_path / "state", "--listen-fd", str(other.fileno()),
                   pass_fds=(other.fileno(),))
        try:
            with pytest.raises(DaemonError) as e:
                d.start()
            assert e.value.code == 1
            assert (f"--listen-fd {other.fileno()} is not a listening socket bound for "
                    f"{tmp_path / 'state'}/cellad.sock") in e.value.log
        finally:
            d.close()
    finally:
        other.close()
