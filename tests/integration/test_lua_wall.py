"""The Lua wall of a packed group (docs/lua-api.md "Packed mode", docs/security.md):
one member's greed or fault ends or throttles that member alone.

Each case runs a real packed host (`cella-lua --spec`, what `cella boot` starts
for a group) with two apps: a neighbour whose 50 ms timer measures how late each
of its callbacks runs, and an attacker that, 0.3 s in, tries one way of keeping
the host's only thread: a backtracking pattern, a long literal or set in a
pattern, a JSON bomb, a table.sort
comparator, a gsub function or a __close handler that never returns, a C loop
through metamethods, a finalizer, a wait where it cannot be suspended, blocking
I/O (SQLite commits). The
attacker must end with its own fault (its log and its `fault` in the stats
file), the neighbour must keep running and finish, its worst lateness must stay
under LATE_MAX_MS (in the host's CPU clock, and on the wall clock past the
time the machine kept the host waiting for a CPU), and an attacker that cannot
be preempted must get no more
than NOPREEMPT_CPU_MAX_MS of CPU. The figures are printed (pytest -s) and written to
$CELLA_WALL_REPORT when set."""
import json
import os
import struct
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import CELLA, wait_run_delay_ms

CELLA_LUA = Path(os.environ.get("CELLA_LUA_BIN",
                                 str(Path(CELLA).resolve().parents[1] / "lua" / "cella-lua")))

# The neighbour's bound: the host preempts Lua code at the end of a 10 ms slice;
# code that cannot be preempted (C, or Lua called from C) is ended 50 ms of CPU
# past it (CLUA_NOPREEMPT_NS): about 60 ms of the attacker's CPU, which is what an
# idle machine shows as the neighbour's worst lateness (60-75 ms). On a loaded
# machine (2 CPUs shared by parallel tests) those 60 ms of CPU take longer to
# come, so the neighbour measures its lateness twice: on the wall clock, checked
# against LATE_MAX_MS plus the time the kernel kept the host waiting for a CPU
# (its run_delay in /proc/<pid>/schedstat, what the machine withheld), and in
# the host's own CPU clock (os.clock: CPU the host spent since the tick was
# armed, an upper bound of what it spent past the due time, whatever the load),
# checked against LATE_MAX_MS alone.
LATE_MAX_MS = 250
# CPU an attacker that cannot be preempted gets before it is ended: its slice,
# the 50 ms allowance, and the polling granularity of the C loops.
NOPREEMPT_CPU_MAX_MS = 100
PERIOD = 0.05
# The attacker's CPU budget per callback; the neighbour runs until well after an
# attacker started 0.3 s in has used all of it (or sooner been ended otherwise).
ATTACKER_CPU_MS = 400
ATTACKER_BUDGET = f"CPU budget of {ATTACKER_CPU_MS} ms exceeded"
NEIGHBOUR_RUN_S = 1.5

NEIGHBOUR = f"""
local timer = require "cella.timer"
local period, worst, worst_cpu, n, late_sum = {PERIOD}, 0, 0, 0, 0
local stop = timer.now() + {NEIGHBOUR_RUN_S}
local due, armed_cpu
local function tick()
  local now, cpu = timer.now(), os.clock()
  local late = now - due
  -- No one ran past the due time longer than the host's CPU since the tick
  -- was armed, nor longer than the wall clock says.
  local late_cpu = math.min(late, cpu - armed_cpu)
  if late > worst then worst = late end
  if late_cpu > worst_cpu then worst_cpu = late_cpu end
  late_sum = late_sum + late
  n = n + 1
  if now < stop then
    due = now + period
    timer.after(period, tick)
    armed_cpu = os.clock()
  else
    print(string.format("neighbour ticks=%d worst_ms=%.1f mean_ms=%.2f worst_cpu_ms=%.1f", n,
                        worst * 1000, late_sum / n * 1000, worst_cpu * 1000))
  end
end
due = timer.now() + period
timer.after(period, tick)
armed_cpu = os.clock()
"""

LOOP = "function() while true do end end"

