"""`cella ps`, `cella logs`, and the control socket the CLI uses to reach running
kernels (docs/cli.md): against a stand-in kernel written here (the protocol as
documented), and against a real `cella boot`."""
import json
import os
import select
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import CELLA, kernel_pid_of, run_timed, wait_written

APP = "org.test.pslogs"


def cella(cmd, *args, state, timeout=60):
    return subprocess.run([CELLA, cmd, "--state-dir", str(state), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


class FakeKernel:
    """A kernel's control socket, as docs/cli.md describes it: <state>/run/<pid>.sock,
    one JSON object per line each way. Records every request it gets."""

    def __init__(self, state, apps, pid=None):
        self.apps = apps
        self.requests = []
        run = state / "run"
        run.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = run / f"{pid or os.getpid()}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(2)
                buf = b""
                try:
                    while b"\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                except socket.timeout:
                    continue
                if b"\n" not in buf:
                    continue
                req = json.loads(buf.split(b"\n")[0])
                self.requests.append(req)
                if req.get("method") == "org.cella.Ps":
                    reply = {"parameters": {"apps": self.apps}}
                else:
                    reply = {"parameters": {}}
                conn.sendall(json.dumps(reply).encode() + b"\n")

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def kernel(state):
    made = []

    def make(apps=(), pid=None):
        k = FakeKernel(state, list(apps), pid)
        made.append(k)
        return k

    yield make
    for k in made:
        k.close()



def start_boot(state, apps):
    """Starts `cella boot --no-prompt` of apps on state with a status stream:
    returns (the Popen, its status records as a text file)."""
    rfd, wfd = os.pipe()
    boot = subprocess.Popen([CELLA, "boot", "--state-dir", str(state), "--no-prompt",
                             "--json-status", str(wfd), str(apps)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            pass_fds=(wfd,))
    os.close(wfd)
    return boot, os.fdopen(rfd)


def stop_boot(boot, status):
    """Ends a `cella boot` (a Popen) with SIGINT, killing it after 20 s, and closes
    its status stream."""
    boot.send_signal(signal.SIGINT)
    try:
        boot.wait(timeout=20)
    except subprocess.TimeoutExpired:
        boot.kill()
        boot.wait()
    status.close()


def assert_revoked_in_broker(state, boot):
    """APP's audit records in state hold a revoke its kernel's broker applied."""
    p = cella("audit", "--json", "--app", APP, state=state)
    assert p.returncode == 0, p.stderr
    what = [json.loads(line).get("what") for line in p.stdout.splitlines()]
    assert "revoked-in-broker" in what, (what, boot.stderr.read())

def test_ps_without_kernels(state):
    p = cella("ps", state=state)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["APP", "PID", "UID", "STATE", "UPTIME", "MEMORY", "RESTARTS",
                                "CALLS", "KERNEL-PID"]
    p = cella("ps", "--json", state=state)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []
    assert cella("ps", "extra", state=state).returncode == 240


def test_ps_lists_every_kernel(state, kernel):
    now = int(time.time() * 1000)
    k = kernel([{"id": "org.test.one", "kind": "app", "state": "running", "pid": 4242,
                 "uid": 1879048192, "started_ms": now - 3723_000, "memory_bytes": 12 << 20,
                 "restarts": 2, "calls": 17, "refused": 1},
                {"id": "org.test.\x1b[31mevil", "kind": "service", "state": "failed", "pid": 0,
                 "uid": 1879048193, "started_ms": 0, "restarts": 5, "calls": 0, "refused": 0}])
    p = cella("ps", "--json", state=state)
    assert p.returncode == 0, p.stderr
    assert k.requests == [{"method": "org.cella.Ps", "parameters": {}}]
    doc = json.loads(p.stdout)
    assert [a["id"] for a in doc] == ["org.test.one", "org.test.\x1b[31mevil"]
    assert all(a["kernel_pid"] == os.getpid() for a in doc)
    assert doc[0]["calls"] == 17

    p = cella("ps", state=state)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 3
    one = lines[1].split()
    assert one == ["org.test.one", "4242", "1879048192", "running", "1h02m", "12M", "2", "17",
                   str(os.getpid())]
    # A kernel's strings reach the terminal only as plain characters.
    assert "\x1b" not in p.stdout
    assert lines[2].split()[:4] == ["org.test.??31mevil", "-", "1879048193", "failed"]


def test_ps_removes_stale_sockets(state):
    # A kernel that died without cleaning up: its pid is gone, nobody listens.
    child = subprocess.Popen(["true"])
    child.wait()
    run = state / "run"
    run.mkdir(parents=True, mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(run / f"{child.pid}.sock"))
    s.close()
    assert (run / f"{child.pid}.sock").exists()
    p = cella("ps", "--json", state=state)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []
    assert not (run / f"{child.pid}.sock").exists()


def mute_socket(state, pid):
    """A socket that accepts (the kernel's backlog takes the connection) but nobody
    reads: a live kernel that cannot answer."""
    run = state / "run"
    run.mkdir(parents=True, exist_ok=True, mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(run / f"{pid}.sock"))
    s.listen(4)
    return s


def test_ps_names_the_kernels_that_do_not_answer(state, kernel):
    # Two live pids whose sockets accept but never answer, and one kernel that does.
    mutes = [mute_socket(state, 1), mute_socket(state, os.getppid())]
    kernel([{"id": "org.test.one", "state": "running"}])
    try:
        # Every kernel is asked at once with one 5 s deadline: two mute kernels cost
        # one deadline, not two (wall clock less what the machine kept ps off a CPU).
        p, took = run_timed([CELLA, "ps", "--state-dir", str(state), "--json"])
        assert p.returncode == 2, p.stderr  # listed, but incomplete
        assert took < 9, took
        doc = json.loads(p.stdout)
        assert [a["id"] for a in doc if "id" in a] == ["org.test.one"]
        missing = sorted((a for a in doc if "id" not in a), key=lambda a: a["kernel_pid"])
        assert [(a["kernel_pid"], a["state"], a["state_dir"]) for a in missing] == \
            sorted([(1, "not-answering", str(state)), (os.getppid(), "not-answering", str(state))])
        assert all("did not answer within 5 s" in a["error"] for a in missing)
        for pid in (1, os.getppid()):
            assert f"kernel {pid} on {state} did not answer within 5 s; its apps are not " \
                "listed" in p.stderr, p.stderr
            assert (state / "run" / f"{pid}.sock").exists()  # alive: not removed

        # The table lists what it has and says on stderr what it lacks.
        p = cella("ps", state=state)
        assert p.returncode == 2, p.stderr
        assert "org.test.one" in p.stdout and "kernel 1 on" in p.stderr

        # stats names them too, beside the hosts it got.
        p = cella("stats", "--json", state=state)
        assert p.returncode == 2, p.stderr
        doc = json.loads(p.stdout)
        assert sorted(a["kernel_pid"] for a in doc["not_answering"]) == \
            sorted([1, os.getppid()])
    finally:
        for m in mutes:
            m.close()


def test_forget_refuses_while_a_kernel_does_not_answer(state, kernel, make_app):
    # The app may run on the kernel that is mute: its data must stay.
    d = make_app(APP, script="exit 0\n", permissions=["camera"])
    assert cella("grant", "--app-dir", d, APP, "camera", state=state).returncode == 0
    m = mute_socket(state, 1)
    try:
        p = cella("forget", APP, state=state)
        assert p.returncode == 1, p.stderr
        assert "did not answer" in p.stderr and "nothing was forgotten" in p.stderr, p.stderr
    finally:
        m.close()
    p = cella("permissions", "--json", APP, state=state)
    assert p.returncode == 0, p.stderr  # still installed
    assert [g["right"] for g in json.loads(p.stdout)["grants"]] == ["camera"]


@pytest.fixture
def app(make_app):
    return make_app(APP, script="exit 0\n", permissions=["camera", "location"])


def test_grant_revoke_gesture_tell_the_kernels(state, kernel, app):
    k = kernel()
    p = cella("grant", "--app-dir", app, APP, "camera", state=state)
    assert p.returncode == 0, p.stderr
    told = {"method": "org.cella.GrantsChanged", "parameters": {"app": APP}}
    assert k.requests == [told]
    p = cella("revoke", APP, "camera", state=state)
    assert p.returncode == 0, p.stderr
    p = cella("gesture", APP, state=state)
    assert p.returncode == 0, p.stderr
    assert k.requests == [told] * 3
    # A refused grant changes nothing and tells nobody.
    p = cella("grant", APP, "microphone", state=state)
    assert p.returncode == 1
    assert len(k.requests) == 3

    # Each change is in the audit log as a "grant" record.
    p = cella("audit", "--json", "--app", APP, state=state)
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    grants = [(r["what"], r.get("right"), r["by"]) for r in recs if r["event"] == "grant"]
    assert grants == [("granted", "camera", "cli"), ("revoked", "camera", "cli"),
                      ("gesture", None, "cli")]


def test_grant_without_kernels_is_fine(state, app):
    state.mkdir(mode=0o711)  # made already: its making is said on stderr
    p = cella("grant", "--app-dir", app, APP, "location", state=state)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""


def write_logs(state, files):
    d = state / "logs"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_logs_prints_rotated_files_in_order(state):
    write_logs(state, {f"{APP}.log.2": "a1\na2\n", f"{APP}.log.1": "b1\nb2\n",
                       f"{APP}.log": "c1\nc2\nc3\n",
                       "org.test.other.log": "not mine\n"})
    p = cella("logs", APP, state=state)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "a1\na2\nb1\nb2\nc1\nc2\nc3\n"
    assert cella("logs", "-n", "2", APP, state=state).stdout == "c2\nc3\n"
    assert cella("logs", "-n", "4", APP, state=state).stdout == "b2\nc1\nc2\nc3\n"
    assert cella("logs", "-n", "100", APP, state=state).stdout == p.stdout
    assert cella("logs", "-n", "0", APP, state=state).stdout == ""


def test_logs_last_line_without_newline(state):
    write_logs(state, {f"{APP}.log.1": "x\n", f"{APP}.log": "y\nz"})
    assert cella("logs", "-n", "1", APP, state=state).stdout == "z"
    assert cella("logs", "-n", "2", APP, state=state).stdout == "y\nz"
    assert cella("logs", "-n", "3", APP, state=state).stdout == "x\ny\nz"


def test_logs_errors(state):
    p = cella("logs", APP, state=state)
    assert p.returncode == 1
    assert f"{APP} has no log" in p.stderr
    write_logs(state, {"org.test.other.log": "x\n"})
    assert cella("logs", APP, state=state).returncode == 1
    # The id becomes a file name: only an app id gets that far.
    for bad in ["../../etc/passwd", "noapp", "org.test.x/..", ""]:
        p = cella("logs", bad, state=state)
        assert p.returncode == 240, bad
    assert cella("logs", "-n", "-3", APP, state=state).returncode == 240
    assert cella("logs", "-n", "lots", APP, state=state).returncode == 240
    assert cella("logs", state=state).returncode == 240


def read_until(proc, want, timeout=10):
    """Reads proc's stdout (non-blocking) until it holds want."""
    out = b""
    end = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    while time.monotonic() < end:
        # Waits for the next output (or the deadline), not a fixed time.
        if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
            break
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        out += chunk
        if want.encode() in out:
            return out.decode()
    raise AssertionError(f"never saw {want!r}; got {out!r}")


def test_logs_follow_across_rotation(state):
    d = write_logs(state, {f"{APP}.log": "one\ntwo\n"})
    log = d / f"{APP}.log"
    p = subprocess.Popen([CELLA, "logs", "--state-dir", str(state), "-f", "-n", "1", APP],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = read_until(p, "two\n")
        assert "one" not in out
        with open(log, "a") as f:
            f.write("three\n")
        out += read_until(p, "three\n")
        # Rotate as applog does: the file becomes .1, a new one takes its name.
        with open(log, "a") as f:
            f.write("four\n")
        os.rename(log, d / f"{APP}.log.1")
        log.write_text("five\n")
        out += read_until(p, "five\n")
        with open(log, "a") as f:
            f.write("six\n")
        out += read_until(p, "six\n")
        # Truncated in place (applog with no rotated files kept).
        log.write_text("seven\n")
        out += read_until(p, "seven\n")
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
    lines = out.split()
    assert lines == ["two", "three", "four", "five", "six", "seven"]


@pytest.mark.twin
def test_boot_ps_logs_revoke(state, make_app, tmp_path):
    """The real thing: a kernel from `cella boot`, listed by ps, its app's output
    read by logs, told of a revoke."""
    apps = tmp_path / "apps"
    apps.mkdir()
    os.chmod(apps, 0o755)
    d = make_app(APP, script="i=0\nwhile true; do echo \"tick $i\"; i=$((i+1)); sleep 0.1; done\n",
                 permissions=["camera"])
    os.rename(d, apps / "pslogs")
    (state / "logs").mkdir(parents=True)
    boot, status = start_boot(state, apps)
    try:
        started = json.loads(status.readline() or "{}")
        assert started.get("event") == "started", boot.stderr.read() if boot.poll() else started
        kpid = kernel_pid_of(boot)  # the boot's kernel: cellad's child in a daemon twin
        sock = state / "run" / f"{kpid}.sock"
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(state / "run").st_mode) == 0o700

        p = cella("ps", "--json", state=state)
        assert p.returncode == 0, p.stderr
        (rec,) = json.loads(p.stdout)
        # An app cella boot started runs in background (docs/design.md "App states").
        assert rec["id"] == APP and rec["state"] == "background" and rec["running"] is True
        assert rec["kernel_pid"] == kpid and rec["pid"] == started["pid"]
        p = cella("ps", state=state)
        assert APP in p.stdout and "background" in p.stdout

        def two_ticks():
            p = cella("logs", "-n", "2", APP, state=state)
            return p if p.returncode == 0 and p.stdout.count("tick") == 2 else None

        # Looked at again at each write into the logs folder.
        p = wait_written(two_ticks, state / "logs", 10, "two ticks in the app's log", kpid)
        assert p.stdout.count("tick") == 2, p.stderr

        assert cella("grant", "--app-dir", apps / "pslogs", APP, "camera",
                     state=state).returncode == 0
        assert cella("revoke", APP, "camera", state=state).returncode == 0
    finally:
        stop_boot(boot, status)
    # The kernel re-read the grants at once: its broker recorded the loss.
    assert_revoked_in_broker(state, boot)
    # The kernel took its socket with it.
    assert not (state / "run" / f"{kpid}.sock").exists()


@pytest.mark.twin
def test_ps_names_a_stopped_kernel(state, make_app, tmp_path, kernel):
    """A real kernel that is alive but cannot answer (SIGSTOP): ps lists the other
    kernel's apps, names the stopped one, exits 2, and does not hang; once it runs
    again (SIGCONT) its apps are back."""
    apps = tmp_path / "apps"
    apps.mkdir()
    os.chmod(apps, 0o755)
    d = make_app(APP, script="while true; do sleep 1; done\n", permissions=["camera"])
    os.rename(d, apps / "pslogs")
    assert cella("grant", "--app-dir", apps / "pslogs", APP, "camera",
                 state=state).returncode == 0
    boot, status = start_boot(state, apps)
    try:
        started = json.loads(status.readline() or "{}")
        assert started.get("event") == "started", boot.stderr.read() if boot.poll() else started
        kpid = kernel_pid_of(boot)  # the boot's kernel: cellad's child in a daemon twin
        kernel([{"id": "org.test.other", "state": "running"}])
        # Stopped once its loop has served a request after the start: not inside the
        # start's writes to the state's databases, whose lock the revoke below needs
        # (once, in a whole run, the revoke waited past 60 s; a start still writing
        # when stopped is the suspect).
        p = cella("ps", "--json", state=state)
        assert p.returncode == 0 and (APP, kpid) in [(a.get("id"), a["kernel_pid"])
                                                     for a in json.loads(p.stdout)], p
        os.kill(kpid, signal.SIGSTOP)
        p, took = run_timed([CELLA, "ps", "--state-dir", str(state), "--json"])
        assert p.returncode == 2, p.stderr
        assert took < 9, took
        doc = json.loads(p.stdout)
        assert [(a["id"], a["kernel_pid"]) for a in doc if "id" in a] == \
            [("org.test.other", os.getpid())]
        assert [(a["kernel_pid"], a["state"], a["state_dir"]) for a in doc if "id" not in a] \
            == [(kpid, "not-answering", str(state))]
        assert f"kernel {kpid} on {state} did not answer within 5 s" in p.stderr, p.stderr
        # A revoke meanwhile: the request waits in the stopped kernel's socket.
        assert cella("revoke", APP, "camera", state=state).returncode == 0

        os.kill(kpid, signal.SIGCONT)
        p = cella("ps", "--json", state=state)
        assert p.returncode == 0, p.stderr
        assert sorted((a["id"], a["kernel_pid"]) for a in json.loads(p.stdout)) == \
            sorted([(APP, kpid), ("org.test.other", os.getpid())])
    finally:
        os.kill(kpid, signal.SIGCONT)
        stop_boot(boot, status)
    # It read the revoke once it ran again: its broker recorded the loss.
    assert_revoked_in_broker(state, boot)


LOG_EVIL = (b"ok \x1b]52;c;UFdORUQ=\x07\x1b]0;pwned\x07\x1b[2J\x1b[6n\xc2\x9b31m"
            b"\xe2\x80\xae caf\xc3\xa9 \xe6\x97\xa5\r\n\tend\n")
LOG_SAFE = (b"ok ^[]52;c;UFdORUQ=^G^[]0;pwned^G^[[2J^[[6n\\u009b31m"
            b"\\u202e caf\xc3\xa9 \xe6\x97\xa5\r\n\tend\n")


def logs_on_pty(state, *args, until=None, then=None, timeout=20):
    """`cella logs ARGS` with its stdout (and stderr) on a pty whose output is not
    processed (no \\n -> \\r\\n): returns what the terminal got. With until, reads
    until that shows, calls then(), reads until it shows again, and stops it."""
    import pty
    import select
    import termios
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    p = subprocess.Popen([CELLA, "logs", "--state-dir", str(state), *args], stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave)
    os.close(slave)
    out, deadline, seen = b"", time.monotonic() + timeout, 0
    try:
        while time.monotonic() < deadline:
            if until is not None and out.count(until) > seen:
                seen += 1
                if seen == 2:
                    break
                then()
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                if not chunk and p.poll() is not None:
                    break
                out += chunk
            elif until is None and p.poll() is not None:
                break
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
        os.close(master)
    return out


def test_logs_on_a_terminal_are_rendered_safe(state):
    """An app's log holds escape sequences: on a terminal `cella logs` shows them as
    text (cat -v style), text in any script kept; to a pipe the bytes are exact;
    --raw-output passes them to a terminal too."""
    d = write_logs(state, {})
    (d / f"{APP}.log").write_bytes(LOG_EVIL)
    assert logs_on_pty(state, APP) == LOG_SAFE
    assert logs_on_pty(state, "--raw-output", APP) == LOG_EVIL
    p = subprocess.run([CELLA, "logs", "--state-dir", str(state), APP], capture_output=True,
                       timeout=30)
    assert p.returncode == 0 and p.stdout == LOG_EVIL


def test_logs_follow_on_a_terminal_is_rendered_safe(state):
    """`cella logs -f`: what the app writes later is rendered too, a character cut
    between two writes included."""
    d = write_logs(state, {})
    log = d / f"{APP}.log"
    log.write_bytes(b"first\n")

    def append():
        with open(log, "ab") as f:
            f.write(b"\x1b]0;later\x07 \xe6")
            f.flush()
            f.write(b"\x97\xa5 first\n")

    out = logs_on_pty(state, "-f", APP, until=b"first\n", then=append)
    assert out == b"first\n^[]0;later^G \xe6\x97\xa5 first\n", out


@pytest.mark.twin
def test_control_api_of_a_real_kernel(state, make_app, tmp_path):
    """docs/api.md against a kernel of `cella boot`, by hand over its socket: its four
    methods, requests pipelined in one write answered in order, each error by name,
    and a line over the bound refused and the client closed."""
    apps = tmp_path / "apps"
    apps.mkdir()
    os.chmod(apps, 0o755)
    d = make_app(APP, script="while true; do sleep 1; done\n")
    os.rename(d, apps / "api")
    boot, status = start_boot(state, apps)
    try:
        started = json.loads(status.readline() or "{}")
        assert started.get("event") == "started", boot.stderr.read() if boot.poll() else started
        kpid = kernel_pid_of(boot)  # the boot's kernel: cellad's child in a daemon twin
        requests = [
            {"method": "org.cella.Ps"},
            {"method": "org.cella.Stats", "parameters": {"app": APP}},
            {"method": "org.cella.GrantsChanged", "parameters": {"app": APP}},
            {"method": "org.cella.GrantsChanged", "oneway": True},
            {"method": "org.cella.Stop", "parameters": {"app": "org.test.nobody"}},
            {"method": "org.cella.Stop", "parameters": {"app": "../etc"}},
            {"method": "org.cella.Stop"},
            {"method": "org.cella.Reboot"},
            {"op": "ps"},
            {"method": "org.cella.Ps"},
        ]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(30)
            c.connect(str(state / "run" / f"{kpid}.sock"))
            c.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
            f = c.makefile("rb")
            replies = [json.loads(f.readline()) for _ in range(len(requests) - 1)]
            (app,) = replies[0]["parameters"]["apps"]
            assert app["id"] == APP and app["pid"] == started["pid"]
            assert replies[1] == {"parameters": {"hosts": []}}  # not a Lua host
            assert replies[2] == {"parameters": {}}
            # the oneway request got no reply: the next one is the Stop's
            assert replies[3]["error"] == "org.cella.NoSuchApp"
            assert replies[3]["parameters"]["app"] == "org.test.nobody"
            assert replies[4]["error"] == "org.cella.InvalidParameter"
            assert replies[4]["parameters"]["parameter"] == "app"
            assert replies[5]["error"] == "org.cella.InvalidParameter"
            assert replies[6]["error"] == "org.cella.MethodNotFound"
            assert replies[6]["parameters"]["method"] == "org.cella.Reboot"
            assert replies[7]["error"] == "org.cella.InvalidRequest"
            assert all(r["parameters"]["message"] for r in replies[3:8])
            assert replies[8]["parameters"]["apps"][0]["id"] == APP
            # a line over 64 KiB: told, then closed
            c.sendall(b"{" + b" " * 70000 + b"\n")
            err = json.loads(f.readline())
            assert err["error"] == "org.cella.InvalidRequest"
            assert "65536" in err["parameters"]["message"]
            try:  # closed: a reset when the kernel left the rest of the line unread
                assert f.readline() == b""
            except ConnectionResetError:
                pass
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(30)
            c.connect(str(state / "run" / f"{kpid}.sock"))
            c.sendall(json.dumps({"method": "org.cella.Stop",
                                  "parameters": {"app": APP}}).encode() + b"\n")
            assert json.loads(c.makefile("rb").readline()) == {"parameters": {}}
        # The stop took: the app ends, the boot with it.
        boot.wait(timeout=30)
    finally:
        stop_boot(boot, status)
