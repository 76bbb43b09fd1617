"""One app must not be able to stall the kernel for the others, nor fill its memory or
its disk: the broker's fairness and bounds under a hostile app's flood, in real
sandboxes under the real binary (docs/protocol.md "Costly calls" and "Out queue",
docs/audit.md "Repeated records").

The hostile app is tests/apps/flood (built next to the cella binary's build tree).
Each test prints the figures it measured (run pytest with -s to see them)."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CELLA, run_cella, wait_written

BUILD = Path(CELLA).resolve().parents[2]
FLOOD = BUILD / "tests" / "apps" / "flood" / "flood"

# A generous bound on another app's call latency while one app floods (the issue's
# figure); the broker answers a system.time in ~15 us when idle.
P99_BOUND_US = 50_000


@pytest.fixture(autouse=True)
def _flood_built():
    if not FLOOD.exists():
        pytest.fail(f"the flood test app is not built at {FLOOD}: build first")


def flood_app(folder, app_id, args, **manifest):
    """An app folder running the flood binary with args."""
    d = folder / app_id
    d.mkdir(parents=True)
    shutil.copy(FLOOD, d / "flood")
    os.chmod(d / "flood", 0o755)
    m = {"id": app_id, "runtime": "native", "entry": "flood", "args": list(args)}
    m.update(manifest)
    (d / "manifest.json").write_text(json.dumps(m))
    for p in (folder, d):
        os.chmod(p, 0o755)
    return d


def log_lines(state, app_id, prefix):
    """The JSON of every line of app_id's log that starts with prefix."""
    path = state / "logs" / f"{app_id}.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(prefix + " "):
            out.append(json.loads(line[len(prefix) + 1:]))
    return out


def wait_for_line(state, app_id, prefix, proc, timeout):
    """Waits until app_id's log has a line starting with prefix (or the kernel ends):
    looks again at each write into the logs folder and when the kernel exits."""
    def cond():
        return log_lines(state, app_id, prefix) or (proc.poll() is not None and "ended")

    try:
        got = wait_written(cond, state / "logs", timeout, f"{app_id}'s {prefix!r} line", proc.pid)
    except AssertionError:
        got = None
    if got and got != "ended":
        return got
    raise AssertionError(f"{app_id} printed no {prefix!r} line within {timeout}s: "
                         f"{(state / 'logs' / (app_id + '.log')).read_text(errors='replace') if (state / 'logs' / (app_id + '.log')).exists() else 'no log'}")


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def audit_records(state):
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--json"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def verify_audit(state):
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--verify"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def audit_bytes(state):
    return sum(f.stat().st_size for f in (state / "audit").glob("log.*.jsonl"))


def without_loop_devices(cmd):
    """cmd run in a mount namespace whose /dev has no loop devices (as in many
    containers), so each app's /data is a plain directory: what fs.usage walks."""
    nodes = " ".join(["null", "zero", "full", "random", "urandom"])
    script = (f"d=$(mktemp -d) && mount -t tmpfs -o mode=755 tmpfs $d && for n in {nodes}; do "
              f"touch $d/$n && mount --bind /dev/$n $d/$n || exit 99; done && "
              f"mount --move $d /dev && [ ! -e /dev/loop-control ] || exit 98; "
              f"exec \"$@\"")
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + cmd


def boot(folder, state, env=None, loop_devices=True):
    rfd, wfd = os.pipe()
    cmd = [CELLA, "boot", "--state-dir", str(state), "--json-status", str(wfd), str(folder)]
    if not loop_devices:
        cmd = without_loop_devices(cmd)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, pass_fds=(wfd,),
                         env=env if env is not None else dict(os.environ))
    os.close(wfd)
    return p, os.fdopen(rfd)


