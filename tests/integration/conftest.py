"""Harness for cella's integration tests.

Every test runs the real `cella` binary on real apps in real sandboxes, as root.
Paths come from the environment the test runner sets (tests/run-all):
CELLA_BIN (the binary) and CELLA_EXAMPLES (the built examples folder).
"""
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CELLA = os.environ.get("CELLA_BIN", str(ROOT / "build" / "src" / "cli" / "cella"))
EXAMPLES = Path(os.environ.get("CELLA_EXAMPLES", str(ROOT / "build" / "examples")))


@dataclass
class Result:
    code: int
    out: str
    err: str
    status: list = field(default_factory=list)

    def event(self, name):
        for rec in self.status:
            if rec.get("event") == name:
                return rec
        raise AssertionError(f"no {name!r} status record in {self.status!r}; stderr: {self.err}")


# The Lua CPU budget per callback the tests of that budget run under, in ms: cella
# passes CELLA_TEST_LUA_CPU_MS from its own environment to a Lua app's host, where it
# can only shorten the default 5000 ms (src/supervisor/launch.c). One test keeps the
# default (test_lua_apps.py's lua-cpuhog example).
LUA_CPU_MS = 300


def lua_budget_env(ms=LUA_CPU_MS):
    """This process's environment with the tests' Lua CPU budget knob set to MS."""
    return dict(os.environ, CELLA_TEST_LUA_CPU_MS=str(ms))


def run_cella(*args, state_dir=None, stdin=subprocess.DEVNULL, env=None, timeout=60, json_status=True):
    """Runs `cella run [--state-dir S] [--json-status FD] ARGS...` and collects everything.
    In a test's daemon-mode twin (@pytest.mark.twin) the run goes through cellad, which
    hands FD to the run's kernel: the same records (docs/cli.md "Through cellad")."""
    cmd = [CELLA, "run"]
    if state_dir is not None:
        cmd += ["--state-dir", str(state_dir)]
    rfd = wfd = None
    if json_status:
        rfd, wfd = os.pipe()
        cmd += ["--json-status", str(wfd)]
    cmd += [str(a) for a in args]
    try:
        p = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, timeout=timeout,
                           env=env if env is not None else dict(os.environ),
                           pass_fds=(wfd,) if wfd is not None else ())
    finally:
        if wfd is not None:
            os.close(wfd)
    status = []
    if rfd is not None:
        with os.fdopen(rfd) as f:
            status = [json.loads(line) for line in f.read().splitlines() if line.strip()]
    return Result(p.returncode, p.stdout, p.stderr, status)


def boot_cella(folder, state, *args, timeout=60):
    """`cella boot --state-dir S --json-status FD ARGS... DIR` -> (CompletedProcess, status records)."""
    rfd, wfd = os.pipe()
    cmd = [CELLA, "boot", "--state-dir", str(state), "--json-status", str(wfd), *map(str, args),
           str(folder)]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, pass_fds=(wfd,))
    finally:
        os.close(wfd)
    with os.fdopen(rfd) as f:
        status = [json.loads(line) for line in f.read().splitlines() if line.strip()]
    return p, status


def wait_run_delay_ms(proc, timeout):
    """Waits for proc (a Popen) to exit, at most timeout seconds (then kills it and
    raises TimeoutExpired), and returns the time its main thread spent runnable
    but waiting for a CPU, in ms: run_delay, the second field of
    /proc/<pid>/schedstat, read through a pidfd once it exited and before it is
    reaped. That is the wall time a loaded machine withheld from it, for tests
    that bound a wall-clock figure by what the machine delivered."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    with open(f"/proc/{proc.pid}/schedstat") as f:
        run_delay_ns = int(f.read().split()[1])
    proc.wait()
    return run_delay_ns / 1e6


def run_timed(cmd, timeout=60, **kw):
    """subprocess.run(cmd, capture_output=True, text=True, stdin=DEVNULL, **kw) that
    also returns the seconds it took on the wall clock less the time the machine
    kept it waiting for a CPU (wait_run_delay_ms): (CompletedProcess, seconds)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                             **kw)
        delay_ms = wait_run_delay_ms(p, timeout)
        took = time.monotonic() - t0 - delay_ms / 1000
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, p.returncode, out.read(), err.read()), took


def start_cella(app, state_dir, *args, stdin=None):
    """Starts `cella run --json-status` on app in the background and waits for its
    "started" record. Returns (Popen with text pipes, started record, status file);
    the caller closes the status file. stdin=subprocess.PIPE gives the app a pipe
    the test writes to (an app that waits for a line lives until the test answers)."""
    rfd, wfd = os.pipe()
    p = subprocess.Popen([CELLA, "run", "--state-dir", str(state_dir), "--json-status", str(wfd), *map(str, args),
                          str(app)], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         pass_fds=(wfd,))
    os.close(wfd)
    status = os.fdopen(rfd)
    line = status.readline()
    if not line:
        out, err = p.communicate(timeout=30)
        raise AssertionError(f"cella did not start the app: {err}")
    return p, json.loads(line), status


