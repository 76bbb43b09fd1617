"""Shared helpers for the tests that run cellad (docs/daemon.md), bare: this machine
has no systemd as pid 1, so a test starts `cellad --state-dir TMP --ready-fd N` as a
subprocess, waits for its "READY" line (written once its control socket answers:
an event, not a sleep), talks to it over <state>/cellad.sock (the control API v2,
docs/api.md: one JSON object per line each way), and always stops it in a
`finally` (the fixtures below do).

Other parts may add helpers at the end of this file (say so in their report).
"""
import contextlib
import fcntl
import json
import os
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

ROOT = Path(__file__).resolve().parents[2]
CELLA = os.environ.get("CELLA_BIN", str(ROOT / "build" / "src" / "cli" / "cella"))
# cellad next to cella in the build (build/src/daemon/cellad), unless CELLAD_BIN says.
CELLAD = os.environ.get("CELLAD_BIN", str(Path(CELLA).resolve().parents[1] / "daemon" / "cellad"))

# How long a test waits for cellad to say READY, and to exit after SIGTERM. Both are
# deadlines for events, far above what they take (tens of ms idle), for a loaded CI
# box running the ASan build.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0


# What systemd does for a socket unit's service: the socket at fd 3 (SD_LISTEN_FDS_START),
# LISTEN_PID the pid of the exec'd service (this one: exec keeps it).
SOCKET_ACTIVATE = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


class DaemonError(Exception):
    """cellad exited, or did not get ready in time: .code, .log say how."""

    def __init__(self, message, code=None, log=""):
        super().__init__(f"{message}\n--- cellad's stderr ---\n{log}")
        self.code = code
        self.log = log


class ControlError(Exception):
    """An error reply: .error is its name (org.cella.*), .parameters its parameters."""

    def __init__(self, reply):
        self.error = reply.get("error")
        self.parameters = reply.get("parameters", {})
        super().__init__(f"{self.error}: {self.parameters}")


