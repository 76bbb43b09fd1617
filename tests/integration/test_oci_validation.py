"""Regressions found by the runtime-tools validation suite (docs/oci.md, "Conformance:
the runtime-tools validation suite"; scripts/oci-validation runs the suite itself,
which CI cannot fetch). Each test is the failing validation test's config reduced to
what broke, on a real container (the busybox root and the harness of
test_oci_lifecycle.py)."""
import json
import os
import socket
from pathlib import Path

import pytest

from test_oci_lifecycle import (  # noqa: F401 (fixtures)
    config,
    oci,
    read_line,
    reap,
    rootfs,
    pytestmark,
)


# runtime-tools' default filter: ERRNO by default, an allowlist without close_range.
RT_SECCOMP = Path(__file__).resolve().parents[1] / "data" / "oci" / \
    "runtime-tools-default-seccomp.json"


def run_one(oci, cid, cfg):
    """create + start cfg, the app's first stdout line and its exit code."""
    rfd, pid = oci.create(cid, cfg)
    p = oci.run("start", cid)
    assert p.returncode == 0, p.stderr
    line = read_line(rfd)
    code = reap(pid)
    assert oci.run("delete", cid).returncode == 0
    os.close(rfd)
    return line, code


def test_compat_runtime_tools_default_filter(oci, rootfs):
    """Every validation test's container has runtime-tools' default config: policy
    compat honours its seccomp filter (ERRNO by default, an allowlist without
    close_range) with noNewPrivileges false, so the filter is loaded while the child
    is still privileged and every call the sandbox makes after it must pass it:
    close_range did not (EPERM), and every such create failed at "rlimit: Operation
    not permitted: close the caller's fds" (22 of the suite's tests aborted)."""
    # runtime-tools' default capabilities (CAP_MKNOD aside: cella-oci drops it).
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_NET_RAW",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    cfg = config(rootfs, ["sh", "-c", "echo up; ls /proc/self/fd | wc -l"],
                 annotations={"io.cella.policy": "compat"}, caps=caps)
    del cfg["process"]["capabilities"]["ambient"]
    cfg["process"]["noNewPrivileges"] = False
    seccomp = json.loads(RT_SECCOMP.read_text())
    del seccomp["_source"]
    assert not any("close_range" in r["names"] for r in seccomp["syscalls"])
    cfg["linux"]["seccomp"] = seccomp
    rfd, pid = oci.create("nocr", cfg)
    assert oci.run("start", "nocr").returncode == 0
    assert read_line(rfd) == "up"
    # The caller's fds closed: ls sees its 0, 1, 2 and its own directory fd.
    assert int(read_line(rfd)) == 4
    assert reap(pid) == 0
    assert oci.run("delete", "nocr").returncode == 0
    os.close(rfd)


@pytest.mark.parametrize("hostname", ["", None])
def test_empty_or_absent_hostname(oci, rootfs, hostname):
    """config.md makes hostname optional; runtime-tools' hostname test gives "" and
    `runc spec` style configs may leave it out. The sandbox library refused the
    create ("prepare: Invalid argument: no hostname"); runc leaves the new uts
    namespace with the name it was made with, the host's."""
    (rootfs / "bin" / "hostname").unlink(missing_ok=True)
    (rootfs / "bin" / "hostname").symlink_to("busybox")
    cfg = config(rootfs, ["hostname"])
    if hostname is None:
        del cfg["hostname"]
    else:
        cfg["hostname"] = hostname
    line, code = run_one(oci, "noname", cfg)
    assert code == 0
    assert line == socket.gethostname()


def test_hostname_still_set(oci, rootfs):
    """The other side of the fix: a given hostname is the container's."""
    (rootfs / "bin" / "hostname").unlink(missing_ok=True)
    (rootfs / "bin" / "hostname").symlink_to("busybox")
    line, code = run_one(oci, "named", config(rootfs, ["hostname"]))
    assert (line, code) == ("oci-test", 0)


def test_compat_user_namespace_with_the_configs_maps(oci, rootfs):
    """runtime-tools' linux_uid_mappings and linux_ns_nopath: a new user namespace
    with the config's own maps (0 -> 1000, 2000 ids), policy compat. The sandbox
    library makes the namespace as the app's host user, and cella-oci left that user
    0 (host root), which the library refuses: every such create failed with "prepare:
    Invalid argument: the app may not run as host root". The app's host user is the
    id its uid maps to."""
    cfg = config(rootfs, ["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map"],
                 annotations={"io.cella.policy": "compat"}, caps=[])
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 231000, "size": 2000}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 231000, "size": 3000}]
    rfd, pid = oci.create("maps", cfg)
    assert oci.run("start", "maps").returncode == 0
    assert read_line(rfd) == "0"
    assert read_line(rfd).split() == ["0", "231000", "2000"]
    assert read_line(rfd).split() == ["0", "231000", "3000"]
    assert reap(pid) == 0
    assert oci.run("delete", "maps").returncode == 0
    os.close(rfd)


def test_compat_maps_that_give_host_root_still_refused(oci, rootfs):
    """The other side: a map that makes the app host root is still the library's
    refusal, said on create, not a container running as host root in a namespace."""
    cfg = config(rootfs, ["true"], annotations={"io.cella.policy": "compat"}, caps=[])
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    b = oci.bundle(cfg)
    p = oci.run("create", "--bundle", b, "rootmap")
    assert p.returncode == 1
    assert "host root" in p.stderr


def test_cwd_the_app_may_not_enter_is_named(oci, rootfs):
    """runtime-tools' process test makes its process.cwd with mode 0700 (host root's).
    Under policy cella the container's one id may not enter it: create must fail, and
    say it is the working directory, not "exec: Permission denied: execute
    /runtimetest" as it did."""
    private = rootfs / "private"
    private.mkdir(mode=0o700, exist_ok=True)
    private.chmod(0o700)
    cfg = config(rootfs, ["true"])
    cfg["process"]["cwd"] = "/private"
    b = oci.bundle(cfg)
    p = oci.run("create", "--bundle", b, "cwd")
    assert p.returncode == 1
    assert "working directory /private" in p.stderr, p.stderr
    assert "Permission denied" in p.stderr
