"""The memory pressure scenario of issue 13 ("Tests and measurements"), shared by
bench/memory (three ways side by side: cella's manager, earlyoom, Linux's OOM killer
alone) and tests/integration/test_memory_scenario.py (cella's manager, asserted).
docs/benchmarks.md "Memory pressure: bench/memory" describes it and its results.

The apps (real sandboxes of one cellad whose `memory.total` is the budget, a few
hundred MiB: pressure is made inside it, never on the host):

  fg       foreground  mem-app fg: a working set, a frame buffer allocated every 2 ms,
                       and its own stall figures (the gap between two iterations)
  svc      service     mem-app hold, and a data file it reads all through every 100 ms
                       (page cache charged to it: what reclaim takes first, and what
                       the next pass faults back in: the stall builds before the OOM)
  cached1  cached      mem-app hold, frozen (`cella memory freeze`) before the pressure
  cached2  cached      the same
  grow     background  mem-app grow ... deaf: a cache growing 4 MiB each 250 ms that it
                       keeps on a trim (an app without a trim handler: what only a
                       freeze or a kill stops)
  lua      background  a Lua app whose cache (a table of 4 MiB strings) grows as fast;
                       a trim empties it (cella.app.on_trim), the host collects
  stress   background  stress-ng --vm (Debian's stress-ng): a fixed mapping rewritten
                       over and over, a quarter of a CPU

Every mode runs the same apps in the same order; the background ones start together
at T0 and outgrow the budget within seconds.

Containment. cellad, its apps and (in the earlyoom mode) earlyoom run in a pid and
mount namespace of their own (`unshare --pid --fork --mount --mount-proc`), whose
init is a small reaper. earlyoom decides from /proc/meminfo and kills the process of
the highest oom_score that it sees in /proc: on this shared host it must neither
read the machine's memory (24 GiB: it would never act) nor see the other helpers'
processes (it would kill their compilers). So:
  - it sees only the scenario's processes: its /proc is the namespace's;
  - its /proc/meminfo is lxcfs's (Debian's lxcfs, the FUSE file system that gives
    containers a meminfo of their own cgroup): a private lxcfs mount made for the
    scenario, bind-mounted over /proc/meminfo in a mount namespace of earlyoom alone.
    lxcfs computes meminfo from the memory cgroup of the init of the reader's pid
    namespace, so the scenario's init is moved into the apps' parent cgroup (the
    budget): MemTotal is `memory.total` and MemAvailable what is left of it. On a
    pure cgroup v2 host a process cannot sit in the apps' parent (cgroup v2's "no
    internal processes" rule): the earlyoom mode is refused there (ScenarioSkip).
"""
import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from daemon_util import CELLA, CELLAD, install_app  # noqa: E402

MiB = 1024 * 1024
PREFIX = "org.bench.mem."
# The apps: (name, kind, state the scenario gives it, what it runs).
FG, SVC, CACHED1, CACHED2, GROW, LUA, STRESS, LATE = (PREFIX + x for x in (
    "fg", "svc", "cached1", "cached2", "grow", "lua", "stress", "late"))
GROWERS = (GROW, LUA, STRESS)
CACHED = (CACHED1, CACHED2)
ALL = (FG, SVC, CACHED1, CACHED2, GROW, LUA, STRESS)

# The scenario's sizes (MiB). Budget 320: fg 24 + svc 40 (+ its 48 of file) + cached
# 2 x 32 = 176 held, plus the processes themselves (about 30); from T0 stress 64 at
# once, then grow and lua 16 MiB/s each up to 128 + 96: 288 more than the budget has.
# What no trim gives back (all but lua's cache) is 398 alone: trims cannot end it.
BUDGET = "320M"
FG_WS, SVC_MIB, SVC_FILE_MIB, CACHED_MIB = 24, 40, 48, 32
GROW_CAP, LUA_CAP, STRESS_MIB = 128, 96, 64
GROW_PERIOD_MS = 250  # 4 MiB each, for grow and lua
LATE_CAP = 160  # the test's late service (start_late()); a multiple of 32: "grown 160"