class Cellad:
    """One cellad process run bare on a state directory.

    start() returns once it wrote READY on its --ready-fd; its stderr goes to a file
    (self.log()), so a chatty daemon never blocks on a pipe nobody reads."""

    def __init__(self, state_dir, *args, env=None, pass_fds=(), preexec_fn=None, listen_fd=None):
        """listen_fd: a listening socket handed to cellad as systemd's socket
        activation does (fd 3, LISTEN_FDS=1, LISTEN_PID=its pid)."""
        self.state_dir = Path(state_dir)
        self.args = [str(a) for a in args]
        self.env = dict(os.environ) if env is None else env
        self.pass_fds = tuple(pass_fds)
        self.preexec_fn = preexec_fn
        self.listen_fd = listen_fd
        self.proc = None
        self._log = tempfile.NamedTemporaryFile(prefix="cellad-", suffix=".log", delete=False)
        self.socket = self.state_dir / "cellad.sock"

    def start(self, ready=True, timeout=READY_TIMEOUT):
        """Starts cellad; with ready, waits for READY (DaemonError if it exits first
        or the deadline passes). Returns self."""
        rfd, w = os.pipe()
        # Above 3, which socket activation takes.
        wfd = fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(w)
        cmd = [CELLAD, "--state-dir", str(self.state_dir), "--ready-fd", str(wfd), *self.args]
        env, pass_fds, preexec = self.env, (wfd, *self.pass_fds), self.preexec_fn
        if self.listen_fd is not None:
            # As systemd: fd 3, and LISTEN_PID the pid that execs cellad.
            cmd = [sys.executable, "-c", SOCKET_ACTIVATE, str(self.listen_fd), *cmd]
            env = dict(env, LISTEN_FDS="1")
            pass_fds += (self.listen_fd,)
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, env=env, pass_fds=pass_fds,
                                         preexec_fn=preexec)
        finally:
            os.close(wfd)
        self._ready_fd = rfd
        if ready:
            self.wait_ready(timeout)
        return self

    def _note_bases(self):
        """Records the cgroup bases cellad runs in (while it runs), for close()."""
        if self.proc is not None and self.proc.poll() is None:
            self._bases = getattr(self, "_bases", set()) | cellad_bases(self.proc.pid)

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Waits for the READY line: returns the time it took (s) from now."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        got = b""
        try:
            while b"\n" not in got:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DaemonError(f"cellad did not say READY within {timeout} s", None,
                                      self.log())
                r, _, _ = select.select([self._ready_fd], [], [], left)
                if not r:
                    continue
                chunk = os.read(self._ready_fd, 64)
                if not chunk:  # closed without READY: it is exiting
                    code = self.proc.wait(timeout=STOP_TIMEOUT)
                    raise DaemonError(f"cellad exited with {code} before READY", code, self.log())
                got += chunk
        finally:
            os.close(self._ready_fd)
            self._ready_fd = None
        assert got == b"READY\n", got
        self._note_bases()
        return time.monotonic() - t0

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        """What cellad wrote on stderr so far."""
        with open(self._log.name, errors="replace") as f:
            return f.read()

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and waits for the exit; returns the exit code (-N: killed by N)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise DaemonError(f"cellad did not exit within {timeout} s of signal {sig}", None,
                              self.log())

    def kill(self):
        """SIGKILL if it still runs, and reap it. Safe to call twice."""
        self._note_bases()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        # An orderly stop first: a SIGKILLed cellad leaves its apps to the keeper,
        # which kills them only after its grace (60 s), so every test's apps would
        # outlive it. SIGKILL only if cellad does not exit in time.
        self._note_bases()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(DaemonError):
                self.stop(signal.SIGTERM)
        self.kill()
        # What a SIGKILLed cellad left (its keeper, its apps, its cgroup base) is
        # removed at the end of the test (conftest.py), not here: a test may start
        # the next cellad on this state directory to adopt what this one left.
        if getattr(self, "_bases", None):
            PENDING_BASES.append((self.state_dir, set(self._bases)))
        if getattr(self, "_ready_fd", None) is not None:
            os.close(self._ready_fd)
            self._ready_fd = None
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def call(self, method, parameters=None, **kw):
        """One call on cellad.sock: returns the reply's parameters, or raises
        ControlError for an error reply."""
        return call(self.socket, method, parameters, **kw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_line(sock, buf, deadline):
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no reply line in time")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line, rest


def call(socket_path, method, parameters=None, more=False, timeout=10.0, fds=()):
    """A client of the control API v2 (docs/api.md): sends one request and returns
    the final reply's "parameters" (with more: the list of every reply's). Raises
    ControlError on an error reply."""
    req = {"method": method, "parameters": parameters or {}}
    if more:
        req["more"] = True
    data = (json.dumps(req) + "\n").encode()
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        if fds:
            s.sendmsg([data[:1]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    __import__("array").array("i", fds))])
            s.sendall(data[1:])
        else:
            s.sendall(data)
        buf = b""
        replies = []
        while True:
            line, buf = _read_line(s, buf, deadline)
            reply = json.loads(line)
            if "error" in reply:
                raise ControlError(reply)
            replies.append(reply.get("parameters", {}))
            if not reply.get("continues"):
                break
    return replies if more else replies[0]


@contextlib.contextmanager
def running_cellad(state_dir, *args, **kw):
    """A started cellad (READY) on state_dir; stopped at the end if still running
    (SIGTERM, which stops its apps; SIGKILL if it does not exit in time)."""
    d = Cellad(state_dir, *args, **kw)
    try:
        d.start()
        yield d
    finally:
        d.close()


def install_app(state_dir, folder, version=None):
    """Puts the app folder into state_dir's store as the store lays it out (docs/daemon.md,
    "Autostart"): apps/<id>/<version>/ (a copy, world-readable) and apps/<id>/current, a
    symlink to it. For tests of the daemon before `cella install` (the store) exists;
    returns the version folder."""
    state_dir = Path(state_dir)
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    version = version or manifest.get("version", "1.0.0")
    state_dir.mkdir(mode=0o711, exist_ok=True)
    os.chmod(state_dir, 0o711)
    app = state_dir / "apps" / manifest["id"]
    app.mkdir(parents=True, exist_ok=True)
    for d in (state_dir / "apps", app):
        os.chmod(d, 0o711)
    dest = app / version
    shutil.copytree(folder, dest, symlinks=True)
    subprocess.run(["chmod", "-R", "go-w,o+rX", str(dest)], check=True)
    cur = app / "current"
    if cur.is_symlink():
        cur.unlink()
    cur.symlink_to(version)
    return dest


def cella(*args, state_dir, timeout=60):
    """`cella ARGS... --state-dir S` -> CompletedProcess (text)."""
    return subprocess.run([CELLA, *map(str, args), "--state-dir", str(state_dir)],
                          capture_output=True, text=True, timeout=timeout)