# Daemon-mode twins (docs/cli.md "Through cellad"): a test marked @pytest.mark.twin
# runs twice, as it is (kernel "embedded": no cellad on its state directory, so
# `cella run`/`boot` embed their kernel) and with a bare cellad started on its
# state directory (tmp_path/state, the `state` fixture's) first (kernel "daemon"),
# so that the same `cella run`/`boot` commands go through cellad's org.cella.Run.
# The daemon twin fails if no run went through cellad. Only tests whose behaviour is
# shared qualify: no -t, no --root/--uid-range/--cgroup-mode, no prompt (the
# --json-status records go through cellad as they are). A test that is not a twin
# says why in one line above it ("# Not a twin: ..."); docs/design.md section 13
# lists the modules that have none.
TWIN = {"daemon": None}


def kernel_pids_of(procs):
    """kernel_pid_of for several runs at once (Popens): their kernels' pids, in no
    order (in a daemon twin, cellad's children that run `cella run|boot`)."""
    d = TWIN["daemon"]
    if d is None:
        return [p.pid for p in procs]
    with open(f"/proc/{d.pid}/task/{d.pid}/children") as f:
        children = [int(x) for x in f.read().split()]
    out = []
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"--embedded" in f.read().split(b"\0"):
                    out.append(pid)
        except FileNotFoundError:
            pass
    return out


def kernel_pid_of(proc):
    """The pid of the kernel that runs proc's `cella run`/`boot` (a Popen): proc's
    own when it embeds its kernel; in a daemon twin, the child of cellad that runs
    it (`cella run|boot --embedded`: one at a time in a twin), or None while cellad
    has not forked it yet. The kernel's control socket is <state>/run/<pid>.sock and
    `cella ps` gives it as kernel_pid."""
    d = TWIN["daemon"]
    if d is None:
        return proc.pid
    try:
        with open(f"/proc/{d.pid}/task/{d.pid}/children") as f:
            children = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return None
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except FileNotFoundError:
            continue
        if b"--embedded" in argv and (b"run" in argv or b"boot" in argv):
            return pid
    return None


def pytest_configure(config):
    # A shell starts a background job (`cmd &`, with no job control) with SIGINT and
    # SIGQUIT ignored (POSIX, "Asynchronous Lists"), and an ignored signal stays
    # ignored across fork and exec: every command a test starts would then shrug off
    # the SIGINT the test sends it (cella logs -f, which keeps the default action).
    # A test suite runs its commands as a terminal would: at the default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    config.addinivalue_line(
        "markers", "twin: run the test a second time with a cellad on its state directory "
        "(cella run/boot through the daemon)")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("twin"):
        metafunc.parametrize("twin_kernel", ["embedded", "daemon"], indirect=True)


# Autouse, so that it is in every test's fixture closure: pytest computes that
# closure before pytest_generate_tests, and a name appended to
# metafunc.fixturenames there is parametrized but its fixture never runs (the
# daemon twins then ran embedded, vacuously). Not named "kernel": test_ps_logs.py
# has a fixture of that name, which an autouse one would start for every test.
@pytest.fixture(autouse=True)
def twin_kernel(request):
    """"embedded" (every test not marked twin, and a twin's first run) or "daemon"
    (a cellad running on tmp_path/state for the test's run); see TWIN."""
    mode = getattr(request, "param", "embedded")
    if mode == "embedded":
        yield mode
        return
    from daemon_util import require_cellad, running_cellad
    require_cellad()
    # @pytest.mark.twin(cellad_env=ENV): the environment cellad runs in, for what a
    # run's kernel takes from cellad's environment and not from the client's (the
    # Lua CPU budget knob: docs/api.md "org.cella.Run").
    env = request.node.get_closest_marker("twin").kwargs.get("cellad_env")
    with running_cellad(request.getfixturevalue("tmp_path") / "state", env=env) as d:
        TWIN["daemon"] = d
        try:
            yield mode
        finally:
            TWIN["daemon"] = None
        runs = d.log().count("org.cella.Run: kernel ")
        assert runs > 0, "the daemon twin ran nothing through cellad:\n" + d.log()


@pytest.fixture
def state(tmp_path):
    d = tmp_path / "state"
    return d


@pytest.fixture
def make_app(tmp_path):
    """make_app(id, script=..., manifest_extra=..., entry=...) -> app folder.

    script is the text of a /bin/sh entry point (or pass files={name: (text, mode)}).
    The folder is world-readable, as an installed app's would be.

    An app id is bound to the folder first installed under it (docs/security.md,
    "App identity"), so a second make_app() of the same id in one test updates that
    app's folder: its new script gets an entry of its own (main-2.sh, ...), so a
    copy of the app still running the first one is left alone.
    """
    counter = [0]
    folders = {}

    def make(app_id, script=None, files=None, entry=None, **manifest_extra):
        counter[0] += 1
        d = folders.get(app_id)
        if d is None:
            d = folders[app_id] = tmp_path / f"app{counter[0]}"
            d.mkdir()
            entry = entry or "main.sh"
        else:
            entry = entry or f"main-{counter[0]}.sh"
        os.chmod(tmp_path, 0o755)
        os.chmod(d, 0o755)
        manifest = {"id": app_id, "runtime": "native", "entry": entry}
        manifest.update(manifest_extra)
        (d / "manifest.json").write_text(json.dumps(manifest))
        if script is not None:
            (d / entry).write_text("#!/bin/sh\n" + textwrap.dedent(script))
            os.chmod(d / entry, 0o755)
        for name, (text, mode) in (files or {}).items():
            (d / name).write_text(text)
            os.chmod(d / name, mode)
        return d

    return make