# name -> (attack run 0.3 s in, expected fault code, words its log must hold)
CASES = {
    # Lua code alone: preempted every slice, ended by its own CPU budget.
    "lua-loop": ("while true do end", 4, ATTACKER_BUDGET),
    "pattern": ("""string.find(("a"):rep(3000), (".-"):rep(12) .. "b")""", 4,
                "could not be preempted"),
    "pattern-pcall": ("""for i = 1, 100 do
                           pcall(string.match, ("a"):rep(5000), ("a*"):rep(20) .. "b")
                         end""", 4, "could not be preempted"),
    # The matcher polls by work done, not by its calls: a back reference to a
    # position capture once made the work count go down, a long literal or set
    # was consumed between two polls per subject byte.
    "pattern-position-ref": ("""string.find(("a"):rep(1e6), "().-%1")""", 4,
                             "could not be preempted"),
    "pattern-literal": ("""string.match(("a"):rep(4e6), ("a"):rep(2e6) .. "b")""", 4,
                        "could not be preempted"),
    "pattern-set": ("""string.find(("b"):rep(1e6), "[" .. ("a"):rep(1e6) .. "]")""", 4,
                    "could not be preempted"),
    "pattern-set-expand": ("""("x"):rep(1e6):find("[^" .. ("a"):rep(1e6) .. "]*")""", 4,
                           "could not be preempted"),
    # jansson's tree and the Lua tables pass the 16 MiB cap: a memory fault,
    # unless parsing (one C call) holds the thread 50 ms past the slice first.
    "json-arrays": ("""require("cella.json").decode("[" .. ("[],"):rep(349524) .. "[]]")""",
                    (3, 4), ("memory limit of 16777216 bytes exceeded", "could not be preempted")),
    # A long SQL statement stops with an error the app can catch, 25 ms past
    # its slice (before the watchdog would end the app).
    "sqlite-query": ("""local d = require("cella.db").open("x.db")
                        for i = 1, 3 do
                          print("query", pcall(d.exec, d, "WITH RECURSIVE c(x) AS (SELECT 1 "
                            .. "UNION ALL SELECT x + 1 FROM c LIMIT 100000000) SELECT count(*) FROM c"))
                        end
                        while true do end""", 4, "statement interrupted"),
    "json-deep": ("""print(pcall(require("cella.json").decode, ("["):rep(2^20)))
                     while true do end""", 4, "CPU budget"),
    "sort": (f"""local t = {{}} for i = 1, 100 do t[i] = i end
                 table.sort(t, {LOOP})""", 4, ATTACKER_BUDGET),
    "sort-lt": (f"""local mt = {{__lt = {LOOP}}}
                    local t = {{}} for i = 1, 100 do t[i] = setmetatable({{}}, mt) end
                    table.sort(t)""", 4, ATTACKER_BUDGET),
    # gsub calls a function replacement with lua_callk: preempted as Lua code.
    "gsub": (f"""string.gsub(("x"):rep(100000), ".", {LOOP})""", 4,
             ATTACKER_BUDGET),
    # pcall's unwinding closes it where the task can yield (Lua 5.4's
    # finishpcallk): preempted as any Lua code.
    "close": (f"""pcall(function()
                    local x <close> = setmetatable({{}}, {{__close = {LOOP}}})
                    error("unwind")
                  end)""", 4, ATTACKER_BUDGET),
    "tostring": (f"""print(setmetatable({{}}, {{__tostring = {LOOP}}}))""", 4,
                 "could not be preempted"),
    "table-c-loop": ("""local t = setmetatable({}, {__index = table.concat})
                        table.concat(t, "", 1, math.maxinteger)""", 4, "could not be preempted"),
    "table-move": ("""local t = setmetatable({}, {__index = table.concat, __newindex = rawequal})
                      table.move(t, 1, math.maxinteger - 1, 1)""", 4, "could not be preempted"),
    "rep-empty": ("""for i = 1, 1e12 do local s = string.rep("", math.maxinteger) end""", 4,
                  ATTACKER_BUDGET),
    "load": ("""load("return " .. ("1+"):rep(4000000) .. "1")""", 4, "could not be preempted"),
    # Finalizers run with hooks off: every way to plant one must be refused.
    "gc": (f"""local db = require "cella.db"
               local json = require "cella.json"
               local d = db.open("x.db")
               print("db", pcall(function() getmetatable(d).__gc = {LOOP} end))
               print("set", pcall(setmetatable, {{}}, {{__gc = {LOOP}}}))
               print("json", pcall(function()
                 getmetatable(json.decode("[]")).__gc = {LOOP} end))
               print("close", pcall(function() getmetatable(d).__close(1) end))
               d = nil
               while true do collectgarbage("step") local x = {{}} end""", 4,
           ATTACKER_BUDGET),
    # Blocking I/O uses little CPU: SQLite's fsync per commit. The wall-clock
    # timer preempts the slice after 20 ms (2 slices) of wall time. It commits for
    # 0.3 s of wall time: less CPU than that, whatever the disk, so under its 400 ms
    # budget (on a tmpfs the fsync costs nothing and the loop is all CPU).
    "sqlite-fsync": ("""local timer = require "cella.timer"
                        local d = require("cella.db").open("x.db")
                        d:exec("CREATE TABLE t(x)")
                        local stop = timer.now() + 0.3
                        while timer.now() < stop do d:exec("INSERT INTO t VALUES (1)") end
                        error("done committing")""", 1, "done committing"),
    "sleep-in-tostring": ("""local timer = require "cella.timer"
                             print(setmetatable({}, {__tostring = function()
                               timer.sleep(30) return "x" end}))""", 1,
                          "cannot wait for the kernel or a timer here"),
}


