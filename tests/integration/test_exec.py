"""cella exec (docs/cli.md "cella exec", docs/security.md "cella exec"): a command in a
running app's sandbox through cellad, root only, audited, and exactly as confined as
the app: its namespaces, cgroup, uids, rlimits, seccomp filter, no capabilities, and
no fd but the three pipes."""
import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import termios
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import CELLA, unmount_below
from daemon_util import (call, cella_group, ControlError, require_cellad, running_cellad,
                         system_user)

APP = "org.test.exec.app"
NAMESPACES = ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup")


def cella(state, *args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run([CELLA, args[0], "--state-dir", str(state), *map(str, args[1:])], **kw)


@pytest.fixture
def app_running():
    """A cellad with APP (a service that sleeps) installed and started: (daemon, inspect).
    In a folder of /run (root's, 0755), so that a non-root user can reach its socket."""
    require_cellad()
    top = Path(tempfile.mkdtemp(prefix="cella-exec-", dir="/run"))
    try:
        yield from _app_running(top)
    finally:
        unmount_below(top)  # the app's /data stays mounted between runs
        shutil.rmtree(top, ignore_errors=True)


def _app_running(tmp_path):
    src = tmp_path / "app"
    src.mkdir()
    (src / "manifest.json").write_text(json.dumps({
        "id": APP, "version": "1.0.0", "runtime": "native", "entry": "main.sh",
        "kind": "service", "limits": {"files": 77}}))
    (src / "main.sh").write_text("#!/bin/sh\necho started\nwhile :; do sleep 1; done\n")
    os.chmod(tmp_path, 0o755)
    subprocess.run(["chmod", "-R", "a+rX", str(src)], check=True)
    os.chmod(src / "main.sh", 0o755)
    with running_cellad(tmp_path / "state") as d:
        p = cella(d.state_dir, "install", src)
        assert p.returncode == 0, p.stderr
        p = cella(d.state_dir, "start", APP)
        assert p.returncode == 0, p.stderr
        yield d, inspect(d)


def inspect(d):
    p = cella(d.state_dir, "inspect", "--json", APP)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def ns_inode(link):
    return os.readlink(link)  # "user:[4026...]"


def test_exec_is_exactly_as_confined_as_the_app(app_running):
    d, info = app_running
    init = info["pid"]
    # The command waits on its stdin, so that the test can look at it from the host.
    p = subprocess.Popen([CELLA, "exec", "-i", "--state-dir", str(d.state_dir), APP, "--", "sh",
                          "-c", "for n in " + " ".join(NAMESPACES) + "; do "
                          "echo $n $(readlink /proc/self/ns/$n); done; id -u; id -G; "
                          "ls /proc/self/fd | tr '\\n' ' '; echo; echo ready; read x; echo bye $x"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        inside = {}
        for _ in NAMESPACES:
            name, link = p.stdout.readline().split()
            inside[name] = link
        assert p.stdout.readline() == "1000\n", "the app's uid inside"
        assert p.stdout.readline() == "1000\n", "no supplementary group but the app's"
        # 0, 1, 2, and ls's own fd of /proc/self/fd: no fd of the daemon or the caller.
        fds = sorted(int(x) for x in p.stdout.readline().split())
        assert fds == [0, 1, 2, 3], fds
        assert p.stdout.readline() == "ready\n"
        for n in NAMESPACES:
            assert inside[n] == ns_inode(f"/proc/{init}/ns/{n}"), (n, inside[n])

        # From the host: the command is in the app's cgroup leaves, as the app's host
        # uid, with no capability, no_new_privs, and a seccomp filter.
        paths = info["cgroup_paths"]
        now = inspect(d)
        new = set(now["pids"]) - set(info["pids"])
        cmd = [pid for pid in new
               if Path(f"/proc/{pid}/comm").read_text().strip() == "sh"]
        assert len(cmd) == 1, (new, info["pids"])
        pid = cmd[0]
        for ctrl, path in paths.items():
            procs = Path(path, "cgroup.procs").read_text().split()
            assert str(pid) in procs, (ctrl, path)
        status = dict(line.split(":\t", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
        assert status["Uid"].split() == [str(info["uid"])] * 4, status["Uid"]
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
        assert int(status["CapBnd"], 16) == 0 and int(status["CapAmb"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"
        # The app's rlimits ("limits": {"files": 77}), not the daemon's.
        limits = Path(f"/proc/{pid}/limits").read_text()
        app_limits = Path(f"/proc/{init}/limits").read_text()
        assert limits == app_limits
        assert "Max open files            77" in limits
        # Its helper (its parent, outside the sandbox) keeps none of the daemon's fds:
        # no socket (the control sockets, the keeper's, the apps' channels), not the
        # lock, not the command's pipes: only the pidfd of the app's init, and the
        # write end of the pipe by which the command saw it alive (enter.c,
        # helper_alive), which nothing else holds.
        helper = int(status["PPid"]) if int(status["PPid"]) > 0 else None
        if helper is None:
            # In the app's pid namespace the parent reads 0: find it from the host.
            helper = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        links = [os.readlink(f"/proc/{helper}/fd/{fd}") for fd in os.listdir(f"/proc/{helper}/fd")
                 if int(fd) > 2]
        assert sorted(links)[0] == "anon_inode:[pidfd]" and len(links) == 2, links
        alive_pipe = sorted(links)[1]
        assert alive_pipe.startswith("pipe:["), links
        # Not one of the command's pipes (its stdio: cella exec's).
        assert alive_pipe not in {os.readlink(f"/proc/{pid}/fd/{i}") for i in (0, 1, 2)}, links
        # The command's stdio are pipes the CLI relays, never its terminal.
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        out, err = p.communicate("x\n", timeout=30)
        assert out == "bye x\n", (out, err)
        assert p.returncode == 0, err
    finally:
        if p.poll() is None:
            p.kill()


def test_exec_exit_status_seccomp_and_audit(app_running):
    d, _ = app_running
    p = cella(d.state_dir, "exec", APP, "--", "sh", "-c", "exit 7")
    assert p.returncode == 7, p.stderr
    # unshare(2) is one of the calls the app's filter refuses (docs/security.md): the
    # command gets EPERM as the app would.
    p = cella(d.state_dir, "exec", APP, "--", "unshare", "--user", "true")
    assert p.returncode != 0 and "Operation not permitted" in p.stderr, p.stderr
    p = cella(d.state_dir, "exec", APP, "--", "/no/such/program")
    assert p.returncode == 127 and "No such file or directory" in p.stderr, p.stderr
    p = cella(d.state_dir, "exec", APP, "--", "/app/manifest.json")
    assert p.returncode == 126, p.stderr
    p = cella(d.state_dir, "exec", APP, "--", "sh", "-c", "kill -9 $$")
    assert p.returncode == 128 + 9, p.stderr

    audit = [json.loads(line) for line in
             cella(d.state_dir, "audit", "--app", APP, "--json").stdout.splitlines()]
    execs = [r for r in audit if r.get("what") == "exec"]
    ends = {r["exec_pid"]: r for r in audit if r.get("what") == "exec-exited"}
    assert [r["argv"] for r in execs][:2] == [["sh", "-c", "exit 7"],
                                              ["unshare", "--user", "true"]], execs
    assert all(r["by_uid"] == 0 and r["by_pid"] > 0 for r in execs)
    assert ends[execs[0]["exec_pid"]]["exit_code"] == 7
    missing = [r for r in execs if r["argv"] == ["/no/such/program"]]
    assert missing and missing[0]["errno"] == 2 and missing[0]["step"] == "exec"
    p = cella(d.state_dir, "audit", "--verify")
    assert p.returncode == 0, p.stdout + p.stderr


def test_exec_refused_for_a_stopped_app_and_unknown_ones(app_running):
    d, _ = app_running
    p = cella(d.state_dir, "exec", "org.test.nope", "--", "true")
    assert p.returncode == 1 and "NoSuchApp" in p.stderr, p.stderr
    p = cella(d.state_dir, "stop", APP)
    assert p.returncode == 0, p.stderr
    p = cella(d.state_dir, "exec", APP, "--", "true")
    assert p.returncode == 1 and "org.cella.AppState" in p.stderr, p.stderr
    assert "it is stopped" in p.stderr


def test_exec_takes_only_pipes(app_running):
    """The daemon never hands the command anything but pipes: a terminal (the caller's,
    which the app could then drive with TIOCSTI) or a file is refused."""
    d, _ = app_running
    master, slave = pty.openpty()
    null = os.open("/dev/null", os.O_RDWR)
    r, w = os.pipe()
    try:
        for fds in ((slave, w, w), (r, slave, w), (r, w, null), (r, w)):
            with pytest.raises(ControlError) as e:
                call(d.socket, "org.cella.Exec", {"app": APP, "argv": ["true"]}, more=True,
                     fds=fds)
            assert e.value.error == "org.cella.InvalidParameter", e.value
            assert e.value.parameters["parameter"] == "fds"
    finally:
        for fd in (master, slave, null, r, w):
            os.close(fd)


def test_exec_is_root_only(app_running):
    """A real non-root user is refused, in group cella too (manage is not enough)."""
    d, _ = app_running
    with cella_group() as gid, system_user("cella-test-exec") as pw:
        for groups in ([], [gid]):
            def drop():
                os.setgroups(groups)
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
            p = subprocess.run([CELLA, "exec", "--state-dir", str(d.state_dir), APP, "--", "id"],
                               capture_output=True, text=True, preexec_fn=drop, cwd="/",
                               timeout=60)
            assert p.returncode == 242, (groups, p.returncode, p.stderr)
            assert "PermissionDenied" in p.stderr, p.stderr
        audit = cella(d.state_dir, "audit", "--app", APP, "--json").stdout
        assert '"what":"exec"' not in audit, "a refused exec ran nothing"

def test_output_flows_while_the_command_leaves_its_stdin_unread(app_running, tmp_path):
    """Our stdin is fed to the command only as it reads it: a command that writes a lot
    and never reads its stdin gets all its output through (no deadlock on a full
    stdin pipe), and its exit ends the command."""
    d, _ = app_running
    big = tmp_path / "big"
    big.write_bytes(b"y" * (4 << 20))
    with open(big, "rb") as f:
        p = subprocess.run([CELLA, "exec", "--state-dir", str(d.state_dir), APP, "--", "sh", "-c",
                            "head -c 3000000 /dev/zero | tr '\\0' x"],
                           stdin=f, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"x" * 3000000
    with open(big, "rb") as f:
        p = subprocess.run([CELLA, "exec", "-i", "--state-dir", str(d.state_dir), APP, "--", "wc",
                            "-c"], stdin=f, capture_output=True, timeout=120)
    assert p.returncode == 0 and p.stdout.split() == [str(4 << 20).encode()], p


def test_stdin_only_with_i(app_running):
    """Without -i the command reads an empty stdin (podman exec, docker exec); with -i
    it reads ours."""
    d, _ = app_running
    for flags, want in (([], ""), (["-i"], "to the command\n")):
        p = subprocess.run([CELLA, "exec", *flags, "--state-dir", str(d.state_dir), APP, "--",
                            "cat"], input="to the command\n", capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and p.stdout == want, (flags, p)


def _new_pids(d, before):
    return set(inspect(d)["pids"]) - set(before)


def _wait_gone(pids, timeout=30):
    """Waits until every pid has exited (pidfds: an event, no polling of /proc)."""
    import select
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            pass
    try:
        for fd in fds:
            r, _, _ = select.select([fd], [], [], timeout)
            assert r, "a process of the exec'd command outlived its client"
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_signals_are_forwarded_to_the_command(app_running, sig):
    """SIGINT, SIGTERM, SIGHUP, SIGQUIT sent to `cella exec` reach the command, which
    reports the one it got; its exit status is ours."""
    d, _ = app_running
    name = sig.name[3:]
    p = subprocess.Popen([CELLA, "exec", "--state-dir", str(d.state_dir), APP, "--", "sh", "-c",
                          f"trap 'echo got {name}; exit 42' {name}; echo ready; "
                          "while :; do sleep 0.1; done"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        assert out == f"got {name}\n", (out, err)
        assert p.returncode == 42, (p.returncode, err)
    finally:
        if p.poll() is None:
            p.kill()
    audit = [json.loads(line) for line in
             cella(d.state_dir, "audit", "--app", APP, "--json").stdout.splitlines()]
    sent = [r for r in audit if r.get("what") == "exec-signal"]
    assert sent and sent[-1]["signal"] == sig.value and sent[-1]["by_uid"] == 0, sent


def test_a_forwarded_signal_that_kills_the_command_is_128_plus_n(app_running):
    d, _ = app_running
    p = subprocess.Popen([CELLA, "exec", "--state-dir", str(d.state_dir), APP, "--", "sh", "-c",
                          "echo ready; exec sleep 1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
        assert p.returncode == 128 + signal.SIGTERM
    finally:
        if p.poll() is None:
            p.kill()


def test_a_client_that_goes_away_takes_the_command_and_its_children(app_running):
    """SIGKILL to `cella exec` (nothing forwarded: its connection just closes): the
    command and the processes it started end, none is left running in the app."""
    d, info = app_running
    p = subprocess.Popen([CELLA, "exec", "--state-dir", str(d.state_dir), APP, "--", "sh", "-c",
                          "sleep 1000 & sleep 1000 & echo ready; wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        mine = _new_pids(d, info["pids"])
        assert len(mine) == 3, mine  # sh and its two sleeps
        p.kill()
        p.wait(timeout=30)
        _wait_gone(mine)
    finally:
        if p.poll() is None:
            p.kill()
    assert set(inspect(d)["pids"]) == set(info["pids"]), "the app itself goes on"
    audit = [json.loads(line) for line in
             cella(d.state_dir, "audit", "--app", APP, "--json").stdout.splitlines()]
    ends = [r for r in audit if r.get("what") == "exec-exited"]
    assert ends and ends[-1]["detached"] is True and ends[-1]["exit_code"] == 128 + 9, ends


def _spawn_on_pty(args, rows, cols):
    """Runs args with a new pty as its controlling terminal and stdio: (proc, master)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def ctty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    p = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty,
                         close_fds=True)
    return p, master, slave


class PtyReader:
    def __init__(self, fd):
        self.fd, self.buf = fd, b""

    def until(self, needle, timeout=30):
        import select
        while needle not in self.buf:
            r, _, _ = select.select([self.fd], [], [], timeout)
            assert r, f"no {needle!r} in {self.buf!r}"
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                chunk = b""
            assert chunk, f"the terminal closed before {needle!r}: {self.buf!r}"
            self.buf += chunk
        head, _, self.buf = self.buf.partition(needle)
        return head


def test_exec_tty_through_a_real_pty(app_running):
    """cella exec -it from a terminal (a pty the test drives): the command has a pty of
    the jail's own /dev/pts as its controlling terminal with our window size; our
    terminal is raw meanwhile (keys go through: Ctrl-C is the command's SIGINT) and
    restored after; a resize reaches the command; its exit status is ours."""
    d, _ = app_running
    p, master, slave = _spawn_on_pty(
        [CELLA, "exec", "-it", "--state-dir", str(d.state_dir), APP, "--", "sh", "-c",
         "tty; stty size; echo TERM=$TERM; echo ready; "
         "while read x; do [ \"$x\" = size ] && stty size; [ \"$x\" = int ] && break; "
         "echo got $x; done; trap 'echo got INT; exit 5' INT; echo waiting; "
         "while :; do sleep 0.1; done"], 33, 101)
    saved = termios.tcgetattr(slave)
    r = PtyReader(master)
    try:
        head = r.until(b"ready")
        lines = head.decode().split()
        assert lines[0].startswith("/dev/pts/"), head  # the jail's devpts
        assert lines[1:3] == ["33", "101"], head
        assert "TERM=xterm-256color" in lines, head
        # Our terminal is raw while the session lasts.
        now = termios.tcgetattr(slave)
        assert not now[3] & (termios.ICANON | termios.ECHO | termios.ISIG), now[3]
        os.write(master, b"hello\r")
        r.until(b"got hello")
        # A resize: the command's pty follows (wait for it, no sleep).
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        # (cella exec leads the test pty's foreground group: the kernel sends it SIGWINCH.)
        for _ in range(200):
            os.write(master, b"size\r")
            got = r.until(b"\n").strip()
            while got in (b"", b"size"):
                got = r.until(b"\n").strip()
            if got == b"40 120":
                break
        else:
            pytest.fail("the window size never reached the command")
        os.write(master, b"int\r")
        r.until(b"waiting")
        os.write(master, b"\x03")  # Ctrl-C, typed: the command's pty makes it SIGINT
        r.until(b"got INT")
        assert p.wait(timeout=60) == 5
        assert termios.tcgetattr(slave) == saved, "the terminal is restored"
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
        os.close(slave)


def test_exec_tty_restores_the_terminal_on_errors_and_signals(app_running):
    """The terminal comes back as it was on every way out of -it: an error reply, a
    command that cannot be executed, and SIGTERM (forwarded: the command dies of it,
    143)."""
    d, _ = app_running
    for argv, code, sig in ((["/no/such"], 127, None), (["sh", "-c", "exit 3"], 3, None),
                            (["sh", "-c", "echo ready; exec sleep 1000"], 143, signal.SIGTERM)):
        p, master, slave = _spawn_on_pty(
            [CELLA, "exec", "-it", "--state-dir", str(d.state_dir), APP, "--", *argv], 24, 80)
        saved = termios.tcgetattr(slave)
        try:
            if sig:
                PtyReader(master).until(b"ready")
                assert not termios.tcgetattr(slave)[3] & termios.ICANON, "raw meanwhile"
                p.send_signal(sig)
            assert p.wait(timeout=60) == code, argv
            assert termios.tcgetattr(slave) == saved, argv
        finally:
            if p.poll() is None:
                p.kill()
            os.close(master)
            os.close(slave)


def test_exec_t_alone_keeps_ctrl_c(app_running):
    """-t without -i: the command has its pty, our terminal stays as it is, so a
    Ctrl-C typed there is our SIGINT, passed on to the command (130)."""
    d, _ = app_running
    p, master, slave = _spawn_on_pty(
        [CELLA, "exec", "-t", "--state-dir", str(d.state_dir), APP, "--", "sh", "-c",
         "tty; echo ready; exec sleep 1000"], 24, 80)
    saved = termios.tcgetattr(slave)
    try:
        head = PtyReader(master).until(b"ready")
        assert b"/dev/pts/" in head, head
        assert termios.tcgetattr(slave) == saved, "not raw without -i"
        os.write(master, b"\x03")
        assert p.wait(timeout=60) == 128 + signal.SIGINT
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
        os.close(slave)


def test_exec_tty_wants_a_unix_socket(app_running):
    """With "tty": true the request carries one AF_UNIX socket (the master comes back
    over it); a pipe, a terminal or more fds are refused."""
    d, _ = app_running
    master, slave = pty.openpty()
    r, w = os.pipe()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        for fds in ((r,), (slave,), (a.fileno(), w, w)):
            with pytest.raises(ControlError) as e:
                call(d.socket, "org.cella.Exec", {"app": APP, "argv": ["true"], "tty": True},
                     more=True, fds=fds)
            assert e.value.parameters["parameter"] == "fds", e.value
        with pytest.raises(ControlError) as e:
            call(d.socket, "org.cella.Exec", {"app": APP, "argv": ["true"], "tty": True,
                                              "rows": 0}, more=True, fds=(a.fileno(),))
        assert e.value.parameters["parameter"] == "rows", e.value
    finally:
        for fd in (master, slave, r, w):
            os.close(fd)
        a.close()
        b.close()


# ---- A command hung in its setup delays only its own client (docs/daemon.md "cella
# exec off the loop"). Its app's cgroup is frozen behind cellad's back (cgroup2's
# cgroup.freeze), so the command, born into that cgroup, stops before its execve:
# the setup cellad used to wait for in its loop, up to 10 s, for every client.

def _freeze_behind_cellads_back(info):
    """Freezes the app's cgroup2 leaf directly; returns it (skips without one)."""
    unified = info["cgroup_paths"].get("unified")
    if not unified or not (Path(unified) / "cgroup.freeze").exists():
        pytest.skip("no cgroup2 leaf with cgroup.freeze for the app on this host")
    leaf = Path(unified)
    (leaf / "cgroup.freeze").write_text("1")
    from daemon_util import wait_for
    wait_for("the app's cgroup frozen", lambda: "frozen 1" in (leaf / "cgroup.events").read_text())
    return leaf


def _procs(leaf):
    return {int(p) for p in (leaf / "cgroup.procs").read_text().split()}


def _exec_hung(d, leaf):
    """Starts `cella exec APP -- true` into the frozen leaf and waits for its command
    to appear there (cloned into it, stopped before its execve): (Popen, pid)."""
    from daemon_util import wait_for
    before = _procs(leaf)
    p = subprocess.Popen([CELLA, "exec", "--state-dir", str(d.state_dir), APP, "--", "true"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    new = wait_for("the command in the frozen cgroup", lambda: _procs(leaf) - before)
    assert len(new) == 1, new
    return p, new.pop()


def test_a_command_hung_in_its_setup_does_not_delay_another_client(app_running):
    d, info = app_running
    leaf = _freeze_behind_cellads_back(info)
    p = None
    try:
        p, pid = _exec_hung(d, leaf)
        # Another client, while the command's setup hangs: answered at once.
        t0 = time.monotonic()
        assert d.call("org.cella.Ping")["pid"] == d.pid
        assert APP in {r["id"] for r in d.call("org.cella.Ps")["apps"]}
        took = time.monotonic() - t0
        assert took < 2.0, f"another client waited {took:.3f} s behind a hung exec"
        assert p.poll() is None  # its own client still waits
        (leaf / "cgroup.freeze").write_text("0")
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    finally:
        (leaf / "cgroup.freeze").write_text("0")
        if p and p.poll() is None:
            p.kill()
            p.wait()


def test_a_command_hung_in_its_setup_is_ended_at_its_bound(app_running):
    """Not set up within 10 s (SANDBOX_ENTER_TIMEOUT_MS): the command and its helper
    are killed, the client gets the error (exit 255, the step), the audit says so;
    the app runs on and the next exec works."""
    d, info = app_running
    leaf = _freeze_behind_cellads_back(info)
    try:
        p, pid = _exec_hung(d, leaf)
        pidfd = os.pidfd_open(pid)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 255, (p.returncode, err)
        assert "not set up within 10000 ms" in err, err
        # Killed though frozen (a fatal signal ends a task of a frozen cgroup2).
        assert select.select([pidfd], [], [], 30)[0], "the hung command was not ended"
        os.close(pidfd)
    finally:
        (leaf / "cgroup.freeze").write_text("0")
    audit = [json.loads(line) for line in
             cella(d.state_dir, "audit", "--app", APP, "--json").stdout.splitlines()]
    failed = [r for r in audit if r.get("what") == "exec" and r.get("errno") == 110]
    assert failed and failed[-1]["step"] == "init" and failed[-1]["argv"] == ["true"], audit
    assert cella(d.state_dir, "exec", APP, "--", "true").returncode == 0


def test_a_client_gone_during_the_setup_takes_the_command(app_running):
    """The client goes away while its command's setup hangs: the command and its
    helper end at once (never left for the 10 s bound, nor after a thaw)."""
    d, info = app_running
    leaf = _freeze_behind_cellads_back(info)
    try:
        p, pid = _exec_hung(d, leaf)
        pidfd = os.pidfd_open(pid)
        p.kill()
        p.wait()
        t0 = time.monotonic()
        assert select.select([pidfd], [], [], 30)[0], "the command outlived its client"
        assert time.monotonic() - t0 < 5.0
        os.close(pidfd)
    finally:
        (leaf / "cgroup.freeze").write_text("0")
    assert d.call("org.cella.Ping")["pid"] == d.pid


def test_a_command_whose_helper_died_during_its_setup_never_runs(app_running):
    """A command born into a frozen cgroup has no parent-death signal yet; its helper
    killed meanwhile (as a SIGKILL of cellad kills it) sent none. Thawed, the command
    must end before its execve instead of running on with nobody to wait for it:
    it checks, once its parent-death signal is armed, that its helper still holds
    the pipe only the helper holds (enter.c, helper_alive)."""
    from daemon_util import wait_for
    d, info = app_running
    leaf = _freeze_behind_cellads_back(info)
    p = None
    try:
        before = _procs(leaf)
        p = subprocess.Popen([CELLA, "exec", "--state-dir", str(d.state_dir), APP, "--",
                              "sleep", "600"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        new = wait_for("the command in the frozen cgroup", lambda: _procs(leaf) - before)
        pid = new.pop()
        helper = int(next(l.split()[1] for l in Path(f"/proc/{pid}/status").read_text().splitlines()
                          if l.startswith("PPid:")))
        assert helper != d.pid and helper in _children(d.pid), (helper, d.pid)
        pidfd = os.pidfd_open(pid)
        hfd = os.pidfd_open(helper)
        os.kill(helper, signal.SIGKILL)
        # Gone for good (its exit done: the command is the app init's now) before
        # the command runs on.
        assert select.select([hfd], [], [], 30)[0], "the helper did not die"
        os.close(hfd)
        (leaf / "cgroup.freeze").write_text("0")
        # Its name until it is gone (and after, while it waits to be reaped): a
        # command that reached its execve is named "sleep".
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                seen.append(Path(f"/proc/{pid}/comm").read_text().strip())
            if select.select([pidfd], [], [], 0.005)[0]:
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    seen.append(Path(f"/proc/{pid}/comm").read_text().strip())
                break
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the command runs on without its helper: {seen[-3:]}")
        assert "sleep" not in seen, f"the command ran without its helper: {sorted(set(seen))}"
        os.close(pidfd)
        out, err = p.communicate(timeout=60)
        assert p.returncode != 0
    finally:
        (leaf / "cgroup.freeze").write_text("0")
        if p and p.poll() is None:
            p.kill()
            p.wait()
    assert cella(d.state_dir, "exec", APP, "--", "true").returncode == 0


def _children(pid):
    """The pids whose parent is pid."""
    out = set()
    for t in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            out |= {int(c) for c in (t / "children").read_text().split()}
    return out