def ps(state_dir):
    """{app id: record} of `cella ps --json` on state_dir."""
    p = cella("ps", "--json", state_dir=state_dir)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    apps = out["apps"] if isinstance(out, dict) else out
    return {a["id"]: a for a in apps}


def require_cellad():
    """Skips the test when the build has no cellad (a tree built before it)."""
    if not os.access(CELLAD, os.X_OK):
        pytest.skip(f"no cellad at {CELLAD} (set CELLAD_BIN)")


@pytest.fixture
def cellad(tmp_path):
    """A bare cellad on a fresh state directory (tmp_path/state), READY; stopped
    (SIGTERM, then SIGKILL if it does not exit) when the test ends, whatever happened."""
    require_cellad()
    with running_cellad(tmp_path / "state") as d:
        yield d


# --- access tests (added by the dedupe helper): a real user, a folder it may reach ---


@contextlib.contextmanager
def system_user(name):
    """A system user `name` of its own (useradd --system), removed at the end (also a
    leftover of an earlier run, first): yields its pwd entry. Skips the test when
    useradd is missing (Debian package passwd)."""
    import pwd
    if not shutil.which("useradd"):
        pytest.skip("useradd is not installed (Debian package passwd)")
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@contextlib.contextmanager
def cella_group():
    """The group "cella" (the managers, docs/api.md), made with groupadd --system if
    missing and then removed at the end: yields its gid. Skips the test when groupadd
    is missing (Debian package passwd)."""
    import grp
    if not shutil.which("groupadd"):
        pytest.skip("groupadd is not installed (Debian package passwd)")
    made = False
    try:
        grp.getgrnam("cella")
    except KeyError:
        subprocess.run(["groupadd", "--system", "cella"], check=True, capture_output=True)
        made = True
    try:
        yield grp.getgrnam("cella").gr_gid
    finally:
        if made:
            subprocess.run(["groupdel", "cella"], capture_output=True)


def call_as(uid, gid, sock, method, params=None):
    """One call of method with params ({} if None) on the control socket sock from a
    process of uid:gid (no supplementary groups): the reply object."""
    code = ("import socket,sys,json\n"
            "s=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM);s.settimeout(30)\n"
            f"s.connect({str(sock)!r})\n"
            f"s.sendall(json.dumps({{'method':{method!r},'parameters':{params or {}!r}}})"
            ".encode()+b'\\n')\n"
            "print(s.makefile().readline(),end='')\n")

    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    p = subprocess.run([sys.executable, "-c", code], preexec_fn=drop, capture_output=True,
                       text=True, timeout=60, cwd="/")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@contextlib.contextmanager
def traversable_tmpdir(prefix):
    """A new folder (mode 0711: another user may reach what is in it, as pytest's
    tmp_path, in root's 0700 folder, does not allow), removed at the end: its Path."""
    from conftest import unmount_below

    top = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        os.chmod(top, 0o711)
        yield top
    finally:
        # The apps' /data file systems stay mounted between runs: take them down
        # first, or the folder (and a loop device) outlives the test.
        unmount_below(top)
        shutil.rmtree(top, ignore_errors=True)


# Waiting on another process's state, shared by the daemon tests (test_adopt,
# test_join, test_pool, test_systemd, test_lua_restart_refs).
WAIT_DEADLINE = 60.0  # s: far above what each wait takes (ms), for the ASan build on 2 loaded CPUs


