"""App identity end to end (docs/security.md, "App identity"): an app id belongs to
what first installed it, its folder (unsigned) or its signing key (signed). Another
folder or key declaring the id gets nothing of the installed app's: not its /data,
not its grants; `cella forget` frees the id."""
import json
import os
import shutil
import signal
import stat
import subprocess

import pytest

from conftest import CELLA, run_cella, start_cella, wait_written

APP = "org.test.ident"

# Prints what it finds in /data, then leaves its own mark there.
SCRIPT = """\
for f in /data/*; do [ -f "$f" ] && echo "found $(basename "$f"): $(cat "$f")"; done
echo "{mark}" > /data/mark-{name}
echo "ran {name}"
"""


def folder(tmp_path, name, mark=None, permissions=("location",)):
    d = tmp_path / name
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({
        "id": APP, "runtime": "native", "entry": "main.sh", "permissions": list(permissions)}))
    (d / "main.sh").write_text("#!/bin/sh\n" + SCRIPT.format(name=name, mark=mark or name))
    os.chmod(d / "main.sh", 0o755)
    for p in (tmp_path, d):
        os.chmod(p, 0o755)
    return d


def cella(cmd, *args, state):
    return subprocess.run([CELLA, cmd, "--state-dir", str(state), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def grants(state):
    p = cella("permissions", "--json", APP, state=state)
    assert p.returncode == 0, p.stderr
    return {g["right"]: g for g in json.loads(p.stdout)["grants"]}


def keygen(tmp_path, name):
    p = subprocess.run([CELLA, "sign", "--keygen", str(tmp_path / name)], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    return tmp_path / f"{name}.key", tmp_path / f"{name}.pub"


def trust(state, pub):
    keys = state / "trusted-keys"
    keys.mkdir(parents=True, exist_ok=True)
    os.chmod(keys, 0o755)
    shutil.copy(pub, keys / pub.name)
    os.chmod(keys / pub.name, 0o644)


def sign(app, key):
    p = subprocess.run([CELLA, "sign", "--key", str(key), str(app)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


@pytest.mark.twin
def test_another_folder_with_the_same_id_gets_nothing(tmp_path, state):
    first = folder(tmp_path, "first", mark="the first app's secret")
    r = run_cella(first, state_dir=state)
    assert r.code == 0 and "ran first" in r.out, r.out + r.err
    p = cella("grant", APP, "location", state=state)
    assert p.returncode == 0, p.stderr
    data = state / "apps" / APP / "data"
    assert (data / "mark-first").read_text() == "the first app's secret\n"

    # Another folder declaring the id: refused before anything of the id's is
    # given to it. Its script never runs, so it cannot read or change /data.
    second = folder(tmp_path, "second", mark="overwritten")
    r = run_cella(second, state_dir=state)
    assert r.code == 242, r.out + r.err
    assert "ran second" not in r.out and "secret" not in r.out, r.out
    assert f"the app id {APP} belongs to the app installed" in r.err, r.err
    assert str(first) in r.err and str(second) in r.err, r.err
    assert f"cella forget {APP}" in r.err, r.err
    assert sorted(os.listdir(data)) == ["mark-first"]
    assert (data / "mark-first").read_text() == "the first app's secret\n"
    # Nor through `cella grant --app-dir`: its manifest is not installed for the id.
    p = cella("grant", "--app-dir", second, APP, "location", state=state)
    assert p.returncode == 1 and "belongs to the app installed" in p.stderr, p.stderr
    assert grants(state)["location"]["granted_by"] == "user"

    # The first folder, changed, is still the app (an update): it sees its /data.
    with open(first / "main.sh", "a") as f:
        f.write("echo updated\n")
    r = run_cella(first, state_dir=state)
    assert r.code == 0, r.out + r.err
    assert "found mark-first: the first app's secret" in r.out and "updated" in r.out, r.out

    # Forgetting the app frees the id: its data and grants are gone, and the second
    # folder starts afresh.
    p = cella("forget", APP, state=state)
    assert p.returncode == 0, p.stderr
    assert not (state / "apps" / APP).exists()
    # Its /data file system was taken down, not only emptied.
    with open("/proc/self/mountinfo") as f:
        assert str(data) not in f.read()
    r = run_cella(second, state_dir=state)
    assert r.code == 0 and "ran second" in r.out and "found" not in r.out, r.out + r.err
    assert "location" not in grants(state)
    assert cella("forget", "org.test.never", state=state).returncode == 1


@pytest.mark.twin
def test_forget_refuses_a_running_app(tmp_path, state):
    app = folder(tmp_path, "sleeper")
    (app / "main.sh").write_text("#!/bin/sh\necho up\nexec sleep 60\n")
    p, started, status = start_cella(app, state)
    try:
        r = cella("forget", APP, state=state)
        assert r.returncode == 1 and "stop it first" in r.stderr, r.stderr
        assert (state / "apps" / APP / "data").is_dir()
    finally:
        p.terminate()
        p.communicate(timeout=30)
        status.close()


@pytest.mark.twin
def test_a_signed_app_is_its_key(tmp_path, state):
    k1, pub1 = keygen(tmp_path, "vendor")
    k2, pub2 = keygen(tmp_path, "other")
    trust(state, pub1)
    trust(state, pub2)
    v1 = folder(tmp_path, "v1", mark="kept across updates")
    sign(v1, k1)
    r = run_cella(v1, state_dir=state)
    assert r.code == 0 and "ran v1" in r.out, r.out + r.err

    # An update in another folder, signed with the same key: the same app.
    v2 = folder(tmp_path, "v2")
    sign(v2, k1)
    r = run_cella(v2, state_dir=state)
    assert r.code == 0, r.out + r.err
    assert "found mark-v1: kept across updates" in r.out, r.out

    # Signed with another trusted key, or not signed at all: another app.
    for name, key in (("evil", k2), ("unsigned", None)):
        d = folder(tmp_path, name)
        if key:
            sign(d, key)
        r = run_cella(d, state_dir=state)
        assert r.code == 242 and f"ran {name}" not in r.out, r.out + r.err
        assert "signed by trusted key" in r.err, r.err
    assert sorted(os.listdir(state / "apps" / APP / "data")) == ["mark-v1", "mark-v2"]
    # The state database is root's alone.
    assert stat.S_IMODE(os.stat(state / "state.db").st_mode) == 0o600


def app_folder(parent, name, app_id, script, **extra):
    """A native app folder parent/name for app_id, root's and not writable by others."""
    d = parent / name
    d.mkdir()
    manifest = {"id": app_id, "runtime": "native", "entry": "main.sh"}
    manifest.update(extra)
    (d / "manifest.json").write_text(json.dumps(manifest))
    (d / "main.sh").write_text("#!/bin/sh\n" + script)
    os.chmod(d / "main.sh", 0o755)
    os.chmod(d, 0o755)
    return d


@pytest.mark.twin
def test_a_signed_bundle_others_can_change_is_not_trusted(tmp_path, state):
    """A signature counts only on files nobody but root can change afterwards (folder,
    entries, every parent; docs/security.md "App identity"): else the bundle is
    unsigned, and so refused for an id bound to the key, naming the path to blame."""
    os.chmod(tmp_path, 0o755)
    key, pub = keygen(tmp_path, "vendor")
    trust(state, pub)
    v1 = folder(tmp_path, "v1", mark="the vendor's data")
    sign(v1, key)
    r = run_cella(v1, state_dir=state)
    assert r.code == 0 and "ran v1" in r.out, r.out + r.err

    # Signed by the same key, but its entry is writable by others: someone could
    # change it after the check. Not the vendor's app: it never runs.
    loose = folder(tmp_path, "loose")
    sign(loose, key)
    os.chmod(loose / "main.sh", 0o757)
    p = subprocess.run([CELLA, "sign", "--verify", "--state-dir", str(state), str(loose)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and f"{loose}/main.sh: writable by group or others" in p.stderr, \
        p.stderr
    r = run_cella(loose, state_dir=state)
    assert r.code == 242 and "ran loose" not in r.out and "vendor's data" not in r.out, \
        r.out + r.err
    assert f"{loose}/main.sh: writable by group or others" in r.err, r.err
    assert "counts as unsigned" in r.err and "belongs to the app installed" in r.err, r.err

    # An entry owned by another user: the same.
    os.chmod(loose / "main.sh", 0o755)
    os.chown(loose / "main.sh", 1000, 1000)
    r = run_cella(loose, state_dir=state)
    assert r.code == 242 and "ran loose" not in r.out, r.out + r.err
    assert f"{loose}/main.sh: owned by a user other than root" in r.err, r.err

    # A parent folder others may write to (no sticky bit): the folder can be renamed
    # away and another put in its place. Named by its path.
    shared = tmp_path / "shared"
    shared.mkdir()
    inside = folder(shared, "inside")
    sign(inside, key)
    os.chmod(shared, 0o777)
    r = run_cella(inside, state_dir=state)
    assert r.code == 242 and "ran inside" not in r.out, r.out + r.err
    assert f"{shared}: a folder writable by group or others" in r.err, r.err
    # An unsigned app there runs (its path is the app), with a warning that whoever
    # can write there can run code as the app.
    other = app_folder(shared, "other", "org.test.other", "echo other ran\n")
    r = run_cella(other, state_dir=state)
    assert r.code == 0 and "other ran" in r.out, r.out + r.err
    assert f"{shared}: a folder writable by group or others: whoever can change it can run " \
        "code as org.test.other" in r.err, r.err
    # With the sticky bit (as /tmp) others cannot rename what is not theirs: trusted.
    os.chmod(shared, 0o1777)
    r = run_cella(inside, state_dir=state)
    assert r.code == 0 and "ran inside" in r.out, r.out + r.err
    assert "found mark-v1: the vendor's data" in r.out, r.out


@pytest.mark.twin
def test_a_signed_app_changed_while_it_runs_is_refused_at_its_restart(tmp_path, state):
    """The signature is verified at every start, not only the first: a signed app whose
    folder changed since is not restarted (`cella boot`, restart policy on-failure)."""
    os.chmod(tmp_path, 0o755)
    key, pub = keygen(tmp_path, "vendor")
    trust(state, pub)
    apps = tmp_path / "apps"
    apps.mkdir(mode=0o755)
    app = app_folder(apps, "app", APP, "echo up v1\nexec sleep 60\n", restart="on-failure")
    sign(app, key)
    rfd, wfd = os.pipe()
    p = subprocess.Popen([CELLA, "boot", "--state-dir", str(state), "--json-status", str(wfd),
                          str(apps)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, pass_fds=(wfd,))
    os.close(wfd)
    status = os.fdopen(rfd)

    def next_event(*names):
        for line in status:
            rec = json.loads(line)
            if rec.get("app") == APP and rec["event"] in names:
                return rec
        raise AssertionError(f"no {names} record; stderr: {p.stderr.read()}")

    logs = state / "logs"

    def said_up(n):
        """Waits until the app's log holds its "up v1" line n times: a start
        record comes before the app's first line, and a kill before it would
        leave nothing to count."""
        f = logs / f"{APP}.log"
        wait_written(lambda: f.exists() and f.read_text().count("up v1") >= n, logs, 60,
                     f"'up v1' {n} time(s) in {f}")

    try:
        started = next_event("started")
        assert started["restarts"] == 0, started
        said_up(1)
        # Another folder put at its path meanwhile (even one the same key signed):
        # the restart runs the folder the kernel opened and verified, not the path.
        opened = apps / "app.old"
        os.rename(app, opened)
        app_folder(apps, "app", APP, "echo up v2\nexec sleep 60\n", restart="on-failure")
        sign(app, key)
        os.kill(started["pid"], signal.SIGKILL)
        again = next_event("started", "failed")
        assert again["event"] == "started" and again["restarts"] == 1, again
        said_up(2)

        # Changed after it was verified (by whoever can write there), then crashed.
        with open(opened / "main.sh", "a") as f:
            f.write("echo tampered\n")
        os.kill(again["pid"], signal.SIGKILL)
        refused = next_event("started", "failed")
        assert refused["event"] == "failed" and refused["step"] == "verify", refused
        assert "does not match" in refused["error"], refused
    finally:
        p.terminate()
        out, err = p.communicate(timeout=30)
        status.close()
    assert f"{APP}: refused to start: {opened}/SIGNATURE: the signature does not match" in err, \
        err
    log = (state / "logs" / f"{APP}.log").read_text()
    assert log.count("up v1") == 2 and "v2" not in log and "tampered" not in log, log


@pytest.mark.twin
def test_an_id_under_an_installed_apps_is_refused(tmp_path, state):
    """org.test.v.inbox under an installed org.test.v would take org.test.v's rights
    reaching into it (grants.c, reconcile): refused unless signed by the same key."""
    os.chmod(tmp_path, 0o755)
    parent = app_folder(tmp_path, "parent", "org.test.v", "echo parent ran\n",
                        permissions=["bus.publish:org.test.v.**"])
    r = run_cella(parent, state_dir=state)
    assert r.code == 0 and "parent ran" in r.out, r.out + r.err

    def publish_grant():
        p = cella("permissions", "--json", "org.test.v", state=state)
        assert p.returncode == 0, p.stderr
        return {g["right"]: g for g in json.loads(p.stdout)["grants"]}.get(
            "bus.publish:org.test.v.**")

    assert publish_grant()["granted_by"] == "install"

    squat = app_folder(tmp_path, "squat", "org.test.v.inbox", "echo squat ran\n")
    r = run_cella(squat, state_dir=state)
    assert r.code == 242 and "squat ran" not in r.out, r.out + r.err
    assert ("the app id org.test.v.inbox lies in the namespace of the installed app "
            "org.test.v") in r.err, r.err
    # Nor through `cella grant --app-dir`, which installs the manifest too.
    p = cella("grant", "--app-dir", squat, "org.test.v.inbox", "location", state=state)
    assert p.returncode == 1 and "lies in the namespace of the installed app" in p.stderr, \
        p.stderr
    # The parent keeps its own namespace's rights.
    assert publish_grant()["granted_by"] == "install"
    assert not (state / "apps" / "org.test.v.inbox").exists()

    # Signed by the parent's key: the vendor's own app, allowed.
    key, pub = keygen(tmp_path, "vendor")
    trust(state, pub)
    sp = app_folder(tmp_path, "sp", "org.test.s", "echo sp ran\n")
    sc = app_folder(tmp_path, "sc", "org.test.s.mail", "echo sc ran\n")
    sign(sp, key)
    sign(sc, key)
    for d, says in ((sp, "sp ran"), (sc, "sc ran")):
        r = run_cella(d, state_dir=state)
        assert r.code == 0 and says in r.out, r.out + r.err

    # A nested app installed first stays when its parent comes later.
    child = app_folder(tmp_path, "child", "org.test.w.inbox", "echo child ran\n")
    later = app_folder(tmp_path, "later", "org.test.w", "echo later ran\n")
    for d, says in ((child, "child ran"), (later, "later ran"), (child, "child ran")):
        r = run_cella(d, state_dir=state)
        assert r.code == 0 and says in r.out, r.out + r.err
