"""cella-oci's linux.resources on real containers (docs/oci.md "Cgroups"): each knob
read back from the host's cgroup files of the container's cgroup, the device rules
really enforced, every leaf removed by delete, and the knobs this host lacks refused
with an error naming them. v1 and hybrid hosts (this project's machine is hybrid);
on a pure v2 host the v1-only tests are skipped."""
import os
import subprocess

import pytest

from test_oci_lifecycle import (LOOP, OCI, Oci, config, oci, read_line, reap,  # noqa: F401
                                rootfs)

FS = "/sys/fs/cgroup"
V1 = os.path.isdir(f"{FS}/memory") and not os.path.exists(f"{FS}/cgroup.controllers")

pytestmark = [
    pytest.mark.skipif(not os.path.exists(OCI), reason=f"no cella-oci at {OCI}"),
    pytest.mark.skipif(os.geteuid() != 0, reason="cella-oci needs root"),
]

# The v1 hierarchies cella-oci makes a container's cgroup in, when the host has them.
HIERARCHIES = ["memory", "pids", "cpu", "cpuacct", "freezer", "cpuset", "devices", "blkio",
               "net_cls", "net_prio", "hugetlb", "unified"]


def v1_dir(ctrl, path):
    return f"{FS}/{ctrl}{path}"


def read(ctrl, path, knob):
    with open(f"{v1_dir(ctrl, path)}/{knob}") as f:
        return f.read()


def cg_path(name):
    return f"/cella-oci-test/{name}-{os.getpid()}"


def with_resources(rootfs, path, resources, args=None, policy=None, devices=None):
    cfg = config(rootfs, args or ["sh", "-c", LOOP], cgroups_path=path,
                 annotations={"io.cella.policy": policy} if policy else None)
    cfg["linux"]["resources"] = resources
    if policy == "compat":
        # podman's sets: an ambient set without an inheritable one is refused
        # (test_policy_compat_honours_caps).
        del cfg["process"]["capabilities"]["ambient"]
    if devices:
        cfg["linux"]["devices"] = devices
    return cfg


def create_fails(oci, cfg, cid):
    b = oci.bundle(cfg)
    p = oci.run("create", "--bundle", b, cid)
    assert p.returncode == 1, p.stderr
    assert "does not exist" in oci.run("state", cid).stderr
    return p.stderr


@pytest.mark.skipif(not V1, reason="a v1 or hybrid host's cgroup files")
def test_resources_read_back_and_removed(oci, rootfs):
    """cpuset, memory reservation/swappiness/OOM killer, exact cpu.shares and the
    device rules, each read from the container's own cgroup files on the host."""
    path = cg_path("res")
    cpus = read("cpuset", "", "cpuset.effective_cpus").strip()
    first = cpus.split(",")[0].split("-")[0]
    res = {
        "cpu": {"cpus": first, "mems": "0", "shares": 1024},
        "memory": {"reservation": 32 << 20, "swappiness": 10, "disableOOMKiller": True},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
    }
    rfd, pid = oci.create("res", with_resources(rootfs, path, res))
    assert read("cpuset", path, "cpuset.cpus").strip() == first
    assert read("cpuset", path, "cpuset.mems").strip() == "0"
    assert int(read("cpu", path, "cpu.shares")) == 1024
    assert int(read("memory", path, "memory.soft_limit_in_bytes")) == 32 << 20
    assert int(read("memory", path, "memory.swappiness")) == 10
    assert "oom_kill_disable 1" in read("memory", path, "memory.oom_control")
    rules = read("devices", path, "devices.list").splitlines()
    assert "a *:* rwm" not in rules, rules
    assert "c 1:3 rwm" in rules, rules
    # The init is in every leaf made, the new hierarchies too.
    with open(f"/proc/{pid}/cgroup") as f:
        mine = [l.split(":", 2) for l in f.read().splitlines()]
    for ctrl in ["cpuset", "devices", "memory"]:
        assert any(ctrl in l[1].split(",") and l[2] == path for l in mine), (ctrl, mine)
    assert oci.run("start", "res").returncode == 0
    assert read_line(rfd) == "started"
    assert oci.run("delete", "--force", "res").returncode == 0
    reap(pid)
    for h in HIERARCHIES:
        assert not os.path.exists(v1_dir(h, path)), v1_dir(h, path)
    os.close(rfd)


@pytest.mark.skipif(not V1, reason="the v1 devices controller (cgroup v2 needs eBPF: not "
                                   "enforced by cella-oci)")
