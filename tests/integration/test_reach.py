"""Rights that reach other apps, end to end with real apps in their sandboxes
(docs/capabilities.md, "Reaching other apps"). A spy's manifest asks, as "normal"
rights, for everything over its neighbours: every topic (eavesdrop), the owner's
topics (eavesdrop, forge), direct messages to it (inject) and launching any app.
None is granted without the user; the topic the owner exports is; and a user
grant does what the user decided."""
import json
import os
import subprocess
import textwrap

import pytest

from conftest import CELLA, boot_cella

OWNER, SPY, VICTIM = "org.test.owner", "org.test.spy", "org.test.victim"

# The owner publishes a secret and a public topic, and logs any direct message or
# message on its topics that it did not publish itself, until the spy is done.
OWNER_MAIN = """
local bus = require "cella.bus"
local timer = require "cella.timer"
local log = require "cella.log"
bus.on_message(function(msg)
        log.info("owner: direct message from %s: %s", msg.sender, msg.data)
end)
bus.subscribe("org.test.owner.*", function(msg)
        if msg.sender ~= "org.test.owner" then
                log.info("owner: forged %s from %s: %s", msg.topic, msg.sender, msg.data)
        end
end)
print("owner ready")
local n = 0
timer.every(0.05, function()
        n = n + 1
        bus.publish("org.test.owner.secret", "secret " .. n)
        bus.publish("org.test.owner.public", "public " .. n)
end)
"""

# The spy tries each attack and prints REFUSED/ALLOWED; then waits for one public
# message (and, when it may, a secret one) and exits.
SPY_MAIN = """
local bus = require "cella.bus"
local app = require "cella.app"
local timer = require "cella.timer"
local want_secret = ... == "expect-secret"
local function try(what, fn, ...)
        local ok, err = pcall(fn, ...)
        print((ok and "ALLOWED " or "REFUSED ") .. what .. (ok and "" or (": " .. tostring(err))))
end
local got_public, got_secret = false, false
local function done()
        if got_public and (got_secret or not want_secret) then
                print("spy done")
                app.exit(0)
        end
end
local function on(msg)
        if msg.topic == "org.test.owner.secret" and not got_secret then
                got_secret = true
                print("spy read " .. msg.data)
        elseif msg.topic == "org.test.owner.public" and not got_public then
                got_public = true
                print("spy got " .. msg.data)
        end
        done()
end
try("eavesdrop **", bus.subscribe, "**", on)
try("eavesdrop owner.*", bus.subscribe, "org.test.owner.*", on)
try("eavesdrop owner.secret", bus.subscribe, "org.test.owner.secret", on)
try("forge owner.public", bus.publish, "org.test.owner.public", "forged")
try("forge owner.secret", bus.publish, "org.test.owner.secret", "forged")
try("inject owner", bus.send, "org.test.owner", "injected")
try("launch victim", app.launch, "org.test.victim")
try("subscribe owner.public", bus.subscribe, "org.test.owner.public", on)
timer.after(20, function() print("spy timed out"); app.exit(3) end)
"""

VICTIM_MAIN = 'print("victim launched")\n'


def lua(root, name, app_id, source, **manifest):
    d = root / name
    d.mkdir(parents=True)
    (d / "main.lua").write_text(textwrap.dedent(source))
    m = {"id": app_id, "runtime": "lua", "entry": "main.lua"}
    m.update(manifest)
    (d / "manifest.json").write_text(json.dumps(m))
    for p in (root.parent, root, d):
        os.chmod(p, 0o755)
    for f in d.iterdir():
        os.chmod(f, 0o644)
    return d


def app_log(state, app_id):
    f = state / "logs" / f"{app_id}.log"
    return f.read_text() if f.exists() else ""


def apps(tmp_path, spy_args=()):
    root = tmp_path / "apps"
    lua(root, "owner", OWNER, OWNER_MAIN, kind="service",
        permissions=["bus.publish:org.test.owner.*", "bus.subscribe:org.test.owner.*"],
        exports=["bus.subscribe:org.test.owner.public"])
    lua(root, "spy", SPY, SPY_MAIN, kind="app", depends=[OWNER], args=list(spy_args),
        permissions=["bus.subscribe:**", "bus.subscribe:org.test.owner.*",
                     "bus.subscribe:org.test.owner.secret", "bus.publish:org.test.owner.*",
                     "bus.send:org.test.owner", "app.launch:**",
                     "bus.subscribe:org.test.owner.public"])
    lua(root, "victim", VICTIM, VICTIM_MAIN, kind="app", restart="no")
    return root