def example(name):
    d = EXAMPLES / name
    if not (d / "manifest.json").exists():
        pytest.fail(f"example {name} is not built at {d}: build first (tests/run-all does)")
    return d


def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: cella run maps per-app uids and creates cgroups")


@pytest.fixture(autouse=True)
def _root():
    require_root()


def mounts_below(path):
    """Mount points at or below path in this mount namespace, deepest first."""
    path = os.path.realpath(str(path))
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
            mp = line.split()[4]
            mp = mp.encode().decode("unicode_escape") if "\\" in mp else mp
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


@pytest.fixture(autouse=True)
def _unmount_data(tmp_path):
    """Each app's /data stays mounted at <state>/apps/<id>/data between runs
    (docs/security.md "Storage"): unmount what a test left below its tmp_path, which
    also frees the loop devices (autoclear)."""
    yield
    unmount_below(tmp_path)


def unmount_below(path):
    """Unmounts every mount at or below path, deepest first (an app's /data, which
    stays mounted between runs): lazily if a test still holds a file open there (an
    unclosed sqlite3 connection), so the file system goes when that is closed."""
    for mp in mounts_below(path):
        if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mp], capture_output=True)


def cgroup_mode_host():
    """'v2', 'hybrid' or 'v1', as cella detects it."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2"
    if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        return "hybrid"
    return "v1"


_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100


def wait_written(cond, directory, timeout, what, pid=None):
    """Returns cond()'s first true value, checking it again each time a file in
    DIRECTORY is created, written or moved in (inotify(7)), and when process PID
    (if given) exits (its pidfd), not every few ms; fails after TIMEOUT seconds.
    For a condition on files another process writes (an app's log, the audit
    log), where no pipe or status record says it is done. The watch is in place
    before the first check, so no write is missed."""
    import ctypes
    import select
    libc = ctypes.CDLL(None, use_errno=True)
    directory = Path(directory)
    deadline = time.monotonic() + timeout
    # The directory may not exist yet (the first write makes it): its parent then.
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    pidfd = None
    try:
        if pid is not None:
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                pass
        wd = libc.inotify_add_watch(fd, str(directory).encode(),
                                    _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE)
        assert wd >= 0, os.strerror(ctypes.get_errno())
        while True:
            v = cond()
            if v:
                return v
            left = deadline - time.monotonic()
            assert left > 0, f"timed out after {timeout} s waiting for {what}"
            ready = select.select([fd] + ([pidfd] if pidfd is not None else []), [], [], left)[0]
            if pidfd is not None and pidfd in ready:
                os.close(pidfd)  # it exited: cond() sees that, once
                pidfd = None
            if fd in ready:
                try:
                    while os.read(fd, 65536):
                        pass
                except BlockingIOError:
                    pass
    finally:
        os.close(fd)
        if pidfd is not None:
            os.close(pidfd)


def wait_pids_exit(pids, timeout):
    """Waits on each pid's pidfd (pidfd_open(2): readable once the process has
    exited, a zombie included) until all have, or TIMEOUT seconds pass in all.
    Returns the pids still running then."""
    import select
    deadline = time.monotonic() + timeout
    left = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                left.append(pid)
        finally:
            os.close(fd)
    return left


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def which(name):
    return shutil.which(name, path="/usr/bin:/bin")


# ---- Leftover cgroup bases (docs/daemon.md "Leftover bases") ----
# Every bare cellad a test ran made a base "cellad-<tag>" (daemon_util.Cellad records
# them); its orderly stop removes it, and what a SIGKILLed one left is removed when
# the test ends (this fixture's teardown runs after every other fixture's, so after
# each Cellad was closed). After the session none may remain: each is counted and
# the run fails.
@pytest.fixture(autouse=True)
def _remove_the_tests_cellad_bases():
    yield
    try:
        from daemon_util import remove_pending_bases
    except ImportError:
        return
    remove_pending_bases()


def pytest_sessionfinish(session, exitstatus):
    try:
        from daemon_util import leftover_bases
    except ImportError:
        return
    left = leftover_bases()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and (left or os.environ.get("CELLA_COUNT_BASES")):
        reporter.write_line(f"cellad cgroup bases left by this session: {len(left)}")
        for b in left:
            reporter.write_line(f"  left: {b}")
    if left and session.exitstatus == 0:
        session.exitstatus = 1
