"""`cella boot DIR`: many apps under one kernel, in dependency order, with restart
policies, per-app logs, and a clean stop on Ctrl-C."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import CELLA, boot_cella, pid_alive


boot = boot_cella


def events(status, name, app=None):
    return [r for r in status if r.get("event") == name and (app is None or r.get("app") == app)]


SERVICE = "exec sleep 1000\n"


@pytest.mark.twin
def test_services_start_before_the_apps_that_depend_on_them(make_app, tmp_path, state):
    make_app("org.test.svc", SERVICE, kind="service")
    make_app("org.test.mid", SERVICE, kind="service", depends=["org.test.svc"])
    make_app("org.test.app", "echo app ran\n", kind="app", depends=["org.test.mid"])
    make_app("org.test.other", "echo other ran\n", kind="app")
    p, status = boot(tmp_path, state)
    assert p.returncode == 0, p.stderr
    started = [r["app"] for r in events(status, "started")]
    assert sorted(started) == ["org.test.app", "org.test.mid", "org.test.other", "org.test.svc"]
    assert started.index("org.test.svc") < started.index("org.test.mid") < started.index("org.test.app")
    # The services were stopped once the apps had exited, by SIGTERM, dependents first.
    exited = [r["app"] for r in events(status, "exited")]
    for svc in ("org.test.svc", "org.test.mid"):
        (rec,) = events(status, "exited", svc)
        assert rec["how"] == "killed" and rec["signal"] == signal.SIGTERM, rec
    assert exited.index("org.test.mid") < exited.index("org.test.svc")
    # Output went to the apps' logs, not to ours.
    assert "app ran" not in p.stdout
    assert (state / "logs" / "org.test.app.log").read_text() == "app ran\n"
    assert (state / "logs" / "org.test.other.log").read_text() == "other ran\n"


@pytest.mark.twin
def test_a_dependency_cycle_is_a_clear_error(make_app, tmp_path, state):
    make_app("org.test.a", SERVICE, kind="service", depends=["org.test.b"])
    make_app("org.test.b", SERVICE, kind="service", depends=["org.test.a"])
    p, status = boot(tmp_path, state)
    assert p.returncode == 241, p.stderr
    assert "cycle" in p.stderr and "org.test.a" in p.stderr and "org.test.b" in p.stderr
    assert events(status, "started") == []


@pytest.mark.twin
def test_a_missing_dependency_is_a_clear_error(make_app, tmp_path, state):
    make_app("org.test.a", "true\n", depends=["org.test.nowhere"])
    p, _ = boot(tmp_path, state)
    assert p.returncode == 241, p.stderr
    assert "org.test.a depends on org.test.nowhere" in p.stderr


@pytest.mark.twin
def test_a_bad_manifest_names_its_file(make_app, tmp_path, state):
    make_app("org.test.good", "true\n")
    bad = make_app("org.test.bad", "true\n")
    (bad / "manifest.json").write_text('{"id": "org.test.bad", "runtime": "native", "entry": 5}')
    p, _ = boot(tmp_path, state)
    assert p.returncode == 241, p.stderr
    assert f"{bad}/manifest.json" in p.stderr and "entry" in p.stderr


@pytest.mark.twin
def test_on_failure_restarts_until_the_app_succeeds(make_app, tmp_path, state):
    # /data survives restarts: the app fails twice, then succeeds.
    make_app("org.test.flaky", """\
        n=$(cat /data/n 2>/dev/null || echo 0)
        echo $((n + 1)) > /data/n
        echo "run $n"
        [ "$n" -ge 2 ]
        """, restart="on-failure")
    p, status = boot(tmp_path, state)
    assert p.returncode == 0, p.stderr
    runs = events(status, "exited", "org.test.flaky")
    assert [r["exit_code"] for r in runs] == [1, 1, 0]
    assert [r["restarts"] for r in events(status, "started", "org.test.flaky")] == [0, 1, 2]
    assert (state / "logs" / "org.test.flaky.log").read_text() == "run 0\nrun 1\nrun 2\n"


@pytest.mark.twin
def test_restart_no_leaves_a_failed_app_down_and_boot_says_so(make_app, tmp_path, state):
    make_app("org.test.fails", "exit 3\n", restart="no")
    p, status = boot(tmp_path, state)
    assert p.returncode == 1, p.stderr
    assert len(events(status, "exited", "org.test.fails")) == 1
    assert "org.test.fails" in p.stderr and "3" in p.stderr


@pytest.mark.twin
def test_a_crash_loop_is_given_up(make_app, tmp_path, state):
    make_app("org.test.crash", "exit 1\n", restart="always")
    t0 = time.monotonic()
    p, status = boot(tmp_path, state)
    assert p.returncode == 1, p.stderr
    assert "giving up" in p.stderr
    assert len(events(status, "exited", "org.test.crash")) == 6  # the first run + 5 restarts
    assert time.monotonic() - t0 < 20


@pytest.mark.twin
def test_ctrl_c_stops_every_app_cleanly(make_app, tmp_path, state):
    make_app("org.test.svc", SERVICE, kind="service")
    make_app("org.test.app", SERVICE, kind="app", depends=["org.test.svc"])
    rfd, wfd = os.pipe()
    p = subprocess.Popen([CELLA, "boot", "--state-dir", str(state), "--json-status", str(wfd),
                          str(tmp_path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, pass_fds=(wfd,))
    os.close(wfd)
    status_file = os.fdopen(rfd)
    started = [json.loads(status_file.readline()) for _ in range(2)]
    pids = [r["pid"] for r in started]
    assert all(pid_alive(pid) for pid in pids)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    rest = [json.loads(line) for line in status_file.read().splitlines() if line.strip()]
    status_file.close()
    assert p.returncode == 0, err
    assert not any(pid_alive(pid) for pid in pids)
    assert [r["app"] for r in events(rest, "exited")] == ["org.test.app", "org.test.svc"]


@pytest.mark.twin
def test_a_boot_of_services_alone_runs_until_stopped(make_app, tmp_path, state):
    make_app("org.test.svc", SERVICE, kind="service")
    rfd, wfd = os.pipe()
    p = subprocess.Popen([CELLA, "boot", "--state-dir", str(state), "--json-status", str(wfd),
                          str(tmp_path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, pass_fds=(wfd,))
    os.close(wfd)
    with os.fdopen(rfd) as status_file:
        # The event, not a sleep: the service has started ...
        first = json.loads(status_file.readline())
        assert first["event"] == "started" and first["app"] == "org.test.svc", first
        # ... and with nothing but a service left to run, the kernel still answers
        # `cella ps` (a round trip through its event loop, after the start) and
        # still runs it: a boot of services alone does not end by itself.
        ps = subprocess.run([CELLA, "ps", "--state-dir", str(state), "--json"],
                            capture_output=True, text=True, timeout=30)
        assert ps.returncode == 0, ps.stderr
        assert [(a["id"], a["state"]) for a in json.loads(ps.stdout)] == \
            [("org.test.svc", "service")], ps.stdout
        assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        rest = [json.loads(line) for line in status_file.read().splitlines() if line.strip()]
    assert p.returncode == 0
    (rec,) = events(rest, "exited", "org.test.svc")
    assert rec["how"] == "killed" and rec["signal"] == signal.SIGTERM, rec