def run_group(tmp_path, attack, attacker_log_pipe=False):
    if not CELLA_LUA.exists():
        pytest.skip(f"{CELLA_LUA} not built")
    apps = tmp_path / "apps"
    data = tmp_path / "data"
    for d in (apps, data / "n", data / "a"):
        d.mkdir(parents=True)
    (apps / "n.lua").write_text(NEIGHBOUR)
    (apps / "a.lua").write_text(textwrap.dedent(f"""
        local timer = require "cella.timer"
        timer.after(0.3, function()
        {textwrap.indent(textwrap.dedent(attack), "  ")}
        end)
    """))
    logs = {k: open(tmp_path / f"{k}.log", "w+") for k in ("n", "a")}
    pipe = None
    if attacker_log_pipe:
        # A log pipe nobody reads while the host runs: it fills at 64 KiB.
        pipe = os.pipe()
        logs["a"].close()
        logs["a"] = os.fdopen(pipe[1], "w")
    stats = open(tmp_path / "stats", "w+b")
    stats.truncate(128 + 2 * 128)
    spec = {
        "scheduler": "fair", "slice_ms": 10, "stats_fd": stats.fileno(),
        "apps": [
            {"id": "org.test.neighbour", "entry": str(apps / "n.lua"),
             "data": str(data / "n"), "log_fd": logs["n"].fileno(), "cpu_ms": 5000},
            {"id": "org.test.attacker", "entry": str(apps / "a.lua"),
             "data": str(data / "a"), "log_fd": logs["a"].fileno(), "cpu_ms": ATTACKER_CPU_MS,
             "memory": 16 << 20},
        ],
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    t0 = time.monotonic()
    with open(tmp_path / "host.out", "w+") as hout, open(tmp_path / "host.err", "w+") as herr:
        h = subprocess.Popen([str(CELLA_LUA), "--spec", str(tmp_path / "spec.json")],
                             pass_fds=[stats.fileno()] + [f.fileno() for f in logs.values()],
                             stdout=hout, stderr=herr, text=True)
        run_delay_ms = wait_run_delay_ms(h, 60)
        wall = time.monotonic() - t0
        hout.seek(0)
        herr.seek(0)
        p = subprocess.CompletedProcess(h.args, h.returncode, hout.read(), herr.read())
    p.run_delay_ms = run_delay_ms
    out = {}
    for k, f in logs.items():
        if pipe and k == "a":
            f.close()
            with os.fdopen(pipe[0], "rb") as r:
                out[k] = r.read().decode(errors="replace")
            continue
        f.seek(0)
        out[k] = f.read()
        f.close()
    stats.seek(0)
    raw = stats.read()
    stats.close()
    faults = [struct.unpack_from("<I", raw, 128 + i * 128 + 12)[0] for i in range(2)]
    cpu = [struct.unpack_from("<Q", raw, 128 + i * 128 + 48)[0] for i in range(2)]
    return p, out, faults, cpu, wall


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_greedy_member_is_ended_alone_and_its_neighbour_keeps_time(tmp_path, case):
    attack, faults_ok, words = CASES[case]
    faults_ok = faults_ok if isinstance(faults_ok, tuple) else (faults_ok,)
    words = words if isinstance(words, tuple) else (words,)
    p, log, faults, cpu, wall = run_group(tmp_path, attack)
    report = (f"{case}: attacker fault {faults[1]} after {cpu[1] / 1e6:.0f} ms CPU; "
              f"{log['n'].strip()}; host exit {p.returncode} in {wall:.2f} s, "
              f"{p.run_delay_ms:.0f} ms of it waiting for a CPU")
    print(report)
    if os.environ.get("CELLA_WALL_REPORT"):
        with open(os.environ["CELLA_WALL_REPORT"], "a") as f:
            f.write(report + "\n")
    # The host outlived the attack: it ran the neighbour to its end, and its
    # exit code is the attacker's fault (the first fault of the group).
    assert p.returncode in faults_ok, (p.returncode, p.stderr, log)
    assert "outside Lua code" not in p.stderr + log["a"], (p.stderr, log)
    # The attacker ended with its own fault, named in its log.
    assert faults == [0, p.returncode], (faults, log)
    assert any(w in log["a"] for w in words), log["a"]
    if "could not be preempted" in log["a"]:
        assert cpu[1] < NOPREEMPT_CPU_MAX_MS * 1e6, cpu
    assert_neighbour_kept_time(case, log, p)


def assert_neighbour_kept_time(case, log, p):
    """The neighbour ran to its end on time: measured against what the machine
    gave the host (LATE_MAX_MS's comment), so a loaded machine does not fail it
    and an idle one checks the wall clock as tightly as before."""
    line = [x for x in log["n"].splitlines() if x.startswith("neighbour ")]
    assert line, (log["n"], p.stderr)
    fields = dict(kv.split("=") for kv in line[0].split()[1:])
    withheld_s = p.run_delay_ms / 1000
    # one tick per period and its lateness: about 40 of 50 when it shares the
    # CPU, fewer by the periods the machine kept the host off every CPU
    assert int(fields["ticks"]) >= int((NEIGHBOUR_RUN_S - withheld_s) / PERIOD * 0.6), \
        (case, line, p.run_delay_ms)
    assert float(fields["worst_cpu_ms"]) < LATE_MAX_MS, (case, line)
    assert float(fields["worst_ms"]) < LATE_MAX_MS + p.run_delay_ms, \
        (case, line, p.run_delay_ms)


def test_finalizer_routes_are_refused(tmp_path):
    # The "gc" case's log: each route to a __gc or __close reports false.
    _, log, _, _, _ = run_group(tmp_path, CASES["gc"][0])
    for route in ("db", "set", "json", "close"):
        assert f"{route}\tfalse" in log["a"], log["a"]


def test_a_full_log_pipe_drops_output_instead_of_stopping_the_group(tmp_path):
    # 100 MiB printed into a pipe nobody reads: the host's write end is
    # non-blocking, so the attacker's output is cut at the pipe's 64 KiB and the
    # host runs on; without that the first print blocked every app for good.
    p, log, faults, cpu, wall = run_group(tmp_path, """
        local s = ("x"):rep(1 << 20)
        for i = 1, 100 do print(s) end
        error("flooded")
    """, attacker_log_pipe=True)
    print(f"log-pipe: attacker fault {faults[1]}; {log['n'].strip()}; {wall:.2f} s")
    assert faults == [0, 1], (faults, p.stderr)
    assert 0 < len(log["a"]) <= 1 << 17, len(log["a"])
    assert_neighbour_kept_time("log-pipe", log, p)
