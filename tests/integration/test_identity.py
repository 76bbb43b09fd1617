"""App identity end to end (docs/security.md, "App identity"): an app id belongs to
what first installed it, its folder (unsigned) or its signing key (signed). Another
folder or key declaring the id gets nothing of the installed app's: not its /data,
not its grants; `cella forget` frees the id."""
import json
import os
import shutil
import stat
import subprocess

from conftest import CELLA, run_cella, start_cella

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