def wait_for(what, cond, timeout=WAIT_DEADLINE, interval=0.02):
    """Waits until cond() is true (re-checked every interval s: a state of another
    process we cannot be told of) and returns its value, or fails the test naming
    what it waited for after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(interval)


def wait_log_line(d, app, want, timeout=WAIT_DEADLINE):
    """Follows app's log through org.cella.Logs (more) until a line equal to want is
    in it: each reply is an event (new output), no poll."""
    deadline = time.monotonic() + timeout
    text = ""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.sendall((json.dumps({"method": "org.cella.Logs", "parameters": {"app": app},
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        while want not in text.splitlines():
            left = deadline - time.monotonic()
            assert left > 0, f"{app} never printed {want!r}; its log: {text[-2000:]!r}"
            s.settimeout(left)
            line = f.readline()
            assert line, "cellad closed the stream"
            text += json.loads(line).get("parameters", {}).get("data", "")
    return text


def alive(pid):
    """True if pid runs (not gone, not a zombie left for a parent that does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---- The cgroup bases of the tests' cellads (docs/daemon.md "Cgroups", "Leftover
# bases"). A bare cellad runs in a base "cellad-<tag>" it made beside the tests'
# cgroup, named after its state directory's tag (<state>/cellad.tag). A SIGKILLed
# cellad that no test starts again leaves it, with its keeper and the keeper's apps
# (ended after the keeper's 60 s grace): they are removed at the end of the test
# that ran it (remove_pending_bases(), from conftest.py's autouse fixture), and the
# session counts what is left (conftest.py, pytest_sessionfinish: must be none).

# Every base a Cellad of this session ran in (absolute cgroupfs paths).
SESSION_BASES = set()
# (state dir, bases) of the Cellads the current test closed: remove_pending_bases()
# at the test's end.
PENDING_BASES = []


def state_tag(state):
    """The cgroup tag of a state directory: the first word of <state>/cellad.tag
    (src/daemon/cgroup.c, daemon_tag_get())."""
    return (Path(state) / "cellad.tag").read_text().split()[0]


def _hierarchy_dir(ctrl):
    """The mount of the cgroup hierarchy of /proc/PID/cgroup's controllers field."""
    if ctrl == "":
        unified = Path("/sys/fs/cgroup/unified")
        return unified if unified.is_dir() else Path("/sys/fs/cgroup")
    for name in (ctrl, ctrl.split(",")[0]):
        if Path("/sys/fs/cgroup", name).is_dir():
            return Path("/sys/fs/cgroup", name)
    return None


def cellad_bases(pid):
    """The bases "cellad-<tag>" a bare cellad pid runs in (its <base>/supervisor),
    one per hierarchy; a set of Paths (empty if it has none of its own, e.g. under
    systemd, or is gone)."""
    out = set()
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return out
    for line in lines:
        _, ctrl, path = line.split(":", 2)
        parent, _, leaf = path.rpartition("/")
        if leaf != "supervisor" or not parent.rpartition("/")[2].startswith("cellad-"):
            continue
        mount = _hierarchy_dir(ctrl)
        if mount is not None:
            out.add(mount / parent.lstrip("/"))
    SESSION_BASES.update(out)
    return out


def _subtree(base):
    """base's cgroups, children before their parents."""
    dirs = []
    for root, subdirs, _ in os.walk(base, topdown=False):
        dirs.append(Path(root))
    return dirs


def _procs_below(base):
    pids = set()
    for d in _subtree(base):
        with contextlib.suppress(FileNotFoundError):
            pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
    return pids


def remove_bases(state_dir, bases):
    """Removes what is left in the cgroup bases of a cellad of state_dir once no cellad
    holds it (its lock taken here for the while, so none starts meanwhile): kills
    every process left in them (a SIGKILLed cellad's keeper and its apps: each
    sandbox's init, whose end ends its pid namespace), waits for each to be gone
    (its pidfd), and removes the cgroups, children first. Bases another cellad holds
    are left."""
    bases = [b for b in bases if b.exists()]
    if not bases:
        return
    try:
        lock = os.open(Path(state_dir) / "cellad.lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        lock = None
    try:
        if lock is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a cellad runs on it: the base is its
        for _ in range(10):
            pids = set().union(*(_procs_below(b) for b in bases))
            if not pids:
                break
            fds = []
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, OSError):
                    fds.append(os.pidfd_open(pid))
            for fd in fds:
                with contextlib.suppress(ProcessLookupError, OSError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT
            for fd in fds:
                select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                os.close(fd)
        for b in bases:
            for d in _subtree(b):
                # An exited task may keep its cgroup busy for a moment after it has
                # left cgroup.procs (its exit is still being finished).
                wait_for(f"{d} to be removable", lambda d=d: _try_rmdir(d), timeout=10)
    finally:
        if lock is not None:
            os.close(lock)


def _try_rmdir(d):
    try:
        d.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError as e:
        if e.errno == 16:  # EBUSY
            return False
        raise


def leftover_bases():
    """The bases of this session's cellads that still exist (sorted strings)."""
    return sorted(str(b) for b in SESSION_BASES if b.exists())


def remove_pending_bases():
    """At a test's end (conftest.py): remove_bases() for every Cellad it closed."""
    while PENDING_BASES:
        state_dir, bases = PENDING_BASES.pop()
        remove_bases(state_dir, bases)
