"""Issue 13's scenario test ("Tests and measurements"): real programs in real sandboxes
of a real cellad, memory driven down inside its budget (`memory.total` 320M) until
the memory manager acts (docs/memory.md; the scenario is
tests/integration/memory_scenario.py, which bench/memory also runs against earlyoom
and Linux's OOM killer alone).

Asserted: the foreground app and cellad survive; the manager trims before it
freezes and freezes before it kills; its kills go down the bands (the least
important first) and never reach the foreground app; Linux's OOM killer kills no
foreground app; every action is in `cella events`, live and in the audit log; every
app that died of the pressure died of a kill the manager recorded.

The test waits on events (cella events, the apps' logs), never on sleeps. It is
reported skipped, with the reason, on a machine without root, stress-ng, PSI or the
built mem-app."""
import json
import socket

import pytest

from daemon_util import require_cellad
import memory_scenario as ms

# How long the manager has, from T0, to act and to end the episode: far above what
# it needs (the budget is full within a few seconds; degraded 2 s PSI triggers here).
DEADLINE = 120


def audit_memory_records(state):
    """The audit log's memory.* records, replayed by org.cella.Events {since}."""
    out = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(state / "cellad.sock"))
        s.settimeout(DEADLINE)
        s.sendall((json.dumps({"method": "org.cella.Events", "parameters": {"since": "1h"},
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        while True:
            p = json.loads(f.readline())["parameters"]
            if p.get("live"):
                return out
            ev = p.get("event", {})
            if str(ev.get("what", "")).startswith("memory."):
                out.append(ev)


def band_class(band):
    """The importance class of a band (docs/memory.md "Bands"): 9 cached, 7
    background, 2 service, 1 visible, 0 foreground."""
    for floor, cls in ((900, 9), (700, 7), (200, 2), (100, 1)):
        if band >= floor:
            return cls
    return 0


@pytest.fixture
def scenario(tmp_path):
    require_cellad()
    try:
        ms.requirements("cella")
        ms.mem_app_path()
    except ms.ScenarioSkip as e:
        pytest.skip(str(e))
    with ms.Scenario(tmp_path, "cella") as s:
        yield s


def test_the_manager_acts_by_importance_under_real_pressure(scenario):
    s = scenario
    s.setup()
    s.pressure()
    ev = s.events
    # The growers frozen or gone: they grow no more, each an event in the stream (its
    # exit, or its freeze).
    def settled(_):
        done = {r.get("app") for r in ev.records if r["t"] >= s.t0 and
                ms.name_of(r) in ("exited", "memory.freeze")}
        return all(g in done for g in ms.GROWERS)
    assert ev.wait(settled, DEADLINE), (
        f"the growers still grow after {DEADLINE} s: {s.actions()}; cellad's log: "
        f"{s.cellad_log.read_text()[-3000:]}")
    # The frozen growers still hold their memory and the budget is full: a service
    # that grows (never frozen) gets its room only by kills, so the manager must kill,
    # down the bands. Done once it reached its size, or was killed itself.
    grown = s.start_late()
    def late_done(_):
        return grown.is_set() or any(
            ms.name_of(r) == "exited" and r.get("app") == ms.LATE for r in ev.records)
    assert ev.wait(late_done, DEADLINE), (
        f"the late service neither grew to {ms.LATE_CAP} MiB nor was killed within "
        f"{DEADLINE} s: {s.actions()}")
    r = s.result()
    acts = r["actions"]

    # The foreground app and cellad survive; no Linux OOM kill of the foreground app.
    assert r["cellad_alive"], s.cellad_log.read_text()[-3000:]
    assert r["fg_alive"], (r["deaths"], acts)
    assert not any(a == ms.FG for a, _, _ in r["deaths"]), r["deaths"]
    assert not any(ms.name_of(x) == "exited" and x.get("app") == ms.FG and x.get("oom_killed")
                   for x in ev.records), "Linux's OOM killer killed the foreground app"

    # trim, then freeze, then kill.
    def first(name):
        return min((t for n, _, t in acts if n == name), default=None)
    t_trim, t_freeze, t_kill = first("memory.trim"), first("memory.freeze"), first("memory.kill")
    assert t_trim is not None and t_kill is not None, (
        f"no kill made room for the late service: {acts}")
    assert t_freeze is not None, f"a background app was killed, none frozen first: {acts}"
    assert t_trim <= t_freeze <= t_kill, acts

    # Kills follow the bands: the least important first, never band 0. Compared by
    # class (cached 900..999, background 700, service 200..300, visible 100): within
    # the cached band an app's rank moves as others are frozen or die.
    kills = [x for x in ev.records if ms.name_of(x) == "memory.kill" and x["t"] >= s.t0
             and x.get("source", "status") == "status"]
    classes = [band_class(k["band"]) for k in kills]
    assert classes == sorted(classes, reverse=True), [(k["app"], k["band"]) for k in kills]
    assert all(k["band"] > 0 for k in kills), [(k["app"], k["band"]) for k in kills]
    assert ms.FG not in {k["app"] for k in kills}
    # The cached apps (bands 900..999) went before any background app (700).
    killed = [k["app"] for k in kills]
    for c in ms.CACHED:
        for g in ms.GROWERS:
            if g in killed and c in killed:
                assert killed.index(c) < killed.index(g), killed

    # Every app that died of the pressure died of a kill the manager recorded.
    for app, t, how in r["deaths"]:
        assert app in killed, (app, t, how, killed)

    # Every action is in cella events: live (above) and in the audit log.
    audit = audit_memory_records(s.state)
    live = [(n, a) for n, a, _ in acts]
    for n, a in live:
        assert any(x.get("what") == n and x.get("app") == a for x in audit), (n, a, audit)
    for k in kills:
        for field in ("level", "band", "freed_bytes", "usage_bytes"):
            assert field in k, (field, k)
