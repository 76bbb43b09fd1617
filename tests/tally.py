#!/usr/bin/env python3
"""Counts a test stage's results for tests/run-all, and refuses a security test
that was skipped on a machine that can run it.

    tests/tally.py meson build-asan/meson-logs/testlog.json
    tests/tally.py junit build-asan/integration.xml
    tests/tally.py probes

A skip is counted as a skip, never as a pass: meson reports exit 77 as SKIP, pytest
writes <skipped/> into its JUnit XML. Each skipped test is printed with its reason.
A test in SECURITY (the sandbox, the seccomp filter, cgroups, the broker, the escape
and isolation tests) that was skipped while every probe it depends on says this
machine can run it is counted as failed: a green run must mean the sandbox was
tested wherever it could be. A probe that cannot tell (None) never fails a run.

The last line printed is "= PASSED FAILED SKIPPED" (three integers), which
tests/run-all adds to its totals. tests/test_tally.py tests this file.
"""
import fnmatch
import json
import os
import platform
import resource
import sys
import xml.etree.ElementTree as ET

# The programs and CPython's test suite (Debian: libpython3.11-testsuite) at the
# paths tests/unit/test-seccomp.c and tests/integration/test_real_programs.py use.
PYTHON_TESTSUITE = "/usr/lib/python3.11/test/test_os.py"
PROGRAMS = {"sh": "/bin/sh", "python3": "/usr/bin/python3", "sqlite3": "/usr/bin/sqlite3",
            "lua5.4": "/usr/bin/lua5.4", "setpriv": "/usr/bin/setpriv",
            "unshare": "/usr/bin/unshare"}


