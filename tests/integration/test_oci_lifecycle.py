"""cella-oci's lifecycle (docs/oci.md "Commands"): create, start, state, kill, delete,
exec, ps, pause, resume, the console socket, the pid file, hooks, the log, the policy's
ids, refused ids and configs. Real containers on a busybox root file system, run as an
engine runs them: this test process is a subreaper (PR_SET_CHILD_SUBREAPER), so each
container's init, left by `create`, becomes its child and is reaped here."""
import array
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OCI = os.environ.get("CELLA_OCI_BIN")
if not OCI:
    cella = os.environ.get("CELLA_BIN")
    if cella:
        OCI = str(Path(cella).resolve().parents[1] / "oci" / "cella-oci")
    else:
        OCI = str(ROOT / "build" / "src" / "oci" / "cella-oci")
BUSYBOX = shutil.which("busybox")

pytestmark = [
    pytest.mark.skipif(not os.path.exists(OCI), reason=f"no cella-oci at {OCI}"),
    pytest.mark.skipif(BUSYBOX is None, reason="busybox (busybox-static) not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="cella-oci needs root"),
]

APPLETS = ["sh", "echo", "cat", "sleep", "id", "grep", "true", "false", "ls", "ps", "wc",
           "head", "printf", "kill", "mount"]

# PR_SET_CHILD_SUBREAPER (prctl(2)): orphans of our children become ours.
_libc = ctypes.CDLL(None, use_errno=True)
assert _libc.prctl(36, 1, 0, 0, 0) == 0


def busybox_static():
    out = subprocess.run(["file", "-L", BUSYBOX], capture_output=True, text=True).stdout \
        if shutil.which("file") else "statically linked"
    return "statically linked" in out or "static-pie" in out


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    if not busybox_static():
        pytest.skip("busybox is not statically linked (install busybox-static)")
    r = tmp_path_factory.mktemp("rootfs")
    # pytest makes it 0700: the container's unprivileged host id must enter it.
    r.chmod(0o755)
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"]:
        (r / d).mkdir()
    shutil.copy(BUSYBOX, r / "bin" / "busybox")
    for a in APPLETS:
        (r / "bin" / a).symlink_to("busybox")
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (r / "etc" / "group").write_text("root:x:0:\n")
    return r


def config(rootfs, args, terminal=False, annotations=None, caps=None, hooks=None,
           cgroups_path=None):
    """A config.json as `runc spec` writes it (1.1), for ROOTFS and ARGS."""
    caps = caps if caps is not None else ["CAP_AUDIT_WRITE", "CAP_KILL",
                                          "CAP_NET_BIND_SERVICE"]
    c = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in
                             ["bounding", "effective", "permitted", "ambient"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "oci-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in
                           ["pid", "network", "ipc", "uts", "mount", "cgroup"]],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"],
        },
    }
    if cgroups_path:
        c["linux"]["cgroupsPath"] = cgroups_path
    if annotations:
        c["annotations"] = annotations
    if hooks:
        c["hooks"] = hooks
    return c


class Oci:
    """cella-oci with --root under the test's tmp dir and a json log."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = tmp / "state"
        self.log = tmp / "oci.log"
        self.n = 0

    def cmd(self, *args, log_json=True):
        c = [OCI, "--root", str(self.root)]
        if log_json:
            c += ["--log", str(self.log), "--log-format", "json"]
        return c + [str(a) for a in args]

    def run(self, *args, timeout=30, **kw):
        return subprocess.run(self.cmd(*args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kw)

    def bundle(self, cfg):
        self.n += 1
        b = self.tmp / f"bundle{self.n}"
        b.mkdir()
        (b / "config.json").write_text(json.dumps(cfg))
        return b

    def create(self, cid, cfg, *extra, stdout=None):
        """create with the app's stdout on a pipe whose read end comes back."""
        b = self.bundle(cfg)
        rfd, wfd = os.pipe()
        pidfile = self.tmp / f"{cid}.pid"
        errf = open(self.tmp / f"{cid}.err", "w+")
        p = subprocess.run(self.cmd("create", "--bundle", b, "--pid-file", pidfile, *extra,
                                    cid),
                           stdin=subprocess.DEVNULL, stdout=wfd if stdout is None else stdout,
                           stderr=errf, timeout=30)
        os.close(wfd)
        errf.seek(0)
        err = errf.read()
        errf.close()
        assert p.returncode == 0, f"create {cid} failed: {err}\nlog: {self.logtext()}"
        return rfd, int(pidfile.read_text())

    def state(self, cid):
        p = self.run("state", cid)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def logtext(self):
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def oci(tmp_path):
    o = Oci(tmp_path)
    yield o
    # Whatever a failed test left: killed and removed.
    if o.root.exists():
        for d in o.root.iterdir():
            if d.name != "hostids" and (d / "state.json").exists():
                o.run("delete", "--force", d.name)


def read_line(fd, timeout=10.0):
    """One line of fd, waiting at most timeout seconds for it."""
    buf = b""
    while not buf.endswith(b"\n"):
        r, _, _ = select.select([fd], [], [], timeout)
        assert r, f"no output within {timeout} s (so far {buf!r})"
        chunk = os.read(fd, 1)
        assert chunk, f"EOF before a line (so far {buf!r})"
        buf += chunk
    return buf.decode().rstrip("\n")


def quiet(fd, timeout):
    """True if nothing arrives on fd within timeout seconds."""
    r, _, _ = select.select([fd], [], [], timeout)
    return not r


REAPED = {}


def reap(pid):
    """Waits for our (adopted) child pid; its exit code, or 128+N for signal N. As a
    subreaper must (conmon does), it reaps every other orphan that comes meanwhile: a
    process of a container's pid namespace whose parent outside it died (an exec's
    command) is reparented to the subreaper, and that namespace's init cannot finish
    exiting until it is reaped."""
    while pid not in REAPED:
        p, status = os.waitpid(-1, 0)
        REAPED[p] = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
            128 + os.WTERMSIG(status)
    return REAPED.pop(pid)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


