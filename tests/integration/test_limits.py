"""cgroup limits and rlimits from the manifest, enforced for real."""
import os
import subprocess

import pytest

from conftest import cgroup_mode_host, run_cella, start_cella

MODES = ["auto", "v1"] if cgroup_mode_host() in ("hybrid", "v1") else ["auto"]

HOG = "python3 -c 'x = bytearray(b\"x\") * (512 << 20); print(len(x))'\n"
EXEC_HOG = "exec " + HOG


# Not a twin: its --cgroup-mode parameter is embedded-only (a run through cellad uses cellad's mode).
@pytest.mark.parametrize("mode", MODES)
def test_memory_hog_is_oom_killed_and_reported(state, make_app, mode):
    app = make_app("org.test.hog", EXEC_HOG, limits={"memory": "32M"})
    r = run_cella("--cgroup-mode", mode, app, state_dir=state)
    assert r.code == 137, (r.code, r.out, r.err)
    assert "org.test.hog was killed by the OOM killer (memory limit 32M)" in r.err
    ex = r.event("exited")
    assert ex["oom_killed"] is True and ex["signal"] == 9 and ex["oom_kills"] >= 1


@pytest.mark.twin
def test_oom_kill_of_a_child_is_reported(state, make_app):
    # The shell survives; the python3 it started does not. cella says so.
    app = make_app("org.test.hogchild", HOG + "echo shell-survived\n", limits={"memory": "32M"})
    # Under load the kernel's OOM killer may take the shell as well, before the
    # child's memory is uncharged (a second kill, reported as the app's); that run
    # says nothing about a child's kill, so it is tried again, at most three times.
    for _ in range(3):
        r = run_cella(app, state_dir=state)
        if r.code != 137:
            break
        assert r.event("exited")["oom_kills"] >= 2, (r.out, r.err)
    assert r.code == 0 and "shell-survived" in r.out, (r.code, r.out, r.err)
    assert "the OOM killer killed 1 process(es) in its sandbox (memory limit 32M)" in r.err
    ex = r.event("exited")
    assert ex["oom_killed"] is False and ex["oom_kills"] == 1


# Not a twin: its --cgroup-mode parameter is embedded-only (a run through cellad uses cellad's mode).
@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_stops_at_pids_limit(state, make_app, mode):
    # Start sleepers until fork fails; the count must stop below the limit, and
    # cella must come back with the app's own status.
    script = """
    exec python3 -c '
import os, time
kids = []
try:
    while len(kids) < 200:
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        kids.append(pid)
except BlockingIOError as e:
    print("fork refused:", e.strerror)
print("started", len(kids))
'
    """
    app = make_app("org.test.bomb", script, limits={"pids": 12})
    r = run_cella("--cgroup-mode", mode, app, state_dir=state, timeout=60)
    assert r.code == 0, r.err
    assert "fork refused: Resource temporarily unavailable" in r.out
    started = int(r.out.split()[-1])
    assert 0 < started < 12, r.out


@pytest.mark.twin
def test_limits_are_written_to_the_cgroup(state, make_app):
    # The app lives until the test answers its read, not for a guessed time.
    app = make_app("org.test.knobs", "echo up; read line; echo \"$line\"\n",
                   limits={"memory": "48M", "pids": 20, "cpu": 0.25})
    p, started, status = start_cella(app, state, stdin=subprocess.PIPE)
    with status:
        cg = started["cgroups"]
        mode = started["cgroup_mode"]
        if mode == "v2":
            assert open(f"{cg['memory']}/memory.max").read().strip() == str(48 << 20)
            assert open(f"{cg['cpu']}/cpu.max").read().split() == ["25000", "100000"]
        else:
            assert open(f"{cg['memory']}/memory.limit_in_bytes").read().strip() == str(48 << 20)
            # v1 charges socket buffers only once this is written (the next test).
            assert open(f"{cg['memory']}/memory.kmem.tcp.limit_in_bytes").read().strip() == str(48 << 20)
            assert open(f"{cg['cpu']}/cpu.cfs_quota_us").read().strip() == "25000"
            assert open(f"{cg['cpu']}/cpu.cfs_period_us").read().strip() == "100000"
        assert open(f"{cg['pids']}/pids.max").read().strip() == "20"
        assert started["pid"] in [int(x) for x in open(f"{cg['pids']}/cgroup.procs").read().split()]
        out, err = p.communicate("bye\n", timeout=20)
    assert p.returncode == 0, err
    assert out == "up\nbye\n"
    for path in cg.values():
        assert not os.path.exists(path), f"{path} left behind after a clean exit"


