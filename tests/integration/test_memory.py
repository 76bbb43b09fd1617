"""cellad's config file and the apps' memory budget (docs/config.md, docs/memory.md
"Signals and levels"): a real cellad refuses a bad <state>/cellad.conf before it starts
anything, naming the file and the key; memory.total becomes the limit of the apps'
parent cgroup (<B>/cella), which every app's leaf sits under."""
import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from daemon_util import (CELLA, DaemonError, Cellad, cella, install_app, require_cellad,
                         running_cellad)

MiB = 1 << 20


def _state(tmp_path, conf=None):
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    if conf is not None:
        (state / "cellad.conf").write_text(conf)
    return state


def _cgroups(pid):
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrl, path = line.split(":", 2)
        out[ctrl] = path
    return out


def _apps_parent(pid):
    """The memory limit file of cellad's apps' parent (<B>/cella, B the parent of its
    supervisor/ leaf): v1's memory.limit_in_bytes (v1 and hybrid hosts) or v2's
    memory.max."""
    own = _cgroups(pid)
    if "memory" in own:  # v1 or hybrid: the v1 memory controller
        base = own["memory"][: -len("/supervisor")]
        return Path(f"/sys/fs/cgroup/memory{base}/cella/memory.limit_in_bytes")
    base = own[""][: -len("/supervisor")]
    return Path(f"/sys/fs/cgroup{base}/cella/memory.max")


def _limit(knob):
    """knob's limit in bytes; None when unlimited or when the cgroup is gone."""
    try:
        text = knob.read_text().strip()
    except FileNotFoundError:
        return None
    if text == "max" or int(text) >= 1 << 62:
        return None
    return int(text)


BAD = [
    ('{"memory": {"total": "2G",}}', "line 1, column"),
    ('{"memory": {"totl": "2G"}}', "unknown key 'memory.totl' (did you mean 'memory.total'?)"),
    ('{"memory": {"total": "lots"}}', "memory.total: expected a size"),
    ('{"memory": {"psi": {"window_ms": 50}}}', "memory.psi.window_ms: expected an integer"),
    ('{"memory": {"level": {"low": {"free_percent": 40}}}}', "memory.level:"),
]


@pytest.mark.parametrize("conf,why", BAD)
def test_bad_config_refused(tmp_path, conf, why):
    """cellad exits before READY, its message names the file and what is wrong, and it
    leaves no control socket behind."""
    require_cellad()
    state = _state(tmp_path, conf)
    d = Cellad(state)
    try:
        with pytest.raises(DaemonError) as e:
            d.start()
        assert e.value.code not in (None, 0), e.value.log
        assert f"{state}/cellad.conf: " in e.value.log, e.value.log
        assert why in e.value.log, e.value.log
        assert "does not start on a bad config" in e.value.log
        assert not (state / "cellad.sock").exists()
    finally:
        d.close()


def test_config_others_may_write_is_refused(tmp_path):
    """A cellad.conf that group or others may write is refused whatever it says:
    whoever could write it could lift the apps' budget."""
    require_cellad()
    state = _state(tmp_path, "{}")
    os.chmod(state / "cellad.conf", 0o666)
    d = Cellad(state)
    try:
        with pytest.raises(DaemonError) as e:
            d.start()
        assert f"{state}/cellad.conf: refused: writable by group or others" in e.value.log
    finally:
        d.close()


