"""cellad under a real systemd as pid 1 (docs/daemon.md, "Under systemd").

This machine's CI has no systemd as pid 1, so the test makes one: /lib/systemd/systemd
runs as pid 1 of new pid, mount, cgroup, uts, ipc and network namespaces (unshare),
in a cgroup of its own made below the test's own in every hierarchy (so it stays
inside the limits of whatever started the test), with its own /run, /tmp and
/sys/fs/cgroup mounts, and with a unit directory that holds only the test's units:
the host's units and generators are hidden (bind mounts over them), so nothing of
the host is started (no tmpfiles cleaning, no sysctl, no getty). cellad.service is
the unit ninja builds, ExecStart pointed at the built cellad and a state directory
in that systemd's /run.

What it checks, each the issue's words (issue 12, docs/daemon.md):
- cellad puts the apps and their keeper in cella.slice/cella-apps-<tag>.scope
  (Delegate=yes), not in cellad.service's cgroup;
- `systemctl kill -s KILL cellad` (every process of cellad.service's cgroup, as a
  crash under KillMode=mixed): the apps run on; systemd restarts cellad
  (Restart=on-failure, NRestarts=1), which adopts them (the same pids in `cella ps`),
  and takes its listening socket back from the fd store (the same socket: its file
  was not bound again);
- `systemctl stop cellad` stops the apps in order and the scope goes;
- a restart slower than the keeper's grace: the fd store's connection to the
  keeper keeps it from counting the gap, the apps outlive it and are adopted;
- a keeper killed while cellad runs: its replacement goes into the scope too, and
  a crash after that still keeps the apps;
- with cellad.socket, its socket and the store's keeper connection in one
  LISTEN_FDS, told apart by name after a crash;
- a stop while cellad is dead (killed, no restart): the fd store is emptied, the
  keeper sees its last cellad connection close, and its grace (5 s here) ends the
  apps: none is left running unsupervised.

Skipped, with the reason, where that systemd cannot run: not root, no
/lib/systemd/systemd, no unshare/nsenter, or the namespaces or the cgroup set-up
refused.
"""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from daemon_util import CELLA, CELLAD, alive, call, require_cellad, wait_for
from test_adopt import PROBE

SYSTEMD = "/lib/systemd/systemd"
UNITS = Path(CELLAD).resolve().parents[2] / "systemd"
STATE = "/run/cella-test/state"  # in that systemd's /run
CELLAD_LOG = "/run/cella-test/cellad.log"
DEADLINE = 90.0  # s, for each wait: far above what it takes, for the ASan build on a loaded box

# Run by unshare as the new namespaces' first process, which it then becomes:
# systemd. $1: the folder of the test's units. The cgroup file systems are mounted
# again, each as the hierarchies above it are (the new cgroup namespace's root is
# the test's cgroup), "unified"/"systemd" included.
BOOT = r"""
set -e
mount --make-rprivate /
mount -t proc proc /proc
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/cella-units /run/cella-test
cp "$1"/* /run/cella-units/
# systemd's console (its log, and the services' output: StandardOutput=inherit) is
# the test's log file, not the host's console.
mount --bind "$3" /dev/console
mount -t tmpfs tmpfs /tmp
if [ "$CG_MODE" = v2 ]; then
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
    mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
    for spec in $CG_V1; do
        name=${spec%%=*}; opts=${spec#*=}
        mkdir -p /sys/fs/cgroup/$name
        mount -t cgroup -o "$opts" cgroup /sys/fs/cgroup/$name
    done
    if [ -n "$CG_UNIFIED" ]; then
        mkdir -p /sys/fs/cgroup/unified
        mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
    fi
fi
mkdir -p /run/cella-empty
mount --bind /run/cella-units /etc/systemd/system
for d in /lib/systemd/system /usr/lib/systemd/system /lib/systemd/system-generators \
         /usr/lib/systemd/system-generators /etc/systemd/system-generators \
         /usr/local/lib/systemd/system /usr/lib/systemd/system-preset; do
    [ -d "$d" ] && mount --bind /run/cella-empty "$d"
done
exec </dev/null >/dev/console 2>&1
exec env -i container=cella-test PATH=/usr/sbin:/usr/bin:/sbin:/bin "$2" --system \
    --unit=cella-test.target --log-target=console --log-level=info \
    --default-standard-output=inherit --default-standard-error=inherit
"""

TARGET = """\
[Unit]
Description=cella's systemd test
DefaultDependencies=no
"""


