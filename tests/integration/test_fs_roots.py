"""Granted user-file roots, attacked from inside a real sandbox.

tests/tools/fs-probe runs under `cella run` with the root "r" granted for reading
and writing, and tries every way out of it (directory fds, "..", symlinks, procfs,
Unix sockets next to the root, hard links, FIFOs, device nodes, files only root may
read, a 0444 file opened with O_TRUNC, a passed fd reopened for more access,
executed or named) and the legitimate operations. The roots sit where DAC alone
would not stop a walk-out: under /srv, /tmp and a 0755 home, in a world-readable
folder next to a world-readable file and a listening socket.
"""
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import CELLA, run_cella

APP = "org.test.fsprobe"
OWNER = 4321  # the root's owner: a user without a passwd entry, as on many hosts
PROBE = os.environ.get(
    "CELLA_FS_PROBE", str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "fs-probe"))

# What each escape must answer. A set: any of them (all refusals). The result of a
# probe that got through is "ok", which is in none of these.
ESCAPES = {
    # No directory fd, by any name or flag.
    "open.root-dir": {"EISDIR"},
    "open.subdir": {"EISDIR"},
    "open.subdir-dotdot": {"EISDIR"},
    "open.o-directory": {"EINVAL"},
    "open.o-path": {"EINVAL"},
    "open.raw-directory-flag": {"EINVAL"},
    # File types, checked before any open.
    "open.fifo": {"ENXIO"},
    "open.fifo-write": {"ENXIO"},
    "open.device": {"ENXIO"},
    "open.socket": {"ENXIO"},
    # The owner's permissions, never root's.
    "open.root-only-0600": {"EACCES"},
    "open.hardlink-to-outside-secret": {"EACCES"},
    "open.0444-trunc": {"EACCES"},
    "open.0444-rdonly-trunc": {"EACCES"},
    "open.in-root-owned-0700-dir": {"EACCES"},
    "open.create-in-root-owned-dir": {"EACCES"},
    # Paths out.
    "open.dotdot": {"EXDEV"},
    "open.absolute": {"EINVAL", "EXDEV"},
    "open.symlink-root": {"EXDEV"},
    "open.symlink-up": {"EXDEV"},
    "open.symlink-abs-file": {"EXDEV"},
    "open.create-through-symlink-out": {"EXDEV"},
    "list.dotdot": {"EXDEV"},
    "list.symlink-root": {"EXDEV"},
    "list.proc-magic": {"EXDEV"},
    "stat.dotdot": {"EXDEV"},
    "stat.symlink-up": {"EXDEV"},
    "mkdir.dotdot": {"EXDEV"},
    "mkdir.symlink-up": {"EXDEV"},
    "mkdir.in-root-owned-dir": {"EACCES"},
    "rename.out": {"EXDEV"},
    "rename.in": {"EXDEV"},
    "rename.via-symlink": {"EXDEV"},
    "unlink.dotdot": {"EXDEV"},
    "unlink.via-symlink": {"EXDEV"},
    "unlink.root-owned": {"EACCES"},
    # From the fd of a regular file the app was given.
    "fd.openat-dotdot": {"ENOTDIR"},
    "fd.fchdir": {"ENOTDIR"},
    "fd.proc-fd-dotdot": {"ENOTDIR"},
    "fd.connect-via-proc": {"ENOTDIR"},
    "fd.connect-relative": {"ENOENT"},
    "fd.bind-via-proc": {"ENOTDIR"},
    "fd.reopen-rdwr": {"EACCES"},
    "fd.reopen-trunc": {"EROFS"},  # the mount refuses before the file's bits
    "fd.linkat-proc-tmp": {"EXDEV"},
    "fd.linkat-proc-data": {"EXDEV"},
    "fd.linkat-empty-path": {"ENOENT", "EPERM"},
    "fd.fchmod": {"EROFS"},  # a read-only fd's mount; passed for writing, below
    "fd.fchown": {"EROFS"},
    # The mount a passed fd lives on (a clone of the root: nosuid, nodev, noexec,
    # read-only for a read-only open). A 0666 file passed read-only: the app's own
    # uid's check would let a reopen through /proc/self/fd/N write; the mount does not.
    "fd.world-reopen-rdwr": {"EROFS"},
    "fd.world-reopen-wronly": {"EROFS"},
    "fd.world-reopen-trunc": {"EROFS"},
    "fd.world-reopen-append": {"EROFS"},
    "fd.world-truncate": {"EROFS"},
    "fd.world-utimes": {"EROFS"},
    # A 0777 program passed read-only or for writing: never run, never mapped to run.
    "fd.fexecve": {"EACCES"},
    "fd.execveat": {"EACCES"},
    "fd.execve-proc": {"EACCES"},
    "fd.mmap-exec": {"EPERM"},
    "fd.rw-execveat": {"EACCES"},
    # Passed for writing: the app does not own the file.
    "fd.rw-fchmod": {"EPERM"},
    "fd.rw-fchown": {"EPERM"},
    # Passed write-only, read back through a reopen: the file's bits for the app's
    # uid decide (no mount flag stops a read); 0600 gives it nothing.
    "fd.wronly-reopen-read-0600": {"EACCES"},
}

