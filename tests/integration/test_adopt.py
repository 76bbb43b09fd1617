"""Restart and adoption (docs/daemon.md, "Restart and adoption"): apps outlive a
crash (SIGKILL) or a re-exec (SIGHUP) of cellad, held by its keeper, and the next
cellad adopts them: the same sandboxes (same pids), their calls answered again,
their logs going on, `cella ps` truthful; what cannot be adopted is stopped and
restarted by its policy; the keeper kills what it holds when no cellad comes back
within its grace. After the last stop nothing is left: no cgroup leaf, no mount, no
keeper.

The apps are tests/tools/adopt-probe (a system.info call every 10 ms, one line each
on stdout), installed the way the store lays an app out (<state>/apps/<id>/current
-> <version>/, Contract 2 of this round's brief): this branch has neither `cella
install` nor the control API's Start, so cellad's autostart (apps with a restart
policy) starts them. Every wait is on an event with a deadline (a READY line, a log
line, a process's end), never a bare sleep.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon_util import CELLA, Cellad, require_cellad

PROBE = Path(os.environ.get("CELLA_ADOPT_PROBE",
                            str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "adopt-probe")))
N_APPS = 4
DEADLINE = 60.0  # s: far above what each wait takes (ms), for the ASan build on 2 loaded CPUs


def wait_for(what, cond, timeout=DEADLINE, interval=0.02):
    """Waits until cond() is true (re-checked every interval s) or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(interval)


def install(state, app_id, version="1.0", restart="on-failure", period_ms=10):
    """An installed probe app: <state>/apps/<id>/<version>/ and current -> version."""
    if not os.access(PROBE, os.X_OK):
        pytest.skip(f"no adopt-probe at {PROBE} (build the tests, or set CELLA_ADOPT_PROBE)")
    top = state / "apps" / app_id
    d = top / version
    d.mkdir(parents=True)
    shutil.copy(PROBE, d / "adopt-probe")
    (d / "manifest.json").write_text(json.dumps({
        "id": app_id, "version": version, "runtime": "native", "entry": "adopt-probe",
        "args": [str(period_ms)], "restart": restart,
        "limits": {"memory": "16M", "pids": 8}}))
    for p in (state / "apps", top, d):
        p.chmod(0o755)
    (d / "adopt-probe").chmod(0o755)
    (d / "manifest.json").chmod(0o644)
    cur = top / "current"
    if cur.is_symlink():
        cur.unlink()
    cur.symlink_to(version)
    return d


