"""What the memory manager sees and did, shown to people (issue 13, "Configuration and
visibility"; docs/memory.md "Visibility"): `cella memory` (org.cella.Memory) and the
memory section of `cella inspect` against real sandboxes of a real cellad with a
memory.total budget: the budget's, the machine's and each app's figures agree with
the kernel's files, each app's band follows its state, the recent memory.* actions
are listed, the compressed swap is detected as this host has it (no swap here: the
"absent" path, for real), and the method's permission is "read". And the cellad.conf
keys of this part: the CPU weights by state (cpu.*) reach the apps' leaves."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from daemon_util import (CELLA, ControlError, call_as, cella, install_app, require_cellad,
                         running_cellad, system_user, traversable_tmpdir)
from test_memory_actions import make_app, memory_action, wait_log_line, wait_state

MiB = 1 << 20
# A Lua app that holds 32 MiB of strings in its heap, then idles.
LUA_HOLD = ('local t = {}\n'
            'for i = 1, 32 do t[i] = string.rep("x", 1024 * 1024 - 16) .. i end\n'
            'print("ready")\n'
            'require("cella.timer").every(1, function() end)\n')
TICKER = 'echo ready\nwhile :; do sleep 1; done\n'
LEVELS = ("normal", "moderate", "low", "critical")


def _conf(state, text):
    state.mkdir(mode=0o711, exist_ok=True)
    (state / "cellad.conf").write_text(text)
    os.chmod(state / "cellad.conf", 0o644)


def _memory(state, *args):
    p = cella("memory", *args, state_dir=state)
    return p


def _memory_json(state, *args):
    p = _memory(state, "--json", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _meminfo(key):
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, v = line.split(":", 1)
        if k == key:
            return int(v.split()[0]) * 1024
    raise KeyError(key)


def _cap_sys_resource():
    """Whether this process has CAP_SYS_RESOURCE (bit 24 of CapEff), as cellad does."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return None


def _swaps():
    lines = Path("/proc/swaps").read_text().splitlines()[1:]
    return [l.split()[0] for l in lines if l.strip()]


def _zswap():
    p = Path("/sys/module/zswap/parameters/enabled")
    return p.exists() and p.read_text().strip() in ("Y", "y", "1")


@pytest.fixture
def vis(tmp_path):
    require_cellad()
    state = tmp_path / "state"
    src = tmp_path / "src"
    _conf(state, '{"memory": {"total": "256M"}}')
    install_app(state, make_app(src, "org.test.vis.hold", LUA_HOLD, runtime="lua"))
    install_app(state, make_app(src, "org.test.vis.bg", TICKER))
    install_app(state, make_app(src, "org.test.vis.svc", TICKER, kind="service"))
    install_app(state, make_app(src, "org.test.vis.idle", TICKER))
    # Without the manager's loop: on this shared host the machine's pressure (other
    # tests' budgets) can make it act on these apps; its own test is below.
    with running_cellad(state, "--no-autostart", "--no-memory-manager") as d:
        for app in ("org.test.vis.hold", "org.test.vis.bg", "org.test.vis.svc"):
            d.call("org.cella.Start", {"app": app})
        for app in ("org.test.vis.hold", "org.test.vis.bg", "org.test.vis.svc"):
            wait_log_line(d, app, "ready")
        d.call("org.cella.Foreground", {"app": "org.test.vis.hold"})
        wait_state(d, "org.test.vis.hold", "foreground")
        # A start is a foreground app; the one before it became visible.
        d.call("org.cella.Background", {"app": "org.test.vis.bg"})
        wait_state(d, "org.test.vis.bg", "background")
        yield d, state


