"""cellad's cgroup bases and tag (docs/daemon.md "Cgroups", "The tag", "Leftover
bases"): a bare cellad runs in a base "cellad-<tag>" made beside the cgroup it was
started in, named after a random tag kept in its state directory (cellad.tag), not
after the directory's inode, which a later directory may reuse; the tag of a state
directory an earlier cellad (of the naming by inode) used is kept, so that its apps
are adopted; and a cellad at its start removes the empty bases of other cellads
whose state directory is gone, never a base a cellad runs in.

Real cellads, real cgroups; every wait is on an event with a deadline (a READY line,
a pidfd, a process's end)."""
import os
import re
import select
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from daemon_util import (Cellad, alive, cellad_bases, remove_bases, require_cellad,
                         state_tag, wait_for)

MARK = "trusted.cella.state_dir"


def _identity(path):
    st = os.stat(path)
    return f"d{st.st_dev:x}i{st.st_ino:x}"


def _state(tmp_path, name):
    s = tmp_path / name
    s.mkdir(mode=0o700)
    return s


def _keepers(state):
    """Pids of the cella-keeper processes serving state."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"cella-keeper") and str(state).encode() in cmd and \
                alive(int(d.name)):
            out.append(int(d.name))
    return out


def _sigkill_and_end_keeper(d):
    """SIGKILLs cellad d, then ends its keeper (SIGTERM: a keeper with no cellad kills
    what it holds and exits), waiting on their pidfds: its base is then empty."""
    bases = cellad_bases(d.pid)
    d.kill()
    for k in _keepers(d.state_dir):
        try:
            fd = os.pidfd_open(k)
        except ProcessLookupError:
            continue  # a keeper that holds no app ends with its last cellad
        try:
            signal.pidfd_send_signal(fd, signal.SIGTERM)
            assert select.select([fd], [], [], 60)[0], f"keeper {k} did not exit"
        finally:
            os.close(fd)
    for b in bases:
        wait_for(f"{b} empty", lambda b=b: not _procs(b))
    return bases


def _procs(base):
    pids = set()
    for root, _, _ in os.walk(base):
        try:
            pids |= {int(p) for p in Path(root, "cgroup.procs").read_text().split()}
        except FileNotFoundError:
            pass
    return pids


def test_tag_is_random_kept_and_marks_the_base(tmp_path):
    """The tag: "r" and 16 hex digits, written once as "<tag> d<dev>i<ino>", the same
    at the next start; the base is cellad-<tag> in every hierarchy, and carries the
    state directory's real path (trusted xattr) for other cellads' sweeps."""
    require_cellad()
    state = _state(tmp_path, "state")
    with Cellad(state, "--warm", "0").start() as d:
        tag = state_tag(state)
        assert re.fullmatch(r"r[0-9a-f]{16}", tag), tag
        assert (state / "cellad.tag").read_text() == f"{tag} {_identity(state)}\n"
        bases = cellad_bases(d.pid)
        assert bases, Path(f"/proc/{d.pid}/cgroup").read_text()
        for b in bases:
            assert b.name == f"cellad-{tag}", b
            assert os.getxattr(b, MARK).decode() == os.path.realpath(state), b
        assert d.stop() == 0
    assert not any(b.exists() for b in bases), "an orderly stop removes the base"
    with Cellad(state, "--warm", "0").start() as d:
        assert state_tag(state) == tag
        assert {b.name for b in cellad_bases(d.pid)} == {f"cellad-{tag}"}
        assert d.stop() == 0


def test_a_reused_inode_or_a_copy_gets_a_tag_of_its_own(tmp_path):
    """A state directory removed and made again (where the file system may give the
    new one the old one's inode: the naming by inode then shared the old one's
    cgroups), or a copy of one with its tag file, gets a new tag."""
    require_cellad()
    state = _state(tmp_path, "state")
    with Cellad(state, "--warm", "0").start() as d:
        first, first_id = state_tag(state), _identity(state)
        assert d.stop() == 0
    shutil.rmtree(state)
    state = _state(tmp_path, "state")
    with Cellad(state, "--warm", "0").start() as d:
        again = state_tag(state)
        assert again != first, (first, _identity(state), first_id)
        assert d.stop() == 0
    # A copy: the tag file came along, made for another directory.
    copy = _state(tmp_path, "copy")
    shutil.copy(state / "cellad.tag", copy / "cellad.tag")
    with Cellad(copy, "--warm", "0").start() as d:
        assert state_tag(copy) not in (again, first)
        assert "was made for another directory" in d.log()
        assert d.stop() == 0


@pytest.mark.parametrize("content", ["garbage\n", "r1 d1i2", "1abc d1i2\n", "r1 d1i2\nr2 d1i2\n",
                                     "r-1 d1i2\n", ""])
def test_a_bad_tag_file_is_refused_naming_it(tmp_path, content):
    """A tag file not so shaped stops cellad's start with an error naming the file
    and its form (never a crash, never a silently new tag: apps running under the
    old one would not be adopted)."""
    require_cellad()
    state = _state(tmp_path, "state")
    (state / "cellad.tag").write_text(content)
    d = Cellad(state, "--warm", "0")
    try:
        d.start(ready=False)
        code = d.proc.wait(timeout=60)
        assert code == 1, (code, d.log())
        assert f"{state}/cellad.tag: not a cgroup tag" in d.log(), d.log()
    finally:
        d.close()
    assert (state / "cellad.tag").read_text() == content


@pytest.mark.parametrize("how", ["writable", "other-owner", "symlink"])
def test_a_tag_file_someone_else_could_write_is_refused(tmp_path, how):
    """As every file cellad believes in its state directory: a tag file writable by
    others, owned by another user, or a symlink is refused, named, never used."""
    require_cellad()
    state = _state(tmp_path, "state")
    tag = state / "cellad.tag"
    line = f"r0123456789abcdef {_identity(state)}\n"
    if how == "symlink":
        (tmp_path / "elsewhere").write_text(line)
        tag.symlink_to(tmp_path / "elsewhere")
    else:
        tag.write_text(line)
        if how == "writable":
            tag.chmod(0o666)
        else:
            os.chown(tag, 65534, 65534)
    d = Cellad(state, "--warm", "0")
    try:
        d.start(ready=False)
        assert d.proc.wait(timeout=60) == 1, d.log()
        assert f"{state}/cellad.tag" in d.log(), d.log()
    finally:
        d.close()


def test_apps_of_a_cellad_of_the_naming_by_inode_are_adopted(tmp_path):
    """Migration: a state directory an earlier cellad ran on (its keeper's lock is
    there) with no tag file keeps the naming by inode, "d<dev>i<ino>": the apps that
    cellad left running (leaves "<id>@d<dev>i<ino>" in base "cellad-d<dev>i<ino>",
    held by its keeper) are adopted by the new one, same pids. The earlier cellad is
    played by this cellad with a tag file saying that very naming, removed once it
    is SIGKILLed: what it leaves is what a cellad of before the tag file leaves."""
    require_cellad()
    from test_adopt import install, ok_calls, ps
    state = _state(tmp_path, "state")
    legacy = _identity(state)
    app = "org.cella.test.sweep.legacy"
    install(state, app)
    (state / "cellad.tag").write_text(f"{legacy} {legacy}\n")
    d1 = Cellad(state, "--warm", "0").start()
    d2 = None
    try:
        wait_for("the app making calls", lambda: len(ok_calls(state, app)) >= 5)
        before = ps(state)[app]
        assert {b.name for b in cellad_bases(d1.pid)} == {f"cellad-{legacy}"}
        leaf = d1.call("org.cella.Inspect", {"app": app})["cgroup_paths"]
        assert all(p.endswith(f"@{legacy}") for p in leaf.values()), leaf
        d1.kill()
        (state / "cellad.tag").unlink()
        assert (state / "run" / "keeper.lock").exists()
        assert alive(before["pid"])
        d2 = Cellad(state, "--warm", "0").start()
        assert "adopted 1 app(s) left running by an earlier cellad" in d2.log(), d2.log()
        assert ps(state)[app]["pid"] == before["pid"]
        assert (state / "cellad.tag").read_text() == f"{legacy} {legacy}\n"
        assert {b.name for b in cellad_bases(d2.pid)} == {f"cellad-{legacy}"}
        assert d2.stop() == 0
    finally:
        d1.close()
        if d2:
            d2.close()


def _legacy_base(parent, name, with_leaf=True):
    b = parent / name
    (b / "supervisor").mkdir(parents=True)
    if with_leaf:
        (b / "cella" / f"org.cella.x@{name[len('cellad-'):]}").mkdir(parents=True)
    return b


def test_sweep_removes_the_empty_bases_of_gone_state_dirs_only(tmp_path):
    """At its start a cellad removes, beside its own base, in every hierarchy: the
    empty base of a cellad whose state directory is gone (SIGKILLed and never started
    again), children first (the warm sandboxes' leaves it left); an empty unmarked
    base of the naming by inode. It keeps: the base of a live cellad whose state
    directory was moved away (not empty: the cellad is in it); the empty base of a
    SIGKILLed cellad whose state directory is still there (the next cellad there
    takes it); an unmarked base of the naming by inode that holds a process."""
    require_cellad()
    gone = Cellad(_state(tmp_path, "gone")).start()  # with its warm sandboxes
    live = Cellad(_state(tmp_path, "live"), "--warm", "0").start()
    kept = Cellad(_state(tmp_path, "kept"), "--warm", "0").start()
    sleeper = None
    old_empty, old_busy = [], []
    try:
        gone_bases = _sigkill_and_end_keeper(gone)
        assert gone_bases and all(b.exists() for b in gone_bases)
        shutil.rmtree(gone.state_dir)
        kept_bases = _sigkill_and_end_keeper(kept)
        live_bases = cellad_bases(live.pid)
        moved = tmp_path / "live-moved"
        os.rename(live.state_dir, moved)
        parents = {b.parent for b in gone_bases}
        sleeper = subprocess.Popen(["sleep", "600"])
        for p in parents:
            old_empty.append(_legacy_base(p, f"cellad-d{os.getpid():x}i2"))
            old_busy.append(_legacy_base(p, f"cellad-d{os.getpid():x}i3", with_leaf=False))
        # One process in one of the busy base's cgroups is enough to keep it.
        (old_busy[0] / "supervisor" / "cgroup.procs").write_text(str(sleeper.pid))

        with Cellad(_state(tmp_path, "sweeper"), "--warm", "0").start() as s:
            assert not any(b.exists() for b in gone_bases), gone_bases
            assert not any(b.exists() for b in old_empty), old_empty
            assert all(b.exists() for b in live_bases), live_bases
            assert all(b.exists() for b in kept_bases), kept_bases
            assert old_busy[0].exists()
            assert re.search(r"removed \d+ empty cgroup base\(s\) of cellads whose state "
                             r"directory is gone", s.log()), s.log()
            assert s.stop() == 0
        os.rename(moved, live.state_dir)
        assert live.call("org.cella.Ping")["pid"] == live.pid
        assert live.stop() == 0
    finally:
        if (tmp_path / "live-moved").exists():
            os.rename(tmp_path / "live-moved", live.state_dir)
        for c in (gone, live, kept):
            c.close()
        if sleeper:
            sleeper.kill()
            sleeper.wait()
        for b in old_busy + old_empty:
            remove_bases(tmp_path / "none", [b])
    from daemon_util import remove_pending_bases
    remove_pending_bases()
    assert not any(b.exists() for b in kept_bases), "what the test left is removed"


def test_the_tests_end_removes_what_a_sigkilled_cellad_left(tmp_path):
    """The tests' teardown: a cellad SIGKILLed and never started again leaves its
    keeper, the keeper's apps and its base; closing it leaves them for a next cellad
    to adopt, and the test's end ends them and removes the base (after the suite,
    conftest.py counts the bases left: none)."""
    require_cellad()
    from test_adopt import install, ok_calls, ps
    state = _state(tmp_path, "state")
    app = "org.cella.test.sweep.close"
    install(state, app)
    d = Cellad(state).start()
    wait_for("the app making calls", lambda: len(ok_calls(state, app)) >= 5)
    pid = ps(state)[app]["pid"]
    bases = cellad_bases(d.pid)
    d.kill()
    assert alive(pid) and _keepers(state) and all(b.exists() for b in bases)
    d.close()
    # A next cellad could still adopt them: they go at the test's end.
    assert alive(pid) and all(b.exists() for b in bases)
    from daemon_util import remove_pending_bases
    remove_pending_bases()
    assert not alive(pid) and not _keepers(state)
    assert not any(b.exists() for b in bases), bases
