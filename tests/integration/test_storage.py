"""Each app's /data is an ext4 file system of its own, limits.storage in size, in a
sparse image under the state directory (docs/security.md "Storage",
docs/manifest.md "limits"): a write past the limit fails with ENOSPC inside the
app, and nothing else (other apps, the host) loses room. What the app wrote stays
across restarts; an earlier cella's /data directory is migrated with every file."""
import hashlib
import json
import os
import signal
import stat
import subprocess
import textwrap
import time

import pytest

from conftest import CELLA, boot_cella, mounts_below, run_cella, start_cella, which

MiB = 1 << 20

# Writes /data/marker, then zeros into /data/fill until the file system is full;
# reports dd's status and error, the size reached and how /data is mounted.
FILL = r"""
    echo "written before the limit" > /data/marker
    dd if=/dev/zero of=/data/fill bs=64k count=1000000 2>/tmp/dd.err
    echo "dd=$?"
    grep -o "No space left on device" /tmp/dd.err || cat /tmp/dd.err
    echo "size=$(stat -c %s /data/fill)"
    echo "mountinfo=$(grep ' /data ' /proc/self/mountinfo)"
"""


def field(out, name):
    for line in out.splitlines():
        if line.startswith(name + "="):
            return line[len(name) + 1:]
    raise AssertionError(f"no {name}= in {out!r}")


def app_dir(state, app_id):
    return state / "apps" / app_id


def loops_backing(image):
    """Loop devices whose backing file is image (sysfs)."""
    image = os.path.realpath(image)
    found = []
    for dev in os.listdir("/sys/block"):
        p = f"/sys/block/{dev}/loop/backing_file"
        try:
            with open(p) as f:
                if f.read().strip() == image:
                    found.append(dev)
        except (FileNotFoundError, PermissionError):
            pass
    return found


def umount_and_wait_for_loops_to_go(mountpoint, image, timeout=30):
    """Unmounts mountpoint and waits until no loop device backs image: the kernel
    detaches it (autoclear) when the last mount of its file system goes, which for a
    sandbox that just died may be a little after its processes. Waits on the
    kernel's uevents (the loop device's "change"), not on a sleep."""
    import select
    import socket
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)  # NETLINK_KOBJECT_UEVENT
    try:
        s.bind((0, 1))  # the kernel's multicast group
        subprocess.run(["umount", str(mountpoint)], check=True)
        deadline = time.monotonic() + timeout
        while loops_backing(image):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            s.recv(65536)
    finally:
        s.close()
    return loops_backing(image)


@pytest.mark.twin
def test_a_write_past_the_limit_fails_with_enospc_and_what_was_written_stays(make_app, state):
    app = make_app("org.test.fill", FILL + "\n", limits={"storage": "16M"})
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    # dd got ENOSPC (exit status 1), not SIGXFSZ (a shell's 153): no RLIMIT_FSIZE now.
    assert field(r.out, "dd") == "1", r.out
    assert "No space left on device" in r.out
    size = int(field(r.out, "size"))
    assert 16 * MiB * 0.99 <= size <= 16 * MiB * 1.01, size
    # The jail shows the file system's own root, never the host path of /data.
    mi = field(r.out, "mountinfo")
    assert mi.split()[3] == "/" and " ext4 " in mi, mi
    assert str(state) not in mi
    # The host gave the app its image and nothing more: the sparse file never grows
    # past its size, which is the limit plus ext4's overhead.
    img = app_dir(state, "org.test.fill") / "data.img"
    st = img.stat()
    assert st.st_size <= 16 * MiB + 8 * MiB, st.st_size
    assert st.st_blocks * 512 <= st.st_size
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0

    # A new run sees everything, can free room and use it again.
    app2 = make_app("org.test.fill", textwrap.dedent(r"""
        cat /data/marker
        echo "size=$(stat -c %s /data/fill)"
        rm /data/fill
        dd if=/dev/zero of=/data/again bs=1M count=12 2>/dev/null && echo "again=ok"
    """), limits={"storage": "16M"})
    r = run_cella(app2, state_dir=state)
    assert r.code == 0, r.err
    assert "written before the limit" in r.out
    assert int(field(r.out, "size")) == size
    assert field(r.out, "again") == "ok"


@pytest.mark.twin
def test_each_app_has_its_own_quota_under_boot(make_app, tmp_path, state):
    make_app("org.test.small", FILL + "\n", limits={"storage": "8M"})
    make_app("org.test.large", textwrap.dedent(r"""
        dd if=/dev/zero of=/data/big bs=1M count=24 2>/tmp/dd.err; echo "dd=$?"
        echo "size=$(stat -c %s /data/big)"
    """), limits={"storage": "32M"})
    p, status = boot_cella(tmp_path, state)
    assert p.returncode == 0, p.stderr
    small = (state / "logs" / "org.test.small.log").read_text()
    large = (state / "logs" / "org.test.large.log").read_text()
    assert "No space left on device" in small
    assert 8 * MiB * 0.99 <= int(field(small, "size")) <= 8 * MiB * 1.01
    assert field(large, "dd") == "0", large
    assert int(field(large, "size")) == 24 * MiB