def _mounts():
    """(mount point, fs type) of every mount in /proc/self/mountinfo (proc(5))."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                out.append((left.split()[4], right.split()[0]))
    except OSError:
        pass
    return out


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _kernel_config(option):
    """True/False if the running kernel's config says whether OPTION is built in (or
    a module), None if no config can be read (/proc/config.gz, /boot/config-*)."""
    import gzip
    text = None
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        text = _read(f"/boot/config-{platform.release()}")
    if text is None:
        return None
    return any(line.startswith(f"{option}=y") or line.startswith(f"{option}=m")
               for line in text.splitlines())


def probe_all():
    """What this machine can run: probe name -> (True/False/None, why)."""
    p = {}
    root = os.geteuid() == 0
    p["root"] = (root, "running as root" if root else f"euid is {os.geteuid()}, not root")
    n = _read("/proc/sys/user/max_user_namespaces")
    userns = n is not None and int(n) > 0
    p["userns"] = (userns, f"user.max_user_namespaces is {n.strip() if n else 'missing'}")
    status = _read("/proc/self/status") or ""
    filters = "Seccomp_filters:" in status
    p["seccomp"] = (filters, "seccomp filters in /proc/self/status" if filters
                    else "the kernel has no seccomp filters (CONFIG_SECCOMP_FILTER)")
    actions = _read("/proc/sys/kernel/seccomp/actions_avail") or ""
    notif = "user_notif" in actions.split()
    p["seccomp_notify"] = (notif, f"kernel.seccomp.actions_avail: {actions.strip() or 'missing'}")
    if platform.machine() != "x86_64":
        p["ia32"] = (False, f"{platform.machine()} has no IA32 emulation")
    elif "ia32_emulation=0" in (_read("/proc/cmdline") or "") or \
            "ia32_emulation=false" in (_read("/proc/cmdline") or ""):
        p["ia32"] = (False, "turned off on the kernel command line")
    else:
        cfg = _kernel_config("CONFIG_IA32_EMULATION")
        p["ia32"] = (cfg, "CONFIG_IA32_EMULATION" + {True: "=y", False: " is off",
                                                     None: ": no kernel config to read"}[cfg])
    mounts = _mounts()
    types = dict(mounts)
    v1 = sorted({os.path.basename(m) for m, t in mounts if t == "cgroup"
                 and m.startswith("/sys/fs/cgroup/")})
    have_v1 = all(c in ",".join(v1) for c in ("memory", "pids", "freezer"))
    top = types.get("/sys/fs/cgroup")
    p["cgroup_v2"] = (top == "cgroup2", f"/sys/fs/cgroup is {top}")
    p["cgroup_hybrid"] = (top == "tmpfs" and types.get("/sys/fs/cgroup/unified") == "cgroup2"
                          and have_v1, f"/sys/fs/cgroup is {top}, v1 hierarchies: {v1}")
    p["cgroup_v1"] = (have_v1, f"v1 hierarchies: {v1}")
    p["cgroup"] = (p["cgroup_v2"][0] or have_v1, f"/sys/fs/cgroup is {top}, v1: {v1}")
    loop = os.access("/dev/loop-control", os.W_OK)
    p["loop"] = (loop, "/dev/loop-control " + ("writable" if loop else "missing or not writable"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    p["nofile_hard"] = (hard != resource.RLIM_INFINITY, f"hard RLIMIT_NOFILE is {hard}")
    for prog, path in PROGRAMS.items():
        ok = os.access(path, os.X_OK)
        p[prog] = (ok, path + (" present" if ok else " missing"))
    ts = os.path.exists(PYTHON_TESTSUITE)
    p["python_testsuite"] = (ts, PYTHON_TESTSUITE + (" present" if ts else " missing"))
    return p


SANDBOX = ["root", "userns", "seccomp"]
INTEGRATION = SANDBOX + ["cgroup"]

# Security suites -> the probes that say this machine can run them. Keys are meson
# test names (unit) or "module.py" / "module.py::test" globs (integration).
SECURITY = {
    # src/sandbox: namespaces, pivot_root jail, rlimits, seccomp, cgroups.
    "sandbox": SANDBOX,
    "sandbox-oom": SANDBOX + ["cgroup"],
    "sandbox-rlimit-hard": SANDBOX + ["nofile_hard"],
    # src/sandbox/seccomp: the allowlist filter and its listener.
    "seccomp": ["seccomp"],
    "seccomp-notify": ["seccomp", "seccomp_notify"],
    "seccomp-notify-batch": ["seccomp", "seccomp_notify"],
    "seccomp-ia32": ["seccomp", "ia32"],
    "seccomp-shell": ["seccomp", "sh"],
    "seccomp-python": ["seccomp", "python3"],
    "seccomp-sqlite": ["seccomp", "sqlite3"],
    "seccomp-lua": ["seccomp", "lua5.4"],
    "seccomp-regrtest": ["seccomp", "python_testsuite"],
    # src/sandbox/cgroup: limits, freeze, kill, sweep in each mode.
    "cgroup": [],
    "cgroup-hybrid": ["root", "cgroup_hybrid"],
    "cgroup-v1": ["root", "cgroup_v1"],
    "cgroup-v2": ["root", "cgroup_v2"],
    # The broker: every capability check an app meets.
    "broker": [],
    "broker-calls": [],
    # The keystore: keys at rest under the host key, tampered rows.
    "keystore": [],
    # The control socket's peer check; the app's data dir owner; its /data quota.
    "control-root": ["root"],
    "state-owner": ["root"],
    "storage-loop": ["root", "loop"],
    # Integration: real sandboxes, real escape attempts.
    "test_isolation.py": INTEGRATION,
    "test_fs_roots.py": INTEGRATION,
    "test_permissions.py": INTEGRATION,
    "test_reach.py": INTEGRATION,
    "test_identity.py": INTEGRATION,
    "test_ids_net.py": INTEGRATION,
    "test_limits.py": INTEGRATION,
    "test_storage.py": INTEGRATION + ["loop"],
    "test_broker_flood.py": INTEGRATION,
    "test_lua_wall.py": INTEGRATION,
    "test_run.py": INTEGRATION,
    "test_keystore.py": INTEGRATION,
    "test_real_programs.py": INTEGRATION + ["python_testsuite", "setpriv"],
}


def security_requirements(name):
    """The probes a security test depends on, or None if NAME is not one. NAME is a
    meson test name or "module.py::test" (the module's entry applies to its tests)."""
    if name in SECURITY:
        return SECURITY[name]
    module = name.split("::")[0]
    for pattern, req in SECURITY.items():
        if fnmatch.fnmatchcase(name, pattern) or pattern == module:
            return req
    return None


def verdict(name, probes):
    """For a skipped test: (True, why) if the skip is a failure (a security test this
    machine can run), else (False, why)."""
    req = security_requirements(name)
    if req is None:
        return False, "not a security test"
    missing = [f"{k}: {probes[k][1]}" for k in req if probes[k][0] is False]
    unknown = [f"{k}: {probes[k][1]}" for k in req if probes[k][0] is None]
    if missing:
        return False, "this machine cannot run it (" + "; ".join(missing) + ")"
    if unknown:
        return False, "cannot tell whether this machine can run it (" + "; ".join(unknown) + ")"
    return True, "a security test, and this machine can run it (" + ", ".join(req or ["always"]) + ")"


def tally(results, probes, out=sys.stdout):
    """results: (name, "pass"|"fail"|"skip", reason) for each test. Prints every skip
    and every refused skip; returns (passed, failed, skipped)."""
    passed = failed = skipped = 0
    for name, result, reason in results:
        if result == "pass":
            passed += 1
        elif result == "fail":
            failed += 1
        else:
            bad, why = verdict(name, probes)
            if bad:
                failed += 1
                print(f"FAIL {name} was skipped ({reason}), but it is {why}", file=out)
            else:
                skipped += 1
                print(f"skip {name}: {reason}", file=out)
    return passed, failed, skipped


def _skip_reason(stdout):
    lines = [line.strip() for line in (stdout or "").splitlines() if line.lstrip().startswith("SKIP")]
    return lines[-1] if lines else "exit status 77"


def read_meson(path):
    """meson's testlog.json (one JSON object a line) -> results for tally()."""
    out = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            res = r["result"]
            if res in ("OK", "EXPECTEDFAIL"):
                out.append((r["name"], "pass", ""))
            elif res == "SKIP":
                out.append((r["name"], "skip", _skip_reason(r.get("stdout"))))
            else:
                out.append((r["name"], "fail", res))
    return out


def read_junit(path):
    """pytest's JUnit XML -> results for tally(); names are "module.py::test"."""
    root = ET.parse(path).getroot()
    out = []
    for case in root.iter("testcase"):
        parts = [p for p in case.get("classname", "").split(".") if p.startswith("test_")]
        module = parts[-1] if parts else case.get("classname", "")
        name = f"{module}.py::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            out.append((name, "fail", ""))
        elif case.find("skipped") is not None:
            out.append((name, "skip", case.find("skipped").get("message", "")))
        else:
            out.append((name, "pass", ""))
    return out


def main(argv):
    if len(argv) == 2 and argv[1] == "probes":
        for k, (ok, why) in probe_all().items():
            print(f"{k:18} {'yes' if ok else 'no' if ok is False else '?':4} {why}")
        return 0
    if len(argv) != 3 or argv[1] not in ("meson", "junit"):
        print("\n".join(__doc__.strip().splitlines()[3:6]), file=sys.stderr)
        return 2
    try:
        results = (read_meson if argv[1] == "meson" else read_junit)(argv[2])
    except (OSError, ValueError, ET.ParseError) as e:
        print(f"FAIL cannot read {argv[2]}: {e}")
        print("= 0 1 0")
        return 0
    p, f, s = tally(results, probe_all())
    print(f"= {p} {f} {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
