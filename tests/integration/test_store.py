"""The store of installed apps (docs/store.md) through a real cellad run bare:
`cella install` from a folder and from a bundle, `cella list`, `cella update`
(newer only, same signer only, same id), `cella remove` with and without
--keep-data, `cella clear-data`, and bad bundles, each refused with an error that
names what and where while the installed version stays as it was. An install
killed at each step (CELLA_TEST_STORE_KILL_AT, the daemon SIGKILLs itself there)
leaves the previous version installed, and the next cellad sweeps what it left."""
import io
import json
import os
import signal
import stat
import subprocess
import tarfile
import time

import pytest

from conftest import CELLA, run_cella, start_cella, wait_written
from daemon_util import (ControlError, cellad, require_cellad, running_cellad,  # noqa: F401
                         system_user, traversable_tmpdir, wait_for)

APP_ID = "org.test.store"


def cella(*args, check=None, timeout=120):
    p = subprocess.run([CELLA, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check is not None:
        assert p.returncode == check, f"cella {args}: {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def write_app(d, version, app_id=APP_ID, text="hello", **extra):
    """An app folder d (made if missing): manifest, an entry printing text, a
    sub-folder with a data file, a symlink to it."""
    d.mkdir(exist_ok=True)
    os.chmod(d.parent, 0o755)
    os.chmod(d, 0o755)
    manifest = {"id": app_id, "version": version, "runtime": "native", "entry": "run"}
    manifest.update(extra)
    (d / "manifest.json").write_text(json.dumps(manifest))
    (d / "run").write_text(f"#!/bin/sh\necho {text}\ncat /app/lib/data.txt\n")
    os.chmod(d / "run", 0o700)  # the store makes it 0555 whatever it was
    (d / "lib").mkdir(exist_ok=True)
    (d / "lib" / "data.txt").write_text(f"data of {version}\n")
    os.chmod(d / "lib" / "data.txt", 0o600)
    if not (d / "link").is_symlink():
        os.symlink("lib/data.txt", d / "link")
    sig = d / "SIGNATURE"
    if sig.exists():
        sig.unlink()
    return d


def install(state, source, *args, update=False):
    return cella("update" if update else "install", "--state-dir", state, *args, source)


def listed(state):
    p = cella("list", "--state-dir", state, "--json", check=0)
    return {a["id"]: a for a in json.loads(p.stdout)}


def store_dir(state, app_id=APP_ID):
    return state / "apps" / app_id


def assert_installed(state, version, app_id=APP_ID):
    apps = listed(state)
    assert apps[app_id]["version"] == version, apps
    d = store_dir(state, app_id)
    assert os.readlink(d / "current") == version
    assert (d / version / "lib" / "data.txt").read_text() == f"data of {version}\n"
    return apps[app_id]


def keygen(tmp_path, name):
    cella("sign", "--keygen", tmp_path / name, check=0)
    return tmp_path / f"{name}.key"


def sign(app, key):
    cella("sign", "--key", key, app, check=0)


# --- install, list, update, remove ------------------------------------------------------


def test_install_from_a_folder_and_from_a_bundle(cellad, tmp_path):
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0")
    p = install(state, app)
    assert p.returncode == 0, p.stderr
    assert f"installed {APP_ID} 1.0 (unsigned)" in p.stdout
    assert "only an unsigned version can update it" in p.stderr
    rec = assert_installed(state, "1.0")
    assert rec["signed"] is False and rec["key_id"] is None and rec["files"] == 5

    # Read-only, root's, world-readable: folders 0555, files 0444, executables 0555.
    v = store_dir(state) / "1.0"
    for path, mode in [(v, 0o555), (v / "lib", 0o555), (v / "run", 0o555),
                       (v / "manifest.json", 0o444), (v / "lib" / "data.txt", 0o444)]:
        st = os.lstat(path)
        assert stat.S_IMODE(st.st_mode) == mode, (path, oct(st.st_mode))
        assert st.st_uid == 0 and st.st_gid == 0
    assert os.readlink(v / "link") == "lib/data.txt"

    # From a bundle file: a second app.
    other = write_app(tmp_path / "other", "2.5", app_id="org.test.other")
    bundle = tmp_path / "other.cella"
    cella("bundle", other, "-o", bundle, check=0)
    p = install(state, bundle, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["version"] == "2.5"
    assert sorted(listed(state)) == ["org.test.other", APP_ID]

    # The installed app runs from the store: its files readable by its own uid.
    r = run_cella(v, state_dir=tmp_path / "runstate")
    assert r.code == 0, r.err
    assert r.out == "hello\ndata of 1.0\n"


def test_rights_can_be_granted_between_install_and_first_start(cellad, tmp_path):
    """An install records what the manifest requests (normal rights granted, dangerous
    ones waiting), so `cella permissions` and `cella grant` work before the app ever
    started, without --app-dir; an update records the new version's requests."""
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0", permissions=["timer", "net.group:web"])
    assert install(state, app).returncode == 0
    p = cella("permissions", "--state-dir", state, "--json", APP_ID, check=0)
    got = {r["right"]: r for r in json.loads(p.stdout)["requested"]}
    assert got["timer"]["granted"] is True and got["net.group:web"]["granted"] is False, got
    p = cella("grant", "--state-dir", state, APP_ID, "net.group:web", check=0)
    assert "granted 'net.group:web'" in p.stdout
    p = cella("grant", "--state-dir", state, APP_ID, "net.group:db")
    assert p.returncode == 1 and "net.group:db" in p.stderr, p.stderr

    write_app(app, "1.1", permissions=["timer", "net.group:db"])
    assert install(state, app, update=True).returncode == 0
    p = cella("permissions", "--state-dir", state, "--json", APP_ID, check=0)
    got = {r["right"]: r for r in json.loads(p.stdout)["requested"]}
    assert sorted(got) == ["net.group:db", "timer"], got
    assert cella("grant", "--state-dir", state, APP_ID, "net.group:db").returncode == 0


def test_bundle_is_deterministic_and_signed_in_place(cellad, tmp_path):
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0")
    a, b = tmp_path / "a.cella", tmp_path / "b.cella"
    cella("bundle", app, "-o", a, check=0)
    os.utime(app / "run", (1, 1))
    os.chmod(app / "lib" / "data.txt", 0o640)  # not the executable bit: same bundle
    cella("bundle", app, "-o", b, check=0)
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as t:
        assert [(m.name, m.mode, m.uid, m.mtime) for m in t.getmembers()] == [
            ("lib", 0o755, 0, 0), ("lib/data.txt", 0o644, 0, 0), ("link", 0o777, 0, 0),
            ("manifest.json", 0o644, 0, 0), ("run", 0o755, 0, 0)]

    key = keygen(tmp_path, "vendor")
    p = cella("sign", "--key", key, a, check=0)
    assert p.stdout.startswith(f"signed {a} with key ")
    key_id = p.stdout.split()[-1]
    p = cella("sign", "--verify", "--state-dir", state, a)
    assert p.returncode == 1 and f"signed by key {key_id}, which is not trusted" in p.stderr
    cella("sign", "--trust", "--state-dir", state, tmp_path / "vendor.pub", check=0)
    p = cella("sign", "--verify", "--state-dir", state, a, check=0)
    assert p.stdout == f"{a}: signed by trusted key {key_id}\n"
    install(state, a).check_returncode()
    assert listed(state)[APP_ID]["key_id"] == key_id

    # What a bundle cannot hold is refused when it is made, named.
    os.mkfifo(app / "pipe")
    p = cella("bundle", app, "-o", b)
    assert p.returncode == 1
    assert f"cannot bundle {app}: pipe: a special file" in p.stderr, p.stderr


def test_installed_already(cellad, tmp_path):
    app = write_app(tmp_path / "app", "1.0")
    install(cellad.state_dir, app).check_returncode()
    p = install(cellad.state_dir, app)
    assert p.returncode == 1
    assert f"{APP_ID} is installed already (version 1.0); 'cella update'" in p.stderr


def test_update_newer_same_older(cellad, tmp_path):
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.9")
    install(state, app).check_returncode()
    for version, word, installed in [("1.9", "the same as", "1.9"), ("1.10~rc1", None, None),
                                     ("1.8", "older than", "1.10~rc1")]:
        write_app(app, version)
        p = install(state, app, update=True)
        if word is None:
            assert p.returncode == 0, p.stderr
            assert f"updated {APP_ID} from 1.9 to {version}" in p.stdout
            assert_installed(state, version)
            continue
        assert p.returncode == 1
        assert (f"manifest.json: version: version {version} is {word} the installed "
                f"{APP_ID} {installed}: an update must be newer") in p.stderr, p.stderr
        assert_installed(state, installed)
    # 1.10 > 1.10~rc1 > 1.9 (Debian's ordering); 1.9 kept as the previous one.
    write_app(app, "1.10")
    install(state, app, update=True).check_returncode()
    rec = assert_installed(state, "1.10")
    assert rec["previous"] == "1.10~rc1"
    assert not (store_dir(state) / "1.9").exists()  # the one before the previous: gone


def test_update_of_an_app_not_installed(cellad, tmp_path):
    p = install(cellad.state_dir, write_app(tmp_path / "app", "1.0"), update=True)
    assert p.returncode == 1
    assert f"{APP_ID} is not installed; 'cella install' installs it" in p.stderr


def test_same_signer(cellad, tmp_path):
    state = cellad.state_dir
    vendor, other = keygen(tmp_path, "vendor"), keygen(tmp_path, "other")
    app = write_app(tmp_path / "app", "1.0")
    sign(app, vendor)
    install(state, app).check_returncode()
    rec = assert_installed(state, "1.0")
    assert rec["signed"] and rec["key_id"]

    write_app(app, "2.0")
    sign(app, other)
    p = install(state, app, update=True)
    assert p.returncode == 1 and "must be signed by the same key" in p.stderr, p.stderr
    assert rec["key_id"] in p.stderr

    write_app(app, "2.0")  # unsigned
    p = install(state, app, update=True)
    assert p.returncode == 1
    assert "an unsigned version cannot replace it" in p.stderr
    assert_installed(state, "1.0")

    sign(app, vendor)
    install(state, app, update=True).check_returncode()
    assert_installed(state, "2.0")


def test_signed_cannot_update_unsigned(cellad, tmp_path):
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0")
    install(state, app).check_returncode()
    write_app(app, "1.1")
    sign(app, keygen(tmp_path, "vendor"))
    p = install(state, app, update=True)
    assert p.returncode == 1
    assert f"{APP_ID} 1.0 is unsigned; only an unsigned version can replace it" in p.stderr
    assert_installed(state, "1.0")


def test_update_with_another_id(cellad, tmp_path):
    state = cellad.state_dir
    install(state, write_app(tmp_path / "app", "1.0")).check_returncode()
    other = write_app(tmp_path / "other", "2.0", app_id="org.test.intruder")
    p = install(state, other, "--id", APP_ID, update=True)
    # org.cella.InvalidParameter ("id"): the command's own arguments disagree, 240
    # as every cellad command (docs/cli.md, cli_reply_exit_code()).
    assert p.returncode == 240, p.stderr
    assert f"manifest.json: id: the bundle is the app 'org.test.intruder', not '{APP_ID}'" \
        in p.stderr, p.stderr
    assert_installed(state, "1.0")
    assert "org.test.intruder" not in listed(state)


def test_remove_with_and_without_keep_data(cellad, tmp_path):
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0")
    install(state, app).check_returncode()
    # What the app's /data would hold (a plain folder here: the store does not look).
    data = store_dir(state) / "data"
    data.mkdir(mode=0o700)
    (data / "notes.txt").write_text("mine\n")

    p = cella("remove", "--state-dir", state, "--keep-data", APP_ID, check=0)
    assert "its data, grants and uid are kept" in p.stdout
    assert APP_ID not in listed(state)
    assert (data / "notes.txt").read_text() == "mine\n"
    assert not (store_dir(state) / "current").exists()
    assert not (store_dir(state) / "1.0").exists()

    install(state, app).check_returncode()
    assert (data / "notes.txt").read_text() == "mine\n"
    p = cella("clear-data", "--state-dir", state, APP_ID, check=0)
    assert not data.exists()
    assert_installed(state, "1.0")

    data.mkdir(mode=0o700)
    cella("remove", "--state-dir", state, APP_ID, check=0)
    assert not store_dir(state).exists()
    p = cella("remove", "--state-dir", state, APP_ID)
    assert p.returncode == 1 and f"{APP_ID} is not installed" in p.stderr


def test_data_kept_goes_only_to_the_same_signer(cellad, tmp_path):
    """After `remove --keep-data`, the data is still the removed app's: an install of
    its id by another signer (or unsigned) is refused, as an update would be."""
    state = cellad.state_dir
    vendor, other = keygen(tmp_path, "vendor"), keygen(tmp_path, "other")
    app = write_app(tmp_path / "app", "1.0")
    sign(app, vendor)
    install(state, app).check_returncode()
    cella("remove", "--state-dir", state, "--keep-data", APP_ID, check=0)
    sign(app, other)
    p = install(state, app)
    assert p.returncode == 1
    assert f"{APP_ID}'s data was kept when it was removed, for the same app" in p.stderr
    assert f"'cella forget {APP_ID}' deletes the data" in p.stderr
    sign(app, vendor)
    install(state, app).check_returncode()
    assert_installed(state, "1.0")


def test_remove_refused_while_another_kernel_runs_the_app(cellad, tmp_path):
    """As `cella forget`: a `cella run` of the installed version on the same state
    directory has the app, so its files and data stay until it ends."""
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0")
    (app / "run").write_text("#!/bin/sh\necho ready\nread line\n")
    install(state, app).check_returncode()
    # Embedded: its kernel is that command (through cellad it would be cellad's child).
    p, started, status = start_cella(store_dir(state) / "1.0", state, "--embedded",
                                     stdin=subprocess.PIPE)
    try:
        for args in (["remove", APP_ID], ["remove", "--keep-data", APP_ID],
                     ["clear-data", APP_ID]):
            r = cella(args[0], "--state-dir", state, *args[1:])
            assert r.returncode == 1
            assert f"{APP_ID} is an app of the running cella kernel {p.pid}: stop it first" \
                in r.stderr, r.stderr
        assert_installed(state, "1.0")
    finally:
        p.communicate("done\n", timeout=60)
        status.close()
    assert p.returncode == 0
    cella("remove", "--state-dir", state, APP_ID, check=0)
    assert APP_ID not in listed(state)


def test_no_cellad(tmp_path):
    (tmp_path / "state").mkdir(mode=0o711)
    app = write_app(tmp_path / "app", "1.0")
    for args in (["list"], ["remove", APP_ID], ["install", app], ["clear-data", APP_ID]):
        p = cella(args[0], "--state-dir", tmp_path / "state", *args[1:])
        assert p.returncode == 3, p.stderr
        assert f"no cellad is running for {tmp_path / 'state'} (start it with 'cellad'" \
            in p.stderr


def test_the_daemon_takes_only_sealed_memfds(cellad, tmp_path):
    """The daemon reads no path and no fd a client could change or stall."""
    app = write_app(tmp_path / "app", "1.0")
    bundle = tmp_path / "app.cella"
    cella("bundle", app, "-o", bundle, check=0)
    r, w = os.pipe()
    with open(bundle, "rb") as f:
        for fd in (f.fileno(), r):
            with pytest.raises(ControlError) as e:
                cellad.call("org.cella.Install", {}, fds=[fd])
            assert e.value.error == "org.cella.InvalidParameter"
            assert e.value.parameters["parameter"] == "bundle"
    os.close(r)
    os.close(w)
    with pytest.raises(ControlError) as e:
        cellad.call("org.cella.Install", {})
    assert e.value.parameters["parameter"] == "bundle"
    assert APP_ID not in listed(cellad.state_dir)


# --- bad bundles --------------------------------------------------------------------------


def tar_of(entries, manifest=None):
    """A tar (bytes) of manifest.json and entries: (name, kind, payload) with kind
    'file' (payload: text), 'dir', 'symlink' (target), 'hardlink' (target), 'chr',
    'fifo'."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        m = (manifest or json.dumps({"id": APP_ID, "version": "2.0", "runtime": "native",
                                     "entry": "run"})).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(m)
        t.addfile(ti, io.BytesIO(m))
        run = b"#!/bin/sh\necho 2\n"
        ti = tarfile.TarInfo("run")
        ti.size, ti.mode = len(run), 0o755
        t.addfile(ti, io.BytesIO(run))
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                data = payload.encode()
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                       "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                       "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                ti.linkname = payload
            if kind == "chr":
                ti.devmajor, ti.devminor = 1, 3
            t.addfile(ti)
    return buf.getvalue()


BAD = [
    ("traversal", [("../../escaped", "file", "x")], "../../escaped: a '..' component"),
    ("traversal-deep", [("lib/../../escaped", "file", "x")], "lib/../../escaped: a '..'"),
    ("absolute", [("/tmp/cella-store-escaped", "file", "x")],
     "/tmp/cella-store-escaped: an absolute path"),
    ("symlink-out", [("etc", "symlink", "/etc")], "etc: a symlink that may lead out"),
    ("symlink-up", [("up", "symlink", "../../..")], "up: a symlink that may lead out"),
    ("through-symlink", [("d", "symlink", "lib"), ("lib", "dir", None),
                         ("d/x", "file", "y")], "d/x: its path goes through a symlink"),
    ("hardlink", [("hl", "hardlink", "manifest.json")], "hl: a hardlink (to 'manifest.json')"),
    ("device", [("null", "chr", None)], "null: a character device"),
    ("fifo", [("pipe", "fifo", None)], "pipe: a fifo"),
    ("control-char", [("bad\x1bname", "file", "x")], "bad?name: a control character"),
    ("twice", [("run", "file", "again")], "run: listed twice"),
]


@pytest.mark.parametrize("name, entries, says", BAD, ids=[b[0] for b in BAD])
def test_bad_bundle_refused(cellad, tmp_path, name, entries, says):
    state = cellad.state_dir
    install(state, write_app(tmp_path / "app", "1.0")).check_returncode()
    bundle = tmp_path / "bad.cella"
    bundle.write_bytes(tar_of(entries))
    p = install(state, bundle, update=True)
    assert p.returncode == 1
    assert f"cannot update to {bundle}: {says}" in p.stderr, p.stderr
    assert_installed(state, "1.0")
    assert not os.path.exists("/tmp/cella-store-escaped")
    assert not (state / "escaped").exists() and not (state.parent / "escaped").exists()
    assert not [n for n in os.listdir(state / "apps") if n.startswith(".staging-")]
    assert sorted(os.listdir(store_dir(state))) == [".1.0.json", "1.0", "current"]


def test_errors_as_json(cellad, tmp_path):
    """--json prints an error too, shaped as the daemon's replies, whether the daemon
    refused the bundle or the CLI could not make one."""
    state = cellad.state_dir
    bundle = tmp_path / "bad.cella"
    bundle.write_bytes(tar_of([("../../escaped", "file", "x")]))
    p = install(state, bundle, "--json")
    assert p.returncode == 1
    err = json.loads(p.stdout)
    assert err["error"] == "org.cella.InvalidBundle"
    assert err["parameters"]["entry"] == "../../escaped"
    assert "'..'" in err["parameters"]["message"]

    app = write_app(tmp_path / "app", "1.0")
    os.mkfifo(app / "pipe")
    p = install(state, app, "--json")
    assert p.returncode == 1
    err = json.loads(p.stdout)
    assert err["error"] == "org.cella.InvalidBundle"
    assert err["parameters"]["entry"] == "pipe"
    assert f"cannot bundle {app}: pipe: a special file" in p.stderr


def test_truncated_bundle_refused(cellad, tmp_path):
    state = cellad.state_dir
    install(state, write_app(tmp_path / "app", "1.0")).check_returncode()
    data = tar_of([("big", "file", "z" * 5000)])
    for cut in (100, 1500, 3000):
        bundle = tmp_path / f"cut{cut}.cella"
        bundle.write_bytes(data[:cut])
        p = install(state, bundle, update=True)
        assert p.returncode == 1
        assert "truncated" in p.stderr or "not a bundle" in p.stderr, p.stderr
    bundle.write_bytes(b"\x1f\x8b" + b"gzip, not tar" * 100)
    p = install(state, bundle, update=True)
    assert p.returncode == 1 and "not a bundle (an uncompressed tar" in p.stderr
    assert_installed(state, "1.0")


def test_bundle_past_the_bounds_refused(cellad, tmp_path):
    state = cellad.state_dir
    install(state, write_app(tmp_path / "app", "1.0")).check_returncode()
    bundle = tmp_path / "many.cella"
    bundle.write_bytes(tar_of([(f"f{i}", "file", "") for i in range(4097)]))
    p = install(state, bundle, update=True)
    assert p.returncode == 1 and "more than 4096 entries" in p.stderr, p.stderr
    bundle.write_bytes(tar_of([("d/" * 33 + "f", "file", "x")]))
    p = install(state, bundle, update=True)
    assert p.returncode == 1 and "nested more than 32 deep" in p.stderr, p.stderr
    assert_installed(state, "1.0")


def test_bad_signature_refused(cellad, tmp_path):
    state = cellad.state_dir
    key = keygen(tmp_path, "vendor")
    app = write_app(tmp_path / "app", "1.0")
    sign(app, key)
    install(state, app).check_returncode()
    write_app(app, "2.0")
    sign(app, key)
    (app / "lib" / "data.txt").write_text("changed after signing\n")
    bundle = tmp_path / "b.cella"
    # cella bundle refuses a folder whose signature does not hold; a tar made by hand
    # carries it to the daemon, which refuses it too.
    p = cella("bundle", app, "-o", bundle)
    assert p.returncode == 1 and "SIGNATURE does not hold" in p.stderr
    subprocess.run(["tar", "-C", app, "-cf", bundle, "."], check=True)
    p = install(state, bundle, update=True)
    assert p.returncode == 1
    assert "the signature is refused: the signature does not match the files" in p.stderr
    assert_installed(state, "1.0")


def test_bad_manifest_and_rights_refused(cellad, tmp_path):
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0", permissions=["notify", "fs.teleport"])
    p = install(state, app)
    assert p.returncode == 1
    assert "manifest.json: permissions[1]: the right 'fs.teleport' is refused" in p.stderr
    write_app(app, "beta")
    p = install(state, app)
    assert p.returncode == 1 and "version: the version 'beta' cannot be installed" in p.stderr
    assert listed(state) == {}


# --- interrupted installs ------------------------------------------------------------------

STEPS = ["extracted", "checked", "locked", "renamed", "recorded", "switched"]


@pytest.mark.parametrize("step", STEPS)
def test_killed_install_leaves_the_previous_version(tmp_path, step):
    """cellad SIGKILLs itself at the step (CELLA_TEST_STORE_KILL_AT); the next cellad
    has the version before, or the new one once current was switched, and nothing
    left that the next install trips on."""
    require_cellad()
    state = tmp_path / "state"
    app = write_app(tmp_path / "app", "1.0")
    with running_cellad(state):
        install(state, app).check_returncode()
    write_app(app, "2.0")
    env = dict(os.environ, CELLA_TEST_STORE_KILL_AT=step)
    with running_cellad(state, env=env) as d:
        p = install(state, app, update=True)
        assert p.returncode == 1
        assert d.proc.wait(timeout=60) == -signal.SIGKILL
    with running_cellad(state):
        want = "2.0" if step == "switched" else "1.0"
        assert_installed(state, want)
        assert not [n for n in os.listdir(state / "apps") if n.startswith(".staging-")]
        if want == "1.0":
            assert sorted(os.listdir(store_dir(state))) == [".1.0.json", "1.0", "current"]
            install(state, app, update=True).check_returncode()
            assert_installed(state, "2.0")


def test_daemon_killed_during_extraction(tmp_path):
    """A real SIGKILL of cellad while it writes a big file of the bundle into its
    staging folder (seen with inotify, not guessed with a sleep): the next cellad has
    the previous version, no staging folder, and installs the update."""
    require_cellad()
    state = tmp_path / "state"
    app = write_app(tmp_path / "app", "1.0")
    big = 256 << 20
    with running_cellad(state):
        install(state, app).check_returncode()
    write_app(app, "2.0")
    with open(app / "zz-big", "wb") as f:
        f.truncate(big)  # sparse here; the bundle and the store hold every byte
    bundle = tmp_path / "big.cella"
    cella("bundle", app, "-o", bundle, check=0)
    with running_cellad(state) as d:
        cli = subprocess.Popen([CELLA, "update", "--state-dir", state, bundle],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            apps = state / "apps"
            staging = wait_written(
                lambda: next((apps / n for n in os.listdir(apps) if n.startswith(".staging-")),
                             None), apps, 120, "the staging folder", pid=d.pid)
            wait_written(lambda: (staging / "zz-big").exists(), staging, 120,
                         "the big file being extracted", pid=d.pid)
            d.proc.kill()
            d.proc.wait()
            written = (staging / "zz-big").stat().st_size
            assert written < big, "extraction was over before the kill: make the file bigger"
        finally:
            out, err = cli.communicate(timeout=120)
        assert cli.returncode == 1, err
    with running_cellad(state):
        assert_installed(state, "1.0")
        assert not [n for n in os.listdir(state / "apps") if n.startswith(".staging-")]
        install(state, bundle, update=True).check_returncode()
        assert_installed(state, "2.0")
        assert (store_dir(state) / "2.0" / "zz-big").stat().st_size == big


def test_failed_install_leaves_the_previous_version(tmp_path):
    require_cellad()
    state = tmp_path / "state"
    app = write_app(tmp_path / "app", "1.0")
    env = dict(os.environ, CELLA_TEST_STORE_FAIL_AT="recorded")
    with running_cellad(state, env=env):
        p = install(state, app)
        assert p.returncode == 1 and "stopped at step 'recorded'" in p.stderr
        assert listed(state) == {}
        assert not [n for n in os.listdir(state / "apps") if n.startswith(".staging-")]


# --- identity and access --------------------------------------------------------------------


def test_an_id_held_by_another_folder_is_refused(cellad, tmp_path):
    """An id belongs to its first claimant (docs/security.md, "App identity"): an app
    run from a folder before holds it, so an install of the id is refused at once,
    naming the holder and the way out, not at the app's first start."""
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0")
    os.chmod(app / "run", 0o755)
    os.chmod(app / "lib" / "data.txt", 0o644)
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    p = install(state, app)
    assert p.returncode == 1
    assert f"the id {APP_ID} belongs to another app: the folder {app}" in p.stderr, p.stderr
    assert f"'cella forget {APP_ID}' frees it" in p.stderr
    assert listed(state) == {}
    assert not (store_dir(state) / "1.0").exists()
    cella("forget", "--state-dir", state, APP_ID, check=0)
    install(state, app).check_returncode()


def test_an_update_is_the_same_app(cellad, tmp_path):
    """Each version folder of the store is the same app to the kernel (its uid and
    data), as the store checked its signer: the updated version runs."""
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0")
    install(state, app).check_returncode()
    r = run_cella(store_dir(state) / "1.0", state_dir=state)
    assert r.code == 0 and r.out == "hello\ndata of 1.0\n", r.err
    write_app(app, "2.0", text="updated")
    install(state, app, update=True).check_returncode()
    r = run_cella(store_dir(state) / "2.0", state_dir=state)
    assert r.code == 0, r.err
    assert r.out == "updated\ndata of 2.0\n"


@pytest.fixture
def stranger():
    """A system user of its own (not in group cella), removed afterwards."""
    with system_user("cella-test-store") as pw:
        yield pw


def test_a_stranger_may_not_install_or_list(tmp_path, stranger):
    """Install, Update, Remove and ClearData need MANAGE (root, cellad's uid, group
    cella), List READ (MANAGE unless configured): a user who is none is refused by
    the daemon itself, with org.cella.PermissionDenied."""
    require_cellad()
    with traversable_tmpdir("cella-store-access-") as top:
        state = f"{top}/state"
        app = write_app(tmp_path / "app", "1.0")
        bundle = f"{top}/app.cella"
        cella("bundle", app, "-o", bundle, check=0)
        os.chmod(bundle, 0o644)

        def as_stranger():
            os.setgroups([])
            os.setgid(stranger.pw_gid)
            os.setuid(stranger.pw_uid)

        with running_cellad(state):
            for args in (["install", bundle], ["update", bundle], ["list"],
                         ["remove", APP_ID], ["clear-data", APP_ID]):
                p = subprocess.run([CELLA, args[0], "--state-dir", state, *args[1:]],
                                   capture_output=True, text=True, timeout=60,
                                   preexec_fn=as_stranger,
                                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
                assert p.returncode == 242, (args, p.stderr)  # docs/cli.md: refused by cellad
                method = {"install": "Install", "update": "Update", "list": "List",
                          "remove": "Remove", "clear-data": "ClearData"}[args[0]]
                who = ("managers and the users the daemon opens read-only methods to"
                       if method == "List" else
                       "root, the daemon's user or the group \"cella\"")
                assert f"org.cella.{method} may be called by {who} only" in p.stderr, \
                    (args, p.stderr)
            assert listed(state) == {}
            install(state, bundle).check_returncode()  # root may


def test_a_start_runs_what_current_names_even_changed_behind_cellads_back(cellad, tmp_path):
    """cellad keeps the installed version of each started app (the installed-version
    cache, docs/store.md) and checks it against the store at every start: after an
    update through cellad the next start runs the new version; with current pointed
    back at the version kept on disk by another process (cellad not told), the next
    start runs that one, and after current is removed behind its back the start is
    refused as not installed. A cache that trusted itself would start the old answer."""
    state = cellad.state_dir
    app = write_app(tmp_path / "app", "1.0")
    install(state, app).check_returncode()

    def lines():
        p = cella("logs", "--state-dir", state, "-n", "1000", APP_ID)
        return [x for x in p.stdout.splitlines() if "data of" in x]

    def run_once(version):
        """Starts the app, waits for its run to end; its count of version's lines."""
        before = len(lines())
        cellad.call("org.cella.Start", {"app": APP_ID}, timeout=60)
        wait_for("the app's run", lambda: len(lines()) > before and not cellad.call(
            "org.cella.Inspect", {"app": APP_ID}).get("running"))
        got = lines()
        assert got[-1].endswith(f"data of {version}"), got
        return sum(x.endswith(f"data of {version}") for x in got)

    assert run_once("1.0") == 1
    assert run_once("1.0") == 2  # from the cache
    write_app(app, "2.0")
    install(state, app, update=True).check_returncode()
    assert run_once("2.0") == 1
    assert run_once("2.0") == 2
    # Another process (an admin's rollback, not through cellad) points current
    # back at 1.0, kept on disk as the version 2.0 replaced.
    cur = store_dir(state) / "current"
    tmp = store_dir(state) / ".current.rollback"
    os.symlink("1.0", tmp)
    os.rename(tmp, cur)
    assert run_once("1.0") == 3
    assert f"{APP_ID}: starts its installed version" in cellad.log()
    os.unlink(cur)
    with pytest.raises(ControlError) as e:
        cellad.call("org.cella.Start", {"app": APP_ID})
    assert "not installed" in json.dumps(e.value.args), e.value.args