@pytest.mark.twin
def test_a_proc_list_flood_leaves_other_apps_calls_fast(tmp_path, state):
    """App A runs 500 processes and keeps 60 proc.list calls in flight (each reads
    two /proc files a process, on the kernel's loop); app B's system.time p99 stays
    under 50 ms: A's reads are cut to its 1 ms slice, one slow call at a time."""
    apps = tmp_path / "apps"
    flood_app(apps, "org.test.flood", ["procs", "500"], kind="service",
              permissions=["bus.publish:org.test.flood.ready"], exports=["bus.subscribe:org.test.flood.ready"], limits={"pids": 600})
    flood_app(apps, "org.test.probe", ["latency", "3"], kind="app",
              depends=["org.test.flood"], permissions=["bus.subscribe:org.test.flood.ready"])
    p, status = boot(apps, state)
    try:
        out, err = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        status.close()
    assert p.returncode == 0, err
    (lat,) = log_lines(state, "org.test.probe", "LATENCY")
    usage = log_lines(state, "org.test.flood", "USAGE")
    answered = usage[-1]["answered"] if usage else 0
    loop = [r for r in audit_records(state) if r.get("app") == "org.test.flood"
            and r.get("what") == "broker"]
    print(f"\nproc.list flood over 500 processes: probe system.time p50 {lat['p50_us']} us, "
          f"p99 {lat['p99_us']} us, max {lat['max_us']} us over {lat['calls']} calls; "
          f"flood answered {answered} proc.list calls, charged "
          f"{loop[-1].get('loop_ms', '?') if loop else '?'} ms of the kernel's loop")
    assert answered > 0
    assert lat["calls"] > 1000
    assert lat["p99_us"] < P99_BOUND_US, lat
    verify_audit(state)


# Not a twin: its "directory" case it hides the loop devices in the client's mount namespace (unshare); the run's kernel runs in cellad's, which has them.
@pytest.mark.parametrize("data", ["directory", "filesystem"])
def test_a_fs_usage_flood_leaves_other_apps_calls_fast(tmp_path, state, data):
    """App A keeps 60 fs.usage calls in flight over a /data of 30,000 files; app B,
    once A floods, measures system.time round trips for 3 s (several of A's walks):
    their p99 stays under 50 ms. Where /data is a plain directory (no loop devices),
    the walk runs off the kernel's loop, once per app at a time, and its figure is
    cached, so A's flood costs the loop almost nothing; where /data is a file system
    of its own, each call is one statfs and no walk runs at all."""
    if data == "directory" and not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    apps = tmp_path / "apps"
    flood_app(apps, "org.test.flood", ["usage", "30000"], kind="service",
              permissions=["storage", "bus.publish:org.test.flood.ready"], exports=["bus.subscribe:org.test.flood.ready"],
              limits={"storage": "1G", "pids": 8})
    flood_app(apps, "org.test.probe", ["latency", "3"], kind="app",
              depends=["org.test.flood"], permissions=["bus.subscribe:org.test.flood.ready"])
    p, status = boot(apps, state, loop_devices=data == "filesystem")
    try:
        out, err = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        status.close()
    assert p.returncode == 0, err
    (lat,) = log_lines(state, "org.test.probe", "LATENCY")
    usage = log_lines(state, "org.test.flood", "USAGE")
    assert usage, "the flood app never reported"
    answered = usage[-1]["answered"]
    # The walks: each is recorded with its CPU time, charged to the app.
    recs = [r for r in audit_records(state)
            if r.get("app") == "org.test.flood" and r.get("op") == "fs.usage"]
    walks = [r for r in recs if "walk_cpu_us" in r]
    print(f"\nfs.usage flood over 30,000 files: probe system.time p50 {lat['p50_us']} us, "
          f"p99 {lat['p99_us']} us, max {lat['max_us']} us over {lat['calls']} calls; "
          f"flood answered {answered} fs.usage calls with {len(walks)} walks "
          f"(walk CPU {[w['walk_cpu_us'] for w in walks[:5]]} us)")
    assert lat["calls"] > 1000
    if data == "directory":
        assert answered > 0 and len(walks) >= 2
        assert walks and all(w["entries"] >= 30000 for w in walks)
    else:
        assert answered > 0 and not walks and recs
    assert lat["p99_us"] < P99_BOUND_US, lat
    verify_audit(state)


