"""The app's life is tied to cella's: a killed cella takes its apps along, and the
next cella start sweeps what the dead one left."""
import os
import signal
import subprocess
import time

import pytest

from conftest import CELLA, example, pid_alive, run_cella, start_cella, wait_pids_exit


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.twin
def test_sigkill_of_cella_kills_the_app_and_next_start_sweeps(state, make_app):
    app = make_app("org.test.orphan", "echo up; exec sleep 60\n")
    p, started, status = start_cella(app, state)
    assert p.stdout.readline() == "up\n"
    init = started["pid"]
    apps = children_of(init)
    assert len(apps) == 1 and pid_alive(apps[0])
    mnt_ns = os.readlink(f"/proc/{apps[0]}/ns/mnt")

    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    assert not wait_pids_exit([init, apps[0]], 5), "the sandbox outlived cella"
    assert not pid_alive(init) and not pid_alive(apps[0]), "the sandbox outlived cella"
    # Its mount namespace is gone with it: no process on the host is in it.
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            assert os.readlink(f"/proc/{pid}/ns/mnt") != mnt_ns
        except (FileNotFoundError, PermissionError):
            pass

    left = [path for path in started["cgroups"].values() if os.path.exists(path)]
    assert left, "the killed cella should have left its cgroup(s) for the sweep to find"
    r = run_cella(example("hello"), state_dir=state)
    assert r.code == 0, r.err
    for path in started["cgroups"].values():
        assert not os.path.exists(path), f"{path} was not swept"
    status.close()


@pytest.mark.twin
def test_sweep_leaves_live_owners_alone(state, make_app):
    # The app lives until the test answers its read, not for a guessed time.
    app = make_app("org.test.live", "echo up; read line; echo \"$line\"\n")
    p, started, status = start_cella(app, state, stdin=subprocess.PIPE)
    with status:
        assert p.stdout.readline() == "up\n"
        # Another cella starting now must not touch the running app's cgroups.
        assert run_cella(example("hello"), state_dir=state).code == 0
        for path in started["cgroups"].values():
            assert os.path.exists(path)
        out, _ = p.communicate("bye\n", timeout=20)
    assert p.returncode == 0
    assert out == "bye\n"


@pytest.mark.twin
def test_many_apps_at_once(state, make_app):
    apps = [make_app(f"org.test.many{i}", "sleep 0.5; echo done\n") for i in range(8)]
    procs = [subprocess.Popen([CELLA, "run", "--state-dir", str(state), str(a)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for a in apps]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and out == "done\n", err


@pytest.mark.twin
def test_kernel_setup_failure_ends_the_run(state, make_app):
    """The kernel's own setup (grants, audit log, control socket, broker, the app's
    install) runs while the sandbox takes its last steps (SandboxSpec.starting):
    when it fails, cella exits with its code at once, the app is never served nor
    reported started, and its sandbox is taken down (not waited for)."""
    app = make_app("org.test.never", "echo ran\n")
    first = run_cella(app, state_dir=state)
    assert first.code == 0 and first.out == "ran\n", first.err
    app = make_app("org.test.never", "exec sleep 60\n")
    (state / "grants.db").write_bytes(os.urandom(4096))
    t0 = time.monotonic()
    r = run_cella(app, state_dir=state, timeout=30)
    assert r.code == 242, r.err
    assert time.monotonic() - t0 < 20, "cella waited for the app it could not serve"
    assert "grants.db" in r.err
    assert r.out == ""
    assert not [s for s in r.status if s.get("event") == "started"]
