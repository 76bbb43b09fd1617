"""cellad run bare (docs/daemon.md): its start, its lock, its signals, its socket,
its cgroup layout. Each test starts a real cellad on a fresh state directory and
waits for its READY line (daemon_util.py); nothing waits on a sleep."""
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import pid_alive
from daemon_util import (CELLAD, Cellad, cellad, install_app, ps, require_cellad,  # noqa: F401
                         running_cellad)


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
    # The first one is untouched: still the lock's holder, still running.
    assert cellad.proc.poll() is None
    assert (cellad.state_dir / "cellad.lock").read_text() == f"{cellad.pid}\n"


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
    left after an orderly stop."""
    require_cellad()
    before = _cgroups(os.getpid())
    with running_cellad(tmp_path / "state", "--cgroup-mode", mode) as d:
        cg = _cgroups(d.pid)
        used = [c for c in ("memory", "pids", "cpu", "cpu,cpuacct") if c in cg]
        if mode == "auto" and "" in cg and Path("/sys/fs/cgroup/unified").is_dir():
            used.append("")
        assert used, cg
        for c in used:
            assert cg[c].endswith("/supervisor"), (c, cg)
            base = cg[c][: -len("/supervisor")]
            mount = "unified" if c == "" else c
            assert Path(f"/sys/fs/cgroup/{mount}{base}").is_dir()
        assert d.stop() == 0
    for c in used:
        mount = "unified" if c == "" else c
        base = cg[c][: -len("/supervisor")]
        assert not Path(f"/sys/fs/cgroup/{mount}{base}/supervisor").exists()
        if base.endswith("/cellad"):
            assert not Path(f"/sys/fs/cgroup/{mount}{base}").exists()
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


def _installed(tmp_path):
    """state with: org.test.svc (a service, restart on-failure), org.test.app (an app
    depending on it, restart always), org.test.idle (no restart policy: not started)."""
    state = tmp_path / "state"
    src = tmp_path / "src"
    src.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(src, 0o755)
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
    src = tmp_path / "src"
    src.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(src, 0o755)
    install_app(state, _app(src / "app", "org.test.app", APP, depends=["org.test.gone"],
                            restart="always"))
    with running_cellad(state) as d:
        assert ps(state) == {}
        assert "org.test.app: not started: it depends on org.test.gone, which is not " \
               "installed" in d.log()
        assert d.stop() == 0


def test_apps_cgroups_are_beside_the_daemons_leaf(tmp_path):
    """Each app's leaf is in <B>/cella/, <B>/supervisor holds the daemon alone."""
    require_cellad()
    state = _installed(tmp_path)
    with running_cellad(state) as d:
        own = _cgroups(d.pid)
        for app in ps(state).values():
            cg = _cgroups(app["pid"])
            for ctrl in ("memory", "pids"):
                base = own[ctrl][: -len("/supervisor")]
                assert cg[ctrl].startswith(f"{base}/cella/{app['id']}@{d.pid}"), (ctrl, cg, own)
        for ctrl in ("memory", "pids"):
            procs = Path(f"/sys/fs/cgroup/{ctrl}{own[ctrl]}/cgroup.procs").read_text().split()
            assert procs == [str(d.pid)], procs
        assert d.stop() == 0