@pytest.mark.twin
def test_apps_that_never_read_hold_bounded_kernel_memory(tmp_path, state):
    """Three apps send system.env calls (~60 KiB replies each) and never read:
    the kernel stops reading each once its out queue holds 256 KiB, its memory
    grows by a few MiB, not 66 MB an app, and another app's calls are served
    meanwhile."""
    apps = tmp_path / "apps"
    big_env = {f"V{i:02d}": "x" * 1000 for i in range(60)}
    hogs = [f"org.test.noread{i}" for i in range(3)]
    for h in hogs:
        flood_app(apps, h, ["noread"], kind="service", env=big_env)
    flood_app(apps, "org.test.probe", ["latency-for", "3"], kind="app", depends=hogs)
    env = dict(os.environ)
    # Under ASan, freed memory waits in a quarantine (256 MiB by default) and would
    # count as growth: keep it small so RSS measures what is held.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1"
    p, status = boot(apps, state, env=env)
    try:
        status.readline()  # the first app started: the baseline
        base = rss_kib(p.pid)
        stalled = [wait_for_line(state, h, "STALLED", p, 120)[0] for h in hogs]
        held = rss_kib(p.pid)
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        status.close()
    assert p.returncode == 0, err
    (lat,) = log_lines(state, "org.test.probe", "LATENCY")
    growth = held - base
    print(f"\nthree apps that never read: {[s['sent'] for s in stalled]} calls sent before "
          f"the kernel stopped reading them; kernel RSS {base} KiB -> {held} KiB "
          f"(+{growth} KiB); probe system.time p99 {lat['p99_us']} us over {lat['calls']} calls")
    # Per app: 256 KiB queued, one read's replies past it (16 x 64 KiB), the socket.
    assert growth < 3 * 3 * 1024 + 4096, growth
    assert lat["calls"] > 100
    assert lat["p99_us"] < P99_BOUND_US, lat


# Not a twin: --root is embedded-only (cellad's roots are its own).
@pytest.mark.parametrize("kind", ["time", "refused", "distinct"])
def test_a_call_flood_writes_a_bounded_audit_log(tmp_path, state, kind):
    """An app calls as fast as its rate limit allows for 3 s: repeated decisions are
    coalesced (one record and one summary a second), distinct ones stop at the
    app's audit budget (32 KiB/s after a 1 MiB burst); the count of every call is
    in the log and the chain verifies."""
    apps = tmp_path / "apps"
    docs = tmp_path / "docs"
    docs.mkdir()
    app = flood_app(apps, "org.test.calls", ["calls", "3", kind],
                    permissions=["fs.read:documents", "fs.read:secret"])
    if kind == "distinct":
        g = subprocess.run([CELLA, "grant", "--state-dir", str(state), "--app-dir", str(app),
                            "org.test.calls", "fs.read:documents"], capture_output=True,
                           text=True, timeout=60)
        assert g.returncode == 0, g.stderr
    before = audit_bytes(state) if (state / "audit").exists() else 0
    t0 = time.monotonic()
    r = subprocess.run([CELLA, "run", "--state-dir", str(state), "--no-prompt", "--root",
                        f"documents={docs}", str(app)], capture_output=True, text=True,
                       timeout=120)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    (calls,) = [json.loads(line[6:]) for line in r.stdout.splitlines() if line.startswith("CALLS ")]
    grew = audit_bytes(state) - before
    verify_audit(state)
    recs = [x for x in audit_records(state) if x.get("app") == "org.test.calls"]
    op = "system.time" if kind == "time" else "fs.open"
    counted = sum(x.get("count", 0) if x["event"] == "suppressed" else 1
                  for x in recs if x.get("op") == op and x["event"] in ("call", "suppressed")
                  and x.get("why", "repeated") == "repeated")
    over = sum(x["count"] for x in recs if x["event"] == "suppressed" and x["why"] == "budget")
    print(f"\naudit under a {kind} flood: {calls['answered']} calls in 3 s, log grew "
          f"{grew} bytes ({grew / 3:.0f} bytes/s), {len(recs)} records; "
          f"{counted} calls recorded or counted as repeats, {over} over the budget")
    assert calls["answered"] > 1000
    # Every call is in the log: written, counted as a repeat, or counted over budget.
    assert counted + over == calls["answered"]
    if kind == "distinct":
        assert over > 0
        # The burst, the rate for as long as the kernel ran, one record past it, and
        # the summaries and lifecycle records (a few KiB).
        assert grew < 1024 * 1024 + elapsed * 32 * 1024 + 16 * 1024, (grew, elapsed)
    else:
        assert grew < 16 * 1024