LUA_GROW = """\
local app = require("cella.app")
local timer = require("cella.timer")
local cap, step, cache, n = %d, 4 * 1024 * 1024, {}, 0
app.on_trim(function(level)
  print("trim " .. level .. " dropped " .. #cache * 4)
  cache = {}
end)
timer.every(%g, function()
  if #cache * 4 < cap then
    n = n + 1
    cache[#cache + 1] = string.rep(string.char(65 + n %% 26), step)
    if #cache %% 8 == 0 then print("grown " .. #cache * 4) end
  end
  -- string.rep's buffer is garbage at once: collect as it goes, so the heap is
  -- the cache (the default pause would let it reach twice the cache first)
  collectgarbage("step", 0)
end)
print("ready")
"""

INIT = """\
import os, signal, sys
# The scenario's pid 1: reaps orphans. SIGCHLD wakes pause(); pid 1 has no default
# action for other signals, so only SIGKILL from outside ends it (and the namespace).
signal.signal(signal.SIGCHLD, lambda *a: None)
sys.stdout.write("up\\n")
sys.stdout.flush()
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    signal.pause()
"""


class ScenarioSkip(Exception):
    """The scenario (or a mode of it) cannot run on this machine: the message says why."""


def mem_app_path():
    """The built mem-app (bench/memory-app), next to cella in the build."""
    p = Path(os.environ.get("CELLA_MEM_APP",
                            str(Path(CELLA).resolve().parents[2] / "bench" / "memory-app" /
                                "mem-app")))
    if not os.access(p, os.X_OK):
        raise ScenarioSkip(f"no mem-app at {p} (build bench/memory-app, or set CELLA_MEM_APP)")
    return p


def has_memory_manager():
    """Whether this build's cellad has the memory manager (its --no-memory-manager)."""
    p = subprocess.run([CELLAD, "--help"], capture_output=True, text=True)
    return "--no-memory-manager" in p.stdout + p.stderr


def requirements(mode):
    """Raises ScenarioSkip naming what this machine lacks for mode ("cella", "earlyoom",
    "linux")."""
    if os.geteuid() != 0:
        raise ScenarioSkip("needs root (cellad, cgroups, namespaces)")
    if not os.access(CELLAD, os.X_OK):
        raise ScenarioSkip(f"no cellad at {CELLAD} (set CELLAD_BIN)")
    if not has_memory_manager():
        raise ScenarioSkip("this cellad has no memory manager (no --no-memory-manager: "
                           "built before docs/memory.md's manager loop)")
    for tool in ("unshare", "nsenter", "stress-ng") + (
            ("earlyoom", "lxcfs") if mode == "earlyoom" else ()):
        if not shutil.which(tool):
            raise ScenarioSkip(f"{tool} is not installed (scripts/install-deps)")
    if mode == "earlyoom" and not os.path.exists("/dev/fuse"):
        raise ScenarioSkip("no /dev/fuse (lxcfs)")
    if not os.path.exists("/proc/pressure/memory"):
        raise ScenarioSkip("no PSI (/proc/pressure/memory)")


def _manifest(d, app_id, entry, args=(), kind="app", runtime="native", limits=None):
    d.mkdir(parents=True)
    m = {"id": app_id, "version": "1.0.0", "runtime": runtime, "kind": kind,
         "entry": entry, "args": list(args), "restart": "no"}
    if limits:
        m["limits"] = limits
    (d / "manifest.json").write_text(json.dumps(m))
    os.chmod(d, 0o755)


