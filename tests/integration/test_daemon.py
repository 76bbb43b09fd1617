"""cellad run bare (docs/daemon.md): its start, its lock, its signals, its socket,
its cgroup layout. Each test starts a real cellad on a fresh state directory and
waits for its READY line (daemon_util.py); nothing waits on a sleep."""
import os
import signal
import subprocess
from pathlib import Path

import pytest

from daemon_util import CELLAD, Cellad, cellad, require_cellad, running_cellad  # noqa: F401


def test_help_and_version():
    require_cellad()
    p = subprocess.run([CELLAD, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "--state-dir" in p.stdout and "SIGHUP" in p.stdout
    p = subprocess.run([CELLAD, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("cellad ")


@pytest.mark.parametrize("args, what", [
    (["--bogus"], "unrecognized option"),
    (["--ready-fd", "x"], "--ready-fd"),
    (["--ready-fd", "1"], "--ready-fd"),
    (["--cgroup-mode", "v3"], "--cgroup-mode"),
    (["--socket", "relative.sock"], "--socket"),
    (["stray"], "unexpected argument"),
])
def test_bad_options_are_usage_errors(tmp_path, args, what):
    require_cellad()
    p = subprocess.run([CELLAD, "--state-dir", str(tmp_path / "s"), *args],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert what in p.stderr
    assert not (tmp_path / "s").exists()


def test_starts_and_stops_on_sigterm(cellad):
    assert (cellad.state_dir / "cellad.lock").read_text() == f"{cellad.pid}\n"
    assert cellad.stop(signal.SIGTERM) == 0
    assert "every app has stopped" in cellad.log()


def test_sigint_stops_too(cellad):
    assert cellad.stop(signal.SIGINT) == 0


def test_a_second_cellad_on_the_same_state_dir_is_refused(cellad):
    p = subprocess.run([CELLAD, "--state-dir", str(cellad.state_dir)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert f"another cellad (pid {cellad.pid}) holds {cellad.state_dir}" in p.stderr
    # The first one is untouched: still the lock's holder, still running.
    assert cellad.proc.poll() is None
    assert (cellad.state_dir / "cellad.lock").read_text() == f"{cellad.pid}\n"


def test_the_lock_goes_with_the_process(tmp_path):
    """A SIGKILLed cellad leaves its lock file, not its lock: the next one starts."""
    require_cellad()
    state = tmp_path / "state"
    with running_cellad(state) as d:
        d.stop(signal.SIGKILL)
    with running_cellad(state) as d2:
        assert (state / "cellad.lock").read_text() == f"{d2.pid}\n"
        assert d2.stop() == 0


def test_a_state_dir_others_can_write_is_refused(tmp_path):
    require_cellad()
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    os.chmod(state, 0o777)
    d = Cellad(state)
    try:
        with pytest.raises(Exception) as e:
            d.start()
        assert getattr(e.value, "code", None) == 1, d.log()
        assert str(state) in d.log()
        assert not (state / "cellad.lock").exists()
    finally:
        d.close()


def _cgroups(pid):
    """{controllers: path} of /proc/PID/cgroup."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrl, path = line.split(":", 2)
        out[ctrl] = path
    return out


@pytest.mark.parametrize("mode", ["auto", "v1"])
def test_cgroup_layout(tmp_path, mode):
    """The daemon in a supervisor/ leaf in every hierarchy cella uses; nothing of it
    left after an orderly stop."""
    require_cellad()
    before = _cgroups(os.getpid())
    with running_cellad(tmp_path / "state", "--cgroup-mode", mode) as d:
        cg = _cgroups(d.pid)
        used = [c for c in ("memory", "pids", "cpu", "cpu,cpuacct") if c in cg]
        if mode == "auto" and "" in cg and Path("/sys/fs/cgroup/unified").is_dir():
            used.append("")
        assert used, cg
        for c in used:
            assert cg[c].endswith("/supervisor"), (c, cg)
            base = cg[c][: -len("/supervisor")]
            mount = "unified" if c == "" else c
            assert Path(f"/sys/fs/cgroup/{mount}{base}").is_dir()
        assert d.stop() == 0
    for c in used:
        mount = "unified" if c == "" else c
        base = cg[c][: -len("/supervisor")]
        assert not Path(f"/sys/fs/cgroup/{mount}{base}/supervisor").exists()
        if base.endswith("/cellad"):
            assert not Path(f"/sys/fs/cgroup/{mount}{base}").exists()
    assert _cgroups(os.getpid()) == before