def test_memory_report_figures_bands_actions(vis):
    d, state = vis
    memory_action(d, "org.test.vis.bg", "trim", "low")
    r = _memory_json(state)

    # Without the manager's loop: the level the figures of the moment meet.
    assert r["level"] in LEVELS
    assert r["manager"] == {"running": False}, r["manager"]
    assert r["level_source"] == "figures" and r["degraded"] is None, r
    assert r["taken_ms"] > 0 and r["kernel_pid"] == d.pid

    # The budget: memory.total on the apps' parent, read back from the kernel.
    assert r["budget_bytes"] == 256 * MiB
    b = r["apps_figures"]
    assert b["limit"] == 256 * MiB, b
    assert 0 < b["available"] <= 256 * MiB
    # The machine: MemTotal, and what OOM kills /proc/vmstat counts.
    m = r["machine"]
    assert m["limit"] == _meminfo("MemTotal"), m
    assert m["peak"] is None  # the machine has none
    assert m["oom_kills"] >= 0

    apps = {a["id"]: a for a in r["apps"]}
    # Running apps only: the installed idle one is not listed.
    assert set(apps) == {"org.test.vis.hold", "org.test.vis.bg", "org.test.vis.svc"}, apps
    bands = {k: (a["state"], a["memory"]["band"], a["memory"]["class"]) for k, a in apps.items()}
    assert bands == {"org.test.vis.hold": ("foreground", 0, "foreground"),
                     "org.test.vis.bg": ("background", 700, "background"),
                     "org.test.vis.svc": ("service", 200, "service")}, bands
    hold = apps["org.test.vis.hold"]["memory"]["figures"]
    # The 32 MiB of strings are anonymous memory of its leaf.
    assert hold["anon"] >= 32 * MiB, hold
    assert hold["used"] >= hold["anon"]
    assert hold["peak"] >= hold["used"] - 4 * MiB
    assert hold["limit"] is None  # no limits.memory in its manifest
    assert hold["oom_kills"] == 0
    # The budget's figures are the sum over its apps (v1 total_*; v2 hierarchical).
    assert b["anon"] >= sum(a["memory"]["figures"]["anon"] for a in apps.values()) - 4 * MiB
    # PSI: the unified leaf's memory.pressure (v2, or hybrid's controller-less cgroup2).
    if Path("/sys/fs/cgroup/unified/cgroup.controllers").exists() or \
            Path("/sys/fs/cgroup/cgroup.controllers").exists():
        assert set(hold["psi"]) == {"some_avg10", "full_avg10", "some_total_us",
                                    "full_total_us"}, hold

    # The trim is in the recent actions, with its level and figures.
    trims = [x for x in r["recent"] if x["what"] == "memory.trim"]
    assert len(trims) == 1, r["recent"]
    assert trims[0]["app"] == "org.test.vis.bg" and trims[0]["level"] == "low"
    assert trims[0]["current_bytes"] > 0 and trims[0]["time_ms"] > 0

    # One app: only it, only its actions.
    one = _memory_json(state, "org.test.vis.bg")
    assert [a["id"] for a in one["apps"]] == ["org.test.vis.bg"]
    assert [x["app"] for x in one["recent"]] == ["org.test.vis.bg"]
    assert _memory_json(state, "org.test.vis.hold")["recent"] == []
    # An app known but not started under this cellad: not running, no figures.
    with pytest.raises(AssertionError):
        _memory_json(state, "org.test.vis.idle")

    # The text: the level, the budget, each app's row, the action.
    p = _memory(state)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith(f"level {r['level']} (from the figures now), the manager does "
                          "not run"), out
    assert "budget (memory.total 256M): " in out and "\nmachine: " in out, out
    for app in apps:
        assert f"\n{app} " in out, out
    assert "memory.trim org.test.vis.bg level=low" in out, out

    # Inspect's memory section: the same shape for one app.
    ins = d.call("org.cella.Inspect", {"app": "org.test.vis.hold"})["memory"]
    assert ins["band"] == 0 and ins["class"] == "foreground"
    assert ins["figures"]["anon"] >= 32 * MiB
    assert ins["reclaimed"] is False and ins["soft_limit_bytes"] is None


