"""Fixtures for the OCI runtime tests (docs/oci.md): a busybox root file system,
the cella-oci binary's path, and an isolated podman.

make_rootfs(DIR) builds the smallest root a container needs from the host's
busybox-static: /bin/busybox and a symlink per applet, /etc/passwd and
/etc/group (root, nobody), and the empty mount points an OCI config mounts over
(/proc, /sys, /dev, /tmp, /run). Nothing else comes from the host, so a test that
sees a host file inside proved a leak.

Podman(base) runs Debian's podman against a store of its own under BASE (its
--root, --runroot, tmp dir, events log, storage.conf and containers.conf through
CONTAINERS_STORAGE_CONF and CONTAINERS_CONF), so the host's /var/lib/containers
and /run/containers are never read or written (the runtime keeps its state
under its own default --root: podman 4.3 passes --runtime-flag to every runtime
command but delete, so a --root given that way would leave state behind), with the flags this host needs
(docs/oci.md "Podman"): cgroupfs manager (pid 1 is not systemd), file events,
no network, and nofile/nproc ulimits under the host's hard limit.
"""
import os
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CELLA = os.environ.get("CELLA_BIN", str(ROOT / "build" / "src" / "cli" / "cella"))
# cella-oci is built next to cella: BUILD/src/oci/cella-oci beside BUILD/src/cli/cella.
CELLA_OCI = os.environ.get("CELLA_OCI", str(Path(CELLA).resolve().parents[1] / "oci" / "cella-oci"))

# The ulimits every container here gets: podman's default nofile is 1048576, over
# this host's hard limit (20000), and runc, crun and cella-oci then all fail to set it.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

# The users the root file system knows: uid/gid 0 and nobody (65534).
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"


def _is_static_elf(path):
    """True when PATH is an ELF file without a PT_INTERP program header (a static
    executable, which runs in a root file system without a dynamic loader)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:  # ELFCLASS64 only
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def find_busybox():
    """The path of a statically linked busybox (Debian's busybox-static), or None."""
    for cand in (os.environ.get("CELLA_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox",
                 shutil.which("busybox")):
        if cand and os.path.isfile(cand) and _is_static_elf(cand):
            return cand
    return None


def make_rootfs(root, busybox=None):
    """Builds a busybox root file system in ROOT (a folder, created if missing):
    /bin/busybox (a copy of BUSYBOX, default find_busybox()), a symlink
    /bin/APPLET -> busybox for each applet it lists, /etc/passwd and /etc/group
    (PASSWD, GROUP), and empty /proc, /sys, /dev, /tmp (1777), /run, /root; ROOT
    itself 0755.
    Returns ROOT as a Path. Raises RuntimeError without a static busybox."""
    busybox = busybox or find_busybox()
    if busybox is None:
        raise RuntimeError("no statically linked busybox (apt-get install busybox-static)")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # 0755: a root made by mkdtemp is 0700, which a container's non-root user (and,
    # under cella's policy, its root: an unprivileged host id) could not enter.
    os.chmod(root, 0o755)
    for d in ("bin", "etc", "proc", "sys", "dev", "run", "root", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for name in applets:
        link = root / "bin" / name
        if name != "busybox" and not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def engine_missing(*names):
    """The reason a test that needs the programs NAMES cannot run here, or None."""
    for n in names:
        if shutil.which(n) is None and not os.path.exists(n):
            return f"{n} is not installed"
    if find_busybox() is None:
        return "no statically linked busybox (apt-get install busybox-static)"
    return None


CONTAINERS_CONF = """\
# containers.conf(5) for one test session: everything under {base}.
[containers]
default_sysctls = []
[network]
network_config_dir = "{base}/net"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
tmp_dir = "{base}/libpod-tmp"
static_dir = "{base}/root/libpod"
volume_path = "{base}/root/volumes"
"""

STORAGE_CONF = """\
# containers-storage.conf(5) for one test session: vfs, so no overlay mounts on the host.
[storage]
driver = "vfs"
graphroot = "{base}/root"
runroot = "{base}/runroot"
"""


class Podman:
    """Debian's podman with RUNTIME (a path) and an isolated store under BASE."""

    def __init__(self, base, runtime):
        self.base = Path(base)
        self.runtime = str(runtime)
        for d in ("root", "runroot", "net", "libpod-tmp"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        (self.base / "containers.conf").write_text(CONTAINERS_CONF.format(base=self.base))
        (self.base / "storage.conf").write_text(STORAGE_CONF.format(base=self.base))
        self.env = dict(os.environ,
                        CONTAINERS_CONF=str(self.base / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(self.base / "storage.conf"),
                        XDG_RUNTIME_DIR=str(self.base / "libpod-tmp"))
        self.env.pop("CONTAINERS_REGISTRIES_CONF", None)

    def argv(self, *args):
        """The full podman command line for ARGS (podman's subcommand and its flags)."""
        return ["podman", "--root", str(self.base / "root"), "--runroot", str(self.base / "runroot"),
                "--runtime", self.runtime, "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--tmpdir", str(self.base / "libpod-tmp"),
                *map(str, args)]

    def __call__(self, *args, timeout=60, input=None, check=False):
        """Runs podman ARGS, returns the CompletedProcess (text output captured).
        CHECK: raise AssertionError with podman's stderr when it exits non-zero."""
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                           env=self.env, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(map(str, args))} exited {p.returncode}: "
                                 f"{p.stderr.strip()}")
        return p

    def run_args(self, rootfs, *args, name=None, extra=()):
        """`run` flags for a container on ROOTFS: --network none and the ulimits,
        then EXTRA, then --rootfs ROOTFS and ARGS (the command)."""
        out = ["run", "--network", "none", *ULIMITS]
        if name:
            out += ["--name", name]
        return [*out, *extra, "--rootfs", str(rootfs), *args]

    def cleanup(self):
        """Removes every container of this store (podman rm -af) and the store's
        folder, once no process of this store is left (conmon runs `podman container
        cleanup` on the store after a container ends, which would make the folder
        again after the rmtree); never raises (a test's failure stays the reported
        one)."""
        try:
            self("rm", "-af", "-t", "0", timeout=60)
        except Exception:  # noqa: BLE001 - best effort, the rmtree follows
            pass
        wait_processes_naming(self.base, timeout=30)
        unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def wait_processes_naming(text, timeout):
    """Waits (pidfds) until no process but this one has TEXT in its command line
    (conmon and the podman commands it runs for a store), at most TIMEOUT seconds
    in all. Returns True when none is left."""
    text = str(text).encode()
    deadline = time.monotonic() + timeout
    while True:
        fds = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if text not in f.read():
                        continue
                fds.append(os.pidfd_open(int(pid)))
            except OSError:
                continue
        if not fds:
            return True
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select(fds, [], [], left)
        finally:
            for fd in fds:
                os.close(fd)


def unmount_under(base):
    """Lazily unmounts every mount point at or under BASE (deepest first), from
    /proc/self/mountinfo: what an engine may leave there (a container's shm)."""
    base = os.path.realpath(base)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == base or mp.startswith(base + "/"):
                points.append(mp)
    for mp in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