@pytest.mark.parametrize("mode", ["auto", "v1"])
def test_memory_total_is_the_apps_parent_limit(tmp_path, mode):
    """memory.total = 512M: the apps' parent cgroup is limited to 512 MiB. A config
    without the key lifts a limit the parent still has (apps an earlier cellad left
    keep it alive: here the test holds it, made beforehand with a 128M limit)."""
    require_cellad()
    if os.geteuid() != 0:
        pytest.skip("needs root for cgroups")
    state = _state(tmp_path, '{"memory": {"total": "512M"}}')
    with running_cellad(state, "--cgroup-mode", mode) as d:
        knob = _apps_parent(d.pid)
        assert _limit(knob) == 512 * MiB
        assert f"memory.total: {512 * MiB} bytes on {knob.parent}" in d.log()
        assert d.stop() == 0
    parent = knob.parent
    made = [p for p in (parent.parent, parent) if not p.exists()]
    for p in made:
        p.mkdir()
    try:
        knob.write_text(str(128 * MiB))
        assert _limit(knob) == 128 * MiB
        (state / "cellad.conf").write_text('{"memory": {}}')
        with running_cellad(state, "--cgroup-mode", mode) as d:
            assert _apps_parent(d.pid) == knob
            assert _limit(knob) is None
            assert d.stop() == 0
    finally:
        for p in reversed(made):
            if p.exists():
                p.rmdir()


def test_state_config_is_read_and_said(tmp_path):
    """<state>/cellad.conf is read and the log says which file it was (the order
    against /etc/cella/cellad.conf is test-memory's test_config_load, with an injected
    /etc path: this test never writes to /etc)."""
    require_cellad()
    state = _state(tmp_path, '{"memory": {"total": "256M"}}')
    with running_cellad(state) as d:
        assert f"read {state}/cellad.conf" in d.log()
        assert _limit(_apps_parent(d.pid)) == 256 * MiB
        assert d.stop() == 0


# An app that holds ~150 MB in a shell variable: within its own limit (512M), not
# within a 64M budget.
HOG = 'x=$(head -c 150000000 /dev/zero | tr "\\0" a)\necho "hog: held ${#x}"\n'


def _hog(tmp_path, state):
    src = tmp_path / "src"
    src.mkdir()
    for d in (tmp_path, src):
        os.chmod(d, 0o755)
    folder = src / "hog"
    folder.mkdir()
    os.chmod(folder, 0o755)
    (folder / "manifest.json").write_text(json.dumps(
        {"id": "org.test.hog", "runtime": "native", "entry": "main.sh",
         "limits": {"memory": "512M"}}))
    (folder / "main.sh").write_text("#!/bin/sh\n" + HOG)
    os.chmod(folder / "main.sh", 0o755)
    install_app(state, folder)


def _exit_of(events, app, deadline):
    """Reads `cella events --json` lines until app's exit record; returns it."""
    buf, seen = b"", []
    while time.monotonic() < deadline:
        r, _, _ = select.select([events.stdout], [], [], deadline - time.monotonic())
        if not r:
            break
        chunk = os.read(events.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            rec = json.loads(line)
            seen.append(rec)
            if rec.get("app") == app and rec.get("event") == "exited" and \
                    "oom_killed" in rec:
                return rec
    raise AssertionError(f"no exit of {app} in cella events: {seen}")


@pytest.mark.parametrize("budget,killed", [("64M", True), ("max", False)])
def test_the_budget_bounds_the_apps(tmp_path, budget, killed):
    """An app allowed 512M by its manifest is OOM-killed at the 64M budget of all the
    apps (the limit of their parent), and runs to its end without the budget: real
    pressure, made inside the budget, not on the host."""
    require_cellad()
    if os.geteuid() != 0:
        pytest.skip("needs root for cgroups")
    state = _state(tmp_path, '{"memory": {"total": "%s"}}' % budget)
    _hog(tmp_path, state)
    with running_cellad(state) as d:
        events = subprocess.Popen([CELLA, "events", "--json", "--state-dir", str(state)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            p = cella("start", "--background", "org.test.hog", state_dir=state)
            assert p.returncode == 0, p.stderr
            rec = _exit_of(events, "org.test.hog", time.monotonic() + 60)
        finally:
            events.kill()
            events.wait()
        assert rec["oom_killed"] is killed, rec
        logs = cella("logs", "org.test.hog", state_dir=state).stdout
        assert ("hog: held 150000000" in logs) is not killed, logs
        if killed:
            peak = _apps_parent(d.pid).parent / "memory.max_usage_in_bytes"
            if peak.exists():
                assert int(peak.read_text()) <= 64 * MiB
        assert d.stop() == 0