def test_memory_report_follows_actions_and_states(vis):
    d, state = vis
    # Reclaim then freeze the background app: its soft limit and its band move.
    memory_action(d, "org.test.vis.bg", "reclaim", "critical")
    r = _memory_json(state, "org.test.vis.bg")
    m = r["apps"][0]["memory"]
    assert m["reclaimed"] is True and m["soft_limit_bytes"] > 0, m
    memory_action(d, "org.test.vis.bg", "freeze")
    r = _memory_json(state, "org.test.vis.bg")
    assert r["apps"][0]["state"] == "cached"
    assert r["apps"][0]["memory"]["band"] == 900
    whats = [x["what"] for x in r["recent"]]
    assert whats == ["memory.reclaim", "memory.freeze"], whats
    # A kill: the app leaves the report (not running), its record stays.
    memory_action(d, "org.test.vis.svc", "kill", "critical")
    r = _memory_json(state)
    assert "org.test.vis.svc" not in {a["id"] for a in r["apps"]}
    kills = [x for x in r["recent"] if x["what"] == "memory.kill"]
    assert kills and kills[-1]["app"] == "org.test.vis.svc" and kills[-1]["band"] == 200


def test_memory_report_with_the_manager(tmp_path):
    """With the manager's loop (cellad's default): its level, its triggers, and
    whether they run degraded (here: root without CAP_SYS_RESOURCE gets 2 s windows
    only), in the report and the text. Nothing is asserted of what it does: the
    machine's pressure on this shared host is not this test's."""
    require_cellad()
    state = tmp_path / "state"
    src = tmp_path / "src"
    _conf(state, '{"memory": {"total": "256M"}}')
    install_app(state, make_app(src, "org.test.vis.hold", LUA_HOLD, runtime="lua"))
    with running_cellad(state, "--no-autostart") as d:
        d.call("org.cella.Start", {"app": "org.test.vis.hold"})
        wait_log_line(d, "org.test.vis.hold", "ready")
        r = _memory_json(state)
        m = r["manager"]
        assert m["running"] is True and r["level_source"] == "manager", m
        assert r["level"] == m["level"] and r["level"] in LEVELS
        assert r["degraded"] == m["degraded"] == any(t["degraded"] for t in m["triggers"]), m
        if _cap_sys_resource() is False:
            assert r["degraded"] is True and all(t["window_ms"] == 2000 for t in m["triggers"])
        out = _memory(state).stdout.splitlines()[0]
        assert out.startswith(f"level {r['level']} (the manager's)"), out
        assert ("degraded" in out) == r["degraded"], out


def test_memory_report_bad_requests(vis):
    d, state = vis
    p = _memory(state, "org.test.vis.nothere")
    assert p.returncode == 1 and "no app org.test.vis.nothere" in p.stderr, p
    p = _memory(state, "not an id!")
    assert p.returncode == 240, p
    p = _memory(state, "org.test.vis.bg", "org.test.vis.hold")
    assert p.returncode == 240 and "at most one APP" in p.stderr, p
    with pytest.raises(ControlError) as e:
        d.call("org.cella.Memory", {"app": 7})
    assert e.value.error == "org.cella.InvalidParameter"
    # The action form is still the action form.
    p = _memory(state, "squeeze", "org.test.vis.bg")
    assert p.returncode == 240, p  # 'squeeze' is neither an action nor an app id with a dot


def test_swap_detected_as_the_host_has_it(vis):
    """No mock: the report's swap agrees with /proc/swaps and zswap's parameter. On
    this host there is no swap area (a zram device exists but is none), so the caps
    are off and say why; on a host with zram swap the same test checks "zram"."""
    d, state = vis
    s = _memory_json(state)["swap"]
    areas = _swaps()
    zram = [a for a in areas if a.startswith("/dev/zram")]
    assert s["areas"] == len(areas) and s["zram_swap_areas"] == len(zram), (s, areas)
    assert s["total_bytes"] == _meminfo("SwapTotal")
    assert s["zswap"] == _zswap()
    compressed = bool(areas) and (bool(zram) or _zswap())
    assert s["compressed"] == compressed
    assert s["kind"] == ("none" if not areas else "zram" if zram else
                         "zswap" if _zswap() else "swap")
    assert s["caps"] == compressed, s
    if not compressed:
        assert "no compressed swap" in s["caps_why"], s
        # And nothing was written: a leaf keeps its sandbox's own setting.
        ins = d.call("org.cella.Inspect", {"app": "org.test.vis.bg"})
        assert ins["memory"]["swap_max_bytes"] in (None, 0), ins["memory"]