# Fills loopback TCP sockets' buffers that nobody reads: pairs of connected sockets,
# each side sending until the kernel says EAGAIN, up to a total or a socket count.
TCP_FILL = r"""
import socket, sys
total, most = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(512)
socks, queued, chunk = [], 0, b"x" * 65536
try:
    while queued < total and len(socks) < most:
        c = socket.create_connection(srv.getsockname())
        s, _ = srv.accept()
        socks += [c, s]
        for x in (c, s):
            x.setblocking(False)
            while queued < total:
                try:
                    n = x.send(chunk)
                except OSError:
                    break
                queued += n
except OSError as e:
    print("stopped:", e.strerror)
print("sockets", len(socks), "queued", queued)
"""


# Not a twin: its --cgroup-mode parameter is embedded-only (a run through cellad uses cellad's mode).
@pytest.mark.parametrize("mode", MODES)
def test_socket_buffers_are_charged_to_the_memory_limit(state, make_app, mode):
    """An app's TCP buffers on its own loopback count against its memory limit,
    not only against the host's one net.ipv4.tcp_mem: on cgroup v1 they are
    charged only once memory.kmem.tcp.limit_in_bytes is written. Without it an
    app limited to 32 MiB queued 256 MiB in 35 socket pairs. What may pass the
    limit is the kernel's floor per socket (tcp_wmem[0] and the first skb of an
    empty receive queue, both forced: net/ipv4/tcp.c tcp_wmem_schedule,
    tcp_input.c tcp_data_queue), well under 192 KiB a socket."""
    limit, most, per_socket = 32 << 20, 600, 192 << 10
    app = make_app("org.test.tcpfill", "exec python3 /app/fill.py %d %d\n" % (256 << 20, most),
                   files={"fill.py": (TCP_FILL, 0o644)}, limits={"memory": "32M"})
    r = run_cella("--cgroup-mode", mode, app, state_dir=state, timeout=120)
    if r.code == 137:
        # v2 charges the forced floor to memory.current: the OOM killer may end it.
        assert r.event("exited")["oom_kills"] >= 1, r.err
        return
    assert r.code == 0, (r.code, r.out, r.err)
    words = r.out.split()
    sockets, queued = int(words[-3]), int(words[-1])
    assert sockets >= 2, r.out
    assert queued <= limit + sockets * per_socket, (
        f"{queued} bytes queued in {sockets} loopback sockets of an app limited to {limit}")


@pytest.mark.twin
def test_cpu_quota_is_enforced(state, make_app):
    # One busy second of wall time at 0.2 CPU gets about 0.2 s of CPU.
    app = make_app("org.test.cpu", "python3 -c '\nimport time,os\nt=time.time()\nwhile time.time()-t < 1.0: pass\nprint(os.times().user + os.times().system)'\n", limits={"cpu": 0.2})
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    used = float(r.out.split()[-1])
    assert used < 0.45, f"used {used:.2f}s of CPU in 1s wall at a 0.2 quota"


@pytest.mark.twin
def test_rlimits(state, make_app):
    app = make_app("org.test.rl", "ulimit -n; ulimit -c; ulimit -Hn\n", limits={"files": 100})
    r = run_cella(app, state_dir=state)
    assert r.out.split() == ["100", "0", "100"], r.out + r.err