def lua_member(root, app_id, source, **manifest):
    d = root / app_id
    d.mkdir(parents=True)
    m = {"id": app_id, "runtime": "lua", "entry": "main.lua", "isolation": "packed",
         "group": "store"}
    m.update(manifest)
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "main.lua").write_text(textwrap.dedent(source))
    for p in (root, d):
        os.chmod(p, 0o755)
    os.chmod(d / "main.lua", 0o644)
    return d


@pytest.mark.twin
def test_a_packed_group_member_hits_its_own_quota_alone(tmp_path, state):
    root = tmp_path / "apps"
    chunk = "local chunk = string.rep('x', 256 * 1024)\n"
    lua_member(root, "org.test.packfull", chunk + """
        local fs = require "cella.fs"
        local n, ok, err = 0, true, nil
        while ok and n < 400 do
            ok, err = pcall(fs.append, "fill", chunk)
            if ok then n = n + 1 end
        end
        print("chunks", n)
        print("error", err)
    """, limits={"storage": "8M"})
    lua_member(root, "org.test.packroom", chunk + """
        local fs = require "cella.fs"
        local n = 0
        for i = 1, 64 do fs.append("fill", chunk); n = n + 1 end
        print("wrote", n)
    """, limits={"storage": "32M"})
    p, status = boot_cella(root, state)
    assert p.returncode == 0, p.stderr
    full = (state / "logs" / "org.test.packfull.log").read_text()
    room = (state / "logs" / "org.test.packroom.log").read_text()
    n = int(full.split("chunks")[1].split()[0])
    # 8 MiB of 256 KiB chunks: about 32, never the 400 asked for.
    assert 31 <= n <= 32, full
    assert "No space left on device" in full, full
    # The other member wrote its 16 MiB meanwhile.
    assert "wrote\t64" in room, room
    # Each member's /data is its own mount at its own size.
    for app_id, limit in (("org.test.packfull", 8), ("org.test.packroom", 32)):
        img = app_dir(state, app_id) / "data.img"
        assert limit * MiB <= img.stat().st_size <= limit * MiB + 8 * MiB


@pytest.mark.twin
def test_sqlite3_sees_a_full_disk_not_a_signal(make_app, state):
    if not which("sqlite3"):
        pytest.skip("sqlite3 is not installed")
    app = make_app("org.test.sqlfull", textwrap.dedent("""
        sqlite3 /data/n.db "CREATE TABLE t(b BLOB);
          WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)
          INSERT INTO t SELECT randomblob(100000) FROM c;" 2>&1
        echo "sqlite=$?"
        sqlite3 /data/n.db "SELECT count(*) FROM t" 2>&1
    """), limits={"storage": "8M"})
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert "database or disk is full" in r.out, r.out
    # SQLITE_FULL (13) as its exit status, not a shell's 153 (killed by SIGXFSZ).
    assert field(r.out, "sqlite") == "13", r.out
    # The failed transaction rolled back; the database still opens.
    assert r.out.strip().splitlines()[-1] == "0", r.out