LOOP = "echo started; while :; do sleep 0.05; done"


def test_lifecycle(oci, rootfs):
    rfd, pid = oci.create("life", config(rootfs, ["sh", "-c", LOOP]))
    st = oci.state("life")
    assert st["status"] == "created"
    assert st["id"] == "life" and st["pid"] == pid
    assert st["bundle"].endswith("bundle1") and st["ociVersion"]
    assert alive(pid)
    # The app waits at its gate: nothing of it ran.
    assert quiet(rfd, 0.5)
    p = oci.run("start", "life")
    assert p.returncode == 0, p.stderr
    assert read_line(rfd) == "started"
    assert oci.state("life")["status"] == "running"
    # A second start is refused.
    p = oci.run("start", "life")
    assert p.returncode == 1 and "not created" in p.stderr
    p = oci.run("kill", "life")  # SIGTERM by default
    assert p.returncode == 0, p.stderr
    assert reap(pid) == 128 + signal.SIGTERM
    assert oci.state("life")["status"] == "stopped"
    p = oci.run("delete", "life")
    assert p.returncode == 0, p.stderr
    p = oci.run("state", "life")
    assert p.returncode == 1
    assert 'container "life" does not exist' in p.stderr
    log = [json.loads(line) for line in oci.logtext().splitlines()]
    assert all(set(e) == {"level", "msg", "time"} for e in log)
    msgs = " ".join(e["msg"] for e in log)
    assert 'container "life" created' in msgs and 'container "life" started' in msgs
    assert 'container "life" deleted' in msgs
    os.close(rfd)


def test_exit_status_is_the_apps(oci, rootfs):
    rfd, pid = oci.create("code", config(rootfs, ["sh", "-c", "read x; exit 7"]),
                          stdout=subprocess.DEVNULL)
    os.close(rfd)
    assert oci.run("start", "code").returncode == 0
    assert reap(pid) == 7
    assert oci.state("code")["status"] == "stopped"
    assert oci.run("delete", "code").returncode == 0


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9", "sigkill"])
def test_kill_by_name_or_number(oci, rootfs, sig):
    rfd, pid = oci.create("k", config(rootfs, ["sh", "-c", LOOP]))
    assert oci.run("start", "k").returncode == 0
    assert read_line(rfd) == "started"
    p = oci.run("kill", "k", sig)
    assert p.returncode == 0, p.stderr
    assert reap(pid) == 128 + signal.SIGKILL
    assert oci.run("delete", "k").returncode == 0
    os.close(rfd)


def test_kill_bad_signal(oci, rootfs):
    rfd, pid = oci.create("badsig", config(rootfs, ["sh", "-c", LOOP]))
    for bad in ["NOSUCH", "0", "-1", "99999", ""]:
        p = oci.run("kill", "badsig", bad)
        assert p.returncode == 1 and "invalid signal" in p.stderr, (bad, p.stderr)
    assert oci.run("delete", "--force", "badsig").returncode == 0
    assert reap(pid) == 128 + signal.SIGKILL
    os.close(rfd)


def test_kill_all_and_ps(oci, rootfs):
    app = "sleep 1000 & sleep 1000 & echo started; wait"
    rfd, pid = oci.create("all", config(rootfs, ["sh", "-c", app]))
    assert oci.run("start", "all").returncode == 0
    assert read_line(rfd) == "started"
    p = oci.run("ps", "--format", "json", "all")
    assert p.returncode == 0, p.stderr
    pids = json.loads(p.stdout)
    # init, the shell and its two sleeps, each a host pid.
    assert pid in pids and len(pids) >= 4, pids
    assert all(alive(x) for x in pids)
    table = oci.run("ps", "all").stdout.splitlines()
    assert table[0].split() == ["PID", "CMD"] and any("sleep" in l for l in table[1:])
    p = oci.run("kill", "--all", "all", "KILL")
    assert p.returncode == 0, p.stderr
    assert reap(pid) == 128 + signal.SIGKILL
    assert not any(alive(x) for x in pids)
    assert oci.run("delete", "all").returncode == 0
    os.close(rfd)


def test_delete_running_needs_force(oci, rootfs):
    rfd, pid = oci.create("force", config(rootfs, ["sh", "-c", LOOP]))
    assert oci.run("start", "force").returncode == 0
    assert read_line(rfd) == "started"
    p = oci.run("delete", "force")
    assert p.returncode == 1 and "running" in p.stderr
    assert alive(pid)
    p = oci.run("delete", "--force", "force")
    assert p.returncode == 0, p.stderr
    assert reap(pid) == 128 + signal.SIGKILL
    assert "does not exist" in oci.run("state", "force").stderr
    os.close(rfd)


def test_delete_created(oci, rootfs):
    """A created container that never started is deleted (its app never runs)."""
    rfd, pid = oci.create("never", config(rootfs, ["sh", "-c", LOOP]))
    p = oci.run("delete", "never")
    assert p.returncode == 0, p.stderr
    assert reap(pid) == 128 + signal.SIGKILL
    # Its write end closed with it, nothing written.
    assert os.read(rfd, 100) == b""
    os.close(rfd)


def recv_fd(conn):
    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_LEN(fds.itemsize))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:fds.itemsize])
    assert len(fds) == 1, (msg, anc)
    return fds[0]