def cgroup_mounts():
    """The cgroup hierarchies under /sys/fs/cgroup: ("v2", [], None) on a pure v2 host;
    else ("v1", [(dir name, mount options)], unified dir name or None)."""
    v1, unified = [], None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, post = pre.split(), post.split()
            mnt, fstype = fields[4], post[0]
            if mnt == "/sys/fs/cgroup" and fstype == "cgroup2":
                return "v2", [], None
            if not mnt.startswith("/sys/fs/cgroup/"):
                continue
            name = mnt[len("/sys/fs/cgroup/"):]
            if fstype == "cgroup2":
                unified = name
            elif fstype == "cgroup":
                opts = [o for o in post[2].split(",") if o not in ("rw", "ro")]
                # cpuset needs cpus and mems set before a task may enter; systemd and
                # cella use neither.
                if "cpuset" not in opts:
                    v1.append((name, ",".join(opts) if opts != ["name=systemd"]
                               else "none,name=systemd"))
    return "v1", v1, unified


def self_cgroups():
    """{hierarchy key: path}: '0' for cgroup2, else the controllers' list as in
    /proc/self/cgroup (e.g. 'memory', 'name=systemd')."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            out[ctrl or "0"] = path
    return out


class Systemd:
    """systemd as pid 1 of new namespaces, in cgroups made below the test's own."""

    def __init__(self, tmp, units):
        self.tmp = tmp
        self.units = units
        self.mode, self.v1, self.unified = cgroup_mounts()
        self.cg_dirs = []
        self.proc = None
        self.pid1 = None
        self.log = tmp / "systemd.log"

    def _cgroup_dirs(self):
        mine = self_cgroups()
        name = f"cella-systemd-test-{os.getpid()}"
        dirs = []
        if self.mode == "v2":
            dirs.append(Path("/sys/fs/cgroup") / mine["0"].lstrip("/") / name)
        else:
            for d, opts in self.v1:
                key = "name=systemd" if "name=systemd" in opts else opts
                path = mine.get(key)
                if path is None:
                    # "cpu,cpuacct" style keys: match a controller list with the same set
                    for k, v in mine.items():
                        if set(k.split(",")) == set(opts.split(",")):
                            path = v
                if path is None:
                    continue
                dirs.append(Path("/sys/fs/cgroup") / d / path.lstrip("/") / name)
            if self.unified:
                dirs.append(Path("/sys/fs/cgroup") / self.unified / mine["0"].lstrip("/") / name)
        return dirs

    def start(self):
        for w in ("unshare", "nsenter"):
            if not shutil.which(w):
                pytest.skip(f"{w} is not installed (util-linux)")
        self.cg_dirs = self._cgroup_dirs()
        try:
            for d in self.cg_dirs:
                d.mkdir()
        except OSError as e:
            pytest.skip(f"cannot make a cgroup for systemd ({e})")
        dirs = [str(d) for d in self.cg_dirs]

        def enter():
            for d in dirs:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write("0")

        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CG_MODE": self.mode,
               "CG_V1": " ".join(f"{d}={o}" for d, o in self.v1),
               "CG_UNIFIED": self.unified or ""}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount", "--cgroup", "--uts", "--ipc",
                 "--net", "--", "bash", "-c", BOOT, "boot", str(self.units), SYSTEMD, str(self.log)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                preexec_fn=enter)

        def child():
            try:
                kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            except FileNotFoundError:
                kids = ""
            if self.proc.poll() is not None:
                pytest.skip("systemd could not be started as pid 1 of new namespaces: "
                            + self.log.read_text(errors="replace")[-2000:])
            return int(kids.split()[0]) if kids.split() else None

        self.pid1 = wait_for("unshare's child", child)
        # Its private bus socket is there once the manager is up; then wait for the
        # start-up jobs to end (an event: systemctl --wait returns when they have).
        wait_for("systemd's private socket",
                 lambda: self.proc.poll() is None and
                 Path(f"/proc/{self.pid1}/root/run/systemd/private").exists()
                 or self._gone())
        p = self.systemctl("is-system-running", "--wait", check=False)
        if p.stdout.strip() not in ("running", "degraded"):
            pytest.skip(f"systemd as pid 1 did not come up ({p.stdout.strip()}): "
                        + self.log.read_text(errors="replace")[-2000:])

    def _gone(self):
        if self.proc.poll() is not None:
            pytest.skip("systemd as pid 1 exited: " + self.log.read_text(errors="replace")[-2000:])
        return False

    def run(self, *argv, check=True, timeout=DEADLINE):
        """argv in that systemd's mount and pid namespaces."""
        p = subprocess.run(["nsenter", "-t", str(self.pid1), "-m", "-p", "--", *argv],
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert p.returncode == 0, f"{argv}: {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def systemctl(self, *args, check=True):
        return self.run("systemctl", *args, check=check)

    def show(self, unit, prop):
        return self.systemctl("show", "-P", prop, unit, check=False).stdout.strip()

    def path(self, p):
        """p (absolute, as that systemd sees it) from here."""
        return Path(f"/proc/{self.pid1}/root{p}")

    def host_pid(self, ns_pid):
        """The pid here of a process that systemd's pid namespace calls ns_pid: one
        whose NSpid's second level is ns_pid and which descends from systemd."""
        def parent(pid):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("PPid:"):
                    return int(line.split()[1])
            return 0

        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                ids = next((l.split()[1:] for l in (d / "status").read_text().splitlines()
                            if l.startswith("NSpid:")), [])
                if len(ids) < 2 or int(ids[1]) != ns_pid:
                    continue
                pid = int(d.name)
                while pid > 1 and pid != self.pid1:
                    pid = parent(pid)
                if pid == self.pid1:
                    return int(d.name)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        return None

    def cgroup(self, host_pid):
        """host_pid's cgroup2 path as that systemd names it (from its root cgroup)."""
        root = cgroup2_of(self.pid1)
        assert root.endswith("/init.scope"), root
        root = root[:-len("/init.scope")]
        cg = cgroup2_of(host_pid)
        assert cg.startswith(root + "/"), (cg, root)
        return cg[len(root):]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            if self.pid1:
                try:
                    os.kill(self.pid1, signal.SIGKILL)  # the pid namespace ends with it
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for top in self.cg_dirs:
            # Deepest first; each empty once the namespace's processes are gone.
            for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
                deadline = time.monotonic() + 10
                while True:
                    try:
                        os.rmdir(dirpath)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.05)


