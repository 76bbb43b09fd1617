"""Regressions found by the runtime-tools validation suite (docs/oci.md, "Conformance:
the runtime-tools validation suite"; scripts/oci-validation runs the suite itself,
which CI cannot fetch). Each test is the failing validation test's config reduced to
what broke, on a real container (the busybox root and the harness of
test_oci_lifecycle.py)."""
import os
import socket

import pytest

from test_oci_lifecycle import (  # noqa: F401 (fixtures)
    config,
    oci,
    read_line,
    reap,
    rootfs,
    pytestmark,
)


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


def test_compat_filter_that_denies_close_range(oci, rootfs):
    """runtime-tools' default config (its generate package) has noNewPrivileges false
    and a seccomp allowlist without close_range. Without no_new_privs the filter is
    loaded while the child is still privileged, before it closes the caller's fds:
    every compat create failed with "rlimit: Operation not permitted: close the
    caller's fds" (22 of the suite's tests aborted on it)."""
    cfg = config(rootfs, ["sh", "-c", "echo up; ls /proc/self/fd | wc -l"],
                 annotations={"io.cella.policy": "compat"}, caps=[])
    cfg["process"]["noNewPrivileges"] = False
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}],
    }
    rfd, pid = oci.create("nocr", cfg)
    assert oci.run("start", "nocr").returncode == 0
    assert read_line(rfd) == "up"
    # The caller's fds are closed all the same (the fallback's close() of each):
    # the app has 0, 1, 2 and ls's own directory fd, nothing of cella-oci's.
    assert int(read_line(rfd)) <= 4
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