def new_state(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state


def ps(state):
    """cella ps --json on state: {id: record}."""
    p = subprocess.run([CELLA, "ps", "--json", "--state-dir", str(state)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return {r["id"]: r for r in json.loads(p.stdout)}


def log_lines(state, app_id):
    p = state / "logs" / f"{app_id}.log"
    return p.read_text(errors="replace").splitlines() if p.exists() else []


def ok_calls(state, app_id):
    """The numbers of the calls the app saw answered, in order."""
    return [int(l.split()[1]) for l in log_lines(state, app_id)
            if l.startswith("call ") and l.endswith(" ok")]


def alive(pid):
    """True if pid runs (not gone, not a zombie left for a parent that does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def keeper_pids(state):
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"cella-keeper") and \
                any(a.startswith(str(state).encode()) for a in cmd) and alive(int(d.name)):
            out.append(int(d.name))
    return out


def leaves(prefix):
    """Every cgroup directory under /sys/fs/cgroup whose name starts with prefix."""
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(root, d) for d in dirs if d.startswith(prefix)]
    return found


def owner_tag(state):
    """The owner tag of cellad's app leaves: its state directory's device and inode."""
    st = os.stat(state)
    return f"d{st.st_dev:x}i{st.st_ino:x}"


def mounts_of(path):
    """The mount points under path in our mount namespace."""
    with open("/proc/self/mountinfo") as f:
        return sorted(l.split()[4] for l in f if l.split()[4].startswith(str(path)))


def data_mounts(state, app_ids):
    """What stays mounted by design once the apps stop: each app's /data file system,
    once, at <state>/apps/<id>/data (docs/security.md, "Storage")."""
    return sorted(str(state / "apps" / i / "data") for i in app_ids)


def unmount_data(tmp_path):
    for m in reversed(mounts_of(tmp_path)):
        subprocess.run(["umount", m], capture_output=True, timeout=60)


_TAG = [f"p{os.getpid()}x0"]


@pytest.fixture(autouse=True)
def _own_ids_and_cleanup(tmp_path):
    """Each test its own app ids (so that one test's leftovers never count in
    another's checks), and whatever a failed test left stopped: the keepers of its
    state dir told to go (SIGTERM: a keeper with no cellad kills what it holds), the
    leaves of its apps removed, its /data mounts unmounted."""
    n = int(_TAG[0].rpartition("x")[2]) + 1
    _TAG[0] = f"p{os.getpid()}x{n}"
    yield
    for k in keeper_pids(tmp_path):
        os.kill(k, signal.SIGTERM)
    wait_for("the keepers gone", lambda: not keeper_pids(tmp_path))
    for leaf in sorted(leaves(prefix()), key=len, reverse=True):
        for _ in range(100):
            try:
                os.rmdir(leaf)
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY: its last task is still leaving
                time.sleep(0.01)
    unmount_data(tmp_path)


def prefix():
    return f"org.cella.test.adopt.{_TAG[0]}."


def ids(n=N_APPS):
    return [f"{prefix()}a{i}" for i in range(n)]


def start_apps(tmp_path, n=N_APPS, env=None):
    require_cellad()
    state = new_state(tmp_path)
    for app_id in ids(n):
        install(state, app_id)
    d = Cellad(state, env=env).start()
    wait_for("every app making calls", lambda: all(len(ok_calls(state, i)) >= 20 for i in ids(n)))
    return state, d


def test_sigkill_mid_load_then_adopted(tmp_path):
    """cellad SIGKILLed while its apps call it and print: they run on; the next cellad
    adopts every one of them (same sandbox, same pid), serves their calls, and their
    logs go on; after an orderly stop nothing is left."""
    state, d = start_apps(tmp_path)
    d2 = None
    try:
        before = ps(state)
        assert set(before) == set(ids()), before
        pids = {i: before[i]["pid"] for i in ids()}
        assert all(r["state"] == "running" for r in before.values()), before
        assert len(keeper_pids(state)) == 1

        d.send(signal.SIGKILL)
        d.proc.wait(timeout=DEADLINE)
        last = {i: max(ok_calls(state, i)) for i in ids()}
        # No parent-death signal: every sandbox runs on, held by the keeper.
        assert all(alive(p) for p in pids.values()), pids

        d2 = Cellad(state).start()
        log = d2.log()
        assert f"adopted {N_APPS} app(s) left running by an earlier cellad" in log, log
        assert "started 0 installed app(s)" in log, log
        after = ps(state)
        for i in ids():
            assert after[i]["state"] == "running", after[i]
            assert after[i]["pid"] == pids[i], (before[i], after[i])
        # Their calls are answered again and their output reaches their logs.
        wait_for("calls answered by the new cellad",
                 lambda: all(max(ok_calls(state, i)) >= last[i] + 20 for i in ids()))
        after = ps(state)
        assert all(after[i]["calls"] >= 20 for i in ids()), after
        for i in ids():
            seen = ok_calls(state, i)
            # Numbered on and on: no call lost from the log, none printed twice; a call
            # in flight at the kill may have timed out (said as "error 110").
            assert seen == sorted(set(seen)), i
            errors = [l for l in log_lines(state, i) if " error " in l]
            assert all(l.endswith(" error 110") for l in errors) and len(errors) <= 1, errors

        assert d2.stop(signal.SIGTERM) == 0
        wait_for("every app's sandbox gone", lambda: not any(alive(p) for p in pids.values()))
        wait_for("the keeper gone", lambda: not keeper_pids(state))
        assert not (state / "run" / "keeper.sock").exists()
        assert not leaves(prefix()), leaves(prefix())
        # No mount left but the /data each app keeps between runs, and none twice.
        assert mounts_of(tmp_path) == data_mounts(state, ids())
    finally:
        d.close()
        if d2:
            d2.close()


def test_sighup_reexec_keeps_the_apps(tmp_path):
    """SIGHUP: cellad re-executes itself in place (same pid) and adopts its own apps:
    init is still its child, so it reaps them itself."""
    state, d = start_apps(tmp_path, n=2)
    try:
        pids = {i: r["pid"] for i, r in ps(state).items()}
        d.send(signal.SIGHUP)
        wait_for("the re-executed cellad's adoption",
                 lambda: "adopted 2 app(s) left running by an earlier cellad" in d.log())
        after = wait_for("cella ps answered by the new image", lambda: ps(state) or None)
        assert {i: r["pid"] for i, r in after.items()} == pids
        assert all(r["state"] == "running" for r in after.values())
        last = {i: max(ok_calls(state, i)) for i in pids}
        wait_for("calls answered after the re-exec",
                 lambda: all(max(ok_calls(state, i)) >= last[i] + 20 for i in pids))
        assert d.stop(signal.SIGTERM) == 0
        # Reaped by cellad (their parent all along): not even zombies are left.
        for p in pids.values():
            assert not Path(f"/proc/{p}").exists()
        assert not leaves(prefix())
        assert mounts_of(tmp_path) == data_mounts(state, pids)
    finally:
        d.close()


def test_app_that_exits_while_no_cellad_runs(tmp_path):
    """An app that ends while no cellad runs is not lost: the next cellad adopts it,
    reads its real exit status from its sandbox's init, and `cella ps` says so."""
    state, d = start_apps(tmp_path, n=2)
    try:
        pids = {i: r["pid"] for i, r in ps(state).items()}
        d.send(signal.SIGKILL)
        d.proc.wait(timeout=DEADLINE)
        # adopt-probe exits 0 on SIGTERM, which its init passes on (init forwards it).
        victim, other = ids(2)
        os.kill(pids[victim], signal.SIGTERM)
        wait_for("the app's sandbox to end", lambda: not alive(pids[victim]))
        d2 = Cellad(state).start()
        try:
            after = wait_for("the adopted app's exit", lambda: (
                lambda r: r if r[victim]["state"] == "exited" else None)(ps(state)))
            assert after[victim]["exit_code"] == 0, after[victim]
            assert after[other]["state"] == "running" and after[other]["pid"] == pids[other]
            assert f"{victim}: exited with status 0" in d2.log()
            assert d2.stop(signal.SIGTERM) == 0
        finally:
            d2.close()
        assert not leaves(prefix())
        assert mounts_of(tmp_path) == data_mounts(state, pids)
    finally:
        d.close()


def test_unadoptable_app_is_stopped(tmp_path):
    """An app removed from the store while no cellad ran (its folder gone) cannot be
    adopted: the next cellad stops its sandbox and removes its cgroup, never leaving it
    to run unserved; the other app is adopted. (Its restart by policy, when it is still
    installed, is test_keeper_kills_the_apps_when_no_cellad_comes_back's.)"""
    state, d = start_apps(tmp_path, n=2)
    try:
        pids = {i: r["pid"] for i, r in ps(state).items()}
        d.send(signal.SIGKILL)
        d.proc.wait(timeout=DEADLINE)
        gone, kept = ids(2)
        (state / "apps" / gone / "current").unlink()
        shutil.rmtree(state / "apps" / gone / "1.0")
        d2 = Cellad(state).start()
        try:
            log = d2.log()
            assert f"{gone}: cannot adopt it (pid {pids[gone]}, left by an earlier cellad): " \
                   "its folder or manifest is gone" in log, log
            assert "adopted 1 app(s)" in log, log
            assert not alive(pids[gone])
            assert not leaves(gone + "@")
            after = ps(state)
            assert gone not in after, after
            assert after[kept]["state"] == "running" and after[kept]["pid"] == pids[kept]
            assert d2.stop(signal.SIGTERM) == 0
        finally:
            d2.close()
        assert not leaves(prefix())
        assert mounts_of(tmp_path) == data_mounts(state, pids)
    finally:
        d.close()


def test_keeper_kills_the_apps_when_no_cellad_comes_back(tmp_path):
    """With no cellad back within its grace (2 s here, $CELLA_KEEPER_GRACE), the keeper
    kills every app it holds and exits; the next cellad removes their leftover leaves
    and starts the apps again by their restart policy."""
    env = dict(os.environ, CELLA_KEEPER_GRACE="2")
    state, d = start_apps(tmp_path, n=2, env=env)
    try:
        pids = {i: r["pid"] for i, r in ps(state).items()}
        keeper = keeper_pids(state)
        assert len(keeper) == 1
        d.send(signal.SIGKILL)
        d.proc.wait(timeout=DEADLINE)
        t0 = time.monotonic()
        wait_for("the keeper's grace kill", lambda: not any(alive(p) for p in pids.values()))
        assert time.monotonic() - t0 >= 1.0  # not before the grace (2 s) is nearly over
        wait_for("the keeper's exit", lambda: not alive(keeper[0]))
        stale = leaves(prefix())
        assert stale and all(p.endswith(f"@{owner_tag(state)}") for p in stale), stale
        d2 = Cellad(state).start()
        try:
            # Its two, and maybe others' left in the same root by cellads that are gone.
            m = re.search(r"removed (\d+) cgroup\(s\) of apps no cellad serves", d2.log())
            assert m and int(m.group(1)) >= 2, d2.log()
            after = ps(state)
            assert all(r["state"] == "running" and r["pid"] not in pids.values()
                       for r in after.values()), after
            assert d2.stop(signal.SIGTERM) == 0
        finally:
            d2.close()
        assert not leaves(prefix())
        assert mounts_of(tmp_path) == data_mounts(state, pids)
    finally:
        d.close()


def test_keeper_replaced_then_sigkill(tmp_path):
    """The keeper dies while cellad runs: cellad starts another at once and hands it
    every app; then cellad is SIGKILLed: the next one adopts them from the new keeper,
    their leaves (named after the dead keeper) kept by every sweep."""
    state, d = start_apps(tmp_path, n=2)
    d2 = None
    try:
        pids = {i: r["pid"] for i, r in ps(state).items()}
        (old,) = keeper_pids(state)
        os.kill(old, signal.SIGKILL)
        wait_for("cellad to hand its apps to another keeper",
                 lambda: "handed 2 running app(s) to the new keeper" in d.log())
        new = wait_for("the new keeper", lambda: [k for k in keeper_pids(state) if k != old])
        assert all(alive(p) for p in pids.values())
        d.send(signal.SIGKILL)
        d.proc.wait(timeout=DEADLINE)
        d2 = Cellad(state).start()
        assert "adopted 2 app(s) left running by an earlier cellad" in d2.log(), d2.log()
        after = ps(state)
        assert {i: r["pid"] for i, r in after.items()} == pids, after
        assert all(r["state"] == "running" for r in after.values())
        # Named after the state directory: the same whichever keeper holds them.
        assert all(p.endswith(f"@{owner_tag(state)}") for p in leaves(prefix())), \
            leaves(prefix())
        last = {i: max(ok_calls(state, i)) for i in pids}
        wait_for("calls answered", lambda: all(max(ok_calls(state, i)) >= last[i] + 20
                                               for i in pids))
        assert keeper_pids(state) == new
        assert d2.stop(signal.SIGTERM) == 0
        assert not leaves(prefix())
        assert mounts_of(tmp_path) == data_mounts(state, pids)
    finally:
        d.close()
        if d2:
            d2.close()


def test_a_keeper_it_cannot_speak_with_is_stopped(tmp_path):
    """A keeper cellad cannot speak with (another version of cella's: its messages
    are not this one's) is stopped (SIGTERM: it kills what it holds) and replaced;
    cellad starts as usual."""
    require_cellad()
    import socket as so
    state = new_state(tmp_path)
    (state / "run").mkdir(mode=0o700)
    path = state / "run" / "keeper.sock"
    fake = subprocess.Popen([sys.executable, "-c", f"""
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind({str(path)!r})
s.listen(4)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.send(b"not a keeper's message")
"""], stdout=subprocess.PIPE, text=True)
    d = None
    try:
        assert fake.stdout.readline() == "listening\n"
        d = Cellad(state).start()
        assert "cannot take the apps back from the keeper" in d.log(), d.log()
        assert fake.wait(timeout=DEADLINE) == 0  # it had SIGTERM
        (k,) = wait_for("a real keeper", lambda: keeper_pids(state))
        assert k != fake.pid
        assert d.stop(signal.SIGTERM) == 0
    finally:
        fake.kill()
        if d:
            d.close()
