"""podman drives cella-oci (docs/oci.md "Podman"): Debian's podman and conmon run
containers on a busybox root file system (--rootfs: no registry here) with
`--runtime CELLA_OCI`, in a store of their own (ocikit.Podman), and every engine
command a user types is checked by what it really did: output, exit status, the
container's process as the host sees it (its uid, its cgroup's freezer state, its
end), and cella's policy (io.cella.policy) on the process's ids and capabilities.

CELLA_OCI: the runtime (default: BUILD/src/oci/cella-oci beside CELLA_BIN). With
CELLA_OCI=/usr/sbin/runc the engine tests run against runc (the reference); the
policy tests then fail, as they must: runc has no cella policy.
"""
import json
import os
import re
import select
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import ocikit

NAMES = iter(f"oci{i}" for i in range(1_000_000))


@pytest.fixture(scope="module")
def podman():
    """A Podman on CELLA_OCI with its own store; skips when something is missing."""
    missing = ocikit.engine_missing("podman", "conmon")
    if missing:
        pytest.skip(missing)
    if not os.access(ocikit.CELLA_OCI, os.X_OK):
        pytest.skip(f"cella-oci is not built at {ocikit.CELLA_OCI} (set CELLA_OCI)")
    base = tempfile.mkdtemp(prefix="cella-podman-")
    pm = ocikit.Podman(base, ocikit.CELLA_OCI)
    try:
        yield pm
    finally:
        pm.cleanup()


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return ocikit.make_rootfs(tmp_path_factory.mktemp("rootfs"))


@pytest.fixture
def name(podman):
    """A fresh container name; the container is removed (rm -f) after the test."""
    n = next(NAMES)
    yield n
    podman("rm", "-f", "-t", "0", n)


def run(podman, rootfs, *args, extra=(), name=None, timeout=60):
    return podman(*podman.run_args(rootfs, *args, name=name, extra=extra), timeout=timeout)


def start_detached(podman, rootfs, name, script, extra=()):
    """podman run -d --name NAME ... sh -c SCRIPT; waits for the line "ready" in
    its log (SCRIPT must print it). Returns the container's host pid."""
    p = run(podman, rootfs, "sh", "-c", script, extra=("-d", *extra), name=name)
    assert p.returncode == 0, f"podman run -d: {p.stderr}"
    wait_log(podman, name, "ready")
    return container_pid(podman, name)


def wait_log(podman, name, line, timeout=30):
    """Follows `podman logs -f NAME` until LINE is one of its lines; returns the
    lines read. Fails with what was read when the log ends or TIMEOUT passes."""
    proc = subprocess.Popen(podman.argv("logs", "-f", name), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=podman.env)
    lines, buf = [], b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line {line!r} in {name}'s log after {timeout}s: {lines!r}")
            if not select.select([proc.stdout], [], [], left)[0]:
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"{name}'s log ended without {line!r}: {lines!r}")
            buf += chunk
            *done, buf = buf.split(b"\n")
            lines += [d.decode(errors="replace") for d in done]
            if line in lines:
                return lines
    finally:
        proc.kill()
        proc.wait()


def inspect(podman, name, fmt):
    p = podman("inspect", "--format", fmt, name, check=True)
    return p.stdout.strip()


def container_pid(podman, name):
    pid = int(inspect(podman, name, "{{.State.Pid}}"))
    assert pid > 0, f"{name} has no process"
    return pid


def ps_state(podman, name):
    """The container's State in `podman ps -a --format json` (running, paused, exited...)."""
    p = podman("ps", "-a", "--format", "json", check=True)
    for c in json.loads(p.stdout or "[]"):
        if name in c.get("Names", []):
            return c["State"]
    return None


def host_status(pid):
    """/proc/PID/status as the host sees it, as a dict."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def frozen(pid):
    """True when PID's cgroup is frozen as the host sees it, in any hierarchy that
    holds it: cgroup v2's cgroup.events "frozen 1" (/sys/fs/cgroup, or
    /sys/fs/cgroup/unified on a hybrid host: freezing is v2's core, no controller
    needed) or a v1 freezer.state FROZEN."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            for top in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                events = Path(f"{top}{path}/cgroup.events")
                if events.exists() and "frozen 1" in events.read_text().splitlines():
                    return True
        elif "freezer" in ctrls.split(","):
            state = Path(f"/sys/fs/cgroup/freezer{path}/freezer.state")
            if state.exists() and state.read_text().strip() == "FROZEN":
                return True
    return False


