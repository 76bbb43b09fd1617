"""cellad's public socket as an attacker sees it (docs/security.md, "The control
socket"): <state>/cellad.sock is mode 0666, so any local user can connect. A real
non-root user (useradd cella-test-review, removed at the end) tries every trick at a
real cellad: pipelining a root method behind an allowed one, a request split across
reads, "method" twice, NUL, look-alike and case tricks in the name, very long names
and lines, oneway and streaming forms, descriptors sent with allowed, refused and
broken requests, spoofed SCM_CREDENTIALS, more connections than a user may hold, and
CR/LF meant for the daemon's log. Every attempt must be refused as docs/api.md says,
cellad must keep running and serving root, every descriptor sent must be closed,
and nothing the attacker wrote may reach cellad's log.

And the other side: cellad will not bind its socket in a directory a user may
write (the chmod to 0666 could be swapped onto another file there), and no
descriptor of cellad's (a client's socket, an app's pipes) crosses the SIGHUP
re-exec but the ones it hands over.
"""
import contextlib
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from daemon_util import Cellad, DaemonError, call, require_cellad, running_cellad

USER = "cella-test-review"
PER_USER = 64  # CONTROL_CONNECTIONS_PER_USER (src/supervisor/control.h)


@pytest.fixture
def attacker():
    """The local user: (uid, gid), removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a user")
    if not shutil.which("useradd"):
        pytest.skip("useradd is not installed (Debian package passwd)")
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    USER], check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(USER)
        yield pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", USER], capture_output=True)


@pytest.fixture
def public_top():
    """A folder others may traverse (pytest's tmp_path is in root's 0700 folder)."""
    top = Path(tempfile.mkdtemp(prefix="cellad-hostile-"))
    os.chmod(top, 0o711)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _as(uid, gid):
    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return drop


# Runs as the attacker: argv[1] is the socket. Prints one JSON object of results.
# Each reply is read with a deadline; "closed" means the daemon closed the connection.
PAYLOAD = r'''
import array, json, os, select, socket, sys, time
SOCK = sys.argv[1]
res = {}

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(SOCK)
    return s

def replies(s, n):
    """The next n reply lines, as objects; "closed" for a connection closed first."""
    buf, out = b"", []
    while len(out) < n:
        while b"\n" not in buf:
            c = s.recv(65536)
            if not c:
                return out + ["closed"]
            buf += c
        line, _, buf = buf.partition(b"\n")
        out.append(json.loads(line))
    return out

def name(r):
    return r if isinstance(r, str) else r.get("error", "ok")

def one(raw, n=1):
    with conn() as s:
        s.sendall(raw)
        return [name(r) for r in replies(s, n)]

# Connections: the first PER_USER are served, the rest told Busy; held open while
# root checks that it is still served (the parent writes a line on our stdin).
held, busy = [], 0
for i in range(PER_USER + 6):
    s = conn()
    try:
        s.sendall(b'{"method":"org.cella.Ping"}\n')
    except OSError:
        pass  # told Busy and closed at once: the line is still there to read
    try:
        r = replies(s, 1)[0]
    except ConnectionResetError:
        r = "closed"
    if name(r) == "ok":
        held.append(s)
    else:
        busy += name(r) in ("org.cella.Busy", "closed")
        s.close()
res["served"], res["busy"] = len(held), busy
print("holding", flush=True)
sys.stdin.readline()
for s in held:
    s.close()

# Pipelining and splitting.
res["pipelined"] = one(b'{"method":"org.cella.Ping"}\n{"method":"org.cella.Shutdown"}\n'
                       b'{"method":"org.cella.Ping"}\n', 3)
with conn() as s:
    s.sendall(b'{"method":"org.cel')
    s.sendall(b'la.Shutdown"}')
    s.sendall(b'\n')
    res["split"] = [name(r) for r in replies(s, 1)]
with conn() as s:
    s.sendall(b'{"method":"org.cella.Ping"}\n{"method":"org.cella.Shut')
    r1 = replies(s, 1)
    s.sendall(b'down","more":true}\n')
    res["split_after_ping"] = [name(r) for r in r1 + replies(s, 1)]

# The method's name.
res["dup_keys"] = one(b'{"method":"org.cella.Ping","method":"org.cella.Shutdown"}\n')
res["dup_keys2"] = one(b'{"method":"org.cella.Shutdown","method":"org.cella.Ping"}\n')
res["dup_params"] = one(b'{"method":"org.cella.Ping","parameters":{},"parameters":{}}\n')
res["nul"] = one(b'{"method":"org.cella.Shutdown\\u0000"}\n')
res["nul_mid"] = one(b'{"method":"org.cella.Ping\\u0000org.cella.Shutdown"}\n')
res["raw_nul"] = one(b'{"method":"org.cella.Shutdown\x00"}\n')
res["lookalike"] = one(json.dumps({"method": "org.cella.\u0405hutdown"}).encode() + b"\n")
res["zero_width"] = one(json.dumps({"method": "org.cella.Shutdown\u200b"}).encode() + b"\n")
res["overlong_utf8"] = one(b'{"method":"org.cella.\xc1\x93hutdown"}\n')
res["escaped_ascii"] = one(b'{"method":"org.cella.\\u0053hutdown"}\n')
res["lower"] = one(b'{"method":"org.cella.shutdown"}\n')
res["upper"] = one(b'{"method":"ORG.CELLA.SHUTDOWN"}\n')
res["trailing_dot"] = one(b'{"method":"org.cella.Shutdown."}\n')
res["long_name"] = one(json.dumps({"method": "org.cella." + "A" * 300}).encode() + b"\n")
res["long_line"] = one(b'{"method":"org.cella.Ping","parameters":{"x":"' + b"x" * 70000
                       + b'"}}\n', 2)
res["oneway"] = one(b'{"method":"org.cella.Shutdown","oneway":true}\n'
                    b'{"method":"org.cella.Ping"}\n')
res["more"] = one(b'{"method":"org.cella.Shutdown","more":true}\n')
res["not_bool"] = one(b'{"method":"org.cella.Shutdown","oneway":"yes"}\n')
res["crlf"] = one(b'{"method":"org.cella.Ping\\r\\nFAKE-LINE-review: cellad: ready"}\n')
res["esc"] = one(b'{"method":"org.cella.Ping\\u001b[2J\\u001b]0;FAKE-TITLE-review\\u0007"}\n')
res["raw_cr"] = one(b'{"method":"org.cella.Shutdown"}\rFAKE-LINE-review\n')

# Descriptors: the write end of a pipe goes with each request, ours is closed, and
# the read end must see EOF once cellad closed its copy.
def fd_closed(prefix, rest):
    r, w = os.pipe()
    with conn() as s:
        s.sendmsg([prefix], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
        os.close(w)
        if rest:
            s.sendall(rest)
        got = [name(x) for x in replies(s, 1)] if (prefix + rest).endswith(b"\n") else []
        deadline = time.monotonic() + 20
        eof = False
        while time.monotonic() < deadline:
            if select.select([r], [], [], deadline - time.monotonic())[0]:
                eof = os.read(r, 1) == b""
                break
        os.close(r)
        return [eof] + got

res["fd_ping"] = fd_closed(b'{"method":"org.cella.Ping"}\n', b"")
res["fd_denied"] = fd_closed(b'{"method":"org.cella.Shutdown"}\n', b"")
res["fd_garbage"] = fd_closed(b'not json\n', b"")
res["fd_mid_line"] = fd_closed(b'{"method":"org.ce', b'lla.Ping"}\n')
res["fd_no_line"] = fd_closed(b'{"method":"org.cella.Ping"', b"")

# SCM_CREDENTIALS: the kernel refuses a uid that is not ours; our own are ignored.
with conn() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    creds = array.array("i", [os.getpid(), 0, 0])
    try:
        s.sendmsg([b'{"method":"org.cella.Shutdown"}\n'],
                  [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
        res["spoof_root"] = "sent:" + name(replies(s, 1)[0])
    except PermissionError:
        res["spoof_root"] = "EPERM"
with conn() as s:
    creds = array.array("i", [os.getpid(), os.getuid(), os.getgid()])
    s.sendmsg([b'{"method":"org.cella.Shutdown"}\n'],
              [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
    res["own_creds"] = [name(r) for r in replies(s, 1)]
print(json.dumps(res), flush=True)
'''


def test_local_user_cannot_manage_cellad(attacker, public_top):
    require_cellad()
    uid, gid = attacker
    with running_cellad(public_top / "state") as d:
        code = PAYLOAD.replace("PER_USER", str(PER_USER))
        p = subprocess.Popen([sys.executable, "-c", code, str(d.socket)], preexec_fn=_as(uid, gid),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd="/")
        try:
            line = p.stdout.readline()
            if line != "holding\n":
                p.wait(timeout=60)
            assert line == "holding\n", (line, p.stderr.read(), d.log())
            # The attacker holds every connection a user may: root is still served.
            assert call(d.socket, "org.cella.Ping")["pid"] == d.pid
            out, err = p.communicate("go\n", timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, err
        res = json.loads(out.strip().splitlines()[-1])
        log = d.log()
        assert d.proc.poll() is None, log
        assert call(d.socket, "org.cella.Ping")["pid"] == d.pid

    denied, invalid, missing = ("org.cella.PermissionDenied", "org.cella.InvalidRequest",
                                "org.cella.MethodNotFound")
    assert res["served"] == PER_USER and res["busy"] == 6, res
    assert res["pipelined"] == ["ok", denied, "ok"], res
    assert res["split"] == [denied], res
    assert res["split_after_ping"] == ["ok", denied], res
    for k in ("dup_keys", "dup_keys2", "dup_params", "nul", "nul_mid", "raw_nul", "lookalike",
              "zero_width", "overlong_utf8", "long_name", "not_bool", "crlf", "esc"):
        assert res[k] == [invalid], (k, res[k])
    # The escaped ASCII is the name itself, and is refused as such.
    assert res["escaped_ascii"] == [denied], res
    assert res["more"] == [denied], res
    for k in ("lower", "upper"):
        assert res[k] == [missing], (k, res[k])
    assert res["trailing_dot"] == [invalid], res
    # Over 64 KiB: refused, then closed (no telling where the next line starts).
    assert res["long_line"] == [invalid, "closed"], res
    # A refused oneway call gets no reply; the next request its own.
    assert res["oneway"] == ["ok"], res
    # A raw CR ends no line: the line is not JSON.
    assert res["raw_cr"] == [invalid], res
    # Every descriptor sent was closed by cellad (the pipe saw EOF).
    assert res["fd_ping"] == [True, "ok"], res
    assert res["fd_denied"] == [True, denied], res
    assert res["fd_garbage"] == [True, invalid], res
    assert res["fd_mid_line"] == [True, "ok"], res
    assert res["fd_no_line"] == [True], res
    assert res["spoof_root"] == "EPERM", res
    assert res["own_creds"] == [denied], res
    # Nothing the attacker wrote reached the log a person reads.
    assert "FAKE-LINE-review" not in log and "FAKE-TITLE-review" not in log, log
    assert "\x1b" not in log, log


def test_socket_in_a_users_folder_is_refused(attacker, public_top):
    """--socket in a folder another user may write: between bind() and the chmod to
    0666 that user could swap the socket for a symlink to any file; cellad refuses
    the folder instead, and makes nothing in it."""
    require_cellad()
    uid, gid = attacker
    theirs = public_top / "theirs"
    theirs.mkdir()
    os.chown(theirs, uid, gid)
    d = Cellad(public_top / "state", "--socket", theirs / "cellad.sock")
    try:
        with pytest.raises(DaemonError) as e:
            d.start()
        assert e.value.code == 1, e.value.log
        assert f"cannot listen on {theirs}/cellad.sock" in e.value.log, e.value.log
        assert "writable by root alone" in e.value.log, e.value.log
        assert list(theirs.iterdir()) == []
    finally:
        d.close()
    # A sticky folder (as /tmp) is fine: nobody else can rename what root made there.
    sticky = public_top / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    with running_cellad(public_top / "state", "--socket", sticky / "c.sock") as d:
        assert call(sticky / "c.sock", "org.cella.Ping")["pid"] == d.pid
        assert (os.stat(sticky / "c.sock").st_mode & 0o777) == 0o666
        assert d.stop() == 0


def _fds(pid):
    """{fd: (close-on-exec, target)} of a process."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            flags = open(f"/proc/{pid}/fdinfo/{fd}").read().split("flags:")[1].split()[0]
            out[int(fd)] = (bool(int(flags, 8) & 0o2000000), os.readlink(f"/proc/{pid}/fd/{fd}"))
    return out