def make_apps(src):
    """Writes the scenario's app folders below src; returns them."""
    src = Path(src)
    mem_app = mem_app_path()
    out = []

    def native(app_id, args, kind="app", limits=None):
        d = src / app_id
        _manifest(d, app_id, "mem-app", args, kind=kind, limits=limits or {"memory": "256M"})
        shutil.copy(mem_app, d / "mem-app")
        os.chmod(d / "mem-app", 0o755)
        out.append(d)

    native(FG, ["fg", str(FG_WS)])
    native(SVC, ["hold", str(SVC_MIB), "/app/data.bin"], kind="service")
    with open(src / SVC / "data.bin", "wb") as f:
        for _ in range(SVC_FILE_MIB):
            f.write(b"\x5a" * MiB)
    os.chmod(src / SVC / "data.bin", 0o644)
    for c in CACHED:
        native(c, ["hold", str(CACHED_MIB)])
    native(GROW, ["grow", "4", str(GROW_PERIOD_MS), str(GROW_CAP), "deaf"])
    # Not started by setup() or pressure(): the test's start_late().
    native(LATE, ["grow", "4", str(GROW_PERIOD_MS), str(LATE_CAP), "deaf"], kind="service")
    d = src / LUA
    _manifest(d, LUA, "main.lua", runtime="lua", limits={"memory": "256M"})
    (d / "main.lua").write_text(LUA_GROW % (LUA_CAP, GROW_PERIOD_MS / 1000))
    os.chmod(d / "main.lua", 0o644)
    out.append(d)
    d = src / STRESS
    # --vm-keep: one mapping, rewritten over and over; --no-oom-adjust: stress-ng leaves
    # oom_score_adj as cella set it (its default raises it to make its workers the OOM
    # killer's first choice, which would decide the comparison for Linux and earlyoom);
    # --oomable: a worker killed is not respawned.
    _manifest(d, STRESS, "main.sh",
              ["--vm", "1", "--vm-bytes", f"{STRESS_MIB}M", "--vm-keep", "--no-oom-adjust",
               "--oomable", "--timeout", "0", "--quiet", "--temp-path", "/tmp"],
              limits={"memory": "256M", "cpu": 0.25})
    (d / "main.sh").write_text('#!/bin/sh\nexec /usr/bin/stress-ng "$@"\n')
    os.chmod(d / "main.sh", 0o755)
    out.append(d)
    return out