# Not a twin: its --cgroup-mode parameter is embedded-only (a run through cellad uses cellad's mode).
@pytest.mark.parametrize("mode", ["auto", "v1"])
def test_proc_list_reports_the_cgroups_cpu_use(tmp_path, state, mode):
    """proc.list's cgroup.cpu_usage_ns is the app's cgroup's CPU time on every host
    layout: cpuacct.usage from the cpuacct hierarchy (co-mounted with cpu, or apart
    as on this host), cpu.stat's usage_usec on v2. The app burns 300 ms of its own
    CPU first, so its cgroup has used at least that much. `--cgroup-mode v1` drives
    this hybrid host as a pure v1 one: no cgroup2 leaf to fall back on."""
    app = flood_app(tmp_path / "apps", "org.test.cpuuse", ["cpu", "300"])
    r = run_cella("--cgroup-mode", mode, app, state_dir=state, timeout=60)
    assert r.code == 0, r.err
    line = next(l for l in r.out.splitlines() if l.startswith("CPU "))
    _, used, _, burnt = line.split()
    assert int(burnt) >= 300_000_000
    # The cgroup's figure covers the burnt time (and its init's and the exec's).
    assert int(used) >= int(burnt), line
    assert int(used) < int(burnt) + 5_000_000_000, line


# Not a twin: its --cgroup-mode parameter is embedded-only (a run through cellad uses cellad's mode).
@pytest.mark.parametrize("mode", ["auto", "v1"])
def test_memory_stats_read_the_apps_cgroup(tmp_path, state, mode):
    """memory.stats and proc.list read the app's own cgroup files on every host layout
    (the broker reads them with the sandbox's cgroup readers): on v1 and hybrid the v1
    memory cgroup (usage_in_bytes, limit_in_bytes, memory.stat total_rss), on v2
    memory.current, memory.max and memory.stat anon. The app touches 16 MiB under a
    64 MiB limit, so its cgroup holds at least that much, and the limit is the
    manifest's. `--cgroup-mode v1` drives this hybrid host as pure v1."""
    app = flood_app(tmp_path / "apps", "org.test.memstats", ["memory", "16"],
                    limits={"memory": "64M"})
    r = run_cella("--cgroup-mode", mode, app, state_dir=state, timeout=60)
    assert r.code == 0, r.err
    line = next(l for l in r.out.splitlines() if l.startswith("MEM "))
    f = line.split()
    current, limit, anon, peak = (int(x) for x in f[1:5])
    cg_current, cg_limit, pids, n = (int(x) for x in f[6:10])
    mib = 1024 * 1024
    assert limit == 64 * mib and cg_limit == 64 * mib, line
    assert 16 * mib <= current <= 64 * mib, line
    assert anon >= 15 * mib and peak >= current, line
    assert 16 * mib <= cg_current <= 64 * mib, line
    assert pids >= 1 and n >= 1, line