def test_no_descriptor_crosses_the_reexec(tmp_path):
    """Every descriptor cellad holds is close-on-exec, but what SIGHUP hands over
    (the lock, the listening socket): a client's connection ends with the old image
    (it sees EOF), and the new image holds no socket of a client."""
    require_cellad()
    with running_cellad(tmp_path / "state") as d:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(str(d.socket))
        c.sendall(b'{"method":"org.cella.Ping"}\n')
        assert b'"pid"' in c.recv(4096)
        before = _fds(d.pid)
        leaky = {fd: t for fd, (cloexec, t) in before.items() if fd > 2 and not cloexec}
        assert leaky == {}, leaky
        d.send(signal.SIGHUP)
        # The old image's copy of the client's socket is gone: EOF, an event.
        c.settimeout(60)
        assert c.recv(4096) == b""
        c.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                assert call(d.socket, "org.cella.Ping", timeout=5)["pid"] == d.pid
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                select.select([], [], [], 0.05)
        after = _fds(d.pid)
        leaky = {fd: t for fd, (cloexec, t) in after.items() if fd > 2 and not cloexec}
        assert leaky == {}, leaky
        assert d.stop() == 0


def _cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, path, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return Path(path)
    return None


def test_started_in_a_users_cgroup(attacker):
    """cellad started in a cgroup a user owns (systemd delegates user@UID.service's
    subtree to UID; `sudo cellad` from there keeps it): its tree must not go below
    it, where that user could rename, remove or make the apps' cgroups. It goes
    below the hierarchy's root, as root's."""
    require_cellad()
    uid, gid = attacker
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    theirs = mount / f"cella-test-review-{os.getpid()}"
    theirs.mkdir()
    try:
        # As systemd delegates: the directory and its cgroup.procs are the user's.
        for p in (theirs, theirs / "cgroup.procs"):
            os.chown(p, uid, gid)

        def enter():
            with open(theirs / "cgroup.procs", "w") as f:
                f.write("0")

        tmp = Path(tempfile.mkdtemp(prefix="cellad-cg-"))
        try:
            with running_cellad(tmp / "state", preexec_fn=enter) as d:
                with open(f"/proc/{d.pid}/cgroup") as f:
                    v2 = [l.split(":", 2)[2].strip() for l in f if l.startswith("0::")][0]
                assert not v2.startswith(f"/{theirs.name}"), (v2, d.log())
                assert v2.endswith("/supervisor"), v2
                assert sorted(p.name for p in theirs.iterdir() if p.is_dir()) == []
                assert d.stop() == 0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        # What a failed run left there (its keeper): killed, then the cgroups go.
        with contextlib.suppress(OSError):
            (theirs / "cgroup.kill").write_text("1")
        for _ in range(100):
            if "populated 0" in (theirs / "cgroup.events").read_text():
                break
            select.select([], [], [], 0.05)
        for sub in sorted(theirs.rglob("*"), key=lambda p: -len(p.parts)):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        with contextlib.suppress(OSError):
            theirs.rmdir()