PLACES = {"srv": "/srv", "tmp": "/tmp", "home": "/home"}


class Planted:
    """A world-readable folder (base) holding the root r and things beside it."""

    def __init__(self, place, owner):
        self.base = Path(tempfile.mkdtemp(prefix="cella-fs-", dir=place))
        os.chmod(self.base, 0o755)
        b, r = self.base, self.base / "r"
        self.root = r
        (b / "outside.txt").write_text("outside\n")
        os.chmod(b / "outside.txt", 0o666)
        (b / "outside_secret").write_text("root only, outside\n")
        os.chmod(b / "outside_secret", 0o600)
        self.host_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.host_sock.bind(str(b / "host.sock"))
        os.chmod(b / "host.sock", 0o777)
        self.host_sock.listen(1)

        r.mkdir(mode=0o755)
        self.file(r / "hello.txt", "hello", owner, 0o644)
        self.file(r / "secret", "root only", 0, 0o600)
        self.file(r / "ro.txt", "keep", owner, 0o444)
        self.file(r / "world.txt", "anyone may write me", owner, 0o666)
        self.file(r / "private-w", "owner only", owner, 0o600)
        shutil.copy("/bin/true", r / "tool")
        os.chown(r / "tool", owner, owner)
        os.chmod(r / "tool", 0o777)  # anyone may run it, or write it
        (r / "sub").mkdir()
        for i in range(25):
            self.file(r / "sub" / f"f{i:02}", "x", owner, 0o644)
        os.chown(r / "sub", owner, owner)
        os.mkfifo(r / "fifo", 0o666)
        os.chown(r / "fifo", owner, owner)
        os.mknod(r / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(r / "sock"))
        os.symlink("/", r / "link-root")
        os.symlink("../../../../../../..", r / "link-up")
        os.symlink(str(b / "outside.txt"), r / "link-outside")
        os.symlink(str(b / "new-outside"), r / "link-newout")
        os.link(b / "outside_secret", r / "hl-secret")
        (r / "rootdir").mkdir(mode=0o700)
        self.file(r / "rootdir" / "inside.txt", "in", 0, 0o644)
        os.chown(r, owner, owner)
        self.before = self.snapshot()

    @staticmethod
    def file(path, text, uid, mode):
        path.write_text(text)
        os.chown(path, uid, uid)
        os.chmod(path, mode)

    def snapshot(self):
        """Name -> (mode, uid, size, content of files) of everything outside r and of
        the planted files in r that must never change."""
        snap = {}
        for p in [*self.base.iterdir(), *(self.root / n for n in
                                          ("secret", "ro.txt", "rootdir/inside.txt",
                                           "world.txt", "private-w", "tool"))]:
            if p == self.root:
                continue
            st = os.lstat(p)
            text = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            snap[str(p)] = (st.st_mode, st.st_uid, st.st_size, text)
        return snap

    def close(self):
        self.host_sock.close()
        self.sock.close()
        shutil.rmtree(self.base)