def refused(log, what):
    return any(l.startswith(f"REFUSED {what}: ") and "Permission denied" in l
               for l in log.splitlines())


@pytest.mark.twin
def test_spy_gets_only_what_the_owner_exports(tmp_path, state):
    root = apps(tmp_path)
    # The victim runs by itself first and ends: installed, so a launch could find it.
    p, status = boot_cella(root, state, "--no-prompt", timeout=120)
    log = app_log(state, SPY)
    assert "spy done" in log, p.stderr + log + app_log(state, OWNER)
    for what in ["eavesdrop **", "eavesdrop owner.*", "eavesdrop owner.secret",
                 "forge owner.public", "forge owner.secret", "inject owner", "launch victim"]:
        assert refused(log, what), f"{what}:\n{log}"
    assert "ALLOWED subscribe owner.public" in log, log
    assert "spy got public" in log and "spy read" not in log, log
    owner = app_log(state, OWNER)
    assert "owner ready" in owner, owner
    assert "forged" not in owner and "injected" not in owner, owner
    launched = [r for r in status if r.get("event") == "started" and r.get("app") == VICTIM]
    assert len(launched) == 1, status  # the boot's own start, not the spy's launch
    # What cella permissions says: the reaching rights are dangerous and not granted.
    doc = json.loads(subprocess.run([CELLA, "permissions", "--json", "--state-dir", str(state),
                                     SPY], capture_output=True, text=True, check=True).stdout)
    req = {r["right"]: r for r in doc["requested"]}
    held = {g["right"]: g for g in doc["grants"]}
    for right in ["bus.subscribe:**", "bus.subscribe:org.test.owner.*",
                  "bus.subscribe:org.test.owner.secret", "bus.publish:org.test.owner.*",
                  "bus.send:org.test.owner", "app.launch:**"]:
        assert req[right]["level"] == "dangerous" and right not in held, (right, doc)
    assert req["bus.subscribe:org.test.owner.public"]["level"] == "normal"
    assert held["bus.subscribe:org.test.owner.public"]["granted_by"] == "install"
    assert list(held) == ["bus.subscribe:org.test.owner.public"], doc


@pytest.mark.twin
def test_the_user_can_grant_a_reaching_right(tmp_path, state):
    root = apps(tmp_path, spy_args=["expect-secret"])
    # --app-dir installs the spy from its folder first (a boot would too, and its
    # spy would wait for a secret that no grant lets it read, until its timeout).
    r = subprocess.run([CELLA, "grant", "--state-dir", str(state), "--app-dir", str(root / "spy"),
                        SPY, "bus.subscribe:org.test.owner.secret"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p, _ = boot_cella(root, state, "--no-prompt", timeout=120)
    log = app_log(state, SPY)
    assert "ALLOWED eavesdrop owner.secret" in log, log
    assert "spy read secret" in log and "spy done" in log, log
    assert refused(log.split("ALLOWED eavesdrop owner.secret")[-1], "forge owner.public"), log


# Retries a subscribe to the owner's exported topic until a grant lets it.
WAITER_MAIN = """
local bus = require "cella.bus"
local app = require "cella.app"
local timer = require "cella.timer"
print("waiter up")
timer.every(0.05, function()
        if pcall(bus.subscribe, "org.test.pub.tick", function() end) then
                print("waiter allowed")
                app.exit(0)
        end
end)
timer.after(20, function() print("waiter timed out"); app.exit(3) end)
"""


@pytest.mark.twin
def test_an_install_in_another_kernel_reaches_running_apps(tmp_path, state):
    """An install that changes grants.db (here: an owner exporting a topic that a
    running app's waiting right then qualifies for) is told to the other kernels
    sharing the state directory, whose running apps get the grant at once."""
    from conftest import start_cella

    root = tmp_path / "apps"
    waiter = lua(root, "waiter", "org.test.waiter", WAITER_MAIN,
                 permissions=["bus.subscribe:org.test.pub.tick"])
    owner = lua(root, "owner", "org.test.pub", 'print("owner installed")\n',
                exports=["bus.subscribe:org.test.pub.tick"])
    p, started, status = start_cella(waiter, state, "--no-prompt")
    try:
        assert started["event"] == "started", started
        # Another kernel installs the owner: the waiter's right qualifies now.
        r = subprocess.run([CELLA, "run", "--state-dir", str(state), str(owner)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "owner installed" in r.stdout, r.stdout + r.stderr
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=30)
        status.close()
    assert "waiter allowed" in out and "timed out" not in out, out + err
    assert p.returncode == 0, (p.returncode, err)