def test_sighup_runs_the_upgraded_binary(tmp_path):
    """SIGHUP is the upgrade path: a package manager renames the new binary over the
    old one, and the re-exec must run the new file, not the old inode that
    /proc/self/exe still opens. The "new binary" here is a script that leaves a mark
    and executes the real cellad."""
    require_cellad()
    from daemon_util import CELLAD
    bindir = Path(tempfile.mkdtemp(prefix="cellad-bin-"))
    try:
        os.chmod(bindir, 0o755)
        exe, mark = bindir / "cellad", bindir / "upgraded"
        shutil.copy2(CELLAD, exe)
        d = Cellad(tmp_path / "state")
        try:
            # Started from the copy (CELLAD_BIN names it for the fixture's Popen).
            import daemon_util
            saved, daemon_util.CELLAD = daemon_util.CELLAD, str(exe)
            try:
                d.start()
            finally:
                daemon_util.CELLAD = saved
            new = bindir / "cellad.new"
            new.write_text(f"#!/bin/sh\necho $$ > {mark}\nexec {CELLAD} \"$@\"\n")
            os.chmod(new, 0o755)
            os.rename(new, exe)  # as dpkg does: a new inode at the same path
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(str(d.socket))
            c.sendall(b'{"method":"org.cella.Ping"}\n')
            assert b'"pid"' in c.recv(4096)
            d.send(signal.SIGHUP)
            c.settimeout(60)
            assert c.recv(4096) == b""  # the old image is gone
            c.close()
            assert call(d.socket, "org.cella.Ping", timeout=60)["pid"] == d.pid
            assert mark.read_text().strip() == str(d.pid), d.log()
            assert d.stop() == 0
        finally:
            d.close()
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


