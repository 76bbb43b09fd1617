"""Every isolation item of the sandbox, each tried from inside a real sandbox."""
import ctypes
import os
import re
import socket
import subprocess

import pytest

from conftest import CELLA, example, run_cella, start_cella, which

NS_KINDS = ["user", "mnt", "pid", "ipc", "uts", "net", "cgroup"]


@pytest.fixture
def bait():
    """Things on the host a sandboxed app must not reach: an abstract Unix socket,
    a SysV shared memory segment, an environment variable, a TCP listener on the
    host's 127.0.0.1 and ::1 (port 47115, examples/hostile BAIT_TCP_PORT)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0cella-hostile-bait")
    s.listen(1)
    tcp = []
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        t = socket.socket(family, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((addr, 47115))
        t.listen(8)
        tcp.append(t)
    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(0x0CE11A, 4096, 0o1666)  # IPC_CREAT | 0666
    assert shmid >= 0
    env = dict(os.environ, CELLA_HOSTILE_BAIT="secret")
    yield env
    libc.shmctl(shmid, 0, None)  # IPC_RMID
    s.close()
    for t in tcp:
        t.close()


def hostile_lines(out):
    """hostile's verdict lines: REFUSED, ESCAPED and N/A (a call that never ran,
    for a reason that is not the sandbox: a feature this kernel lacks)."""
    return [l for l in out.splitlines() if l.startswith(("REFUSED ", "ESCAPED ", "N/A "))]


def hostile_summary(lines):
    """The summary line hostile must print for these verdict lines."""
    refused = sum(l.startswith("REFUSED ") for l in lines)
    na = sum(l.startswith("N/A ") for l in lines)
    return f"hostile: {len(lines)} attempts, {refused} refused, 0 escaped, {na} not applicable"


@pytest.mark.twin
def test_hostile_example_is_refused_everything(state, bait):
    r = run_cella(example("hostile"), state_dir=state, env=bait)
    lines = hostile_lines(r.out)
    escaped = [l for l in lines if l.startswith("ESCAPED")]
    assert not escaped, "\n".join(escaped)
    assert r.code == 0, r.out + r.err
    verdicts = {l.split(" ", 1)[1].split(":", 1)[0]: l.split(" ", 1)[0] for l in lines}
    for must in ["reach /etc/shadow", "write /usr/bin/owned", "write /app/owned", "follow /app/link-shadow",
                 "symlink to / reaches the host root", "mount tmpfs", "unshare user namespace",
                 "clone new network namespace",
                 "setns", "open init's namespace", "ptrace attach to init", "bpf map create",
                 "perf_event_open", "keyctl join session keyring", "userfaultfd", "io_uring_setup",
                 "kexec_load", "init_module", "open_by_handle_at (shocker)", "TIOCSTI into the terminal",
                 "TIOCSTI with garbage in the upper bits", "hold a capability", "run as root",
                 "reach a listener on the host's IPv4 loopback", "reach a listener on the host's IPv6 loopback",
                 "reach an address off its loopback (192.0.2.1)", "see a network interface other than lo",
                 "add an address to lo (SIOCSIFADDR)", "change lo's flags (SIOCSIFFLAGS)",
                 "add a default route (SIOCADDRT)", "add an address over route netlink (RTM_NEWADDR)",
                 "open a raw IP socket", "open an AF_PACKET socket", "open an SCTP socket (a module to load)",
                 "open a NETLINK_AUDIT socket", "open a NETLINK_KOBJECT_UEVENT socket",
                 "open a NETLINK_SOCK_DIAG socket", "open a NETLINK_GENERIC socket",
                 "chown a file to root", "chown a file to another uid of its block",
                 "chgrp a file to another gid of its block", "setresuid to another uid of its block",
                 "setresgid to root", "setgroups", "rewrite its uid_map",
                 "connect to the host's abstract socket",
                 "attach the host's SysV shared memory", "read the host's environment",
                 "see other processes", "inherit a stray fd", "see /sys", "exec a binary dropped in /data",
                 "exec a binary dropped in /dev/shm", "i386 system call (int 0x80)", "x32 system call",
                 "reserve the host's aio events (io_setup)",
                 "map from the host's huge page pool (MAP_HUGETLB)",
                 "memfd from the host's huge page pool (MFD_HUGETLB)",
                 "SysV shm from the host's huge page pool (SHM_HUGETLB)",
                 "lock 16 MiB in memory (past RLIMIT_MEMLOCK)", "an unbounded RLIMIT_MEMLOCK",
                 "64 POSIX message queues (past RLIMIT_MSGQUEUE)",
                 "65536 POSIX timers (past RLIMIT_SIGPENDING)", "real-time scheduling (SCHED_FIFO)",
                 "raise its priority (nice -5)", "real-time I/O class (IOPRIO_CLASS_RT)"]:
        assert must in verdicts, f"attempt {must!r} did not run"
    # Only a feature this kernel lacks may make a probe not applicable (int 0x80
    # without IA32 emulation faults; a kernel without POSIX message queues or
    # timers says ENOSYS), and it must say so. Everything else must be refused.
    optional = {"i386 system call (int 0x80)": "SIGSEGV before the call returned",
                "64 POSIX message queues (past RLIMIT_MSGQUEUE)": "ENOSYS: this kernel has no",
                "65536 POSIX timers (past RLIMIT_SIGPENDING)": "ENOSYS: this kernel has no"}
    na = [n for n, v in verdicts.items() if v == "N/A"]
    assert set(na) <= set(optional), na
    for name in na:
        assert f"N/A {name}: {optional[name]}" in r.out, r.out
    if "i386 system call (int 0x80)" not in na:
        assert "REFUSED i386 system call (int 0x80): killed by SIGSYS" in r.out, r.out
    assert "REFUSED x32 system call: killed by SIGSYS" in r.out, r.out
    # The host-wide resources: the filter's answers, not a kernel's happenstance.
    assert re.search(r"^REFUSED reserve the host's aio events \(io_setup\): Function not implemented$", r.out, re.M)
    for huge in ["MAP_HUGETLB", "MFD_HUGETLB", "SHM_HUGETLB"]:
        assert re.search(rf"^REFUSED \w+ \w* ?from the host's huge page pool \({huge}\): Operation not permitted$",
                         r.out, re.M), huge
    assert "REFUSED an unbounded RLIMIT_MEMLOCK: hard limit 8388608 bytes" in r.out, r.out
    assert hostile_summary(lines) in r.out, r.out


@pytest.mark.twin
def test_every_namespace_is_new(state, make_app):
    app = make_app("org.test.ns", "for n in " + " ".join(NS_KINDS) + "; do echo $n $(readlink /proc/self/ns/$n); done\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    inside = dict(l.split(" ", 1) for l in r.out.splitlines())
    for kind in NS_KINDS:
        assert inside[kind] != os.readlink(f"/proc/self/ns/{kind}"), f"{kind} namespace is the host's"


@pytest.mark.twin
def test_two_apps_never_share_net_or_ipc(state, make_app):
    # Both alive at once: a freed namespace's inode number can be reused, so
    # comparing apps that ran one after the other would prove nothing.
    # Each app prints its namespaces and then waits for a line on stdin: both are
    # alive until the test has read both and answers (an event, not a sleep).
    script = "readlink /proc/self/ns/net /proc/self/ns/ipc\nread line\necho \"got $line\"\n"
    procs = [subprocess.Popen([CELLA, "run", "--state-dir", str(state), str(make_app(f"org.test.share_{n}", script))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for n in "ab"]
    outs = [[p.stdout.readline().strip(), p.stdout.readline().strip()] for p in procs]
    rest = [p.communicate("go\n", timeout=30)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert rest == ["got go\n", "got go\n"], rest
    assert all(outs[0] + outs[1]) and not set(outs[0]) & set(outs[1]), outs


@pytest.mark.twin
def test_init_reaps_orphans(state, make_app):
    # Each subshell leaves an orphan that exits: reparented to the sandbox's init
    # (pid 1), which must reap it rather than leave a zombie behind.
    # The app waits until only the shell is left in its /proc (the glob is the
    # shell's own, no child counted; an orphan init has not reaped would stay as a
    # zombie), at most 5 s, rather than sleeping a guessed time.
    app = make_app("org.test.reap", """
    for i in 1 2 3 4 5; do ( sleep 0.1 & ) ; done
    n=0
    while set -- /proc/[0-9]*; [ $# -gt 1 ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n + 1)); done
    echo "pid1: $(cat /proc/1/comm 2>/dev/null || echo hidden)"
    echo "zombies: $(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)"
    ls -d /proc/[0-9]* > /tmp/procs
    echo "procs: $(wc -l < /tmp/procs)"
    """)
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert "zombies: 0" in r.out, r.out
    # The shell expands the glob itself, before ls exists: the shell is the only
    # process left (init is hidden), so no orphan lingers, zombie or not.
    assert int(r.out.split("procs:")[1].split()[0]) == 1, r.out


@pytest.mark.twin
def test_init_memory_is_closed_even_on_a_dumpable_host(state, make_app):
    """The app runs as init's uid, so a dumpable init's /proc/1/mem is open to it.
    On a host whose fs.suid_dumpable is 1 every credential change leaves a process
    dumpable, and so does the exec of cella-init (until its first call): init, a
    copy of the kernel for its first 20 ms, then cella-init, was open to the app
    from its first instruction (1371 opens in 0.5 s). The app opens /proc/1/mem
    in a loop from its first instruction; not once may it succeed."""
    path = "/proc/sys/fs/suid_dumpable"
    try:
        before = open(path).read().strip()
    except OSError:
        pytest.skip("no fs.suid_dumpable")
    app = make_app("org.test.initmem", """
    n=0; i=0
    while [ $i -lt 4000 ]; do
        if true < /proc/1/mem; then n=$((n+1)); fi 2>/dev/null
        i=$((i+1))
    done
    echo "opened $n of $i"
    """)
    try:
        open(path, "w").write("1")
    except OSError:
        pytest.skip("cannot set fs.suid_dumpable")
    try:
        r = run_cella(app, state_dir=state)
    finally:
        open(path, "w").write(before)
    assert r.code == 0, r.err
    assert "opened 0 of 4000" in r.out, r.out
    assert "fs.suid_dumpable is 1 on this host" in r.err, r.err


@pytest.mark.twin
def test_uid_map_is_the_apps_block_to_non_root(state, make_app):
    # The app's block of host ids (test_ids_net.py has the rest): it runs as 1000.
    app = make_app("org.test.uidmap", "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; id -G; cat /proc/self/setgroups\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    uid = r.event("started")["uid"]
    lines = r.out.split("\n")
    assert lines[0].split() == ["0", str(uid - 1000), "65536"]
    assert lines[1].split() == ["0", str(uid - 1000), "65536"]
    assert lines[2:5] == ["1000", "1000", "1000"]
    assert lines[5] == "deny"


@pytest.mark.twin
def test_credentials_capabilities_seccomp(state, make_app):
    app = make_app("org.test.creds", "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    fields = dict(re.split(r":\s+", l, 1) for l in r.out.splitlines())
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]:
        assert int(fields[cap], 16) == 0, f"{cap} = {fields[cap]}"
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


@pytest.mark.twin
def test_hostname_and_identity_files(state, make_app):
    app = make_app("org.test.ident", "hostname; cat /etc/hostname; id -un; getent passwd app | cut -d: -f6\n")
    r = run_cella(app, state_dir=state)
    assert r.out.split("\n")[:4] == ["org.test.ident", "org.test.ident", "app", "/data"], r.out + r.err


@pytest.mark.twin
def test_only_loopback_and_it_is_up(state, make_app):
    app = make_app("org.test.net", "cat /proc/net/dev | tail -n +3 | cut -d: -f1; cat /sys/class/net/lo/operstate 2>/dev/null || echo no-sys\n")
    r = run_cella(app, state_dir=state)
    ifaces = [l.strip() for l in r.out.splitlines()[:-1]]
    assert ifaces == ["lo"], r.out
    assert r.out.splitlines()[-1] == "no-sys"
    # And lo works: a TCP socket is denied without a network right, but a Unix one is fine.
    app2 = make_app("org.test.lo", "python3 -c 'import socket; a,b = socket.socketpair(); a.send(b\"x\"); print(b.recv(1))'\n")
    r2 = run_cella(app2, state_dir=state)
    assert r2.out.strip() == "b'x'", r2.err


@pytest.mark.twin
def test_mounts_are_nosuid_nodev_and_root_readonly(state, make_app):
    app = make_app("org.test.mounts", "cat /proc/self/mountinfo\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    mounts, fstype = {}, {}
    for line in r.out.splitlines():
        f = line.split()
        mounts[f[4]] = set(f[5].split(","))
        fstype[f[4]] = f[f.index("-") + 1]
    assert "ro" in mounts["/"]
    for target, opts in mounts.items():
        assert "nosuid" in opts, f"{target} is not nosuid: {opts}"
        # Only the host's device nodes (null, zero, ...; /dev/null also masks
        # /proc files) may be opened as devices.
        # /dev/pts is the sandbox's own devpts instance: its ptys are devices.
        if fstype[target] not in ("devtmpfs", "devpts"):
            assert "nodev" in opts, f"{target} is not nodev: {opts}"
    assert {t for t in mounts if fstype[t] == "devtmpfs" and not t.startswith("/proc/")} == {
        "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}
    for ro in ["/usr", "/app", "/etc/ld.so.cache", "/proc/sys"]:
        assert "ro" in mounts[ro], f"{ro}: {mounts[ro]}"
    for rw in ["/data", "/dev/shm"]:
        assert "rw" in mounts[rw] and "noexec" in mounts[rw], f"{rw}: {mounts[rw]}"
    # /tmp is writable and executable on purpose (docs/security.md).
    assert "rw" in mounts["/tmp"] and "noexec" not in mounts["/tmp"], mounts["/tmp"]
    assert not any(t == "/sys" or t.startswith("/sys/") for t in mounts)
    assert set(os.listdir("/")) - {"sys"} >= {"usr"}  # sanity: the host's view is untouched


@pytest.mark.twin
def test_dev_is_minimal(state, make_app):
    app = make_app("org.test.dev", "ls -A /dev | sort | tr '\\n' ' '; echo; head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok\n")
    r = run_cella(app, state_dir=state)
    lines = r.out.splitlines()
    assert lines[0].split() == sorted(["full", "null", "random", "urandom", "zero", "shm", "pts", "ptmx", "fd",
                                       "stdin", "stdout", "stderr"]), lines[0]
    assert lines[1] == "4" and lines[2] == "null-ok"


PTY_PROBE = """\
import os
m, s = os.openpty()
print(os.ttyname(s))
os.write(m, b"hi\\n")
print(os.read(s, 10))
print(" ".join(sorted(os.listdir("/dev/pts"))), flush=True)
"""


@pytest.mark.twin
def test_ptys_are_private(state, make_app):
    # python's pty module works, on a devpts instance the host does not see.
    app = make_app("org.test.pty", "exec python3 /app/probe.py\n",
                   files={"probe.py": (PTY_PROBE, 0o644)})
    host_before = set(os.listdir("/dev/pts"))
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["/dev/pts/0", "b'hi\\n'", "0 ptmx"], r.out
    assert set(os.listdir("/dev/pts")) == host_before


@pytest.mark.twin
def test_proc_is_fresh_and_masked(state, make_app):
    app = make_app("org.test.proc", "ls /proc | grep -c '^[0-9]'; cat /proc/kcore 2>/dev/null | wc -c; cat /proc/keys | wc -c; echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo wrote || echo refused\n")
    r = run_cella(app, state_dir=state)
    lines = r.out.split()
    # sh, ls and grep: the app's own; init and the host's are not visible.
    assert int(lines[0]) <= 3, "only the app's own processes are visible"
    assert lines[1] == "0" and lines[2] == "0"
    assert lines[3] == "refused"


# Host-wide /proc files an app has no need to see: each must read as empty inside
# (masked with /dev/null, or an empty directory), whatever it holds on the host.
PROC_MASKED_FILES = ["cmdline", "config.gz", "bootconfig", "interrupts", "softirqs", "schedstat",
                     "zoneinfo", "buddyinfo", "modules", "locks", "partitions", "diskstats", "swaps",
                     "mdstat", "keys", "kallsyms", "sys/kernel/random/boot_id",
                     # root's alone: not masked, unreadable all the same
                     "kcore", "timer_list", "slabinfo", "vmallocinfo", "pagetypeinfo", "kpageflags",
                     "mtrr"]
PROC_MASKED_DIRS = ["irq", "fs", "bus", "driver", "pressure", "acpi"]


@pytest.mark.twin
def test_proc_host_files_are_masked(state, make_app):
    # A lock the host holds, so the host's /proc/locks is not empty.
    import fcntl
    lockfile = state.parent / "held.lock"
    with open(lockfile, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        script = "".join(f"printf '{n} '; if [ -e /proc/{n} ]; then cat /proc/{n} 2>/dev/null | wc -c; else echo absent; fi\n"
                         for n in PROC_MASKED_FILES)
        script += "".join(f"printf '{n} '; if [ -e /proc/{n} ]; then ls -A /proc/{n} | wc -l; else echo absent; fi\n"
                          for n in PROC_MASKED_DIRS)
        script += "cat /proc/loadavg\n"
        app = make_app("org.test.procmask", script)
        r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    seen = dict(l.split(" ", 1) for l in lines[:-1])
    for name in PROC_MASKED_FILES + PROC_MASKED_DIRS:
        host = f"/proc/{name}"
        if not os.path.exists(host):
            assert seen[name] == "absent", f"/proc/{name}: {seen[name]}"
            continue
        assert seen[name] == "0", f"/proc/{name} shows {seen[name]} bytes/entries inside the sandbox"
    # The host's own files are not empty: the masks did something.
    assert os.path.getsize("/proc/cmdline") or open("/proc/cmdline").read()
    # loadavg: no load, one process, and the last pid is not the host's.
    assert lines[-1] == "0.00 0.00 0.00 1/1 1", lines[-1]


@pytest.mark.twin
def test_proc_tools_still_work(state, make_app):
    """ps, uptime, free, df and top read /proc: the masks must leave them working."""
    tools = {"ps": "ps -e", "uptime": "uptime", "free": "free", "df": "df /tmp", "top": "top -b -n 1"}
    have = {name: cmd for name, cmd in tools.items() if which(name)}
    if not have:
        pytest.skip("procps and coreutils' df are not installed")
    script = "".join(f"if {cmd} >/dev/null 2>/tmp/err; then echo '{name} ok'; else echo '{name} failed:' $(cat /tmp/err); fi\n"
                     for name, cmd in have.items())
    script += "python3 -c 'import os; print(\"loadavg\", len(os.getloadavg()), os.cpu_count() > 0)'\n"
    r = run_cella(make_app("org.test.proctools", script), state_dir=state)
    assert r.code == 0, r.err
    for name in have:
        assert f"{name} ok" in r.out, r.out
    assert "loadavg 3 True" in r.out, r.out + r.err


@pytest.mark.twin
def test_mountinfo_shows_no_host_path_but_the_app_folders(state, make_app):
    """What mountinfo still tells an app about the host: the 4th field of a bind mount
    is the source's path within its file system, which no bind can rewrite. Only
    the runtime's standard paths and the app's own folder (and /data, until it has a
    file system of its own) may appear there."""
    app = make_app("org.test.mountinfo", "cat /proc/self/mountinfo\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    exact = {"/", "/tmp", "/shm", "/null", "/zero", "/full", "/random", "/urandom", "/sys",
             "/.loadavg//deleted"}
    runtime = ("/usr/", "/bin/", "/sbin/", "/lib", "/etc/")
    for line in r.out.splitlines():
        root, target = line.split()[3:5]
        if root in exact or (root + "/").startswith(runtime) and root.lstrip("/").split("/")[0] == target.lstrip("/").split("/")[0]:
            continue
        assert target in ("/app", "/data"), f"{target} shows host path {root}"


@pytest.mark.twin
def test_tmp_and_dev_shm_share_one_budget(state, make_app):
    """/tmp and /dev/shm are two folders of one tmpfs of limits.tmp: what an app puts
    in /dev/shm takes room from /tmp, so limits.tmp bounds both together."""
    app = make_app("org.test.tmpshm", """\
        df -k /tmp /dev/shm | tail -n 2 | awk '{print $2}'
        dd if=/dev/zero of=/dev/shm/fill bs=1M count=3 2>/dev/null && echo shm-3M-ok
        dd if=/dev/zero of=/tmp/fill bs=1M count=3 2>&1 | grep -c 'No space left' || true
        ls -l /tmp/fill | awk '{print $5}'
        rm /dev/shm/fill
        dd if=/dev/zero of=/tmp/fill bs=1M count=3 2>/dev/null && echo tmp-3M-ok
        grep -E ' /(tmp|dev/shm) ' /proc/self/mountinfo | awk '{print $3, $5}'
        """, limits={"tmp": "4M"})
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == lines[1] == "4096", r.out  # one size, not two
    assert lines[2] == "shm-3M-ok", r.out
    assert lines[3] == "1", r.out  # /tmp ran out after 1 MiB: /dev/shm held the rest
    assert int(lines[4]) < 2 * 1024 * 1024, r.out
    assert lines[5] == "tmp-3M-ok", r.out  # the room came back with the file
    (dev_tmp, _), (dev_shm, _) = [l.split() for l in lines[6:8]]
    assert dev_tmp == dev_shm, lines[6:8]  # the same file system


INOTIFY_HOG = """\
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while True:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    fds.append(fd)
print("held", len(fds), os.strerror(ctypes.get_errno()), flush=True)
time.sleep(120)
"""


@pytest.mark.twin
def test_per_user_limits_are_each_apps_own(state, make_app):
    """fs.inotify.max_user_instances counts per user namespace and uid, up to the
    host's level, where each app has a host uid of its own: an app that takes all
    of its instances leaves another app's (and the host's) untouched."""
    limit = int(open("/proc/sys/fs/inotify/max_user_instances").read())
    if limit > 4000:
        pytest.skip(f"fs.inotify.max_user_instances is {limit}: the files limit would stop the app first")
    hog = make_app("org.test.inotify_hog", "exec python3 /app/hog.py\n", files={"hog.py": (INOTIFY_HOG, 0o644)},
                   limits={"files": 4096})
    p, started, status = start_cella(hog, state)
    try:
        line = p.stdout.readline()
        assert line.split()[:2] == ["held", str(limit)], line + p.stderr.read() if not line else line
        other = make_app("org.test.inotify_other",
                         "python3 -c 'import ctypes; print(\"got\", ctypes.CDLL(None).inotify_init1(0) >= 0)'\n")
        r = run_cella(other, state_dir=state)
        assert r.out.strip() == "got True", r.out + r.err
        assert r.event("started")["uid"] != started["uid"]
        fd = ctypes.CDLL(None, use_errno=True).inotify_init1(0)
        assert fd >= 0, "the host could not make an inotify instance"
        os.close(fd)
    finally:
        p.terminate()
        p.communicate(timeout=30)
        status.close()


@pytest.mark.twin
def test_environment_is_rebuilt_from_nothing(state, make_app):
    app = make_app("org.test.env", "env | cut -d= -f1 | sort\n", env={"GREETING": "hi"})
    r = run_cella(app, state_dir=state, env=dict(os.environ, SECRET_TOKEN="x", LD_PRELOAD="/evil.so"))
    keys = r.out.split()
    assert sorted(keys) == sorted(["PATH", "HOME", "TMPDIR", "USER", "LOGNAME", "LANG", "CELLA_FD",
                                   "CELLA_APP_ID", "GREETING", "PWD"]), keys  # PWD: dash exports it


@pytest.mark.twin
def test_only_stdio_and_channel_fds(state, make_app):
    app = make_app("org.test.fds", "ls /proc/self/fd | sort -n | tr '\\n' ' '\n")
    # An fd cella itself holds open must not leak: pass one in.
    r_fd, w_fd = os.pipe()
    try:
        p = subprocess.run([CELLA, "run", "--state-dir", str(state), str(app)],
                           capture_output=True, text=True, pass_fds=(r_fd, w_fd))
    finally:
        os.close(r_fd)
        os.close(w_fd)
    fds = [int(x) for x in p.stdout.split()]
    # ls itself holds one more fd (its directory): 0 1 2 3 and that one.
    assert fds[:4] == [0, 1, 2, 3] and len(fds) == 5, p.stdout
    app2 = make_app("org.test.chan", "python3 -c 'import socket; s=socket.socket(fileno=3); print(int(s.type), int(s.family))'\n")
    r = run_cella(app2, state_dir=state)
    assert r.out.split() == [str(int(socket.SOCK_SEQPACKET)), str(int(socket.AF_UNIX))], r.out + r.err


@pytest.mark.twin
def test_app_folder_is_read_only_and_data_is_private(state, make_app):
    app = make_app("org.test.ro", "touch /app/x 2>&1 || true; touch /data/mine && ls -ln /data/mine | awk '{print $3}'; stat -c %a /data\n")
    r = run_cella(app, state_dir=state)
    assert "Read-only file system" in r.out
    assert r.out.split()[-2:] == ["1000", "700"], r.out
    data = state / "apps" / "org.test.ro" / "data"
    assert os.stat(data).st_uid == r.event("started")["uid"]
    assert oct(os.stat(data).st_mode & 0o777) == "0o700"


@pytest.mark.twin
def test_tmp_is_size_limited(state, make_app):
    app = make_app("org.test.tmp", "dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>&1; ls -l /tmp/fill | awk '{print $5}'\n", limits={"tmp": "4M"})
    r = run_cella(app, state_dir=state)
    assert "No space left on device" in r.out, r.out
    assert int(r.out.split()[-1]) <= 4 * 1024 * 1024