def cgroup2_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def units_for_test(tmp, grace):
    units = tmp / "units"
    units.mkdir()
    service = (UNITS / "cellad.service").read_text()
    lines = []
    for line in service.splitlines():
        if line.startswith("ExecStart="):
            line = f"ExecStart={CELLAD} --state-dir {STATE}"
            lines.append(line)
            lines.append(f"Environment=CELLA_KEEPER_GRACE={grace} "
                         "ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1")
            # No journald in that systemd: cellad's messages (and the keeper's) to
            # a file the test reads.
            lines.append(f"StandardOutput=append:{CELLAD_LOG}")
            lines.append("StandardError=inherit")
            continue
        lines.append(line)
    text = "\n".join(lines) + "\n"
    # The unit as built, apart from ExecStart and its environment.
    for needed in ("Type=notify", "Delegate=yes", "KillMode=mixed", "Restart=on-failure",
                   "FileDescriptorStoreMax="):
        assert needed in text, needed
    (units / "cellad.service").write_text(text)
    (units / "cella-test.target").write_text(TARGET)
    # The targets a service's default dependencies name (systemd.service(5),
    # "Implicit Dependencies"), empty: nothing of the host's boot runs.
    for t in ("sysinit", "basic", "shutdown", "sockets", "local-fs", "multi-user"):
        (units / f"{t}.target").write_text(f"[Unit]\nDescription={t} (empty)\n"
                                           "DefaultDependencies=no\n")
    return units


def install_probe(sd, app_id):
    """The adopt probe installed in STATE as the store lays an app out, restart policy
    on-failure (so cellad's autostart starts it)."""
    import json

    state = sd.path(STATE)
    top = state / "apps" / app_id
    d = top / "1.0"
    d.mkdir(parents=True)
    shutil.copy(PROBE, d / "adopt-probe")
    (d / "adopt-probe").chmod(0o755)
    (d / "manifest.json").write_text(json.dumps({
        "id": app_id, "version": "1.0", "runtime": "native", "entry": "adopt-probe",
        "args": ["50"], "restart": "on-failure", "permissions": [],
        "limits": {"memory": "16M", "pids": 8}}))
    (d / "manifest.json").chmod(0o644)
    for p in (state, state / "apps", top, d):
        p.chmod(0o755 if p != state else 0o711)
    (top / "current").symlink_to("1.0")