@pytest.mark.parametrize("second", [signal.SIGHUP, signal.SIGTERM])
def test_signal_during_the_reexec_is_not_fatal(tmp_path, second):
    """A second SIGHUP (two reloads in a row) or a SIGTERM that arrives while the
    re-executed image starts, before it handles signals again, waits for it instead
    of taking the default action (ending cellad, and under systemd its apps):
    another re-exec, or the orderly stop that exits 0."""
    require_cellad()
    with running_cellad(tmp_path / "state") as d:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(str(d.socket))
        c.sendall(b'{"method":"org.cella.Ping"}\n')
        assert b'"pid"' in c.recv(4096)
        d.send(signal.SIGHUP)
        c.settimeout(60)
        assert c.recv(4096) == b""  # the exec happened: the new image is starting
        d.send(second)
        c.close()
        if second == signal.SIGHUP:
            # A connection the second image accepted before it handled the SIGHUP
            # goes with it (docs/daemon.md, "Signals"): asked again, the third answers.
            deadline = time.monotonic() + 60
            while True:
                assert d.proc.poll() is None, d.log()
                try:
                    assert call(d.socket, "org.cella.Ping", timeout=60)["pid"] == d.pid
                    break
                except (ConnectionResetError, BrokenPipeError, ConnectionError):
                    assert time.monotonic() < deadline, d.log()
            assert d.log().count("SIGHUP: re-executing") == 2, d.log()
            assert d.stop() == 0
        else:
            assert d.proc.wait(timeout=60) == 0, d.log()