def gone(pid, timeout=10):
    """Waits (pidfd, no polling loop of sleeps) until PID has ended; True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        # A pidfd of a non-child is readable once the process has exited (even as a
        # zombie its reaper has not yet collected).
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


LOOP = "while :; do sleep 1; done"


def test_run_prints_and_exits_zero(podman, rootfs):
    p = run(podman, rootfs, "/bin/echo", "hi", extra=("--rm",))
    assert (p.returncode, p.stdout) == (0, "hi\n"), p.stderr
    # Nothing from the runtime on the user's terminal when all went well (runc's way).
    assert p.stderr == ""


def test_exit_status_propagates(podman, rootfs):
    p = run(podman, rootfs, "sh", "-c", "exit 3", extra=("--rm",))
    assert p.returncode == 3, p.stderr
    p = run(podman, rootfs, "sh", "-c", "exit 255", extra=("--rm",))
    assert p.returncode == 255, p.stderr
    # (An init killed by a signal, 128 + N: test_kill_sends_the_signal_asked. From
    # inside, pid 1 cannot be sent SIGKILL.)


def test_stdin_with_i(podman, rootfs):
    p = podman(*podman.run_args(rootfs, "sh", "-c", "cat; echo end", extra=("--rm", "-i")),
               input="line one\nline two\n")
    assert (p.returncode, p.stdout) == (0, "line one\nline two\nend\n"), p.stderr


def test_user_flag_is_the_id_inside(podman, rootfs):
    p = run(podman, rootfs, "sh", "-c", "id -u; id -g", extra=("--rm", "--user", "1000:1001"))
    assert (p.returncode, p.stdout) == (0, "1000\n1001\n"), p.stderr


def test_missing_command_is_an_error(podman, rootfs):
    p = run(podman, rootfs, "/bin/no-such-program", extra=("--rm",))
    # podman maps the runtime's "no such file or directory" to 127, as with runc
    # (libpod's getOCIRuntimeError()): cella-oci says it in runc's words.
    assert p.returncode == 127, (p.returncode, p.stderr)
    assert "no-such-program" in p.stderr and "no such file or directory" in p.stderr, p.stderr
    assert "manifest" not in p.stderr, p.stderr


def test_detached_ps_logs_exec(podman, rootfs, name):
    pid = start_detached(podman, rootfs, name, f"echo ready; {LOOP}")
    assert ps_state(podman, name) == "running"
    assert podman("logs", name, check=True).stdout == "ready\n"
    p = podman("exec", name, "sh", "-c", "echo from-exec; exit 5")
    assert (p.returncode, p.stdout) == (5, "from-exec\n"), p.stderr
    # The exec'd command is in the container's pid namespace: it sees the app (pid 1
    # under runc; under cella-oci cella-init is pid 1 and the app its child).
    p = podman("exec", name, "ps", "-o", "pid,args", check=True)
    assert any(line.split(None, 1)[1:] == [f"sh -c echo ready; {LOOP}"]
               for line in p.stdout.splitlines()), p.stdout
    assert all(int(line.split()[0]) < 100 for line in p.stdout.splitlines()[1:]), p.stdout
    assert not gone(pid, timeout=0)


def test_pause_freezes_and_unpause_thaws(podman, rootfs, name):
    pid = start_detached(podman, rootfs, name, f"echo ready; {LOOP}")
    p = podman("pause", name, check=True)
    assert p.stderr == ""
    assert ps_state(podman, name) == "paused"
    assert frozen(pid)
    podman("unpause", name, check=True)
    assert ps_state(podman, name) == "running"
    assert not frozen(pid)
    assert podman("exec", name, "true").returncode == 0


def test_kill_sends_the_signal_asked(podman, rootfs, name):
    pid = start_detached(podman, rootfs, name,
                         f"trap 'echo got-usr1' USR1; echo ready; {LOOP}")
    podman("kill", "-s", "USR1", name, check=True)
    wait_log(podman, name, "got-usr1")
    assert ps_state(podman, name) == "running"
    podman("kill", name, check=True)  # SIGKILL, podman's default
    p = podman("wait", name, check=True)
    assert p.stdout.strip() == "137"
    assert gone(pid)


def test_stop_sends_sigterm_and_the_app_ends(podman, rootfs, name):
    pid = start_detached(podman, rootfs, name, f"trap 'echo term; exit 7' TERM; echo ready; {LOOP}")
    t = time.monotonic()
    p = podman("stop", "-t", "30", name)
    took = time.monotonic() - t
    assert p.returncode == 0, p.stderr
    assert took < 30, f"stop took {took:.1f}s: SIGTERM did not end the app, the timeout's SIGKILL did"
    assert inspect(podman, name, "{{.State.ExitCode}}") == "7"
    assert podman("logs", name, check=True).stdout == "ready\nterm\n"
    assert gone(pid)


def test_stop_kills_an_app_that_ignores_sigterm_after_the_timeout(podman, rootfs, name):
    pid = start_detached(podman, rootfs, name, f"trap 'echo ignored' TERM; echo ready; {LOOP}")
    t = time.monotonic()
    p = podman("stop", "-t", "2", name)
    took = time.monotonic() - t
    assert p.returncode == 0, p.stderr
    assert took >= 2, f"stop returned after {took:.1f}s, before its timeout"
    assert inspect(podman, name, "{{.State.ExitCode}}") == "137"
    assert "ignored" in podman("logs", name, check=True).stdout.split("\n")
    assert gone(pid)


def test_rm_removes_the_container_and_its_runtime_state(podman, rootfs, name):
    start_detached(podman, rootfs, name, f"echo ready; {LOOP}")
    cid = inspect(podman, name, "{{.Id}}")
    # The runtime's own view (its default --root, as podman runs it).
    st = subprocess.run([podman.runtime, "state", cid], capture_output=True, text=True, timeout=30)
    assert st.returncode == 0 and json.loads(st.stdout)["status"] == "running", st
    podman("rm", "-f", "-t", "0", name, check=True)
    assert ps_state(podman, name) is None
    st = subprocess.run([podman.runtime, "state", cid], capture_output=True, text=True, timeout=30)
    assert st.returncode != 0 and "does not exist" in st.stderr, st
    p = podman("inspect", name)
    assert p.returncode != 0


def test_tty_is_a_pty_of_the_container(podman, rootfs):
    p = run(podman, rootfs, "sh", "-c", "tty; exit 4", extra=("--rm", "-t"))
    assert p.returncode == 4, p.stderr
    assert re.fullmatch(r"/dev/pts/\d+\r?\n", p.stdout), p.stdout


def test_policy_cella_root_inside_unprivileged_outside(podman, rootfs, name):
    pid = start_detached(podman, rootfs, name,
                         f"id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; echo ready; {LOOP}")
    lines = podman("logs", name, check=True).stdout.splitlines()
    assert lines[0] == "0", lines  # root inside
    assert re.fullmatch(r"CapEff:\s*0+", lines[1]), lines  # but no capability
    assert re.fullmatch(r"NoNewPrivs:\s*1", lines[2]), lines
    st = host_status(pid)
    host_uids = st["Uid"].split()
    assert all(int(u) != 0 for u in host_uids), f"the host sees the container as uid {host_uids}"
    assert all(int(g) != 0 for g in st["Gid"].split()), st["Gid"]
    # One id mapped, to that host uid.
    uid_map = Path(f"/proc/{pid}/uid_map").read_text().split()
    assert uid_map == ["0", host_uids[0], "1"], uid_map


def test_policy_compat_is_the_config_as_written(podman, rootfs, name):
    pid = start_detached(podman, rootfs, name, f"id -u; echo ready; {LOOP}",
                         extra=("--annotation", "io.cella.policy=compat"))
    assert podman("logs", name, check=True).stdout.splitlines()[0] == "0"
    st = host_status(pid)
    # podman's config has no user namespace: host root, with podman's default caps.
    assert st["Uid"].split()[0] == "0", st["Uid"]
    assert int(st["CapEff"], 16) != 0, st["CapEff"]


def test_an_unknown_policy_is_refused_by_name(podman, rootfs):
    p = run(podman, rootfs, "true", extra=("--rm", "--annotation", "io.cella.policy=lax"))
    assert p.returncode != 0
    assert "io.cella.policy" in p.stderr, p.stderr