def ps(sd):
    import json

    p = sd.run(CELLA, "ps", "--json", "--state-dir", STATE)
    return {r["id"]: r for r in json.loads(p.stdout)}


@pytest.fixture
def systemd(tmp_path):
    require_cellad()
    if os.geteuid() != 0:
        pytest.skip("systemd as pid 1 of new namespaces needs root")
    if not os.access(SYSTEMD, os.X_OK):
        pytest.skip(f"no {SYSTEMD} (Debian package systemd)")
    if not os.access(PROBE, os.X_OK):
        pytest.skip(f"no adopt-probe at {PROBE}")
    sd = Systemd(tmp_path, units_for_test(tmp_path, grace=5))
    try:
        sd.start()
        yield sd
    finally:
        sd.stop()


APPS = ("org.cella.test.sd.one", "org.cella.test.sd.two")


def start_cellad(sd):
    sd.path(STATE).mkdir(mode=0o711, parents=True, exist_ok=True)
    for a in APPS:
        if not sd.path(STATE + "/apps/" + a).exists():
            install_probe(sd, a)
    # Type=notify: systemctl start returns once cellad said READY=1 (its apps started).
    p = sd.systemctl("start", "cellad.service", check=False)
    assert p.returncode == 0, p.stderr + cellad_log(sd)


def cellad_log(sd):
    p = sd.path(CELLAD_LOG)
    return p.read_text(errors="replace")[-6000:] if p.exists() else "(no log)"


def running_apps(sd):
    apps = ps(sd)
    out = {}
    for a in APPS:
        assert a in apps, (apps, cellad_log(sd))
        assert apps[a]["state"] not in ("stopped", "failed"), (apps[a], cellad_log(sd))
        out[a] = apps[a]["pid"]
    return out


def crash_cellad(sd):
    """A crash of cellad, as systemd sees one: every process of cellad.service's
    cgroup SIGKILLed. Waits until systemd has restarted it (Restart=on-failure: its
    first restart, active, another main pid)."""
    main = int(sd.show("cellad.service", "MainPID"))
    sd.systemctl("kill", "-s", "KILL", "cellad.service")
    wait_for("systemd to restart cellad",
             lambda: sd.show("cellad.service", "NRestarts") == "1" and
             sd.show("cellad.service", "ActiveState") == "active" and
             int(sd.show("cellad.service", "MainPID")) not in (0, main))


def warm_pool_placed(sd, scope, service_cg):
    """Checks where --warm's default pool (2) lives under systemd: each warm sandbox
    in a leaf of its own in the apps' scope's cella/ folder (warm-...), never in the
    scope's keeper/ leaf nor in cellad.service's cgroup; the zygote that clones them
    in cellad's own leaf of cellad.service, so a stop or crash of the unit ends it
    (docs/daemon.md, "The warm pool under systemd"). Returns (the warm sandboxes'
    pids here, the zygote's pid here)."""
    sock = str(sd.path(STATE + "/cellad.sock"))
    wait_for("the warm pool to fill", lambda: call(sock, "org.cella.Pool")["ready"] == 2)
    pool = call(sock, "org.cella.Pool")
    assert pool["target"] == 2, pool
    warm = [sd.host_pid(p) for p in pool["pids"]]
    assert len(warm) == 2 and None not in warm, pool
    keeper = sd.path(("/sys/fs/cgroup/unified" if sd.mode != "v2" else "/sys/fs/cgroup")
                     + f"/cella.slice/{scope}/keeper/cgroup.procs").read_text().split()
    for w in warm:
        cg = sd.cgroup(w)
        assert cg.startswith(f"/cella.slice/{scope}/cella/warm-"), (w, cg)
        assert str(w) not in keeper
    assert pool["zygote"]["pid"] > 0, pool
    zygote = sd.host_pid(pool["zygote"]["pid"])
    assert zygote is not None, pool
    assert sd.cgroup(zygote) == service_cg, (zygote, sd.cgroup(zygote), service_cg)
    return warm, zygote