# --- work off cellad's loop (store-methods.c): a Remove's deletion ---


def _send(sock_path, method, params=None, ident=None):
    """A connected socket with one request sent (its reply not read)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(str(sock_path))
    s.sendall(json.dumps({"method": method, "parameters": params or {}}).encode() + b"\n")
    return s


def _reply(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        assert chunk, "cellad closed the connection without a reply"
        buf += chunk
    return json.loads(buf)


def _wait_log(d, needle, timeout=60):
    deadline = time.monotonic() + timeout
    while needle not in d.log():
        assert time.monotonic() < deadline, f"no {needle!r} in cellad's log"
        time.sleep(0.01)


# As a manager (group cella): 9 connections made, then on a line of stdin one Remove
# of an id not installed on each; prints the replies as a JSON list.
_NINE_REMOVES = """
import json, socket, sys
socks = []
for i in range(9):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sys.argv[1])
    socks.append(s)
print("connected", flush=True)
sys.stdin.readline()
for i, s in enumerate(socks):
    s.sendall(json.dumps({"method": "org.cella.Remove",
                          "parameters": {"id": f"org.test.none.n{i}"}}).encode() + b"\\n")
out = []
for s in socks:
    buf = b""
    while not buf.endswith(b"\\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    out.append(json.loads(buf) if buf else None)
print(json.dumps(out), flush=True)
"""


def test_remove_deletes_off_the_loop(public_top):
    """The files of a Remove are deleted on libuv's thread pool, not on cellad's loop:
    while an app of 10,000 files is being removed, a Ping is answered before the
    Remove ends (ordering, not timing); a Start of that app meanwhile is refused and
    a second Remove of it too; after it the app is gone and its start says so. And
    the store requests of one manager in flight are bounded: of 9 Removes a real
    member of group cella sends while they all wait behind that deletion, one is
    refused (org.cella.LimitReached, 8), the others run after it."""
    from daemon_util import cella_group, install_app, system_user
    require_cellad()
    with cella_group() as gid, system_user("cella-test-store") as pw:
        _remove_off_the_loop(public_top, gid, pw)


def _remove_off_the_loop(tmp_path, cella_gid, pw):
    """tmp_path: a folder the manager may traverse to the socket."""
    from daemon_util import install_app
    app_id = "org.test.hostile.big"
    src = tmp_path / "big"
    src.mkdir()
    (src / "manifest.json").write_text(json.dumps({
        "id": app_id, "version": "1.0.0", "runtime": "native", "entry": "main.sh",
        "kind": "service"}))
    (src / "main.sh").write_text("#!/bin/sh\nexec sleep 1000\n")
    os.chmod(src / "main.sh", 0o755)
    dest = install_app(tmp_path / "state", src)
    # Many files, made in place (file creation is slow here: 10,000 take seconds).
    for i in range(50):
        sub = dest / "files" / str(i)
        sub.mkdir(parents=True)
        for k in range(200):
            os.close(os.open(sub / str(k), os.O_CREAT | os.O_WRONLY, 0o644))
    with running_cellad(tmp_path / "state") as d:
        def drop():
            os.setgroups([cella_gid])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        manager = subprocess.Popen([sys.executable, "-c", _NINE_REMOVES, str(d.socket)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   preexec_fn=drop, cwd="/")
        assert manager.stdout.readline() == "connected\n"
        rm = _send(d.socket, "org.cella.Remove", {"id": app_id})
        try:
            _wait_log(d, f"removing {app_id}")
            manager.stdin.write("go\n")
            manager.stdin.flush()
            ping = _send(d.socket, "org.cella.Ping")
            start = _send(d.socket, "org.cella.Start", {"app": app_id})
            again = _send(d.socket, "org.cella.Remove", {"id": app_id})
            try:
                r = _reply(ping)
                assert "error" not in r, r
                # The Remove has not ended when the Ping was answered.
                ready, _, _ = select.select([rm], [], [], 0)
                assert not ready, "the Ping waited for the Remove's deletion"
                r = _reply(again)
                assert r.get("error") == "org.cella.AppState", r
                r = _reply(start)
                assert "error" in r, ("a start while its files go", r)
            finally:
                for s in (ping, start, again):
                    s.close()
            r = _reply(rm)
            assert "error" not in r and r["parameters"]["id"] == app_id, r
            out, _ = manager.communicate(timeout=60)
            got = [x.get("error") for x in json.loads(out)]
            assert sorted(got, key=str) == ["org.cella.LimitReached"] + \
                ["org.cella.NoSuchApp"] * 8, got
            limited = [x for x in json.loads(out) if x.get("error") == "org.cella.LimitReached"]
            assert limited[0]["parameters"]["value"] == 8, limited
            assert limited[0]["parameters"]["limit"] == "store_requests_per_user", limited
        finally:
            rm.close()
            if manager.poll() is None:
                manager.kill()
        assert not (tmp_path / "state" / "apps" / app_id / "1.0.0").exists()
        with pytest.raises(Exception) as e:
            call(d.socket, "org.cella.Start", {"app": app_id})
        assert "NoSuchApp" in str(e.value), e.value
        assert "pid" not in json.dumps(call(d.socket, "org.cella.Ps").get("apps", []))


PER_MANAGER = 256  # CONTROL_CONNECTIONS_PER_MANAGER (src/supervisor/control.h)

# As a manager: PER_MANAGER + 3 connections, each with a Ping; prints how many were
# served and how many told Busy, holds the served ones until a line on stdin.
_MANY_CONNECTIONS = """
import json, socket, sys
held, busy = [], 0
for i in range(PER_MANAGER + 3):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sys.argv[1])
    try:
        s.sendall(b'{"method":"org.cella.Ping"}\\n')
        r = s.makefile().readline()
    except OSError:
        r = ""
    if '"pid"' in r:
        held.append(s)
    else:
        busy += "org.cella.Busy" in r or r == ""
        s.close()
print(json.dumps({"served": len(held), "busy": busy}), flush=True)
sys.stdin.readline()
"""


def test_a_managers_connections_are_bounded(public_top):
    """A real member of group cella may hold CONTROL_CONNECTIONS_PER_MANAGER connections
    (each could follow a log or watch events, charged to cellad), not more: the next
    are told Busy; root is still served meanwhile."""
    from daemon_util import cella_group, system_user
    require_cellad()
    with cella_group() as gid, system_user("cella-test-conns") as pw, \
            running_cellad(public_top / "state") as d:
        def drop():
            os.setgroups([gid])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        p = subprocess.Popen([sys.executable, "-c",
                              _MANY_CONNECTIONS.replace("PER_MANAGER", str(PER_MANAGER)),
                              str(d.socket)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=drop, cwd="/")
        try:
            line = p.stdout.readline()
            assert line, p.stderr.read()
            res = json.loads(line)
            assert res == {"served": PER_MANAGER, "busy": 3}, res
            assert call(d.socket, "org.cella.Ping")["pid"] == d.pid
            p.communicate("go\n", timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
