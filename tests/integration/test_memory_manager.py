"""The memory manager's loop in a real cellad (docs/memory.md "The manager"; issue 13
"Signals" and "Actions"): PSI triggers armed on the apps' parent and the machine
(degraded to 2 s windows where the kernel refuses 1 s, which `cella inspect` and
STATUS= say), and, under real pressure made inside a small memory.total (never on
the host), the actions in order: every app trimmed, the background app reclaimed
from, frozen, then killed as the least important, while the foreground app that
needs the memory runs on; each action in `cella events` with the level and the
pressure figures; the kill a low-memory one; the soft limits restored and the
manager idle (no timer) once pressure ends. `cellad --no-memory-manager` arms
nothing."""
import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from daemon_util import (CELLA, cella, install_app, require_cellad, running_cellad,
                         wait_for, wait_log_line)

MiB = 1 << 20
DEADLINE = float(os.environ.get("MEMTEST_DEADLINE", "90"))

# Holds ~90 MB of anonymous memory in a shell variable, then waits.
HOLDER = ('x=$(head -c 90000000 /dev/zero | tr "\\0" a)\n'
          'echo "held ${#x}"\n'
          'while :; do sleep 1000; done\n')
# Needs more page cache than the budget leaves it: writes two 100 MB files to /data
# (its own ext4) and reads each twice in turn (the second read makes its pages
# active: a working set). Beside the holder's 90 MB in a 256 MB budget the two do
# not fit: each file's pages are evicted while the other is read and refault as
# thrashing, which PSI counts as memory stall ("some" and "full"); no OOM kill
# (page cache is reclaimable).
THRASHER = ('dd if=/dev/zero of=/data/a bs=1M count=100 2>/dev/null\n'
            'dd if=/dev/zero of=/data/b bs=1M count=100 2>/dev/null\n'
            'echo written\n'
            'while :; do cat /data/a /data/a > /dev/null; cat /data/b /data/b > /dev/null; done\n')


def make_app(root, app_id, script, **extra):
    d = Path(root) / app_id
    d.mkdir(parents=True)
    m = {"id": app_id, "runtime": "native", "version": "1.0.0", "entry": "main.sh",
         "limits": {"memory": "512M"}}
    m.update(extra)
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "main.sh").write_text("#!/bin/sh\n" + script)
    os.chmod(d / "main.sh", 0o755)
    os.chmod(d, 0o755)
    return d


def _state(tmp_path, conf):
    for d in (tmp_path,):
        os.chmod(d, 0o755)
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    (state / "cellad.conf").write_text(conf)
    os.chmod(state / "cellad.conf", 0o644)
    return state