def test_console_socket(oci, rootfs):
    path = str(oci.tmp / "console.sock")
    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsn.bind(path)
    lsn.listen(1)
    cfg = config(rootfs, ["sh", "-c", "tty; echo hello-tty; read x; echo got-$x"],
                 terminal=True)
    rfd, pid = oci.create("tty", cfg, "--console-socket", path)
    lsn.settimeout(10)
    conn, _ = lsn.accept()
    conn.settimeout(10)
    master = recv_fd(conn)
    assert oci.run("start", "tty").returncode == 0
    out = b""
    while b"hello-tty" not in out:
        r, _, _ = select.select([master], [], [], 10)
        assert r, out
        out += os.read(master, 1024)
    assert b"/dev/pts/" in out
    os.write(master, b"ping\n")
    while b"got-ping" not in out:
        r, _, _ = select.select([master], [], [], 10)
        assert r, out
        try:
            out += os.read(master, 1024)
        except OSError:
            break
    assert b"got-ping" in out
    assert reap(pid) == 0
    assert oci.run("delete", "tty").returncode == 0
    for fd in (master, rfd):
        os.close(fd)
    conn.close()
    lsn.close()


def test_console_socket_required_for_terminal(oci, rootfs):
    b = oci.bundle(config(rootfs, ["true"], terminal=True))
    p = oci.run("create", "--bundle", b, "noterm")
    assert p.returncode == 1 and "--console-socket" in p.stderr
    assert "does not exist" in oci.run("state", "noterm").stderr


