"""cella-lua lets go of what a kernel restart drops (src/lua/kernel.c,
release_handler): the handlers of the bus subscriptions the old kernel kept are
released from the Lua registry at event.kernel_restarted, so an app that makes its
64 subscriptions again in app.on_kernel_restart does not grow by 64 handlers (and
all they hold) at every restart of cellad. Before the fix each restart kept them
all: here ~1 MiB a restart.

The app is installed the way test_adopt.py installs one and adopted by a restarted
cellad (SIGKILL, then a new cellad), three times.
"""
import json
import select
import signal
import subprocess

import pytest

from conftest import CELLA, start_cella
from daemon_util import Cellad, require_cellad, wait_for
from test_adopt import DEADLINE, ids, install, log_lines, new_state

RESTARTS = 3
SUBS = 64  # CLUA_SUBS_MAX, as the broker's limit per app
HELD_KIB = 16  # what each handler holds (a string of its own), KiB

LUA_SUBSCRIBER = r"""
local app = require "cella.app"
local bus = require "cella.bus"
local id = app.id()
local round = 0

local function setup()
        round = round + 1
        for i = 1, %(subs)d do
                -- a string of this handler's own (not interned: longer than 40 bytes)
                local held = string.rep("x", %(held)d * 1024) .. round .. ":" .. i
                bus.subscribe(id .. ".t" .. i, function() return #held end)
        end
        collectgarbage("collect")
        collectgarbage("collect")
        print(string.format("heap %%d %%d", round, math.floor(collectgarbage("count"))))
end

app.on_kernel_restart(setup)
setup()
""" % {"subs": SUBS, "held": HELD_KIB}


def heaps(state, app):
    """{round: KiB of the app's Lua heap after its subscriptions of that round}."""
    out = {}
    for line in log_lines(state, app):
        if line.startswith("heap "):
            _, rnd, kib = line.split()
            out[int(rnd)] = int(kib)
    return out


def test_subscriptions_dropped_at_restart_are_released(tmp_path):
    """Three adoptions: the Lua heap after the app's 64 subscriptions are made again
    stays where it was before the first restart (within 1/4 of one round's handlers),
    where keeping the dropped handlers grows it by 64 x 16 KiB each time."""
    require_cellad()
    state = new_state(tmp_path)
    (app,) = ids(1)
    install(state, app, lua=LUA_SUBSCRIBER, permissions=(f"bus.subscribe:{app}.*",))
    d = Cellad(state).start()
    try:
        wait_for("the first subscriptions", lambda: 1 in heaps(state, app))
        for k in range(2, RESTARTS + 2):
            d.send(signal.SIGKILL)
            d.proc.wait(timeout=DEADLINE)
            d.close()
            d = Cellad(state).start()
            assert "adopted 1 app(s)" in d.log(), d.log()
            wait_for(f"the subscriptions of round {k}", lambda: k in heaps(state, app))
        h = heaps(state, app)
        one_round = SUBS * HELD_KIB
        assert h[1] >= one_round, h  # the handlers' strings are in the heap
        for k in range(2, RESTARTS + 2):
            assert h[k] - h[1] < one_round // 4, (
                f"the Lua heap grew by {h[k] - h[1]} KiB from round 1 to {k}: the handlers "
                f"of the dropped subscriptions are kept ({h})")
        assert d.stop(signal.SIGTERM) == 0
    finally:
        d.close()


LUA_REVOKED = r"""
local bus = require "cella.bus"
local perm = require "cella.perm"
local id = require("cella.app").id()
local subs = {}

perm.on_revoke(function(right)
        -- the kernel ended the 64 subscriptions of the right: unsubscribe says so,
        -- and frees their slots for subscriptions under the right still held
        local gone = 0
        for _, s in ipairs(subs) do
                if bus.unsubscribe(s) == false then gone = gone + 1 end
        end
        print("unsubscribed " .. gone .. " gone")
        local ok, err = pcall(bus.subscribe, id .. ".b.x", function() end)
        print(ok and "subscribed again" or ("subscribe failed: " .. tostring(err)))
        if ok then bus.unsubscribe(err) end
end)
for i = 1, %(subs)d do
        subs[i] = bus.subscribe(id .. ".a." .. i, function() end)
end
print("subscribed " .. #subs)
io.stdout:flush()
""" % {"subs": SUBS}


def test_unsubscribe_of_a_revoked_subscription_frees_its_slot(tmp_path, make_app, state):
    """An app holds its 64 subscriptions under one right, which is revoked: the
    kernel ends them, bus.unsubscribe of each says false (none left) and still
    releases its handler and its slot, so a subscription under another right the
    app holds succeeds (it kept the 64 slots taken: "too many subscriptions")."""
    (app,) = ids(1)
    d = make_app(app, entry="main.lua", runtime="lua",
                 permissions=[f"bus.subscribe:{app}.a.*", f"bus.subscribe:{app}.b.*"])
    (d / "main.lua").write_text(LUA_REVOKED)
    (d / "main.lua").chmod(0o644)
    p, started, status = start_cella(d, state)
    try:
        assert started["event"] == "started", started
        assert p.stdout.readline().strip() == f"subscribed {SUBS}"
        r = subprocess.run([CELLA, "revoke", "--state-dir", str(state), app,
                            f"bus.subscribe:{app}.a.*"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        # The app exits by itself once its handler ran (nothing left to wait for).
        ready, _, _ = select.select([status], [], [], DEADLINE)
        assert ready, "the app did not end after the revoke"
        rec = json.loads(status.readline())
        assert rec["event"] == "exited" and rec["exit_code"] == 0, rec
        out, err = p.communicate(timeout=DEADLINE)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        status.close()
    assert out.splitlines() == [f"unsubscribed {SUBS} gone", "subscribed again"], (out, err)
