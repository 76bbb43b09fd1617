"""A network lab for the network tests (docs/network.md, "Tests"): a network namespace
and a mount namespace the test made, with only loopback up, so that nothing a test
sends, whatever cella gets wrong, can leave the machine.

Loopback also holds "public" addresses (PUBLIC_V4, PUBLIC_V6: real
globally routable addresses, which exist only inside the lab), so a server bound to
one of them stands for a host on the internet. The mount namespace has its own
/etc/hosts (NetLab.hosts: names the test chooses, e.g. a name that resolves to a
private address) and an /etc/resolv.conf whose only nameserver is the lab's own
loopback, so a name the hosts file lacks fails at once instead of asking a real DNS.

cellad runs in the lab (Cellad(..., preexec_fn=lab.enter)), as do the test's servers
(lab.popen()). The lab is one `unshare --net --mount` holder process; everything else
joins it with setns(2). Closing the lab kills the holder; the namespaces go with the
last process in them.

    with NetLab(hosts={"allowed.test": PUBLIC_V4}) as lab:
        srv = lab.popen(["python3", "-m", "http.server", "--bind", PUBLIC_V4, "8080"])
        with running_cellad(state, preexec_fn=lab.enter) as d: ...
"""
import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000

# Globally routable addresses (not in any IANA special-purpose block): inside the lab
# they are the dummy interface's own, so a connection to them stays on the machine.
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V4_2 = "151.101.1.69"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path, nstype):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, nstype) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({path}): {os.strerror(e)}")
    finally:
        os.close(fd)


def require_netlab():
    """Skips the test when this machine cannot make a lab (no unshare or ip)."""
    for tool in ("unshare", "nsenter", "ip"):
        if not shutil.which(tool):
            pytest.skip(f"the network lab needs {tool}")
    if os.geteuid() != 0:
        pytest.skip("the network lab needs root")


class NetLab:
    def __init__(self, hosts=None, v6=True):
        require_netlab()
        self.hosts = dict(hosts or {})
        self._dir = Path(tempfile.mkdtemp(prefix="cella-netlab-"))
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "sleep",
             "infinity"], stdin=subprocess.DEVNULL)
        self.pid = self._holder.pid
        try:
            self._setup(v6)
        except BaseException:
            self.close()  # the holder and the folder, whatever step failed
            raise

    def _setup(self, v6):
        # The holder is ours to enter only once unshare has exec'd sleep: wait until
        # its namespaces differ from ours (an event on /proc, not a sleep).
        me = os.readlink("/proc/self/ns/net")
        for _ in range(100000):
            try:
                if os.readlink(f"/proc/{self.pid}/ns/net") != me and \
                        os.readlink(f"/proc/{self.pid}/exe").endswith("sleep"):
                    break
            except OSError:
                pass
            if self._holder.poll() is not None:
                raise RuntimeError("unshare --net --mount failed")
        else:
            raise RuntimeError("the lab's holder never entered its namespaces")
        self.run(["ip", "link", "set", "lo", "up"])
        # On loopback: every kernel has it (a dummy link needs a module some lack),
        # and an address there is local, so nothing is ever routed out.
        for a in (PUBLIC_V4, PUBLIC_V4_2):
            self.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"])
        if v6:
            self.run(["ip", "-6", "addr", "add", f"{PUBLIC_V6}/128", "dev", "lo", "nodad"])
        self.write_hosts()
        resolv = self._dir / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"])
        self.run(["mount", "--bind", str(self._dir / "hosts"), "/etc/hosts"])

    def write_hosts(self):
        """(Re)writes the lab's /etc/hosts from self.hosts, in place (the bind mount
        keeps naming the same file)."""
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
        for name, addrs in self.hosts.items():
            for a in [addrs] if isinstance(addrs, str) else addrs:
                lines.append(f"{a} {name}")
        p = self._dir / "hosts"
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n")

    def enter(self):
        """Joins the lab's network and mount namespaces: a preexec_fn for Popen (runs
        in the child, single-threaded, before exec)."""
        _setns(f"/proc/{self.pid}/ns/net", CLONE_NEWNET)
        _setns(f"/proc/{self.pid}/ns/mnt", CLONE_NEWNS)

    def run(self, cmd, **kw):
        """Runs cmd in the lab to its end; raises on a nonzero exit."""
        kw.setdefault("check", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", "-m", "--", *cmd], **kw)

    def popen(self, cmd, **kw):
        """Starts cmd in the lab (a server); the caller ends it."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(cmd, preexec_fn=self.enter, **kw)

    def close(self):
        if self._holder.poll() is None:
            self._holder.kill()
            self._holder.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def netlab():
    """A NetLab with no extra names; closed at the end of the test."""
    lab = NetLab()
    try:
        yield lab
    finally:
        lab.close()