def test_device_rule_enforced(oci, rootfs):
    """Policy compat makes the config's device nodes; a rule list allowing only
    c 1:3 makes the open of another node (c 1:11, /dev/kmsg: a write-only open needs
    no capability) fail with EPERM, while the same node opens without the rules."""
    devices = [{"path": "/dev/kmsgx", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666},
               {"path": "/dev/nullx", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    app = ("for d in /dev/nullx /dev/kmsgx; do if (exec 3>$d) 2>/tmp/e; then echo $d ok; "
           "else echo $d $(cat /tmp/e); fi; done")
    only_null = {"devices": [{"allow": False, "access": "rwm"},
                             {"allow": True, "type": "c", "major": 1, "minor": 3,
                              "access": "rwm"}]}
    outs = {}
    for cid, res in [("dev-rules", only_null), ("dev-none", {})]:
        cfg = with_resources(rootfs, cg_path(cid), res, args=["sh", "-c", app],
                             policy="compat", devices=devices)
        rfd, pid = oci.create(cid, cfg)
        assert oci.run("start", cid).returncode == 0
        outs[cid] = [read_line(rfd), read_line(rfd)]
        assert reap(pid) == 0
        assert oci.run("delete", cid).returncode == 0
        os.close(rfd)
    assert outs["dev-none"] == ["/dev/nullx ok", "/dev/kmsgx ok"], outs
    assert outs["dev-rules"][0] == "/dev/nullx ok", outs
    assert "/dev/kmsgx" in outs["dev-rules"][1], outs
    assert "Operation not permitted" in outs["dev-rules"][1], outs


@pytest.mark.skipif(not V1, reason="a v1 devices controller")
def test_compat_mknod_kept_under_rules_and_still_contained(oci, rootfs):
    """Policy compat in the host's user namespace keeps CAP_MKNOD when the config has
    device rules and the host's devices controller is v1 (runc's case: the rules hold
    the nodes), and drops it without rules (nothing would). Kept, the container makes a
    node of a device its rules do not allow (c 1:11, on its own tmpfs /dev, not the
    nodev root) and its open still fails with EPERM: the capability gives names, the
    device cgroup refuses the device."""
    app = ("grep CapEff /proc/self/status; if mknod /dev/k c 1 11 2>/tmp/e; then echo made; "
           "else echo not-made; fi; if (exec 3>/dev/k) 2>/tmp/e; then echo opened; "
           "else echo refused $(cat /tmp/e); fi")
    deny_all = {"devices": [{"allow": False, "access": "rwm"}]}
    outs = {}
    for cid, res in [("mknod-rules", deny_all), ("mknod-none", {})]:
        cfg = with_resources(rootfs, cg_path(cid), res, args=["sh", "-c", app],
                             policy="compat")
        caps = cfg["process"]["capabilities"]
        for k in caps:
            caps[k] = sorted(set(caps[k]) | {"CAP_MKNOD"})
        rfd, pid = oci.create(cid, cfg)
        assert oci.run("start", cid).returncode == 0
        outs[cid] = [read_line(rfd), read_line(rfd), read_line(rfd)]
        assert reap(pid) == 0
        assert oci.run("delete", cid).returncode == 0
        os.close(rfd)
    mknod = 1 << 27  # CAP_MKNOD
    kept = int(outs["mknod-rules"][0].split()[1], 16)
    dropped = int(outs["mknod-none"][0].split()[1], 16)
    assert kept & mknod and not dropped & mknod, outs
    assert outs["mknod-rules"][1] == "made", outs
    assert outs["mknod-rules"][2].startswith("refused"), outs
    assert "Operation not permitted" in outs["mknod-rules"][2], outs
    assert outs["mknod-none"][1] == "not-made", outs


@pytest.mark.skipif(not V1, reason="v1 blkio")
def test_blkio_weight(oci, rootfs):
    """blkio.weight (or blkio.bfq.weight) where the host has one; else create fails
    naming the knob, as runc fails."""
    path = cg_path("blkio")
    has = [k for k in ["blkio.weight", "blkio.bfq.weight"]
           if os.path.exists(f"{FS}/blkio/{k}")]
    cfg = with_resources(rootfs, path, {"blockIO": {"weight": 300}})
    if not has:
        err = create_fails(oci, cfg, "blkio")
        assert "linux.resources.blockIO.weight" in err and "blkio.bfq.weight" in err, err
        pytest.skip("this host's blkio has neither blkio.weight nor blkio.bfq.weight "
                    "(no CFQ/BFQ): the refusal was checked, the write cannot be")
    rfd, pid = oci.create("blkio", cfg)
    assert int(read("blkio", path, has[0]).split()[-1]) == 300
    assert oci.run("delete", "--force", "blkio").returncode == 0
    reap(pid)
    os.close(rfd)


@pytest.mark.skipif(not V1, reason="v1 and hybrid refusals")
def test_knobs_the_host_lacks_are_refused(oci, rootfs):
    """A knob the host cannot apply fails create with its JSON path named; nothing
    is left behind."""
    cases = [("unified", {"unified": {"memory.high": "1000000"}},
              "linux.resources.unified")]
    if not os.path.isdir(f"{FS}/hugetlb"):
        cases.append(("huge", {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]},
                      "linux.resources.hugepageLimits"))
    if not os.path.isdir(f"{FS}/net_cls"):
        cases.append(("netcls", {"network": {"classID": 1048577}},
                      "linux.resources.network.classID"))
    for cid, res, what in cases:
        path = cg_path(cid)
        err = create_fails(oci, with_resources(rootfs, path, res, args=["true"]), cid)
        assert what in err, err
        for h in HIERARCHIES:
            assert not os.path.exists(v1_dir(h, path)), v1_dir(h, path)


def test_bad_resources_refused(oci, rootfs):
    """Malformed values are refused by the parser with the JSON path."""
    for res, what in [({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
                      ({"devices": [{"allow": True, "access": "rwx"}]},
                       "linux.resources.devices[0]"),
                      ({"devices": [{"allow": True, "type": "z"}]}, "linux.resources.devices[0]"),
                      ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
                      ({"cpu": {"cpus": "0\n1"}}, "linux.resources.cpu.cpus"),
                      ({"cpu": {"mems": "x"}}, "linux.resources.cpu.mems")]:
        err = create_fails(oci, with_resources(rootfs, cg_path("bad"), res, args=["true"]),
                           "bad")
        assert what in err, (res, err)


@pytest.mark.skipif(not V1, reason="cella's own apps on a v1 or hybrid host")
def test_default_container_gets_no_device_rules(oci, rootfs):
    """Without linux.resources.devices the devices leaf is made (and removed) but
    keeps its parent's rules, as runc's would with no rules given."""
    path = cg_path("plain")
    rfd, pid = oci.create("plain", config(rootfs, ["sh", "-c", LOOP], cgroups_path=path))
    assert read("devices", path, "devices.list").strip() == "a *:* rwm"
    assert oci.run("delete", "--force", "plain").returncode == 0
    reap(pid)
    assert not os.path.exists(v1_dir("devices", path))
    assert not os.path.exists(v1_dir("cpuset", path))
    os.close(rfd)


@pytest.mark.skipif(not os.path.isdir(f"{FS}/cpuset") or not V1, reason="a v1 cpuset hierarchy")
def test_busy_in_one_hierarchy_refused(oci, rootfs):
    """A cgroupsPath that holds a process in the cpuset hierarchy alone (someone
    else's cgroup there) is refused, not joined."""
    path = cg_path("busy-cpuset")
    d = v1_dir("cpuset", path)
    os.makedirs(d)
    sleeper = None
    try:
        for k in ["cpuset.cpus", "cpuset.mems"]:
            with open(f"{os.path.dirname(d)}/{k}") as f:
                parent = f.read().strip()
            if not parent:
                with open(f"{FS}/cpuset/{k}") as f:
                    parent = f.read().strip()
                with open(f"{os.path.dirname(d)}/{k}", "w") as f:
                    f.write(parent)
            with open(f"{d}/{k}", "w") as f:
                f.write(parent)
        sleeper = subprocess.Popen(["sleep", "60"])
        with open(f"{d}/cgroup.procs", "w") as f:
            f.write(str(sleeper.pid))
        err = create_fails(oci, with_resources(rootfs, path, {}, args=["true"]), "busy")
        assert "holds processes" in err, err
        assert not os.path.exists(v1_dir("memory", path))
    finally:
        if sleeper:
            sleeper.kill()
            sleeper.wait()
        os.rmdir(d)


@pytest.mark.skipif(not V1, reason="a v1 or hybrid host")
def test_podman_cpuset_and_device_rules(tmp_path):
    """Through podman (conmon, its config with the deny-all device rule):
    --cpuset-cpus pins the app (before, it stayed in conmon's cpuset, on every CPU),
    the default devices stay usable, and a node outside the rules does not open."""
    import tempfile

    import ocikit
    missing = ocikit.engine_missing("podman", "conmon")
    if missing:
        pytest.skip(missing)
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("one CPU: --cpuset-cpus could not show a change")
    last = max(cpus)
    root = ocikit.make_rootfs(tmp_path / "rootfs")
    pm = ocikit.Podman(tempfile.mkdtemp(prefix="cella-podman-cg-"), OCI)
    try:
        app = ("grep Cpus_allowed_list /proc/self/status; head -c1 /dev/zero | wc -c; "
               "mknod /dev/k c 1:11 2>/dev/null; if (exec 3>/dev/k) 2>/dev/null; then "
               "echo kmsg-open; else echo kmsg-refused; fi")
        p = pm(*pm.run_args(root, "sh", "-c", app,
                            extra=("--rm", "--cpuset-cpus", str(last), "--cap-add", "MKNOD")),
               timeout=120)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.split()
        assert lines[:2] == ["Cpus_allowed_list:", str(last)], p.stdout
        assert lines[2] == "1", p.stdout  # /dev/zero read: a default device
        # cella-oci drops CAP_MKNOD in the host's user namespace, and the rule list
        # would refuse the open anyway.
        assert lines[3] == "kmsg-refused", p.stdout
    finally:
        pm.cleanup()


@pytest.mark.skipif(not V1, reason="a v1 cpuset hierarchy")
def test_cpu_the_host_lacks_named(oci, rootfs):
    """A CPU outside the parent's set: the kernel refuses the write, and create says
    which file, leaving no leaf behind."""
    path = cg_path("cpu-out")
    cpu = str((os.cpu_count() or 1) + 8)
    err = create_fails(oci, with_resources(rootfs, path, {"cpu": {"cpus": cpu}},
                                           args=["true"]), "cpu-out")
    assert "cpuset.cpus" in err, err
    for h in HIERARCHIES:
        assert not os.path.exists(v1_dir(h, path)), v1_dir(h, path)