def _drop_cache(path):
    """Writes back and drops path's pages from the page cache (POSIX_FADV_DONTNEED), so
    that they are charged to the app that reads them, not to this process that wrote
    them (a page is charged to the cgroup that first brings it in)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _children(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _wait_exit(pid, timeout):
    """Waits (pidfd: the process's exit is the event) up to timeout s; True if it
    exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        r, _, _ = select.select([fd], [], [], timeout)
        return bool(r)
    finally:
        os.close(fd)


def _cgroup_of(pid):
    """{controller or "": path} of /proc/PID/cgroup."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else [""]):
            out[c] = path
    return out


def apps_parent_memory(cellad_pid):
    """The apps' parent cgroup in the hierarchy that has the memory controller, and
    whether that hierarchy is v1: (Path, v1). From cellad's own leaf (B/supervisor,
    docs/daemon.md "Cgroups"): its sibling cella/."""
    cg = _cgroup_of(cellad_pid)
    if "memory" in cg and os.path.isdir("/sys/fs/cgroup/memory"):
        return Path("/sys/fs/cgroup/memory" + cg["memory"]).parent / "cella", True
    return Path("/sys/fs/cgroup" + cg[""]).parent / "cella", False


def cgroup_bases(cellad_pid):
    """cellad's bases made for it (`cellad-*`, the parent of its supervisor/ leaf), one
    per hierarchy: [Path]. A base that is not cellad's own (a systemd unit's) is left
    out: the scenario removes only what a bare cellad made."""
    out = []
    for line in Path(f"/proc/{cellad_pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            root = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") \
                else "/sys/fs/cgroup"
        else:
            root = "/sys/fs/cgroup/" + ctrls.replace("name=", "")
        base = Path(root + path).parent
        if base.name.startswith("cellad-") and Path(root + path).name == "supervisor":
            out.append(base)
    return out


def _remove_empty(top):
    """Removes the empty cgroup top and every cgroup below it, deepest first; a busy
    one (a process left in it) stays, and so do its ancestors."""
    if not top.is_dir():
        return
    for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()


class BudgetSampler(threading.Thread):
    """Reads the apps' parent's usage and its limit hits every 20 ms: when the budget
    was first full (v1 memory.failcnt, v2 memory.events max, grows), and the peak."""

    def __init__(self, parent, v1):
        super().__init__(daemon=True)
        self.parent, self.v1 = parent, v1
        self.stop = threading.Event()
        self.full_at = None
        self.peak = 0
        self.base = None

    def _hits(self):
        if self.v1:
            return int((self.parent / "memory.failcnt").read_text())
        for line in (self.parent / "memory.events").read_text().splitlines():
            k, v = line.split()
            if k == "max":
                return int(v)
        return 0

    def run(self):
        usage = self.parent / ("memory.usage_in_bytes" if self.v1 else "memory.current")
        with contextlib.suppress(OSError):
            self.base = self._hits()
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, int(usage.read_text()))
                if self.full_at is None and self._hits() > self.base:
                    self.full_at = time.monotonic()
            except (OSError, ValueError):
                pass
            self.stop.wait(0.02)


class EventLog(threading.Thread):
    """Follows `cella events --json` of the scenario's cellad: every record, with the
    monotonic time it arrived ("t"). wait(pred) blocks until a record matches (an
    event, not a sleep)."""

    def __init__(self, state):
        super().__init__(daemon=True)
        self.proc = subprocess.Popen([CELLA, "events", "--json", "--state-dir", str(state)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.records = []
        self.cond = threading.Condition()

    def run(self):
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            rec["t"] = time.monotonic()
            with self.cond:
                self.records.append(rec)
                self.cond.notify_all()

    def wait(self, pred, timeout):
        """The first record for which pred(rec) holds, waiting up to timeout s for it;
        None if none came."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.records:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()


def name_of(rec):
    """The record's event name: status records say "event", audit ones "what"."""
    return rec.get("event") or rec.get("what") or ""