@pytest.fixture
def probe_app(make_app):
    if not os.path.exists(PROBE):
        pytest.fail(f"{PROBE} is not built: build first (tests/run-all does)")
    app = make_app(APP, entry="fs-probe", permissions=["fs.read:r", "fs.write:r"])
    shutil.copy(PROBE, app / "fs-probe")
    os.chmod(app / "fs-probe", 0o755)
    return app


def grant(state, app, right):
    p = subprocess.run([CELLA, "grant", "--state-dir", str(state), "--app-dir", str(app), APP, right],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def run_probe(state, app, root, what):
    for right in ("fs.read:r", "fs.write:r"):
        grant(state, app, right)
    r = run_cella("--root", f"r={root}", app, "--", what, state_dir=state, timeout=120)
    assert r.code == 0 and "fs-probe: done" in r.out, r.out + r.err
    return dict(l.split("=", 1) for l in r.out.splitlines() if "=" in l)


@pytest.fixture(params=sorted(PLACES))
def planted(request):
    place = PLACES[request.param]
    if not os.path.isdir(place):
        pytest.skip(f"{place} does not exist on this host")
    p = Planted(place, OWNER)
    yield p
    p.close()


def assert_escapes_refused(got, planted):
    missing = [k for k in ESCAPES if k not in got]
    assert not missing, f"probes that did not run: {missing}\n{got}"
    wrong = {k: got[k] for k, want in ESCAPES.items() if got[k] not in want}
    assert not wrong, f"escapes not refused as expected: {wrong}"
    assert got["open.hello-for-fd-tests"] == "ok", got
    assert got["open.world-for-fd-tests"] == "ok", got
    assert got["open.tool-for-fd-tests"] == "ok", got
    # The passed fd names its file beneath the root alone: no host path.
    assert got["fd.readlink"] == "ok:/world.txt", got
    assert str(planted.base) not in got["fd.readlink"], got
    # Nothing outside the root, nor the files the owner may not touch, changed.
    assert planted.snapshot() == planted.before
    assert not (planted.base / "made-outside").exists()
    assert not (planted.base / "moved-out").exists()
    assert not (planted.base / "new-outside").exists()
    assert (planted.root / "hello.txt").read_text() == "hello"


def test_every_walk_out_of_a_root_is_refused(state, probe_app, planted):
    got = run_probe(state, probe_app, planted.root, "escapes")
    assert_escapes_refused(got, planted)
    # What remains (docs/security.md, "Not covered yet"): a file passed write-only
    # whose "other" bits allow reading is read back through a reopen. Asserted so the
    # documentation stays true: if this starts failing, update it.
    assert got["fd.wronly-reopen-read-0644"] == "ok", got


def test_the_owners_operations_work(state, probe_app, planted):
    got = run_probe(state, probe_app, planted.root, "works")
    assert got["read.hello"] == "ok:hello", got
    for k in ("create", "create.kept", "mkdir", "rename", "unlink.file", "unlink.dir"):
        assert got[k] == "ok", (k, got)
    assert got["stat"] == "ok:1,3", got  # a regular file of 3 bytes
    assert got["list"] == "ok:25,3", got  # 25 entries in pages of 10
    kept = planted.root / "kept.txt"
    st = os.stat(kept)
    # Made as the root's owner: theirs, no execute bits (mode 0755 asked).
    assert (st.st_uid, st.st_gid) == (OWNER, OWNER)
    assert stat.S_IMODE(st.st_mode) & 0o111 == 0
    assert kept.read_text() == "kept"
    assert not (planted.root / "made").exists()


def test_a_root_owned_by_root_lends_no_root_powers(state, probe_app, tmp_path):
    """A root folder made by root (as under /srv) is acted on as nobody: what anyone
    may read, nothing more; no writes where only root may write."""
    p = Planted("/srv" if os.path.isdir("/srv") else "/tmp", 0)
    try:
        got = run_probe(state, probe_app, p.root, "all")
        assert_escapes_refused(got, p)
        assert got["read.hello"] == "ok:hello", got
        assert got["list"] == "ok:25,3", got
        for k in ("create", "create.kept", "mkdir"):
            assert got[k] == "EACCES", (k, got)
        assert not (p.root / "kept.txt").exists()
    finally:
        p.close()
