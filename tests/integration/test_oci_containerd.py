"""containerd drives cella-oci through its runc v2 shim (docs/oci.md "containerd
and Kubernetes"): Debian's containerd, started here with a config of its own
(root, state, sockets in a temporary folder; no CRI plugin), and `ctr run
--runtime io.containerd.runc.v2 --runc-binary CELLA_OCI --rootfs R` on a busybox
root file system. What Kubernetes adds (the CRI plugin's runtime handler, a
RuntimeClass) needs a kubelet and is not tested here.

CELLA_OCI: as in test_oci_podman.py (CELLA_OCI=/usr/sbin/runc runs the same
commands against runc; the policy test then fails, as it must).
"""
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import ocikit

CONFIG = """\
version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
"""


class Containerd:
    """A containerd of its own under BASE, stopped (its tasks and containers
    deleted first) by stop()."""

    def __init__(self, base):
        self.base = Path(base)
        (self.base / "config.toml").write_text(CONFIG.format(base=self.base))
        self.sock = str(self.base / "containerd.sock")
        self.runc_root = str(self.base / "runtime")
        self.log = []
        self.booted = threading.Event()
        self.proc = subprocess.Popen(["containerd", "--config", str(self.base / "config.toml")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.booted.wait(30):
            self.stop()
            raise AssertionError("containerd did not boot in 30 s: " + "".join(self.log[-20:]))

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line)
            if "containerd successfully booted" in line:
                self.booted.set()

    def ctr_argv(self, *args):
        return ["ctr", "--address", self.sock, *map(str, args)]

    def ctr(self, *args, timeout=60, check=False):
        p = subprocess.run(self.ctr_argv(*args), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"ctr {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
        return p

    def run_argv(self, runtime, rootfs, cid, *cmd, detach=False):
        return self.ctr_argv("run", *(["-d"] if detach else []), "--rm" if not detach else "--null-io",
                             "--runtime", "io.containerd.runc.v2", "--runc-binary", runtime,
                             "--runc-root", self.runc_root, "--rootfs", rootfs, cid, *cmd)

    def tasks(self):
        """{id: (pid, status)} from `ctr task ls`."""
        out = {}
        for line in self.ctr("task", "ls", check=True).stdout.splitlines()[1:]:
            f = line.split()
            if len(f) >= 3:
                out[f[0]] = (int(f[1]), f[2])
        return out

    def remove(self, cid):
        """Kills and deletes CID's task and container (best effort)."""
        self.ctr("task", "kill", "-s", "KILL", cid)
        self.ctr("task", "rm", "-f", cid)
        self.ctr("container", "rm", cid)

    def stop(self):
        try:
            for line in self.ctr("container", "ls", "-q").stdout.split():
                self.remove(line)
        except Exception:  # noqa: BLE001 - best effort, containerd is stopped below
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        ocikit.unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def ctd():
    missing = ocikit.engine_missing("containerd", "ctr", "containerd-shim-runc-v2")
    if missing:
        pytest.skip(missing)
    if not os.access(ocikit.CELLA_OCI, os.X_OK):
        pytest.skip(f"cella-oci is not built at {ocikit.CELLA_OCI} (set CELLA_OCI)")
    c = Containerd(tempfile.mkdtemp(prefix="cella-containerd-"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return ocikit.make_rootfs(tmp_path_factory.mktemp("rootfs"))


IDS = iter(f"oci{i}" for i in range(1_000_000))


@pytest.fixture
def cid(ctd):
    i = next(IDS)
    yield i
    ctd.remove(i)


def test_ctr_run_prints_and_exits(ctd, rootfs, cid):
    p = subprocess.run(ctd.run_argv(ocikit.CELLA_OCI, rootfs, cid, "/bin/echo", "hi"),
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (p.returncode, p.stdout) == (0, "hi\n"), p.stderr


def test_ctr_exit_status_propagates(ctd, rootfs, cid):
    p = subprocess.run(ctd.run_argv(ocikit.CELLA_OCI, rootfs, cid, "/bin/sh", "-c", "exit 3"),
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 3, p.stderr


def start_attached(ctd, rootfs, cid, script):
    """ctr run (attached, --rm) of sh -c SCRIPT; waits for its first line "ready".
    Returns the Popen (its exit is the container's)."""
    proc = subprocess.Popen(ctd.run_argv(ocikit.CELLA_OCI, rootfs, cid, "/bin/sh", "-c", script),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True)
    if not select.select([proc.stdout], [], [], 60)[0]:
        proc.kill()
        raise AssertionError("the container printed nothing in 60 s")
    line = proc.stdout.readline()
    if line != "ready\n":
        proc.kill()
        raise AssertionError(f"first line {line!r}; stderr: {proc.communicate()[1]}")
    return proc


LOOP = "while :; do sleep 1; done"


def test_ctr_task_exec_pause_resume_kill(ctd, rootfs, cid):
    proc = start_attached(ctd, rootfs, cid, f"echo ready; {LOOP}")
    try:
        pid, status = ctd.tasks()[cid]
        assert status == "RUNNING"
        p = ctd.ctr("task", "exec", "--exec-id", "e1", cid, "/bin/sh", "-c", "echo ex; exit 2")
        assert (p.returncode, p.stdout) == (2, "ex\n"), p.stderr
        ctd.ctr("task", "pause", cid, check=True)
        assert ctd.tasks()[cid][1] == "PAUSED"
        ctd.ctr("task", "resume", cid, check=True)
        assert ctd.tasks()[cid][1] == "RUNNING"
        ctd.ctr("task", "kill", "-s", "KILL", cid, check=True)
        assert proc.wait(60) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctr_kill_sigterm_reaches_the_app(ctd, rootfs, cid):
    proc = start_attached(ctd, rootfs, cid, f"trap 'echo term; exit 7' TERM; echo ready; {LOOP}")
    try:
        ctd.ctr("task", "kill", cid, check=True)  # SIGTERM, ctr's default
        out, _ = proc.communicate(timeout=60)
        assert (proc.returncode, out) == (7, "term\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctr_policy_cella_unprivileged_on_the_host(ctd, rootfs, cid):
    proc = start_attached(ctd, rootfs, cid, f"echo ready; {LOOP}")
    try:
        pid, _ = ctd.tasks()[cid]
        uid = Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split("\n")[0].split()
        assert all(int(u) != 0 for u in uid), f"the host sees the container as uid {uid}"
        p = ctd.ctr("task", "exec", "--exec-id", "id", cid, "/bin/id", "-u")
        assert (p.returncode, p.stdout) == (0, "0\n"), p.stderr
    finally:
        ctd.ctr("task", "kill", "-s", "KILL", cid)
        proc.wait(60)