def make_old_data(data, uid):
    """An earlier cella's /data: a directory with every kind of entry, owned by the app."""
    (data / "sub" / "deep").mkdir(parents=True)
    (data / "notes.txt").write_text("my notes\n")
    (data / "sub" / "random.bin").write_bytes(os.urandom(3 * MiB + 123))
    (data / "sub" / "deep" / "empty").write_bytes(b"")
    with open(data / "sparse", "wb") as f:
        f.truncate(64 * MiB)  # a hole: never more than its blocks
        f.write(b"head")
    os.link(data / "notes.txt", data / "hardlink.txt")
    os.symlink("notes.txt", data / "link")
    os.mkfifo(data / "fifo")
    os.chmod(data / "notes.txt", 0o640)
    os.setxattr(data / "notes.txt", "user.colour", b"blue")
    os.utime(data / "sub" / "random.bin", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    for dirpath, dirs, files in os.walk(data):
        for n in dirs + files:
            os.lchown(os.path.join(dirpath, n), uid, uid)
    os.chown(data, uid, uid)
    os.chmod(data, 0o700)


def listing(root):
    """{path: (type, mode, size, sha256 or link target, nlink)} of a tree, seen from the host."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if rel == "lost+found":
                continue
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    what = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = ""
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
            xattrs = {} if stat.S_ISLNK(st.st_mode) or stat.S_ISFIFO(st.st_mode) else {
                k: os.getxattr(p, k) for k in os.listxattr(p) if k.startswith("user.")}
            # mke2fs -d (e2fsprogs 1.47) keeps times to the second.
            mtime = st.st_mtime_ns // 10**9 if stat.S_ISREG(st.st_mode) else 0
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), size, what, st.st_nlink,
                        st.st_uid, xattrs, mtime)
    return out


HASHES = "cd /data && find . -type f | sort | xargs sha256sum && readlink link && stat -c %h notes.txt\n"


def first_run(make_app, state, app_id):
    """Runs the app once (so it has a uid and an image), then takes the image away as
    if an earlier cella had kept /data as a plain directory. Returns (app, uid)."""
    r = run_cella(make_app(app_id, "true\n"), state_dir=state)
    assert r.code == 0, r.err
    uid = r.event("started")["uid"]
    app = make_app(app_id, HASHES, limits={"storage": "16M"})
    d = app_dir(state, app_id)
    for mp in mounts_below(d):
        subprocess.run(["umount", mp], check=True)
    for n in ("data.img", "data.loop"):
        (d / n).unlink()
    return app, uid


@pytest.mark.twin
def test_an_old_data_directory_is_migrated_with_every_file(make_app, state):
    app, uid = first_run(make_app, state, "org.test.migrate")
    d = app_dir(state, "org.test.migrate")
    make_old_data(d / "data", uid)
    before = listing(d / "data")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert "moved its /data" in r.err
    after = listing(d / "data")  # the mounted image, seen from the host
    assert after == before
    assert not (d / "data.old").exists()
    # The app reads it all as its own.
    assert "my notes" not in r.out  # hashes, not contents
    assert hashlib.sha256(b"my notes\n").hexdigest() in r.out
    assert r.out.strip().splitlines()[-2:] == ["notes.txt", "2"], r.out
    # The image is still sparse: the 64 MiB hole was not written out.
    img = (d / "data.img").stat()
    assert img.st_blocks * 512 < 16 * MiB


@pytest.mark.twin
def test_a_migration_cut_short_resumes_without_losing_a_file(make_app, state):
    app, uid = first_run(make_app, state, "org.test.resume")
    d = app_dir(state, "org.test.resume")
    # Cut after step 1: data moved aside as data.old, no image yet.
    make_old_data(d / "data", uid)
    before = listing(d / "data")
    os.rename(d / "data", d / "data.old")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert listing(d / "data") == before
    assert not (d / "data.old").exists()
    # Cut after step 2: the image is complete, data.old not yet removed (and
    # nothing mounted yet: that comes after).
    for mp in mounts_below(d):
        subprocess.run(["umount", mp], check=True)
    (d / "data.old").mkdir()
    (d / "data.old" / "notes.txt").write_text("stale copy\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert not (d / "data.old").exists()
    assert listing(d / "data") == before


def set_storage(app, app_id, limit):
    (app / "manifest.json").write_text(json.dumps(
        {"id": app_id, "runtime": "native", "entry": "main.sh", "limits": {"storage": limit}}))


@pytest.mark.twin
def test_a_new_limit_resizes_data_and_keeps_what_it_holds(make_app, state):
    app = make_app("org.test.grow", textwrap.dedent("""
        [ -e /data/k ] || { echo keep > /data/k; head -c 20000000 /dev/urandom > /data/r; }
        cat /data/k; sha256sum < /data/r; df -k /data | tail -1
    """), limits={"storage": "16M"})
    sizes = []
    for limit in ("16M", "64M", "8M", "32M"):
        set_storage(app, "org.test.grow", limit)
        r = run_cella(app, state_dir=state)
        assert r.code == 0, r.err
        lines = r.out.splitlines()
        assert lines[0] == "keep", r.out
        sizes.append((int(lines[-1].split()[1]) * 1024, lines[1], r.err))
    # The first run: 16M holds nothing of 20 MB (head failed), so no hash check there.
    # 16M -> 64M: grown (online, or offline when CAP_SYS_RESOURCE is missing).
    assert sizes[1][0] >= 64 * MiB > sizes[0][0] * 2, sizes
    # 64M -> 8M: less than the 20 MB it holds: refused, /data keeps its size and data.
    assert sizes[2][0] == sizes[1][0] and "keeps" in sizes[2][2], sizes[2][2]
    # 64M -> 32M: it fits, so it shrinks (offline: nothing else has it mounted).
    assert 32 * MiB <= sizes[3][0] < 40 * MiB, sizes
    assert sizes[1][1] == sizes[2][1] == sizes[3][1]
    # Nothing of e2fsck's (lost+found) appeared in the app's /data.
    assert sorted(os.listdir(app_dir(state, "org.test.grow") / "data")) == ["k", "r"]


@pytest.mark.twin
def test_no_loop_device_or_mount_is_left_behind(make_app, state):
    app = make_app("org.test.leak", "echo up; exec sleep 1000\n", limits={"storage": "16M"})
    img = app_dir(state, "org.test.leak") / "data.img"
    # A cella killed with SIGKILL while its app runs: the app goes with it
    # (PR_SET_PDEATHSIG) and only the one mount /data keeps between runs stays.
    p, started, status = start_cella(app, state)
    status.close()
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()
    p.stderr.close()
    assert len(loops_backing(img)) == 1
    assert mounts_below(app_dir(state, "org.test.leak")) == [str(app_dir(state, "org.test.leak") / "data")]
    # The next start reuses it rather than attaching a second loop device.
    r = run_cella(make_app("org.test.leak", "echo again\n", limits={"storage": "16M"}),
                  state_dir=state)
    assert r.code == 0 and r.out == "again\n", r.err
    assert len(loops_backing(img)) == 1
    # Unmounting it releases the loop device (LO_FLAGS_AUTOCLEAR) once the killed
    # sandbox's mount namespace is gone too.
    assert umount_and_wait_for_loops_to_go(app_dir(state, "org.test.leak") / "data", img) == []


def run_without_loop_devices(app, state):
    """cella run in a mount namespace whose /dev has no loop devices (as in many
    containers): a tmpfs with binds of the few nodes cella and the jail use."""
    nodes = " ".join(["null", "zero", "full", "random", "urandom"])
    script = (f"d=$(mktemp -d) && mount -t tmpfs -o mode=755 tmpfs $d && for n in {nodes}; do "
              f"touch $d/$n && mount --bind /dev/$n $d/$n || exit 99; done && "
              f"mount --move $d /dev && [ ! -e /dev/loop-control ] || exit 98; "
              f"exec {CELLA} run --state-dir {state} {app}")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)


# Not a twin: it hides the loop devices in the client's mount namespace (unshare); the run's kernel runs in cellad's, which has them.
def test_without_loop_devices_data_stays_a_directory_and_an_image_is_never_bypassed(make_app, state):
    if not which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    app = make_app("org.test.noloop", 'echo hi > /data/f; cat /data/f; ulimit -f\n',
                   limits={"storage": "1M"})
    p = run_without_loop_devices(app, state)
    assert p.returncode == 0, p.stderr
    # A plain directory, each file bounded by RLIMIT_FSIZE (1 MiB in 512-byte blocks), and a warning.
    assert p.stdout.splitlines() == ["hi", "2048"], p.stdout
    assert "no loop devices here" in p.stderr
    d = app_dir(state, "org.test.noloop")
    assert not (d / "data.img").exists() and (d / "data" / "f").read_text() == "hi\n"
    # With loop devices it migrates; after that, a start without them fails
    # rather than hand the app an empty directory in place of its data.
    r = run_cella(app, state_dir=state)
    assert r.code == 0 and r.out == "hi\nunlimited\n", r.err  # no RLIMIT_FSIZE now
    assert "more than limits.storage" not in r.err
    assert (d / "data.img").exists()
    subprocess.run(["umount", str(d / "data")], check=True)
    p = run_without_loop_devices(app, state)
    assert p.returncode != 0
    assert "loop-control" in p.stderr, p.stderr
    assert list((d / "data").iterdir()) == []


@pytest.mark.twin
def test_two_kernels_share_one_file_system_even_across_mount_namespaces(make_app, state):
    if not which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    stay = make_app("org.test.shared", 'echo first >> /data/log; echo ready; exec sleep 1000\n',
                    limits={"storage": "16M"})
    img = app_dir(state, "org.test.shared") / "data.img"
    data = app_dir(state, "org.test.shared") / "data"
    # One kernel keeps the app running...
    p, started, status = start_cella(stay, state)
    try:
        assert p.stdout.readline() == "ready\n"  # it has written its line
        # The same app, updated (an app id is bound to its folder): a new entry.
        app = make_app("org.test.shared", 'echo second >> /data/log; cat /data/log\n',
                       limits={"storage": "16M"})
        # ...a second one, in a mount namespace where /data is not mounted (a
        # container, a systemd unit with its own mounts), must not attach the image
        # to a second loop device: it finds the first (data.loop) and shares its
        # super block, so both see the same files.
        p2 = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                             f"umount {data} && exec {CELLA} run --state-dir {state} {app}"],
                            capture_output=True, text=True, timeout=60)
        assert p2.returncode == 0, p2.stderr
        assert p2.stdout == "first\nsecond\n", p2.stdout
        assert len(loops_backing(img)) == 1
        assert (data / "log").read_text() == "first\nsecond\n"
    finally:
        status.close()
        p.terminate()
        p.communicate(timeout=30)