def test_exec(oci, rootfs):
    rfd, pid = oci.create("ex", config(rootfs, ["sh", "-c", LOOP]))
    assert oci.run("start", "ex").returncode == 0
    assert read_line(rfd) == "started"
    p = oci.run("exec", "ex", "sh", "-c", "echo in-$(hostname)")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "in-oci-test"
    p = oci.run("exec", "ex", "sh", "-c", "exit 3")
    assert p.returncode == 3
    p = oci.run("exec", "--env", "FOO=bar", "--cwd", "/tmp", "ex", "sh", "-c", 'echo $FOO $PWD')
    assert p.stdout.strip() == "bar /tmp", p.stderr
    # The exec'd command is in the container's pid namespace.
    p = oci.run("exec", "ex", "sh", "-c", "echo $$; cat /proc/1/cmdline | head -c 100")
    assert p.returncode == 0 and p.stdout.split()[0] != "1"
    # --process: a process.json.
    proc = {"args": ["sh", "-c", "echo from-json"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"]}
    pj = oci.tmp / "process.json"
    pj.write_text(json.dumps(proc))
    p = oci.run("exec", "--process", pj, "ex")
    assert p.returncode == 0 and p.stdout.strip() == "from-json", p.stderr
    # --detach with --pid-file: the pid file names a process that ends with the
    # command's status and becomes ours (a subreaper) once cella-oci has exited.
    dr, dw = os.pipe()
    pidf = oci.tmp / "exec.pid"
    p = subprocess.run(oci.cmd("exec", "--detach", "--pid-file", pidf, "ex", "sh", "-c",
                               "read x < /dev/null; echo detached; exit 5"),
                       stdin=subprocess.DEVNULL, stdout=dw, stderr=subprocess.PIPE, timeout=30)
    os.close(dw)
    assert p.returncode == 0, p.stderr
    assert read_line(dr) == "detached"
    assert reap(int(pidf.read_text())) == 5
    # A missing command fails in the exec, not later.
    p = oci.run("exec", "ex", "/no/such")
    assert p.returncode != 0 and "no/such" in p.stderr + oci.logtext()
    assert oci.run("delete", "--force", "ex").returncode == 0
    reap(pid)
    os.close(rfd)
    os.close(dr)


def test_failed_exec_leaves_no_zombie(oci, rootfs):
    """A failed exec's command is reaped by its helper, not left to us: after it, a
    subreaper that waits only for the init's pid (never waitpid(-1)) sees that init
    end once the container is deleted (a zombie of the container's pid namespace held
    by us would keep its init from finishing its exit)."""
    rfd, pid = oci.create("exz", config(rootfs, ["sh", "-c", LOOP]))
    assert oci.run("start", "exz").returncode == 0
    assert read_line(rfd) == "started"
    pidfd = os.pidfd_open(pid)
    try:
        for _ in range(5):
            p = oci.run("exec", "exz", "/no/such")
            assert p.returncode != 0
        assert oci.run("delete", "--force", "exz").returncode == 0
        # The init's pidfd turns readable when it is a zombie of ours: its whole pid
        # namespace has ended. No waitpid(-1) before that.
        r, _, _ = select.select([pidfd], [], [], 20)
        assert r, "the init did not end: an exec's command was left to the subreaper"
    finally:
        os.close(pidfd)
    reap(pid)
    os.close(rfd)


def test_missing_program_in_runc_words(oci, rootfs):
    """A program that cannot be executed is said as runc says it (`exec: "ARG0": no
    such file or directory`, the words podman maps to 127), then the sandbox
    library's plain fact when it says more; never cella's manifest advice."""
    p = oci.run("run", "--bundle", oci.bundle(config(rootfs, ["/no/such"])), "miss1")
    assert p.returncode != 0
    assert 'exec: "/no/such": no such file or directory' in p.stderr, p.stderr
    assert "manifest" not in p.stderr + oci.logtext() and "entry" not in p.stderr, p.stderr
    script = rootfs / "bin" / "badinterp"
    script.write_text("#!/no/interp\n")
    script.chmod(0o755)
    try:
        p = oci.run("run", "--bundle", oci.bundle(config(rootfs, ["/bin/badinterp"])), "miss2")
        assert p.returncode != 0
        assert 'exec: "/bin/badinterp": no such file or directory: /bin/badinterp: its #! ' \
            "interpreter /no/interp does not exist" in p.stderr, p.stderr
        assert "manifest" not in p.stderr and "jail shows" not in p.stderr, p.stderr
    finally:
        script.unlink()
    rfd, pid = oci.create("miss3", config(rootfs, ["sh", "-c", LOOP]))
    assert oci.run("start", "miss3").returncode == 0
    assert read_line(rfd) == "started"
    p = oci.run("exec", "miss3", "/no/such")
    assert p.returncode != 0
    assert 'exec: "/no/such": no such file or directory' in p.stderr, p.stderr
    assert oci.run("delete", "--force", "miss3").returncode == 0
    reap(pid)
    os.close(rfd)


def test_exec_holds_no_lock(oci, rootfs):
    """A long exec, attached or detached, leaves the container's other commands free."""
    rfd, pid = oci.create("exl", config(rootfs, ["sh", "-c", LOOP]))
    assert oci.run("start", "exl").returncode == 0
    assert read_line(rfd) == "started"
    pidf = oci.tmp / "exl.pid"
    p = subprocess.run(oci.cmd("exec", "--detach", "--pid-file", pidf, "exl", "sleep", "1000"),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
    assert p.returncode == 0
    keeper = int(pidf.read_text())
    attached = subprocess.Popen(oci.cmd("exec", "exl", "sh", "-c", "echo in; sleep 1000"),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    assert read_line(attached.stdout.fileno()) == "in"
    # Each would wait for the lock if an exec held it: the timeout fails the test.
    assert oci.state("exl")["status"] == "running"
    assert len(json.loads(oci.run("ps", "--format", "json", "exl").stdout)) >= 4
    assert oci.run("delete", "--force", "exl", timeout=20).returncode == 0
    assert attached.wait(timeout=30) != 0
    attached.stdout.close()
    assert reap(keeper) != 0
    reap(pid)
    os.close(rfd)


def test_exec_tty(oci, rootfs):
    """exec --tty: the command's pty master comes over --console-socket."""
    rfd, pid = oci.create("ext", config(rootfs, ["sh", "-c", LOOP]))
    assert oci.run("start", "ext").returncode == 0
    assert read_line(rfd) == "started"
    path = str(oci.tmp / "exec-console.sock")
    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsn.bind(path)
    lsn.listen(1)
    lsn.settimeout(10)
    p = subprocess.Popen(oci.cmd("exec", "--tty", "--console-socket", path, "ext", "sh", "-c",
                                 "tty; echo exec-tty-ok"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    conn, _ = lsn.accept()
    conn.settimeout(10)
    master = recv_fd(conn)
    out = b""
    while b"exec-tty-ok" not in out:
        r, _, _ = select.select([master], [], [], 10)
        assert r, out
        try:
            out += os.read(master, 1024)
        except OSError:
            break
    assert b"/dev/pts/" in out and b"exec-tty-ok" in out, out
    assert p.wait(timeout=30) == 0, p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    # Without a console socket, --tty is refused.
    q = oci.run("exec", "--tty", "ext", "true")
    assert q.returncode == 1 and "--console-socket" in q.stderr
    assert oci.run("delete", "--force", "ext").returncode == 0
    reap(pid)
    for fd in (master, rfd):
        os.close(fd)
    conn.close()
    lsn.close()


def test_pause_resume(oci, rootfs):
    count = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done"
    rfd, pid = oci.create("pz", config(rootfs, ["sh", "-c", count]))
    assert oci.run("start", "pz").returncode == 0
    first = int(read_line(rfd))
    assert oci.run("pause", "pz").returncode == 0
    assert oci.state("pz")["status"] == "paused"
    # Drain what was written before the freeze, then nothing more comes.
    while not quiet(rfd, 0.3):
        os.read(rfd, 4096)
    assert quiet(rfd, 0.5)
    p = oci.run("pause", "pz")
    assert p.returncode == 1 and "paused" in p.stderr
    assert oci.run("resume", "pz").returncode == 0
    assert oci.state("pz")["status"] == "running"
    assert int(read_line(rfd).split()[-1] or 0) >= first
    assert oci.run("delete", "--force", "pz").returncode == 0
    reap(pid)
    os.close(rfd)


@pytest.mark.parametrize("cid", ["../x", "a/b", ".hidden", "-flag", "x" * 129, "a\nb",
                                 "..", "."])
def test_hostile_ids_refused(oci, rootfs, cid):
    b = oci.bundle(config(rootfs, ["true"]))
    p = oci.run("create", "--bundle", b, cid)
    assert p.returncode == 1
    assert "invalid container id" in p.stderr or "unknown option" in p.stderr, p.stderr
    # Nothing was made outside the state root (nor inside it).
    assert not (oci.root.parent / "x").exists()
    assert not oci.root.exists() or [d.name for d in oci.root.iterdir()
                                     if d.name != "hostids"] == []
    for cmd in ["state", "start", "delete"]:
        p = oci.run(cmd, cid)
        assert p.returncode == 1


def test_missing_container(oci, rootfs):
    for args in (["state"], ["start"], ["kill"], ["delete"], ["pause"], ["resume"], ["ps"],
                 ["exec"]):
        extra = ["true"] if args == ["exec"] else []
        p = oci.run(*args, "nosuch", *extra)
        assert p.returncode == 1, args
        assert 'container "nosuch" does not exist' in p.stderr, (args, p.stderr)
    # delete --force of a missing one is no error (runc's).
    assert oci.run("delete", "--force", "nosuch").returncode == 0


def test_broken_config(oci, rootfs):
    cfg = config(rootfs, ["true"])
    cfg["process"]["args"] = "not-a-list"
    b = oci.bundle(cfg)
    p = oci.run("create", "--bundle", b, "broken")
    assert p.returncode == 1
    assert "config.json" in p.stderr and "process.args" in p.stderr, p.stderr
    errors = [json.loads(l) for l in oci.logtext().splitlines()]
    errors = [e for e in errors if e["level"] == "error"]
    assert errors and "process.args" in errors[-1]["msg"]
    (b / "config.json").write_text("{ not json")
    p = oci.run("create", "--bundle", b, "broken")
    assert p.returncode == 1 and "config.json" in p.stderr
    assert "does not exist" in oci.run("state", "broken").stderr


def status_of(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return fields


def app_pids(oci, cid, init):
    return [x for x in json.loads(oci.run("ps", "--format", "json", cid).stdout) if x != init]


def test_policy_cella_ids_and_caps(oci, rootfs):
    app = "id -u; id -g; grep CapEff /proc/self/status; echo started; " + \
          "while :; do sleep 0.05; done"
    rfd, pid = oci.create("pol", config(rootfs, ["sh", "-c", app],
                                        caps=["CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_KILL"]))
    assert oci.run("start", "pol").returncode == 0
    assert read_line(rfd) == "0"   # uid 0 inside
    assert read_line(rfd) == "0"
    capeff = read_line(rfd).split()[1]
    assert int(capeff, 16) == 0    # no capability under policy cella
    assert read_line(rfd) == "started"
    # On the host: one unprivileged id, not root.
    pids = app_pids(oci, "pol", pid)
    assert pids
    for x in pids:
        st = status_of(x)
        assert all(int(u) == int(st["Uid"][0]) for u in st["Uid"])
        assert int(st["Uid"][0]) >= 0x6FFF0000, st["Uid"]
        assert int(st["CapEff"][0], 16) == 0
    # Policy notes (the capabilities dropped) are in the log.
    assert "CAP_SYS_ADMIN" in oci.logtext() or "capabilit" in oci.logtext()
    # A second container gets another host id.
    rfd2, pid2 = oci.create("pol2", config(rootfs, ["sh", "-c", LOOP]))
    assert oci.run("start", "pol2").returncode == 0
    assert read_line(rfd2) == "started"
    uid2 = int(status_of(app_pids(oci, "pol2", pid2)[0])["Uid"][0])
    assert uid2 != int(status_of(pids[0])["Uid"][0])
    for cid, p in (("pol", pid), ("pol2", pid2)):
        assert oci.run("delete", "--force", cid).returncode == 0
        reap(p)
    os.close(rfd)
    os.close(rfd2)
    # Released on delete.
    assert not any((oci.root / "hostids").iterdir())


def test_policy_notes_warn_a_terminal_not_a_pipe(oci, rootfs):
    """Without --log, the policy's notes (the capabilities dropped) are warnings on
    stderr when it is a terminal, and left out when it is not (an engine's pipe:
    conmon at times shows what it reads there to podman's user, whose `podman run`
    then printed them); with --log they are in the log either way (test_policy_cella_ids_and_caps)."""
    import pty
    import select
    outs = {}
    for cid, tty in [("notes-file", False), ("notes-tty", True)]:
        b = oci.bundle(config(rootfs, ["true"]))
        if tty:
            rd, err = pty.openpty()
        else:
            err = os.open(oci.tmp / f"{cid}.err", os.O_RDWR | os.O_CREAT, 0o600)
            rd = os.dup(err)
        try:
            p = subprocess.run([OCI, "--root", str(oci.root), "create", "--bundle", b, cid],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                               timeout=30)
            # create has exited: all it wrote is there (the container's processes keep
            # the terminal open, so read what is buffered, not to the end).
            chunks = []
            if not tty:
                os.lseek(rd, 0, os.SEEK_SET)
            while select.select([rd], [], [], 0)[0]:
                data = os.read(rd, 65536)
                if not data:
                    break
                chunks.append(data)
        finally:
            os.close(err)
            os.close(rd)
            oci.run("delete", "--force", cid)
        assert p.returncode == 0, b"".join(chunks)
        outs[cid] = b"".join(chunks).decode(errors="replace")
    assert outs["notes-file"] == "", outs["notes-file"]
    assert "warning: " in outs["notes-tty"] and "policy cella" in outs["notes-tty"], outs
    assert "process.capabilities" in outs["notes-tty"], outs


def test_seccomp_denials_answered_and_logged(oci, rootfs):
    """Policy cella: a call outside cella's allowlist fails with EPERM, answered by the
    container's seccomp monitor (without an answer it would wait for ever), and is
    logged by name, then counted when the container ends."""
    app = "mount -t tmpfs none /tmp 2>/dev/null; echo rc=$?; mount -t tmpfs none /tmp; " + \
          "echo again"
    rfd, pid = oci.create("deny", config(rootfs, ["sh", "-c", app]))
    assert oci.run("start", "deny").returncode == 0
    line = read_line(rfd)
    assert line.startswith("rc=") and line != "rc=0", line
    assert read_line(rfd) == "again"
    assert reap(pid) == 0
    # The monitor writes its count once the last process is gone, then exits: it is
    # our child too (a subreaper's), so its exit is the event to wait for.
    while "seccomp denials" not in oci.logtext():
        p, status = os.waitpid(-1, 0)
        REAPED[p] = os.waitstatus_to_exitcode(status)
    log = oci.logtext()
    assert 'container \\"deny\\": seccomp denied mount (EPERM' in log, log
    assert log.count("seccomp denied mount") == 1
    assert "2 seccomp denials: mount 2" in log, log
    assert oci.run("delete", "deny").returncode == 0
    os.close(rfd)


def test_policy_compat_honours_caps(oci, rootfs):
    app = "grep CapEff /proc/self/status"
    cfg = config(rootfs, ["sh", "-c", app], annotations={"io.cella.policy": "compat"},
                 caps=["CAP_NET_BIND_SERVICE", "CAP_KILL"])
    # podman's sets (no ambient one: test_policy_compat_runs_runc_spec has them).
    del cfg["process"]["capabilities"]["ambient"]
    rfd, pid = oci.create("compat", cfg)
    assert oci.run("start", "compat").returncode == 0
    capeff = int(read_line(rfd).split()[1], 16)
    assert capeff == (1 << 10) | (1 << 5), hex(capeff)
    assert reap(pid) == 0
    assert oci.run("delete", "compat").returncode == 0
    os.close(rfd)


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_policy_compat_runs_runc_spec(oci, rootfs):
    """`runc spec`'s own config (ambient capabilities without an inheritable set) runs
    under policy compat as under runc: each ambient capability the kernel would refuse
    (not in both the permitted and the inheritable sets) is skipped, with a note in the
    log; one in both is raised."""
    b = oci.tmp / "runcspec"
    b.mkdir()
    subprocess.run(["runc", "spec"], cwd=b, check=True, capture_output=True, timeout=30)
    cfg = json.loads((b / "config.json").read_text())
    assert cfg["process"]["capabilities"].get("ambient") and \
        not cfg["process"]["capabilities"].get("inheritable"), cfg["process"]["capabilities"]
    cfg["root"]["path"] = str(rootfs)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "grep CapAmb /proc/self/status"]
    cfg["annotations"] = {"io.cella.policy": "compat"}
    (b / "config.json").write_text(json.dumps(cfg))
    p = oci.run("run", "--bundle", b, "runcspec")
    assert p.returncode == 0, p.stderr + oci.logtext()
    assert int(p.stdout.split()[1], 16) == 0, p.stdout
    assert "CAP_KILL" in oci.logtext() and "skipped" in oci.logtext(), oci.logtext()
    # With the inheritable set: raised.
    cfg["process"]["capabilities"]["inheritable"] = ["CAP_KILL"]
    cfg["process"]["capabilities"]["ambient"] = ["CAP_KILL"]
    (b / "config.json").write_text(json.dumps(cfg))
    p = oci.run("run", "--bundle", b, "runcspec2")
    assert p.returncode == 0, p.stderr + oci.logtext()
    assert int(p.stdout.split()[1], 16) == 1 << 5, p.stdout
    # The effective set outside the permitted one stays a refusal (runc's capset fails).
    cfg["process"]["capabilities"]["permitted"] = ["CAP_KILL"]
    cfg["process"]["capabilities"]["effective"] = ["CAP_KILL", "CAP_CHOWN"]
    (b / "config.json").write_text(json.dumps(cfg))
    p = oci.run("run", "--bundle", b, "runcspec3")
    assert p.returncode != 0 and "effective set must lie in the permitted" in p.stderr, p.stderr


@pytest.fixture
def uts_holder():
    """A process in a uts namespace of its own named "podns" (a pod's, say): its pid."""
    p = subprocess.Popen(["unshare", "--uts", "sh", "-c",
                          "hostname podns && echo ready && exec sleep 1000"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert read_line(p.stdout.fileno()) == "ready"
    yield p.pid
    p.kill()
    p.wait()
    p.stdout.close()


def test_hostname_in_joined_uts(oci, rootfs, uts_holder):
    """A config that joins a uts namespace and names a hostname: under policy cella the
    joined namespace is someone else's, so only its own name is accepted (a no-op);
    under policy compat it is renamed, as runc does. The host's uts namespace (none in
    the list) stays refused under both."""
    def cfg(hostname, policy):
        c = config(rootfs, ["cat", "/proc/sys/kernel/hostname"], annotations={"io.cella.policy": policy})
        c["hostname"] = hostname
        c["linux"]["namespaces"] = [
            n if n["type"] != "uts" else {"type": "uts", "path": f"/proc/{uts_holder}/ns/uts"}
            for n in c["linux"]["namespaces"]]
        return c

    def holder_name():
        return subprocess.run(["nsenter", "-t", str(uts_holder), "-u", "hostname"],
                              capture_output=True, text=True, check=True).stdout.strip()

    p = oci.run("run", "--bundle", oci.bundle(cfg("other", "cella")), "utsc1")
    assert p.returncode != 0 and "differs from the joined uts namespace's" in p.stderr, p.stderr
    assert holder_name() == "podns"
    p = oci.run("run", "--bundle", oci.bundle(cfg("podns", "cella")), "utsc2")
    assert p.returncode == 0 and p.stdout.strip() == "podns", p.stderr
    p = oci.run("run", "--bundle", oci.bundle(cfg("renamed", "compat")), "utsc3")
    assert p.returncode == 0 and p.stdout.strip() == "renamed", p.stderr
    assert holder_name() == "renamed"
    shared = cfg("x", "compat")
    shared["linux"]["namespaces"] = [n for n in shared["linux"]["namespaces"]
                                     if n["type"] != "uts"]
    p = oci.run("run", "--bundle", oci.bundle(shared), "utsc4")
    assert p.returncode != 0 and "the host's is shared" in p.stderr, p.stderr
    assert os.uname().nodename != "x"


def test_cgroup_is_the_configs_path(oci, rootfs):
    path = f"/cella-oci-test/ctr-{os.getpid()}"
    rfd, pid = oci.create("cg", config(rootfs, ["sh", "-c", LOOP], cgroups_path=path))
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    assert any(l.endswith(":" + path) for l in lines), lines
    assert oci.run("delete", "--force", "cg").returncode == 0
    reap(pid)
    for l in lines:
        ctrl = l.split(":")[1]
        if l.endswith(":" + path):
            base = "/sys/fs/cgroup/" + (ctrl.replace("name=", "") if ctrl else "unified")
            if not os.path.isdir(base):
                base = "/sys/fs/cgroup"
            assert not os.path.exists(base + path), base + path
    os.close(rfd)


def test_cgroup_path_refusals(oci, rootfs):
    """A relative cgroupsPath, and a cgroup that holds processes already, are refused."""
    b = oci.bundle(config(rootfs, ["true"], cgroups_path="rel/x"))
    p = oci.run("create", "--bundle", b, "rel")
    assert p.returncode == 1 and "relative path is not supported" in p.stderr, p.stderr
    path = f"/cella-oci-test/busy-{os.getpid()}"
    rfd, pid = oci.create("busy1", config(rootfs, ["sh", "-c", LOOP], cgroups_path=path))
    b = oci.bundle(config(rootfs, ["true"], cgroups_path=path))
    p = oci.run("create", "--bundle", b, "busy2")
    assert p.returncode == 1 and "holds processes" in p.stderr, p.stderr
    assert "does not exist" in oci.run("state", "busy2").stderr
    # The first container is untouched by the refused one.
    assert oci.state("busy1")["status"] == "created"
    assert oci.run("delete", "busy1").returncode == 0
    reap(pid)
    os.close(rfd)


def test_hooks(oci, rootfs):
    out = oci.tmp / "hooks"
    out.mkdir()

    def hook(name):
        return [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{name}.json"],
                 "timeout": 10}]

    # startContainer runs in the container's root, which has no such path:
    # test_container_hooks_run_in_the_container.
    hooks = {k: hook(k) for k in ["prestart", "createRuntime", "createContainer",
                                   "poststart", "poststop"]}
    rfd, pid = oci.create("hk", config(rootfs, ["sh", "-c", LOOP], hooks=hooks))
    for k in ["prestart", "createRuntime", "createContainer"]:
        st = json.loads((out / f"{k}.json").read_text())
        assert st["id"] == "hk" and st["pid"] == pid, st
    assert oci.run("start", "hk").returncode == 0
    assert json.loads((out / "poststart.json").read_text())["status"] == "running"
    assert oci.run("delete", "--force", "hk").returncode == 0
    assert json.loads((out / "poststop.json").read_text())["id"] == "hk"
    reap(pid)
    os.close(rfd)


def test_container_hooks_run_in_the_container(oci, rootfs):
    """createContainer and startContainer hooks run in the container's namespaces
    (runtime-spec config.md): startContainer's path and files are the container's
    (its marker lands in the rootfs, not on the host's /), before the app's execve
    (the app's first output shows the marker); createContainer's path and files are
    the runtime's (it writes a host path), its network namespace the container's."""
    out = oci.tmp / "chooks"
    out.mkdir()
    mark = f"hookmark-{os.getpid()}"
    assert not os.path.exists(f"/{mark}")
    hooks = {
        # /bin/sh of the rootfs (busybox): the path resolves in the container.
        "startContainer": [{"path": "/bin/sh",
                            "args": ["sh", "-c", f"cat > /{mark}; echo >> /{mark}; readlink /proc/self/ns/net "
                                                 f">> /{mark}"],
                            "timeout": 10}],
        # A script of the host's (a path the container does not have), writing a host
        # path.
        "createContainer": [{"path": str(out / "create-hook"), "timeout": 10}],
    }
    (out / "create-hook").write_text(f"#!/bin/sh\nreadlink /proc/self/ns/net > {out}/create\n")
    (out / "create-hook").chmod(0o755)
    cfg = config(rootfs, ["sh", "-c", f"cat /{mark}; echo; echo app-started; {LOOP}"],
                 hooks=hooks)
    cfg["root"]["readonly"] = False
    try:
        rfd, pid = oci.create("chk", cfg)
        netns = os.readlink(f"/proc/{pid}/ns/net")
        assert netns != os.readlink("/proc/self/ns/net")
        assert (out / "create").read_text().strip() == netns
        assert not (rootfs / mark).exists()
        assert oci.run("start", "chk").returncode == 0
        # The app's first output is the marker the hook wrote: it ran before the app.
        state = json.loads(read_line(rfd))
        assert state["id"] == "chk" and state["pid"] == pid, state
        assert read_line(rfd) == netns
        assert read_line(rfd) == ""
        assert read_line(rfd) == "app-started"
        assert (rootfs / mark).exists() and not os.path.exists(f"/{mark}")
        assert oci.run("delete", "--force", "chk").returncode == 0
        reap(pid)
        os.close(rfd)
    finally:
        if (rootfs / mark).exists():
            (rootfs / mark).unlink()


def test_container_hook_timeout_reaps_it(oci, rootfs):
    """A startContainer hook past its timeout is killed and reaped in the container,
    and the start fails; the container's init then ends for a subreaper that waits
    for its pid only."""
    hooks = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 600"],
                                 "timeout": 1}]}
    rfd, pid = oci.create("chto", config(rootfs, ["sh", "-c", LOOP], hooks=hooks))
    pidfd = os.pidfd_open(pid)
    try:
        p = oci.run("start", "chto", timeout=60)
        assert p.returncode == 1 and "timeout of 1 s" in p.stderr, p.stderr
        r, _, _ = select.select([pidfd], [], [], 20)
        assert r, "the init did not end: the hook was left to the subreaper"
    finally:
        os.close(pidfd)
    reap(pid)
    oci.run("delete", "--force", "chto")
    os.close(rfd)


def test_container_hook_of_a_killed_start_is_reaped(oci, rootfs):
    """`start` killed (SIGKILL) while its startContainer hook runs in the container:
    the hook is killed and reaped in the container by cella-oci's middle process, not
    left to us; the container's init then ends for a subreaper that waits for its
    pid only."""
    hooks = {"startContainer": [{"path": "/bin/sh",
                                 "args": ["sh", "-c", "echo hook-running >&2; exec sleep 600"]}]}
    rfd, pid = oci.create("chk2", config(rootfs, ["sh", "-c", LOOP], hooks=hooks))
    pidfd = os.pidfd_open(pid)
    start = subprocess.Popen(oci.cmd("start", "chk2", log_json=False), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert read_line(start.stderr.fileno()) == "hook-running"
        start.kill()
        assert start.wait(timeout=30) == -signal.SIGKILL
        assert oci.run("delete", "--force", "chk2").returncode == 0
        r, _, _ = select.select([pidfd], [], [], 20)
        assert r, "the init did not end: the hook was left to the subreaper"
    finally:
        os.close(pidfd)
        start.stderr.close()
    reap(pid)
    os.close(rfd)


def test_failing_hook_fails_create(oci, rootfs):
    hooks = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]}
    b = oci.bundle(config(rootfs, ["sh", "-c", LOOP], hooks=hooks))
    p = oci.run("create", "--bundle", b, "badhook")
    assert p.returncode == 1 and "createRuntime" in p.stderr and "4" in p.stderr
    assert "does not exist" in oci.run("state", "badhook").stderr


def test_hook_timeout(oci, rootfs):
    """A hook past its timeout is killed and fails the create (no wait for it)."""
    hooks = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 600"],
                           "timeout": 1}]}
    b = oci.bundle(config(rootfs, ["sh", "-c", LOOP], hooks=hooks))
    p = oci.run("create", "--bundle", b, "slowhook", timeout=60)
    assert p.returncode == 1 and "timeout of 1 s" in p.stderr, p.stderr
    assert "does not exist" in oci.run("state", "slowhook").stderr