class Events:
    """`cella events --json`, read as its records come (events, not polls)."""

    def __init__(self, state):
        self.proc = subprocess.Popen([CELLA, "events", "--json", "--state-dir", str(state)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buf = b""
        self.seen = []

    def until(self, cond, what, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        for rec in self.seen:
            if cond(rec):
                return rec
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {what} in cella events within {timeout} s: " + \
                json.dumps(self.seen[-40:])
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            assert chunk, "cella events ended"
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                rec = json.loads(line)
                self.seen.append(rec)
                if cond(rec):
                    return rec

    def close(self):
        self.proc.kill()
        self.proc.wait()


def _is(event, app=None):
    return lambda r: r.get("event") == event and (app is None or r.get("app") == app)


def _manager(d, app):
    return d.call("org.cella.Inspect", {"app": app})["memory_manager"]


def test_manager_armed_and_degraded_said(tmp_path):
    """The triggers are armed at start: `cella inspect` shows the manager running,
    its triggers, and "degraded" exactly when a trigger's window is the fallback
    one (on this host, root without CAP_SYS_RESOURCE: 2 s). Idle after start: no
    sample taken, no timer armed. With --no-memory-manager: not running."""
    require_cellad()
    if os.geteuid() != 0:
        pytest.skip("needs root for cgroups")
    src = tmp_path / "src"
    state = _state(tmp_path, '{"memory": {"total": "256M"}}')
    install_app(state, make_app(src, "org.test.mm.idle", "while :; do sleep 1000; done\n"))
    with running_cellad(state) as d:
        assert cella("start", "--background", "org.test.mm.idle",
                     state_dir=state).returncode == 0
        m = _manager(d, "org.test.mm.idle")
        assert m["running"] is True, m
        targets = {t["target"]: t for t in m["triggers"]}
        assert "apps" in targets, m
        assert m["degraded"] == any(t["degraded"] for t in m["triggers"]), m
        for t in m["triggers"]:
            assert t["degraded"] == (t["window_ms"] > 1000), t
        assert m["level"] == "normal" and m["sampling"] is False, m
        assert "memory manager: watching the apps' memory pressure" in d.log()
        if m["degraded"]:
            assert "degraded" in d.log()
        # The text of `cella inspect` says it too.
        out = cella("inspect", "org.test.mm.idle", state_dir=state).stdout
        assert "memory_manager" in out, out
        if m["degraded"]:
            assert "degraded" in out, out
        assert d.stop() == 0
    with running_cellad(state, "--no-memory-manager") as d:
        assert cella("start", "--background", "org.test.mm.idle",
                     state_dir=state).returncode == 0
        assert _manager(d, "org.test.mm.idle") == {"running": False}
        assert "watching the apps' memory pressure" not in d.log()
        assert d.stop() == 0


def test_pressure_trims_then_kills_the_least_important(tmp_path):
    """Real pressure inside a 256 MB budget: a background app holds 90 MB, the
    foreground app thrashes its page cache. The manager trims both, reclaims from
    and freezes the background app, then kills it (cached, band >= 900: the least
    important), never the foreground one, which runs on; every action is in `cella
    events` with the level and the pressure figures, in that order; the kill is a
    low-memory one; once pressure ends the manager goes idle."""
    require_cellad()
    if os.geteuid() != 0:
        pytest.skip("needs root for cgroups")
    if not Path("/proc/pressure/memory").exists():
        pytest.skip("no PSI on this kernel (psi=0 or CONFIG_PSI off)")
    src = tmp_path / "src"
    state = _state(tmp_path, '{"memory": {"total": "256M"}}')
    install_app(state, make_app(src, "org.test.mm.bg", HOLDER))
    install_app(state, make_app(src, "org.test.mm.fg", THRASHER))
    with running_cellad(state) as d:
        ev = Events(state)
        try:
            assert cella("start", "--background", "org.test.mm.bg",
                         state_dir=state).returncode == 0
            # The holder's 90 MB in before the thrasher starts.
            wait_log_line(d, "org.test.mm.bg", "held 90000000", timeout=DEADLINE)
            t0 = time.monotonic()
            assert cella("start", "org.test.mm.fg", state_dir=state).returncode == 0
            kill = ev.until(_is("memory.kill", "org.test.mm.bg"), "the holder's kill")
            t_kill = time.monotonic() - t0
            seen = list(ev.seen)
        finally:
            ev.close()
        mem = [r for r in seen if str(r.get("event", "")).startswith("memory.")]
        order = [(r["event"], r["app"]) for r in mem]
        # Trims first (both apps), then the holder's reclaim, freeze, kill.
        first = {}
        for i, (e, a) in enumerate(order):
            first.setdefault((e, a), i)
        for key in [("memory.trim", "org.test.mm.fg"), ("memory.trim", "org.test.mm.bg"),
                    ("memory.reclaim", "org.test.mm.bg"), ("memory.freeze", "org.test.mm.bg"),
                    ("memory.kill", "org.test.mm.bg")]:
            assert key in first, (key, order)
        assert first[("memory.trim", "org.test.mm.bg")] < first[("memory.reclaim",
                                                                  "org.test.mm.bg")]
        assert first[("memory.reclaim", "org.test.mm.bg")] < first[("memory.freeze",
                                                                     "org.test.mm.bg")]
        assert first[("memory.freeze", "org.test.mm.bg")] < first[("memory.kill",
                                                                    "org.test.mm.bg")]
        # Never the foreground app.
        assert ("memory.kill", "org.test.mm.fg") not in first, order
        assert ("memory.freeze", "org.test.mm.fg") not in first, order
        # Each record says why: the manager, the level, the figures.
        for r in mem:
            assert r.get("by") == "manager", r
            assert r.get("level") in ("moderate", "low", "critical"), r
            assert "since_trigger_ms" in r, r
        assert kill["level"] in ("low", "critical"), kill
        assert kill["band"] >= 900, kill
        assert kill["freed_bytes"] >= 64 * MiB, kill
        assert "stall_some_ms" in kill or "available_bytes" in kill, kill
        # The foreground app runs on; the holder's exit is a low-memory kill.
        ps = {a["id"]: a for a in d.call("org.cella.Ps", {})["apps"]}
        assert ps["org.test.mm.fg"]["state"] == "foreground", ps
        # A low-memory kill is no crash: without a restart policy the app is stopped,
        # not failed (docs/memory.md "Kill").
        wait_for("the holder stopped", lambda: {a["id"]: a for a in d.call(
            "org.cella.Ps", {})["apps"]}["org.test.mm.bg"]["state"] == "stopped",
            timeout=DEADLINE)
        insp = d.call("org.cella.Inspect", {"app": "org.test.mm.bg"})
        assert insp["memory_kill"]["level"] == kill["level"], insp
        assert insp["last_exit"]["oom_killed"] is False, insp
        # Stop the thrasher: pressure ends, the manager goes idle (no timer armed).
        assert cella("stop", "org.test.mm.fg", state_dir=state).returncode == 0
        m = wait_for("the manager idle again",
                     lambda: (lambda m: m if not m["sampling"] else None)(
                         _manager(d, "org.test.mm.fg")), timeout=DEADLINE, interval=0.1)
        assert m["level"] == "normal" and m["kills"] >= 1 and m["episodes"] >= 1, m
        print(f"kill {t_kill:.2f} s after the thrasher's start: {kill}; manager: {m}")
        assert d.stop() == 0