class Scenario:
    """One mode of the scenario: a namespace, a cellad with the budget, the apps.

    with Scenario(top, mode) as s:
        s.setup()       # svc, cached (frozen), fg, in that order
        s.pressure()    # T0: the background apps start growing
        ...             # wait for what the caller needs (s.events.wait(...))
        result = s.result()
    """

    def __init__(self, top, mode, config=None):
        requirements(mode)
        self.top = Path(top) / mode
        self.mode = mode
        self.state = self.top / "state"
        self.config = config or {}
        # cella's manager in the cella mode; in the others cellad runs without it
        # (--no-memory-manager: the budget and the bands' oom_score_adj stay).
        self.flags = () if mode == "cella" else ("--no-memory-manager",)
        self.unshare = self.init_pid = self.cellad = self.cellad_pid = None
        self.lxcfs = self.earlyoom = None
        self.init_moved = None  # the memory cgroup the init was in, once moved
        self.bases = []  # cellad's cgroup bases (docs/daemon.md "Cgroups"), removed at the end
        self.events = self.sampler = None
        self.parent, self.v1 = None, True
        self.t0 = None
        self.earlyoom_log = self.top / "earlyoom.log"
        self.cellad_log = self.top / "cellad.log"

    # ---- the namespace, cellad, lxcfs and earlyoom ---------------------------------

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        self.top.mkdir(parents=True)
        os.chmod(self.top, 0o755)
        src = self.top / "src"
        for d in make_apps(src):
            dest = install_app(self.state, d)
            for f in dest.rglob("*"):
                if f.is_file():
                    _drop_cache(f)
        conf = {"memory": {"total": BUDGET}}
        for k, v in self.config.items():
            conf[k] = {**conf.get(k, {}), **v} if isinstance(v, dict) else v
        (self.state / "cellad.conf").write_text(json.dumps(conf))
        os.chmod(self.state / "cellad.conf", 0o644)
        if self.mode == "earlyoom":
            # Before the namespace: its mount namespace is a copy of ours, lxcfs's
            # mount included.
            mnt = self.top / "lxcfs"
            mnt.mkdir()
            # -u: no swap figures (the host has none to give, and lxcfs 5.0.3 derives
            # SwapFree from memsw.usage - usage, two reads that race: it printed
            # 18446744073709551512 kB, which earlyoom refuses, and exits).
            self.lxcfs = subprocess.Popen(["lxcfs", "-f", "-u", "-p",
                                           str(self.top / "lxcfs.pid"), str(mnt)],
                                          stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while not (mnt / "proc" / "meminfo").exists():
                if self.lxcfs.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("lxcfs did not mount")
                time.sleep(0.01)
        with open(self.top / "unshare.log", "wb") as log:
            self.unshare = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child",
                 sys.executable, "-c", INIT], stdout=subprocess.PIPE, stderr=log,
                stdin=subprocess.DEVNULL)
        if self.unshare.stdout.readline() != b"up\n":
            raise RuntimeError("the scenario's namespace did not start")
        self.init_pid = _children(self.unshare.pid)[0]
        self._start_cellad()
        self.events = EventLog(self.state)
        self.events.start()
        self.parent, self.v1 = apps_parent_memory(self.cellad_pid)
        self.sampler = BudgetSampler(self.parent, self.v1)
        self.sampler.start()
        if self.mode == "earlyoom":
            self._start_earlyoom()

    def _ns(self, *cmd):
        return ["nsenter", "--target", str(self.init_pid), "--pid", "--mount", "--", *cmd]

    def _start_cellad(self):
        rfd, wfd = os.pipe()
        log = open(self.cellad_log, "wb")
        try:
            self.cellad = subprocess.Popen(
                self._ns(CELLAD, "--state-dir", str(self.state), "--ready-fd", str(wfd),
                         "--no-autostart", *self.flags),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(wfd,))
        finally:
            os.close(wfd)
            log.close()
        got = b""
        deadline = time.monotonic() + 60
        try:
            while b"\n" not in got:
                r, _, _ = select.select([rfd], [], [], max(0, deadline - time.monotonic()))
                chunk = os.read(rfd, 64) if r else b""
                if not chunk:
                    raise RuntimeError("cellad did not say READY: " +
                                       self.cellad_log.read_text(errors="replace")[-2000:])
                got += chunk
        finally:
            os.close(rfd)
        self.cellad_pid = _children(self.cellad.pid)[0]
        self.bases = cgroup_bases(self.cellad_pid)

    def _start_earlyoom(self):
        if not self.v1:
            raise ScenarioSkip("earlyoom's contained meminfo (lxcfs) needs the scenario's "
                               "init in the apps' parent: a v1 memory hierarchy")
        # lxcfs reads the memory cgroup of the init of the reader's pid namespace.
        was = Path("/sys/fs/cgroup/memory" + _cgroup_of(self.init_pid)["memory"])
        (self.parent / "cgroup.procs").write_text(str(self.init_pid))
        self.init_moved = was
        meminfo = self.top / "lxcfs" / "proc" / "meminfo"
        log = open(self.earlyoom_log, "wb")
        # -r 1: its memory report each second, in its log; the rest Debian's defaults
        # (-m 10: SIGTERM below 10 % available, SIGKILL below 5 %).
        self.earlyoom = subprocess.Popen(
            self._ns("unshare", "--mount", "--propagation", "private", "sh", "-c",
                     'mount --bind "$1" /proc/meminfo && exec earlyoom -r 1', "sh",
                     str(meminfo)),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def close(self):
        if self.sampler:
            self.sampler.stop.set()
        if self.init_moved:
            # Back where it was, so that cellad's stop finds the apps' parent empty
            # and removes it.
            with contextlib.suppress(OSError):
                (self.init_moved / "cgroup.procs").write_text(str(self.init_pid))
        if self.cellad_pid and _children(self.cellad.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.cellad_pid, signal.SIGTERM)
            if not _wait_exit(self.cellad_pid, 60):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.cellad_pid, signal.SIGKILL)
        if self.cellad:
            self.cellad.wait()
        if self.events:
            self.events.close()
        if self.init_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)  # the whole namespace with it
        if self.unshare:
            self.unshare.wait()
        if self.earlyoom:
            self.earlyoom.wait()
        if self.lxcfs:
            self.lxcfs.terminate()
            self.lxcfs.wait()
            subprocess.run(["umount", "-l", str(self.top / "lxcfs")], capture_output=True)
        for base in self.bases:
            _remove_empty(base)

    # ---- the scenario ---------------------------------------------------------------

    def cella(self, *args, check=True):
        p = subprocess.run([CELLA, *map(str, args), "--state-dir", str(self.state)],
                           capture_output=True, text=True, timeout=120)
        if check and p.returncode:
            raise RuntimeError(f"cella {' '.join(map(str, args))}: {p.stderr.strip()}")
        return p

    def _wait_log(self, app, prefix, timeout=60):
        """Waits for a line of app's log starting with prefix (`cella logs -f`: each
        new line is an event)."""
        p = subprocess.Popen([CELLA, "logs", "-f", app, "--state-dir", str(self.state)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            for line in p.stdout:
                if line.startswith(prefix):
                    return line
            raise RuntimeError(f"{app} never printed {prefix!r}")
        finally:
            timer.cancel()
            p.kill()
            p.wait()

    def setup(self):
        """The apps before the pressure: fg (foreground, started last among the
        interactive ones so it holds the foreground), svc, the cached apps holding
        their memory and then frozen."""
        self.cella("start", SVC)
        for c in CACHED:
            self.cella("start", "--background", c)
        for c in CACHED:
            self._wait_log(c, "held")
            self.cella("memory", "freeze", c)
        self.cella("start", FG)
        self._wait_log(FG, "fg ")

    def pressure(self):
        """T0: the background apps start, and grow."""
        self.t0 = time.monotonic()
        self.t0_real_ms = time.time() * 1000
        for a in GROWERS:
            self.cella("start", "--background", a)

    def start_late(self):
        """Starts the late service: a cache growing 4 MiB each 250 ms up to LATE_CAP,
        kept on a trim; a service is never frozen, so the budget (full by then) can
        make room for it only by kills. Returns a threading.Event set once it has
        grown to LATE_CAP (its log says "grown LATE_CAP"); the events' waiters are
        woken then."""
        done = threading.Event()

        def follow():
            with contextlib.suppress(RuntimeError):
                self._wait_log(LATE, f"grown {LATE_CAP} ", timeout=300)
                done.set()
                with self.events.cond:
                    self.events.cond.notify_all()

        self.cella("start", LATE)
        threading.Thread(target=follow, daemon=True).start()
        return done

    def alive(self, app):
        p = self.cella("ps", "--json")
        out = json.loads(p.stdout)
        apps = out["apps"] if isinstance(out, dict) else out
        st = {a["id"]: a.get("state") for a in apps}
        return st.get(app) in ("foreground", "visible", "service", "background", "cached",
                               "frozen")

    def fg_stalls(self):
        """The foreground app's periodic reports: [(t since T0 s, worst gap us, gaps
        over 16 ms)], those before T0 (the quiet baseline) with t < 0."""
        out = []
        text = self.cella("logs", FG, check=False).stdout
        for m in re.finditer(r"fg (\d+) max (\d+) over16 (\d+) iters (\d+)", text):
            t = (int(m.group(1)) - self.t0_real_ms) / 1000
            out.append((t, int(m.group(2)), int(m.group(3))))
        return out

    def deaths(self):
        """[(app, t since T0 s, how)] of the apps that ended since T0, in order."""
        out = []
        for r in self.events.records:
            if name_of(r) != "exited" or r["t"] < self.t0:
                continue
            app = r.get("app")
            if r.get("oom_killed"):
                how = "Linux OOM kill"
            elif r.get("oom_kills"):
                how = f"Linux OOM-killed {r['oom_kills']} of its processes, then exit"
            elif r.get("low_memory") or r.get("reason") == "low-memory":
                how = "cella low-memory kill"
            elif self.mode == "earlyoom":
                # earlyoom's SIGTERM (mem-app exits 0 on it), or its SIGKILL after 0.2 s
                # at the SIGKILL limit (and for a frozen process, which cannot take the
                # SIGTERM)
                how = "earlyoom " + ("SIGKILL" if r.get("signal") == 9 else "SIGTERM")
            elif r.get("signal"):
                how = f"signal {r['signal']}"
            else:
                how = f"exit {r.get('exit_code')}"
            out.append((app, r["t"] - self.t0, how))
        kills = {r.get("app"): r for r in self.events.records
                 if name_of(r) == "memory.kill" and r["t"] >= self.t0}
        return [(a, t, "cella low-memory kill" if a in kills and not h.startswith("Linux")
                 else h) for a, t, h in out]

    def actions(self):
        """The manager's memory.* status records since T0, in order: [(name, app, t)]."""
        return [(name_of(r), r.get("app"), r["t"] - self.t0) for r in self.events.records
                if name_of(r).startswith("memory.") and r["t"] >= self.t0
                and r.get("source", "status") == "status"]

    def action_levels(self):
        """The manager's memory.* status records since T0 with their level: [(t, name,
        app, level, band)] (band: kills only)."""
        return [(r["t"] - self.t0, name_of(r), r.get("app"), r.get("level"), r.get("band"))
                for r in self.events.records
                if name_of(r).startswith("memory.") and r["t"] >= self.t0
                and r.get("source", "status") == "status"]

    def earlyoom_lines(self, what):
        """earlyoom's log lines that contain what."""
        if not self.earlyoom_log.exists():
            return []
        return [line for line in self.earlyoom_log.read_text(errors="replace").splitlines()
                if what in line]

    def result(self):
        """What happened: the figures bench/memory prints and the test asserts."""
        everything = self.fg_stalls()
        stalls = [x for x in everything if x[0] >= 0]
        quiet = [x for x in everything if x[0] < 0]
        full = self.sampler.full_at
        first_action = None
        acts = self.actions()
        dead = self.deaths()
        times = [t for _, _, t in acts] + [t for _, t, _ in dead]
        if times:
            first_action = min(times)
        return {
            "mode": self.mode,
            "deaths": dead,
            "actions": acts,
            "action_levels": self.action_levels(),
            "fg_alive": self.alive(FG),
            "cellad_alive": self.cellad_pid is not None and _children(self.cellad.pid) != [],
            "fg_worst_ms": max((s for _, s, _ in stalls), default=0) / 1000,
            "fg_over16": sum(o for _, _, o in stalls),
            "fg_reports": len(stalls),
            # [(t since T0 s, worst gap of the 500 ms before it, ms)]
            "fg_timeline": [(round(t, 2), g / 1000) for t, g, _ in stalls],
            "fg_quiet_worst_ms": max((s for _, s, _ in quiet), default=0) / 1000,
            "budget_full_s": None if full is None else full - self.t0,
            "first_action_s": first_action,
            "peak_mib": self.sampler.peak / MiB,
            "earlyoom_kills": self.earlyoom_lines(" to process "),
            # What earlyoom saw as the machine's memory (lxcfs): the budget.
            "earlyoom_total": next(iter(self.earlyoom_lines("mem total:")), None),
        }