def test_crash_keeps_the_apps_in_their_scope(systemd):
    sd = systemd
    start_cellad(sd)
    scope_prefix = "/cella.slice/cella-apps-"
    pids = running_apps(sd)
    main = int(sd.show("cellad.service", "MainPID"))
    service_cg = sd.cgroup(sd.host_pid(main))
    assert service_cg == "/system.slice/cellad.service/supervisor", service_cg
    host = {}
    for a, pid in pids.items():
        host[a] = sd.host_pid(pid)
        cg = sd.cgroup(host[a])
        # In the scope's cella/ folder, not in cellad.service's cgroup.
        assert cg.startswith(scope_prefix) and "/cella/" in cg, (a, cg)
    scope = sd.cgroup(host[APPS[0]]).split("/")[2]
    assert sd.show(scope, "ActiveState") == "active"
    assert sd.show(scope, "Delegate") == "yes"
    keeper_procs = sd.path(("/sys/fs/cgroup/unified" if sd.mode != "v2" else "/sys/fs/cgroup")
                           + f"/cella.slice/{scope}/keeper/cgroup.procs")
    keeper = [int(p) for p in keeper_procs.read_text().split()]
    assert len(keeper) == 1, keeper
    warm, zygote = warm_pool_placed(sd, scope, service_cg)
    # The fd store holds our listening socket and a connection to the keeper.
    assert sd.show("cellad.service", "NFileDescriptorStore") == "2", cellad_log(sd)
    sock = sd.path(STATE + "/cellad.sock")
    sock_ino = sock.stat().st_ino

    crash_cellad(sd)
    for a in APPS:
        assert alive(host[a]), f"{a} died with cellad"
    # The warm sandboxes and the zygote died with the cellad they served (in the
    # scope, a warm sandbox outlives the unit's SIGKILL only until its parent-death
    # signal): none is left running in the scope, none was adopted.
    for w in warm + [zygote]:
        wait_for(f"warm pool process {w} to die with cellad", lambda: not alive(w))
    # Adopted: the same sandboxes, running.
    after = running_apps(sd)
    assert after == pids, (pids, after)
    # The new cellad's pool is in the scope again; the dead sandboxes' leaves were
    # swept: the scope's cella/ holds the apps' leaves and the new pool's, no other.
    warm2, _ = warm_pool_placed(sd, scope, service_cg)
    leaves = {p.name for p in sd.path(
        ("/sys/fs/cgroup/unified" if sd.mode != "v2" else "/sys/fs/cgroup")
        + f"/cella.slice/{scope}/cella").iterdir() if p.is_dir()}
    expect = {sd.cgroup(sd.host_pid(pid)).split("/")[4] for pid in after.values()}
    expect |= {sd.cgroup(w).split("/")[4] for w in warm2}
    assert leaves == expect, (leaves, expect)
    # The socket came back from the fd store: the same file, not bound again.
    assert sock.stat().st_ino == sock_ino
    out = sd.path(CELLAD_LOG).read_text(errors="replace")
    assert "adopted 2 app(s)" in out, out[-4000:]
    # Both stored fds passed their checks, and are in the store again.
    assert "systemd's fd store" not in out, out[-4000:]
    assert sd.show("cellad.service", "NFileDescriptorStore") == "2", out[-4000:]

    # A reload (SIGHUP: cellad re-executes in place, same pid) keeps them too, and
    # the store's entries: the new image takes the same keeper (in the scope).
    main = int(sd.show("cellad.service", "MainPID"))
    sd.systemctl("reload", "cellad.service")
    wait_for("the re-executed cellad to adopt the apps",
             lambda: sd.path(CELLAD_LOG).read_text(errors="replace").count("adopted 2 app(s)") == 2)
    assert int(sd.show("cellad.service", "MainPID")) == main
    assert running_apps(sd) == pids
    assert sd.show("cellad.service", "NFileDescriptorStore") == "2", cellad_log(sd)
    assert len([int(p) for p in keeper_procs.read_text().split()]) == 1

    # An orderly stop stops the apps, and the scope goes with the keeper.
    sd.systemctl("stop", "cellad.service")
    for a in APPS:
        wait_for(f"{a} to end", lambda: not alive(host[a]))
    wait_for("the scope to go", lambda: sd.show(scope, "ActiveState") in ("inactive", ""))
    assert sd.show("cellad.service", "ActiveState") == "inactive"