def test_concurrent_commands(oci, rootfs):
    """Racing creates of one id: exactly one wins. Racing creates of distinct ids: each its
    own host id. Racing kills and states on one container take turns on its lock."""
    b = oci.bundle(config(rootfs, ["sh", "-c", LOOP]))
    outs = []
    procs = []
    for i in range(6):
        f = open(oci.tmp / f"race{i}.err", "w+")
        outs.append(f)
        procs.append(subprocess.Popen(oci.cmd("create", "--bundle", b, "same"),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=f))
    codes = [p.wait(timeout=60) for p in procs]
    assert codes.count(0) == 1, codes
    for f, c in zip(outs, codes):
        f.seek(0)
        if c:
            assert "already exists" in f.read()
        f.close()
    pid = oci.state("same")["pid"]
    procs = [subprocess.Popen(oci.cmd("create", "--bundle", b, f"par{i}"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for i in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    owners = {f.name: f.read_text() for f in (oci.root / "hostids").iterdir()}
    assert sorted(owners.values()) == sorted(["same"] + [f"par{i}" for i in range(4)])
    assert oci.run("start", "same").returncode == 0
    procs = [subprocess.Popen(oci.cmd(*args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for args in [("state", "same"), ("kill", "same", "KILL"), ("state", "same"),
                          ("ps", "--format", "json", "same")] * 2]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode in (0, 1), err
        assert b"does not exist" not in err
    assert reap(pid) == 128 + signal.SIGKILL
    for cid in ["same"] + [f"par{i}" for i in range(4)]:
        p0 = oci.state(cid)["pid"]
        assert oci.run("delete", "--force", cid).returncode == 0
        if p0:
            reap(p0)
    assert not any((oci.root / "hostids").iterdir())


def test_minimal_config(oci, rootfs):
    """A config with little more than the spec requires (no hostname, capabilities,
    rlimits; /proc alone mounted: the start gate is reached through /proc/self/fd, as
    runc's): the app runs, its uts namespace named as runc leaves it, the caller's
    name (spec.c)."""
    cfg = {"ociVersion": "1.0.0", "root": {"path": str(rootfs)},
           "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
           "process": {"args": ["sh", "-c", "hostname"], "cwd": "/",
                       "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]},
           "linux": {"namespaces": [{"type": t} for t in ["pid", "ipc", "uts", "mount",
                                                            "network"]]}}
    b = oci.bundle(cfg)
    p = oci.run("run", "--bundle", b, "bare-1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == socket.gethostname()


def test_closed_stdio(oci, rootfs):
    """Started with fds 0-2 closed, cella-oci's own files (its log) never become the
    app's stdio: the app finds /dev/null there."""
    b = oci.bundle(config(rootfs, ["sh", "-c", "echo out; ls -l /proc/self/fd/ > /tmp/x; "
                                               "echo injected >&0; echo injected >&2"]))
    p = subprocess.run(oci.cmd("run", "--bundle", b, "closed"), close_fds=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60,
                       preexec_fn=lambda: [os.close(fd) for fd in (0, 1, 2)])
    assert p.returncode == 0
    assert "injected" not in oci.logtext()
    assert 'container "closed" created' in oci.logtext().replace('\\"', '"')


def test_run(oci, rootfs):
    b = oci.bundle(config(rootfs, ["sh", "-c", "echo via-run; exit 6"]))
    p = oci.run("run", "--bundle", b, "r1")
    assert p.returncode == 6, p.stderr
    assert p.stdout.strip() == "via-run"
    assert "does not exist" in oci.run("state", "r1").stderr


def test_refusals(oci, rootfs):
    b = oci.bundle(config(rootfs, ["true"]))
    p = subprocess.run([OCI, "--root", str(oci.root), "--systemd-cgroup", "create", "--bundle",
                        str(b), "sd"], capture_output=True, text=True, timeout=30)
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here: the refusal cannot be seen")
    assert p.returncode == 1 and "systemd is not running" in p.stderr, p.stderr
    p = oci.run("create", "--no-pivot", "--bundle", b, "np")
    assert p.returncode == 1 and "--no-pivot" in p.stderr
    rfd, pid = oci.create("dup", config(rootfs, ["true"]))
    # (the app holds its stdout: this create's output goes to a file)
    with open(oci.tmp / "dup2.err", "w+") as err:
        p = subprocess.run(oci.cmd("create", "--bundle", b, "dup"), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        err.seek(0)
        assert p.returncode == 1 and "already exists" in err.read()
    assert oci.state("dup")["pid"] == pid
    assert oci.run("delete", "dup").returncode == 0
    reap(pid)
    os.close(rfd)


def test_features_and_version():
    p = subprocess.run([OCI, "features"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    f = json.loads(p.stdout)
    assert f["ociVersionMin"].startswith("1.0") and f["ociVersionMax"].startswith("1.")
    assert "prestart" in f["hooks"] and "poststop" in f["hooks"]
    assert "user" in f["linux"]["namespaces"]
    assert "CAP_SYS_ADMIN" in f["linux"]["capabilities"]
    assert f["linux"]["cgroup"]["v1"] and f["linux"]["cgroup"]["v2"]
    assert "SCMP_ACT_ERRNO" in f["linux"]["seccomp"]["actions"]
    assert "io.cella.policy" in f["annotations"]
    p = subprocess.run([OCI, "--version"], capture_output=True, text=True, timeout=30)
    lines = p.stdout.splitlines()
    assert lines[0].startswith("cella-oci version ") and lines[1].startswith("spec: 1.")
