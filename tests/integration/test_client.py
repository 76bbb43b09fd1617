"""cella run and cella boot through cellad (docs/cli.md "Through cellad", docs/api.md
"org.cella.Run"): with a cellad on the state directory they run there, with the
output, the messages and the exit codes of an embedded run; --embedded, the
kernel-only options and no cellad at all keep the kernel in the command."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest
from pathlib import Path

from conftest import CELLA, example, unmount_below
from daemon_util import (call, cella_group, ControlError, require_cellad, running_cellad,
                         system_user)


def runs_in(d):
    """How many runs cellad started (its log's "org.cella.Run: kernel N" lines)."""
    return d.log().count("org.cella.Run: kernel ")


def cella_run(state, *args, **kw):
    return subprocess.run([CELLA, "run", "--state-dir", str(state), *map(str, args)],
                          capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def daemon(tmp_path):
    require_cellad()
    with running_cellad(tmp_path / "state") as d:
        yield d


def test_output_args_and_exit_status_through_cellad(daemon, make_app, tmp_path):
    state = daemon.state_dir
    p = cella_run(state, example("hello"), "--", "extra")
    assert p.returncode == 0, p.stderr
    assert "hello from org.cella.example.hello (uid 1000, pid 2)" in p.stdout
    assert "arg 2: extra" in p.stdout
    assert runs_in(daemon) == 1, daemon.log()

    app = make_app("org.test.client.exit", "echo out; echo err >&2; cat; exit 42\n")
    data = tmp_path / "in.txt"
    data.write_text("from stdin\n")
    with open(data) as f:
        p = cella_run(state, app, stdin=f)
    assert p.returncode == 42, p.stderr
    assert p.stdout == "out\nfrom stdin\n" and p.stderr == "err\n"
    assert runs_in(daemon) == 2


def test_startup_errors_match_embedded(daemon, make_app):
    """The same code and the same words, with the daemon and without."""
    state = daemon.state_dir
    missing = make_app("org.test.client.missing", entry="nope")
    bad = make_app("org.test.client.bad", "true\n", limits={"memory": "64Q"})
    for app, code, words in ((missing, 127, "the entry /app/nope does not exist"),
                             (bad, 241, f"{bad}/manifest.json: limits.memory:")):
        via = cella_run(state, app)
        emb = cella_run(state, "--embedded", app)
        assert via.returncode == emb.returncode == code, (via.stderr, emb.stderr)
        assert words in via.stderr and words in emb.stderr, (via.stderr, emb.stderr)
    assert runs_in(daemon) == 2, "the --embedded runs did not go through cellad"
    p = cella_run(state, "/does/not/exist")
    assert p.returncode == 241 and "/does/not/exist: No such file" in p.stderr


def test_ctrl_c_is_forwarded_and_a_second_kills(daemon, make_app):
    app = make_app("org.test.client.int", "trap 'echo got-int; seen=1' INT\ntrap '' TERM\n"
                   "echo ready\nwhile :; do sleep 0.1; if [ -n \"$seen\" ]; then echo alive; "
                   "seen=; fi; done\n")
    p = subprocess.Popen([CELLA, "run", "--state-dir", str(daemon.state_dir), str(app)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGINT)
        assert p.stdout.readline() == "got-int\n", "the first SIGINT reaches the app"
        assert p.stdout.readline() == "alive\n"
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=20)
        assert p.returncode == 128 + signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
    assert runs_in(daemon) == 1


def test_sigterm_is_forwarded(daemon, make_app):
    app = make_app("org.test.client.term", "trap 'echo got-term; exit 7' TERM\necho ready\n"
                   "while :; do sleep 0.1; done\n")
    p = subprocess.Popen([CELLA, "run", "--state-dir", str(daemon.state_dir), str(app)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 7, err
    assert "got-term" in out


def test_a_client_killed_takes_its_run_with_it(daemon, make_app, tmp_path):
    """As an embedded run dies with its `cella run`: SIGKILL the client, the app goes."""
    app = make_app("org.test.client.orphan", "echo $$ ready\nwhile :; do sleep 0.1; done\n")
    p = subprocess.Popen([CELLA, "run", "--state-dir", str(daemon.state_dir), str(app)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().endswith("ready\n")
    p.kill()
    p.wait()
    # The kernel's exit closes nothing we hold; wait for the run to leave cella ps.
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ps = subprocess.run([CELLA, "ps", "--json", "--state-dir", str(daemon.state_dir)],
                            capture_output=True, text=True)
        if "org.test.client.orphan" not in ps.stdout:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the run outlived its client: {ps.stdout}")


def test_embedded_options_and_no_daemon_embed(daemon, make_app, tmp_path):
    app = make_app("org.test.client.emb", "exit 3\n")
    state = daemon.state_dir
    for extra in (["--embedded"], ["--cgroup-mode", "auto"]):
        p = cella_run(state, *extra, app)
        assert p.returncode == 3, (extra, p.stderr)
    assert runs_in(daemon) == 0, daemon.log()
    # --json-status goes through: the run's kernel writes the records on the fd.
    p = cella_run(state, "--json-status", "2", app)
    assert p.returncode == 3 and '"event":"exited"' in p.stderr, p.stderr
    assert runs_in(daemon) == 1, daemon.log()
    # No cellad for this state directory: embedded, as before cellad existed.
    p = cella_run(tmp_path / "other-state", app)
    assert p.returncode == 3, p.stderr


def test_boot_through_cellad(daemon, make_app, tmp_path):
    apps = tmp_path / "apps"
    apps.mkdir(mode=0o755)
    ok = make_app("org.test.client.boot.ok", "echo booted-ok\n")
    bad = make_app("org.test.client.boot.bad", "exit 5\n")
    os.rename(ok, apps / "ok")
    os.rename(bad, apps / "bad")
    p = subprocess.run([CELLA, "boot", "--state-dir", str(daemon.state_dir), str(apps)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert "org.test.client.boot.bad: exited with status 5" in p.stderr, p.stderr
    assert f"from {apps}" in p.stderr, "the folder is named by its path, not the fd"
    assert runs_in(daemon) == 1
    assert "booted-ok" in (daemon.state_dir / "logs" / "org.test.client.boot.ok.log").read_text()


def test_run_refuses_bad_requests(daemon, tmp_path):
    sock = daemon.state_dir / "cellad.sock"
    with pytest.raises(ControlError) as e:
        call(sock, "org.cella.Run", {}, more=True)
    assert e.value.error == "org.cella.InvalidParameter" and e.value.parameters["parameter"] == "fds"
    # An O_PATH fd proves nothing about the client's access to the folder.
    fds = [os.open(str(tmp_path), os.O_PATH), os.open("/dev/null", os.O_RDONLY),
           os.open("/dev/null", os.O_WRONLY), os.open("/dev/null", os.O_WRONLY)]
    try:
        with pytest.raises(ControlError) as e:
            call(sock, "org.cella.Run", {}, more=True, fds=fds)
        assert e.value.parameters["parameter"] == "folder"
    finally:
        for fd in fds:
            os.close(fd)
    with pytest.raises(ControlError) as e:
        call(sock, "org.cella.RunSignal", {"pid": 1, "signal": 2})
    assert e.value.error == "org.cella.NoSuchApp", "pid 1 is no run of this cellad"
    with pytest.raises(ControlError) as e:
        call(sock, "org.cella.RunSignal", {"pid": 1, "signal": 19})
    assert e.value.parameters["parameter"] == "signal"


def test_run_needs_manage_access(tmp_path, make_app):
    """org.cella.Run is a manage method: a real non-root user in group cella runs an
    app through cellad (no root of its own needed), one outside it is refused (242)."""
    require_cellad()
    # Below folders only root may change (/run: root's, 0755): a non-root caller's
    # folder must be (run-methods.c, check_path_stable()).
    top = Path(tempfile.mkdtemp(prefix="cella-client-", dir="/run"))
    os.chmod(top, 0o755)
    with cella_group() as cella_gid, system_user("cella-test-client") as pw:
        try:
            _run_as_manager_and_stranger(top, make_app, pw, cella_gid)
        finally:
            unmount_below(top)  # the app's /data stays mounted between runs
            shutil.rmtree(top, ignore_errors=True)


def _run_as_manager_and_stranger(top, make_app, pw, cella_gid):
    """As a member of group cella the run works; from /tmp, or outside the group, it
    is refused and nothing runs."""
    app = top / "app"
    shutil.copytree(make_app("org.test.client.user", "echo as-a-manager; exit 9\n"), app)
    subprocess.run(["chmod", "-R", "go-w,o+rX", str(top)], check=True)
    with running_cellad(top / "state") as d:
        def as_user(groups):
            def drop():
                os.setgroups(groups)
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
            return subprocess.run([CELLA, "run", "--state-dir", str(d.state_dir), str(app)],
                                  capture_output=True, text=True, preexec_fn=drop, cwd="/",
                                  timeout=60)
        p = as_user([cella_gid])
        assert p.returncode == 9 and p.stdout == "as-a-manager\n", p.stderr
        assert runs_in(d) == 1
        # In /tmp (sticky, writable by all) what the path names could be swapped
        # under the daemon by its caller: refused, nothing run.
        loose = Path(tempfile.mkdtemp(prefix="cella-client-loose-"))
        try:
            os.chmod(loose, 0o755)
            shutil.copytree(app, loose / "app")
            subprocess.run(["chmod", "-R", "go-w,o+rX", str(loose)], check=True)
            os.chown(loose / "app", pw.pw_uid, pw.pw_gid)

            def drop():
                os.setgroups([cella_gid])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
            p = subprocess.run([CELLA, "run", "--state-dir", str(d.state_dir),
                                str(loose / "app")], capture_output=True, text=True,
                               preexec_fn=drop, cwd="/", timeout=60)
            assert p.returncode == 1 and "/tmp, above the app folder" in p.stderr, p.stderr
            assert runs_in(d) == 1
        finally:
            shutil.rmtree(loose, ignore_errors=True)
        p = as_user([])
        assert p.returncode == 242, p.stderr
        assert "org.cella.PermissionDenied" in p.stderr and "group cella" in p.stderr
        assert runs_in(d) == 1


def test_a_daemon_stopped_mid_run_ends_its_runs_and_execs(make_app, tmp_path):
    """SIGTERM to cellad while a run and an exec are in flight: cellad exits 0 (no
    leak under ASan), the run's kernel and the command end with it, and both clients
    say that cellad went away (254) instead of hanging."""
    import json
    require_cellad()
    loop = make_app("org.test.client.loop", "echo ready\nwhile :; do sleep 0.1; done\n")
    svc = make_app("org.test.client.svc", "while :; do sleep 1; done\n", kind="service")
    with running_cellad(tmp_path / "state") as d:
        state = d.state_dir
        for args in (["install", svc], ["start", "org.test.client.svc"]):
            p = subprocess.run([CELLA, args[0], "--state-dir", str(state), *map(str, args[1:])],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr
        run = subprocess.Popen([CELLA, "run", "--state-dir", str(state), str(loop)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ex = subprocess.Popen([CELLA, "exec", "--state-dir", str(state), "org.test.client.svc",
                               "--", "sh", "-c", "echo ready; exec sleep 1000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert run.stdout.readline() == "ready\n"
            assert ex.stdout.readline() == "ready\n"
            assert d.stop() == 0, d.log()
            for p in (run, ex):
                out, err = p.communicate(timeout=60)
                assert p.returncode == 254 and "cellad went away" in err, (p.returncode, err)
        finally:
            for p in (run, ex):
                if p.poll() is None:
                    p.kill()


def test_a_reexec_ends_the_runs_in_flight(daemon, make_app):
    """SIGHUP re-executes cellad in place; the new image knows neither the runs in
    flight nor their clients, so they end first (the client says so, 254), and the
    next run goes through the new image."""
    import signal as sig
    import time
    loop = make_app("org.test.client.hup", "echo ready\nwhile :; do sleep 0.1; done\n")
    run = subprocess.Popen([CELLA, "run", "--state-dir", str(daemon.state_dir), str(loop)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline() == "ready\n"
        daemon.send(sig.SIGHUP)
        out, err = run.communicate(timeout=60)
        assert run.returncode == 254 and "cellad went away" in err, (run.returncode, err)
    finally:
        if run.poll() is None:
            run.kill()
    # The new image serves (its socket is bound again after the exec: wait for it).
    deadline = time.monotonic() + 30
    while True:
        try:
            call(daemon.state_dir / "cellad.sock", "org.cella.Ping")
            break
        except (OSError, ControlError):
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.05)
    p = cella_run(daemon.state_dir, make_app("org.test.client.after", "exit 5\n"))
    assert p.returncode == 5, p.stderr


def test_a_folder_cellad_sees_elsewhere_is_refused(daemon, make_app, tmp_path):
    """The run's kernel opens the folder by its path in cellad's mount namespace: a
    client in another one (here: a tmpfs over a folder that only the client sees, as
    systemd's PrivateTmp= gives cellad a /tmp of its own) is refused, not run with
    whatever that path names for cellad."""
    import shutil
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1)")
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o755)
    # What cellad sees at that path: an app of its own that must not run.
    decoy = make_app("org.test.client.decoy", "echo DECOY-RAN\n")
    shutil.copytree(decoy, hidden / "app")
    app = make_app("org.test.client.private", "echo private\n")
    script = (f"mount -t tmpfs -o mode=0755 none {hidden} && cp -a {app} {hidden}/app && "
              f"exec {CELLA} run --state-dir {daemon.state_dir} {hidden}/app")
    p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "in cellad's view of the file system" in p.stderr, p.stderr
    assert "DECOY-RAN" not in p.stdout and runs_in(daemon) == 0


def test_boot_through_cellad_stops_on_ctrl_c(daemon, make_app, tmp_path):
    """A boot of services alone runs until stopped: Ctrl-C reaches the boot's kernel
    under cellad, which stops them, and the boot exits 0, as an embedded one does."""
    apps = tmp_path / "svcs"
    apps.mkdir(mode=0o755)
    svc = make_app("org.test.client.boot.svc", "echo up\nwhile :; do sleep 0.1; done\n",
                   kind="service")
    os.rename(svc, apps / "svc")
    p = subprocess.Popen([CELLA, "boot", "--state-dir", str(daemon.state_dir), str(apps)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stderr:
            if "org.test.client.boot.svc: started" in line:
                break
        else:
            raise AssertionError("the service never started")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert "org.test.client.boot.svc" in err and runs_in(daemon) == 1
    finally:
        if p.poll() is None:
            p.kill()


def _audit(state):
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    import json
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_runs_are_bounded_per_user_and_in_all_and_audited(make_app):
    """cellad --max-runs-per-user 1 --max-runs 2: a real non-root member of group cella
    gets one run at a time (org.cella.LimitReached, naming the limit, for a second),
    root fills the rest, then everyone is refused; a run's end frees its place. The
    audit log names who started each run (uid, pid) and who asked for each call."""
    require_cellad()
    from daemon_util import call_as
    top = Path(tempfile.mkdtemp(prefix="cella-client-", dir="/run"))
    os.chmod(top, 0o755)
    app = top / "app"
    shutil.copytree(make_app("org.test.client.cap", "echo ready\nwhile :; do sleep 0.1; done\n"),
                    app)
    subprocess.run(["chmod", "-R", "go-w,o+rX", str(top)], check=True)
    procs = []
    try:
        with cella_group() as cella_gid, system_user("cella-test-cap") as pw, \
                running_cellad(top / "state", "--max-runs-per-user", "1", "--max-runs", "2") as d:
            def run(user, wait=True):
                def drop():
                    os.setgroups([cella_gid])
                    os.setgid(pw.pw_gid)
                    os.setuid(pw.pw_uid)
                p = subprocess.Popen([CELLA, "run", "--state-dir", str(d.state_dir), str(app)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=drop if user else None, cwd="/")
                procs.append(p)
                if wait:
                    assert p.stdout.readline() == "ready\n", p.stderr.read()
                return p

            mine = run(True)
            p = run(True, wait=False)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 1, (p.returncode, err)
            assert "org.cella.LimitReached" in err and "--max-runs-per-user 1" in err, err
            run(False)  # root: not bounded per user; two runs now
            p = run(False, wait=False)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 1 and "--max-runs 2" in err, (p.returncode, err)
            # A run's end frees its place.
            mine.send_signal(signal.SIGTERM)
            mine.communicate(timeout=60)
            again = run(True)
            again.send_signal(signal.SIGTERM)
            again.communicate(timeout=60)

            # A start and a stop by the same manager, through the API.
            for method in ("org.cella.Stop", "org.cella.Start"):
                call_as(pw.pw_uid, cella_gid, d.socket, method, {"app": "org.test.nope"})
            records = _audit(d.state_dir)
            runs = [r for r in records if r.get("event") == "control" and r.get("what") == "run"]
            assert [r["by_uid"] for r in runs] == [pw.pw_uid, 0, pw.pw_uid], runs
            assert runs[0]["by_pid"] == mine.pid and runs[0]["folder"] == str(app), runs
            ended = {r["run_pid"] for r in records if r.get("what") == "run-exited"}
            assert runs[0]["run_pid"] in ended
            calls = [(r["method"], r["by_uid"], r["by_gid"], r.get("app")) for r in records
                     if r.get("event") == "control" and r.get("what") == "call"]
            assert calls.count(("org.cella.Run", pw.pw_uid, pw.pw_gid, None)) == 3, calls
            assert ("org.cella.Stop", pw.pw_uid, cella_gid, "org.test.nope") in calls, calls
            assert ("org.cella.Start", pw.pw_uid, cella_gid, "org.test.nope") in calls, calls
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        unmount_below(top)
        shutil.rmtree(top, ignore_errors=True)


def test_store_changes_name_their_caller_in_the_audit_log(daemon, make_app):
    """install, start, stop and remove by the CLI: the audit log says who asked (the
    "call" record, and the outcome's "installed" and "removed" with the caller)."""
    import os as _os
    app = make_app("org.test.client.audited", "while :; do sleep 1; done\n", kind="service")
    state = daemon.state_dir
    for args in (["install", app], ["start", "org.test.client.audited"],
                 ["stop", "org.test.client.audited"], ["remove", "org.test.client.audited"]):
        p = subprocess.run([CELLA, args[0], "--state-dir", str(state), *map(str, args[1:])],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (args, p.stderr)
    records = [r for r in _audit(state) if r.get("app") == "org.test.client.audited"
               and r.get("event") == "control"]
    calls = [r["method"] for r in records if r["what"] == "call"]
    assert calls == ["org.cella.Start", "org.cella.Stop", "org.cella.Remove"], records
    outcomes = [r for r in records if r["what"] in ("installed", "removed")]
    assert [r["what"] for r in outcomes] == ["installed", "removed"], records
    assert all(r["by_uid"] == _os.getuid() and r["by_pid"] > 0 for r in records), records
    # Install's call names no app (the bundle does): a record of no app says who.
    installs = [r for r in _audit(state) if r.get("event") == "control"
                and r.get("method") == "org.cella.Install"]
    assert installs and installs[-1]["by_uid"] == 0, installs