def test_stop_while_cellad_is_dead_ends_the_apps(systemd):
    sd = systemd
    # No restart, so that cellad stays dead until the stop.
    drop = sd.path("/run/cella-units/cellad.service.d")
    drop.mkdir()
    (drop / "norestart.conf").write_text("[Service]\nRestart=no\n")
    sd.systemctl("daemon-reload")
    start_cellad(sd)
    pids = running_apps(sd)
    host = {a: sd.host_pid(p) for a, p in pids.items()}
    sd.systemctl("kill", "-s", "KILL", "cellad.service")
    wait_for("cellad to be dead", lambda: sd.show("cellad.service", "ActiveState") == "failed")
    # The apps outlive it...
    for a in APPS:
        assert alive(host[a])
    # ...until the unit is done with: reset-failed empties its fd store, the keeper's
    # last connection closes, and its grace (5 s) ends the apps.
    sd.systemctl("reset-failed", "cellad.service")
    for a in APPS:
        wait_for(f"{a} to end after the keeper's grace", lambda: not alive(host[a]),
                 timeout=DEADLINE)
    assert "no cellad came back within the grace" in cellad_log(sd), cellad_log(sd)


def test_fd_store_holds_the_keeper_across_a_slow_restart(systemd):
    """RestartSec= longer than the keeper's grace (5 s): without the store's
    connection the keeper would count the gap as no cellad and kill the apps; with
    it, the apps outlive the gap and the restarted cellad adopts them."""
    sd = systemd
    drop = sd.path("/run/cella-units/cellad.service.d")
    drop.mkdir()
    (drop / "slow.conf").write_text("[Service]\nRestartSec=8\n")
    sd.systemctl("daemon-reload")
    start_cellad(sd)
    pids = running_apps(sd)
    host = {a: sd.host_pid(p) for a, p in pids.items()}
    crash_cellad(sd)  # systemd's restart timer is the wait (8 s), not the test's
    for a in APPS:
        assert alive(host[a]), (a, cellad_log(sd))
    assert running_apps(sd) == pids
    assert "no cellad came back" not in cellad_log(sd)


def test_a_replaced_keeper_goes_into_the_scope(systemd):
    """The keeper killed while cellad runs: cellad starts another, which goes into the
    scope's keeper/ leaf too (not cellad's cgroup) and replaces the store's
    connection; a crash of cellad after that still keeps the apps."""
    sd = systemd
    start_cellad(sd)
    pids = running_apps(sd)
    host = {a: sd.host_pid(p) for a, p in pids.items()}
    scope = sd.cgroup(host[APPS[0]]).split("/")[2]
    procs = sd.path(("/sys/fs/cgroup/unified" if sd.mode != "v2" else "/sys/fs/cgroup")
                    + f"/cella.slice/{scope}/keeper/cgroup.procs")
    # cgroup.procs names the pids as the reader's namespace does: here, the host's.
    old = [int(p) for p in procs.read_text().split()]
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGKILL)
    wait_for("another keeper in the scope",
             lambda: [p for p in procs.read_text().split() if int(p) != old[0]])
    wait_for("the store's keeper connection replaced",
             lambda: sd.show("cellad.service", "NFileDescriptorStore") == "2")
    assert "handed 2 running app(s) to the new keeper" in cellad_log(sd), cellad_log(sd)
    crash_cellad(sd)
    for a in APPS:
        assert alive(host[a]), (a, cellad_log(sd))
    assert running_apps(sd) == pids


def test_socket_activation_and_the_store_together(systemd):
    """cellad.socket passes the control socket (its name "cellad.socket") and the
    store the keeper's connection ("cellad-keeper") in the same LISTEN_FDS: after a
    crash cellad tells them apart by name, serves the socket unit's socket, and
    stores no listening socket of its own."""
    sd = systemd
    socket_unit = (UNITS / "cellad.socket").read_text().replace(
        "ListenStream=/var/lib/cella/cellad.sock", f"ListenStream={STATE}/cellad.sock")
    assert f"ListenStream={STATE}/cellad.sock" in socket_unit
    sd.path("/run/cella-units/cellad.socket").write_text(socket_unit)
    sd.systemctl("daemon-reload")
    sd.path(STATE).mkdir(mode=0o711, parents=True, exist_ok=True)
    sd.systemctl("start", "cellad.socket")
    start_cellad(sd)
    pids = running_apps(sd)
    assert sd.show("cellad.service", "NFileDescriptorStore") == "1", cellad_log(sd)
    crash_cellad(sd)
    assert running_apps(sd) == pids
    out = cellad_log(sd)
    assert "systemd's fd store" not in out and "not a listening" not in out, out
    assert out.count("on the socket systemd passed") == 2, out
    assert sd.show("cellad.service", "NFileDescriptorStore") == "1", out
    sd.systemctl("stop", "cellad.service", "cellad.socket")