def test_memory_method_is_read_access(tmp_path):
    """org.cella.Memory is a read-only method (docs/api.md): a reader gets it, a user
    who may not read is refused; MemoryAction stays root's."""
    require_cellad()
    with traversable_tmpdir("cella-memvis-") as top, system_user("cellamemr") as reader, \
            system_user("cellamemx") as other:
        state = top / "state"
        src = top / "src"
        install_app(state, make_app(src, "org.test.vis.r", TICKER))
        with running_cellad(state, "--no-autostart", "--read-users", "cellamemr") as d:
            d.call("org.cella.Start", {"app": "org.test.vis.r"})
            wait_log_line(d, "org.test.vis.r", "ready")
            r = call_as(reader.pw_uid, reader.pw_gid, d.socket, "org.cella.Memory")
            assert "error" not in r, r
            assert [a["id"] for a in r["parameters"]["apps"]] == ["org.test.vis.r"]
            r = call_as(other.pw_uid, other.pw_gid, d.socket, "org.cella.Memory")
            assert r.get("error") == "org.cella.PermissionDenied", r
            r = call_as(reader.pw_uid, reader.pw_gid, d.socket, "org.cella.MemoryAction",
                        {"app": "org.test.vis.r", "action": "trim"})
            assert r.get("error") == "org.cella.PermissionDenied", r


def _cpu_weight(d, app):
    return d.call("org.cella.Inspect", {"app": app})["cgroup"]["cpu_weight"]


@pytest.mark.parametrize("conf,args,want_fg,want_bg", [
    ('{"cpu": {"weight": {"foreground": 300, "background": 7}}}', (), 300, 7),
    ('{"cpu": {"weights": false}}', (), 100, 100),
    ('{"cpu": {"weight": {"foreground": 300}}}', ("--no-cpu-weights",), 100, 100),
])
def test_cpu_weights_from_the_config(tmp_path, conf, args, want_fg, want_bg):
    """cellad.conf's cpu.* keys are the weights written to the apps' leaves, read
    back from the kernel's files (cpu.shares here, cpu.weight on v2);
    --no-cpu-weights wins over the file."""
    require_cellad()
    state = tmp_path / "state"
    src = tmp_path / "src"
    _conf(state, conf)
    install_app(state, make_app(src, "org.test.vis.fg", TICKER))
    install_app(state, make_app(src, "org.test.vis.back", TICKER))
    with running_cellad(state, "--no-autostart", "--warm", "0", *args) as d:
        for app in ("org.test.vis.fg", "org.test.vis.back"):
            d.call("org.cella.Start", {"app": app})
            wait_log_line(d, app, "ready")
        d.call("org.cella.Foreground", {"app": "org.test.vis.fg"})
        wait_state(d, "org.test.vis.fg", "foreground")
        d.call("org.cella.Background", {"app": "org.test.vis.back"})
        wait_state(d, "org.test.vis.back", "background")
        w = _cpu_weight(d, "org.test.vis.fg")
        if w is None:
            pytest.skip("no cpu controller in the apps' leaves on this host")
        assert w == want_fg
        assert _cpu_weight(d, "org.test.vis.back") == want_bg


def test_top_shows_memory(vis):
    """`cella top -n 1` (plain text to a pipe): cellad's level, the budget's use, and
    each app's anon, swap and band beside its CPU."""
    d, state = vis
    p = subprocess.run([CELLA, "top", "-n", "1", "--state-dir", str(state)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert any(l.startswith("memory: level ") for l in lines), p.stdout
    assert any(l.startswith("apps: ") and " of 256M " in l for l in lines), p.stdout
    head = next(l for l in lines if l.startswith("APP"))
    cols = head.split()
    assert cols[:10] == ["APP", "STATE", "PID", "CPU%", "MEMORY", "ANON", "SWAP", "BAND",
                         "RESTARTS", "KERNEL-PID"], head
    rows = {l.split()[0]: l.split() for l in lines[lines.index(head) + 1:] if l.strip()}
    assert rows["org.test.vis.hold"][7] == "0", rows
    assert rows["org.test.vis.bg"][7] == "700", rows
    assert rows["org.test.vis.svc"][7] == "200", rows
    # 32 MiB of strings: its anon column reads tens of MiB.
    assert rows["org.test.vis.hold"][5].endswith("M"), rows
