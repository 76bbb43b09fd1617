"""The ipc core (docs/ipc.md) between real sandboxed apps: pipes, channels and shared
memory made, offered, accepted, opened and passed through one kernel (`cella boot`),
every refusal, the attacks on a read-only shared memory fd from inside the sandbox,
revocation, and the crash of either side.

The apps are tests/tools/ipc-probe (libcella) running the steps their manifest's
args name; each step prints "<step> rc=<OK|ERRNO> key=value..." to the app's log,
which the tests judge. Apps start in dependency order: the one that waits for an
offer starts first; the creator signals it with a channel (the ipc itself), so no
test sleeps.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CELLA, boot_cella
from daemon_util import install_app, require_cellad, running_cellad, wait_log_line

PROBE = os.environ.get(
    "CELLA_IPC_PROBE", str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "ipc-probe"))

A, B, C = "org.test.ipc.a", "org.test.ipc.b", "org.test.ipc.c"
SIG = f"{A}.sig"


@pytest.fixture
def apps(tmp_path):
    if not os.path.exists(PROBE):
        pytest.fail(f"{PROBE} is not built: build first (tests/run-all does)")
    root = tmp_path / "apps"
    root.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(root, 0o755)

    def make(app_id, args, permissions, **manifest):
        d = root / app_id.rsplit(".", 1)[1]
        d.mkdir()
        shutil.copy(PROBE, d / "ipc-probe")
        os.chmod(d / "ipc-probe", 0o755)
        m = {"id": app_id, "runtime": "native", "entry": "ipc-probe", "kind": "app",
             "restart": "no", "args": list(args), "permissions": list(permissions)}
        m.update(manifest)
        # B and C take offers from the others: a pipe offered to an app needs
        # bus.send for it (docs/ipc.md), normal when the app exports it.
        if app_id not in (A,) and "bus.send" not in m.setdefault("exports", []):
            m["exports"].append("bus.send")
        (d / "manifest.json").write_text(json.dumps(m))
        os.chmod(d, 0o755)
        return d

    make.root = root
    return make


def log_of(state, app_id):
    f = Path(state) / "logs" / f"{app_id}.log"
    return f.read_text() if f.exists() else ""


def steps(state, app_id):
    """[(step, {key: value})] of the app's log lines that are steps."""
    return steps_of(log_of(state, app_id))


def steps_of(text):
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].startswith("rc="):
            kv = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            out.append((words[0], kv))
    return out


def rc(state, app_id, step, n=0):
    """The rc of the n-th step named step."""
    got = [kv for s, kv in steps(state, app_id) if s == step]
    assert len(got) > n, f"{app_id}: no {step} #{n}:\n{log_of(state, app_id)}"
    return got[n]


def boot(apps, state, conf=None, timeout=120):
    if conf is not None:
        state.mkdir(mode=0o711, exist_ok=True)
        (state / "cellad.conf").write_text(json.dumps(conf))
        os.chmod(state / "cellad.conf", 0o644)
    p, status = boot_cella(apps.root, state, "--no-prompt", timeout=timeout)
    return p, status


def audit(state, app_id):
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--json", "--app", app_id],
                       capture_output=True, text=True, timeout=30)
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


B_RIGHTS = [f"ipc.pipe:{SIG}", f"ipc.shm:{A}.rw", f"ipc.shm:{A}.ro", f"ipc.shm:{A}.sealed"]
A_EXPORTS = [f"ipc.pipe:{SIG}", f"ipc.shm:{A}.rw", f"ipc.shm:{A}.ro", f"ipc.shm:{A}.sealed",
             f"ipc.pipe:{A}.p"]
A_RIGHTS = [f"ipc.shm:{A}.**", f"ipc.pipe:{A}.**", f"bus.send:{B}"]


def test_shm_shared_zero_copy_and_attacks_fail(apps, state):
    """A shares three objects with B: read-write, read-only by mode, read-only sealed.
    B writes into the first and A reads it back (the same pages); B's attacks on
    the read-only fds all fail inside its sandbox."""
    apps(A, ["shm", f"{A}.rw", "65536", B, "rw",
             "shm-ro", f"{A}.sealed", "4096", B,
             "shm", f"{A}.ro", "65536", B, "r",
             "pipe", SIG, "channel", "rw", B,
             "recv",            # B: "written"
             "open", f"{A}.rw", "r",                # A's own view of .rw
             "send", "done"],
         A_RIGHTS, exports=A_EXPORTS, depends=[B])
    apps(B, ["wait-offer", "accept",
             "open", f"{A}.rw", "rw", "write-shm", "from-b",
             "open", f"{A}.ro", "rw",          # not offered read-write
             "open", f"{A}.ro", "r",
             "attack",
             "open", f"{A}.sealed", "rw",      # sealed: offered READ only
             "open", f"{A}.sealed", "r",
             "attack",
             "send", "written", "recv"],
         B_RIGHTS)
    p, status = boot(apps, state)
    a, b = log_of(state, A), log_of(state, B)
    assert "ipc-probe: done" in a and "ipc-probe: done" in b, p.stderr + a + b
    # The channel: accepted by B, both ways.
    assert rc(state, B, "wait-offer")["name"] == SIG
    assert rc(state, B, "wait-offer")["from"] == A
    assert rc(state, B, "accept")["rc"] == "OK"
    assert rc(state, B, "recv")["got"] == "done"
    assert rc(state, A, "recv")["got"] == "written"
    # Zero copy: B saw A's "hello" in the read-write object, A sees B's write.
    assert rc(state, B, "read-shm", 0)["data"] == "hello"
    assert rc(state, A, "read-shm", 0)["data"] == "from-b"
    # Modes: read-write refused where only READ was offered.
    assert rc(state, B, "open", 1)["rc"] == "EPERM"
    assert rc(state, B, "open", 2)["rc"] == "OK"
    assert rc(state, B, "read-shm", 1)["data"] == "hello"
    assert rc(state, B, "open", 3)["rc"] == "EPERM"
    assert rc(state, B, "open", 4)["rc"] == "OK"
    assert rc(state, B, "read-shm", 2)["data"] == "sealed"
    # Every attack failed, twice (a mode-read-only fd, then a sealed one).
    attacks = [(s, kv) for s, kv in steps(state, B) if s == "attack"]
    lines = [l for l in b.splitlines() if l.startswith("attack ") and " rc=" in l
             and not l.startswith("attack rc=")]
    assert len(lines) == 2 * 12, b
    holes = [l for l in lines if l.endswith("rc=OK")]
    assert not holes, b
    reopen = [l for l in lines if l.startswith("attack reopen-rw ")]
    assert all(l.endswith("rc=EACCES") for l in reopen), reopen
    fexec = [l for l in lines if l.startswith("attack fexecve ")]
    assert all(l.endswith("rc=EACCES") for l in fexec), fexec
    assert len([a for a in attacks if a[1]["rc"] == "OK"]) == 2
    # The audit log names the object of each open, and the refusal.
    recs = [r for r in audit(state, B) if r.get("op") == "ipc.shm_open"]
    assert any(r.get("name") == f"{A}.ro" and r.get("errno") for r in recs), recs


def test_pipe_between_two_apps(apps, state):
    apps(A, ["pipe", f"{A}.p", "pipe", "w", B, "send", "through-the-pipe",
             "pipe", SIG, "channel", "rw", B, "recv"],
         A_RIGHTS, exports=A_EXPORTS, depends=[B])
    apps(B, ["wait-offer", "accept", "recv",
             "wait-offer", "accept", "send", "bye"],
         [f"ipc.pipe:{A}.p", f"ipc.pipe:{SIG}"])
    p, _ = boot(apps, state)
    b = log_of(state, B)
    assert "ipc-probe: done" in b, p.stderr + b + log_of(state, A)
    assert rc(state, B, "accept", 0)["modes"] == "1"  # the read end
    assert rc(state, B, "recv")["got"] == "through-the-pipe"
    assert rc(state, B, "accept", 1)["modes"] == "3"
    assert rc(state, A, "recv")["got"] == "bye"


def test_refusals(apps, state):
    """No right, not offered, a name outside the creator's id, a pass without
    bus.send, a pass that widens, a non-memfd and badly made memfds."""
    apps(A, ["shm", f"{A}.ro", "4096", B, "r",
             # Another's namespace, though the right is granted (B exports it).
             "shm", "org.test.ipc.b.mine", "4096", "-", "r",
             "bad", "plain", "bad", "nosealing", "bad", "sealed", "bad", "sparse",
             "bad", "partial", "bad", "size",
             "pipe", f"{A}.sigc", "channel", "rw", C, "recv",   # C: opened
             "pipe", SIG, "channel", "rw", B, "recv"],
         A_RIGHTS + ["ipc.shm:org.test.ipc.b.mine", f"bus.send:{C}"],
         exports=A_EXPORTS + [f"ipc.pipe:{A}.sigc"], depends=[B, C])
    apps(B, ["wait-offer", "accept",
             "open", f"{A}.ro", "r",
             "pass", C, "rw",            # wider than its handle
             "pass", C, "r",             # no bus.send:C in its manifest
             "open", f"{A}.other", "r",  # never asked for: EPERM
             "open", f"{A}.secret", "r",  # asked for, not exported: not granted
             "pipe", "org.test.ipc.b.x", "pipe", "w", A,  # no bus.send for A
             "send", "bye"],
         B_RIGHTS + [f"ipc.shm:{A}.secret", "ipc.pipe:org.test.ipc.b.**"],
         exports=["ipc.shm:org.test.ipc.b.mine"])
    apps(C, ["wait-offer", "accept",
             "open", f"{A}.ro", "r",     # has the right, not the offer
             "send", "x"],
         [f"ipc.shm:{A}.ro", f"ipc.pipe:{A}.sigc"])
    p, _ = boot(apps, state)
    a, b = log_of(state, A), log_of(state, B)
    assert "ipc-probe: done" in a and "ipc-probe: done" in b, p.stderr + a + b
    assert rc(state, A, "shm", 0)["rc"] == "OK"
    assert rc(state, A, "shm", 1)["rc"] == "EPERM"
    bad = {l.split()[1]: l.split()[2] for l in a.splitlines() if l.startswith("bad ")}
    assert bad == {k: "rc=EINVAL" for k in
                   ["plain", "nosealing", "sealed", "sparse", "partial", "size"]}, a
    assert rc(state, B, "open", 0)["rc"] == "OK"
    assert rc(state, B, "pass", 0)["rc"] == "EPERM"
    assert rc(state, B, "pass", 1)["rc"] == "EPERM"
    assert rc(state, B, "open", 1)["rc"] == "EPERM"
    assert rc(state, B, "open", 2)["rc"] == "EACCES"
    assert rc(state, B, "pipe")["rc"] == "EPERM"
    assert rc(state, C, "open")["rc"] == "EPERM", log_of(state, C)


def test_pass_narrows_and_is_audited(apps, state):
    """B passes its read-only handle on to C (B holds bus.send:C, which C exports);
    C gets its own read-only fd; the pass is audited."""
    apps(A, ["shm", f"{A}.rw", "4096", B, "rw",
             "pipe", SIG, "channel", "rw", B, "recv"],
         A_RIGHTS, exports=A_EXPORTS, depends=[B])
    apps(B, ["wait-offer", "accept",
             "open", f"{A}.rw", "rw", "write-shm", "passed-on",
             "pass", C, "r",
             "send", "bye",  # to A, on its channel
             "wait-offer",   # C's channel: it has accepted
             "accept", "recv", "send", "bye-c"],
         B_RIGHTS + [f"bus.send:{C}", "ipc.pipe:org.test.ipc.c.ok"], depends=[C])
    apps(C, ["wait-offer", "accept", "read-shm", "attack",
             "pipe", "org.test.ipc.c.ok", "channel", "rw", B, "send", "ok", "recv"],
         [f"ipc.shm:{A}.rw", "ipc.pipe:org.test.ipc.c.**", f"bus.send:{B}"],
         exports=["bus.send", "ipc.pipe:org.test.ipc.c.ok"])
    p, _ = boot(apps, state)
    c = log_of(state, C)
    assert "ipc-probe: done" in c, p.stderr + c + log_of(state, B)
    assert rc(state, B, "pass")["rc"] == "OK"
    assert rc(state, C, "wait-offer")["from"] == B
    assert rc(state, C, "accept")["modes"] == "1"
    assert rc(state, C, "read-shm")["data"] == "passed-on"
    lines = [l for l in c.splitlines() if l.startswith("attack ") and not l.startswith("attack rc")]
    assert lines and not [l for l in lines if l.endswith("rc=OK")], c
    recs = [r for r in audit(state, B) if r.get("op") == "ipc.pass"]
    assert recs and recs[0].get("to") == C and recs[0].get("modes") == 1, recs
    assert recs[0].get("from_modes") == 3 and recs[0].get("name") == f"{A}.rw", recs


def test_quotas(apps, state):
    """cellad.conf's ipc.* quotas: objects, shared memory bytes, pending offers."""
    apps(A, ["shm", f"{A}.o1", "8192", "-", "r",
             "shm", f"{A}.o2", "8192", "-", "r",     # over ipc.shm_bytes_max (12 KiB)
             "shm", f"{A}.o3", "4096", "-", "r",
             "shm", f"{A}.o4", "4096", "-", "r",     # over ipc.objects_max (2)
             "close",                                 # o3 goes
             "pipe", f"{A}.p", "pipe", "w", B,        # 1 pending offer
             "pipe", f"{A}.p", "pipe", "w", B,        # over ipc.pending_max (1)...
             "list"],
         A_RIGHTS, exports=A_EXPORTS, depends=[B])
    # B runs until the boot ends (a service), and accepts nothing.
    apps(B, ["hold"], [f"ipc.pipe:{A}.p"], kind="service")
    p, _ = boot(apps, state, conf={"ipc": {"objects_max": 2, "shm_bytes_max": 12288,
                                           "pending_max": 1}})
    a = log_of(state, A)
    assert "ipc-probe: done" in a, p.stderr + a
    assert [kv["rc"] for s, kv in steps(state, A) if s == "shm"] == \
        ["OK", "EDQUOT", "OK", "EDQUOT"], a
    assert [kv["rc"] for s, kv in steps(state, A) if s == "pipe"] == ["OK", "EDQUOT"], a
    assert rc(state, A, "list")["objects_max"] == "2"


def test_revoke_closes_and_leaves_the_mapping_readable(apps, state):
    """Revoking B's right closes its handle (CELLA_EVENT_IPC_CLOSED "revoked") and
    stops new opens; what B mapped before stays readable (docs/ipc.md "Revocation").
    Under cellad, whose org.cella.Logs follows B's output as it comes."""
    require_cellad()
    a = apps(A, ["shm", f"{A}.rw", "4096", B, "r",
                 "pipe", SIG, "channel", "rw", B, "recv"],
             A_RIGHTS, exports=A_EXPORTS)
    b = apps(B, ["mark", "b-up", "wait-offer", "accept", "open", f"{A}.rw", "r",
                 "mark", "opened", "wait-closed", "read-shm", "open", f"{A}.rw", "r",
                 "send", "bye"],
             B_RIGHTS)
    install_app(state, a)
    install_app(state, b)
    with running_cellad(state, "--no-autostart") as d:
        d.call("org.cella.Start", {"app": B})
        wait_log_line(d, B, "b-up", timeout=60)
        d.call("org.cella.Start", {"app": A})
        wait_log_line(d, B, "opened", timeout=60)
        r = subprocess.run([CELLA, "revoke", "--state-dir", str(state), B, f"ipc.shm:{A}.rw"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        text = wait_log_line(d, B, "ipc-probe: done", timeout=60)
    got = steps_of(text)
    closed = [kv for s, kv in got if s == "wait-closed"][0]
    opens = [kv for s, kv in got if s == "open"]
    assert closed["reason"] == "revoked" and closed["handle"] == opens[0]["handle"], text
    assert [kv["data"] for s, kv in got if s == "read-shm"][1] == "hello", text  # still mapped
    assert opens[1]["rc"] in ("EACCES", "EPERM"), text


def test_crash_of_the_opener_leaks_nothing(apps, state):
    """B opens A's object and crashes; A's channel end learns "peer-gone"; A closes
    its handle, and with ipc.objects_max 2 can create two objects again: nothing
    of B's kept the first one."""
    apps(A, ["shm", f"{A}.rw", "4096", B, "r",
             "pipe", SIG, "channel", "rw", B,
             "recv",                  # B: "opened"
             "wait-closed",           # the channel: B is gone
             "recv",                  # EOF
             "close",                 # the channel's handle is closed already: ENOENT
             "list"],
         A_RIGHTS, exports=A_EXPORTS, depends=[B])
    apps(B, ["wait-offer", "accept", "open", f"{A}.rw", "r", "send", "opened", "abort"],
         B_RIGHTS)
    p, _ = boot(apps, state, conf={"ipc": {"objects_max": 2}})
    a = log_of(state, A)
    assert "ipc-probe: done" in a, p.stderr + a + log_of(state, B)
    assert rc(state, A, "wait-closed")["reason"] == "peer-gone"
    assert rc(state, A, "recv", 1)["got"] == "EOF"
    # The channel object went with B; the shm lives on A's own handle only.
    assert rc(state, A, "list")["objects"] == "1", a
    assert rc(state, A, "list")["handles"] == "1", a


def test_crash_of_the_creator_leaks_nothing(apps, state):
    """A crashes while B holds its object: B's channel end learns "peer-gone", B's
    mapping stays readable. Once B closes its handle, A (restarted) finds nothing of
    its first run charged to it: with ipc.objects_max 2 (the shm and the channel of
    its first run, the channel and the shm of its second) its new object fits."""
    apps(A, ["first-run",
             "shm", f"{A}.rw", "4096", B, "r",
             "pipe", SIG, "channel", "rw", B,
             "recv",                       # B: "opened"
             "abort",
             # the restart goes on from here:
             "pipe", f"{A}.again", "channel", "rw", B,
             "recv",                       # B: "closed"
             "list",
             "shm", f"{A}.rw", "4096", "-", "r"],
         A_RIGHTS, exports=A_EXPORTS + [f"ipc.pipe:{A}.again"], depends=[B],
         restart="on-failure")
    apps(B, ["wait-offer", "accept", "open", f"{A}.rw", "r", "send", "opened",
             "wait-closed",               # the channel: A is gone
             "read-shm", "close",         # its shm handle
             "wait-offer", "accept", "send", "closed"],
         B_RIGHTS + [f"ipc.pipe:{A}.again"])
    p, _ = boot(apps, state, conf={"ipc": {"objects_max": 2}})
    a, b = log_of(state, A), log_of(state, B)
    assert "ipc-probe: done" in a and "ipc-probe: done" in b, p.stderr + a + b
    assert rc(state, B, "wait-closed")["reason"] == "peer-gone"
    assert rc(state, B, "read-shm", 1)["data"] == "hello"
    assert rc(state, B, "close")["rc"] == "OK"
    assert rc(state, A, "first-run", 1)["again"] == "1"
    assert rc(state, A, "list")["objects"] == "1", a   # the new channel only
    assert [kv["rc"] for s, kv in steps(state, A) if s == "shm"] == ["OK", "OK"], a


def test_several_readers_by_topic(apps, state):
    """One object offered to a topic's subscribers, opened at once by three apps whose
    bus.subscribe covers the pattern (each gets its own read-only fd and sees the
    same pages), refused to one whose subscription is narrower."""
    readers = [f"org.test.ipc.r{i}" for i in range(1, 5)]
    steps_a = ["shm", f"{A}.m", "65536", f"topic:{A}.news.*", "r"]
    for i, r in enumerate(readers, 1):
        steps_a += ["pipe", f"{A}.s{i}", "channel", "rw", r]
    apps(A, steps_a + ["hold"],
         A_RIGHTS + [f"bus.send:{r}" for r in readers],
         exports=[f"ipc.shm:{A}.m", f"bus.subscribe:{A}.news.**", f"bus.subscribe:{A}.news.x"] +
         [f"ipc.pipe:{A}.s{i}" for i in range(1, 5)],
         kind="service", depends=readers)
    for i, r in enumerate(readers, 1):
        sub = f"bus.subscribe:{A}.news.x" if i == 4 else f"bus.subscribe:{A}.news.**"
        apps(r, ["wait-offer", "accept", "open", f"{A}.m", "r", "attack"],
             [f"ipc.shm:{A}.m", f"ipc.pipe:{A}.s{i}", sub])
    p, _ = boot(apps, state)
    for r in readers[:3]:
        log = log_of(state, r)
        assert "ipc-probe: done" in log, p.stderr + log
        assert rc(state, r, "open")["rc"] == "OK", log
        assert rc(state, r, "read-shm")["data"] == "hello", log
        lines = [l for l in log.splitlines()
                 if l.startswith("attack ") and not l.startswith("attack rc")]
        assert lines and not [l for l in lines if l.endswith("rc=OK")], log
    assert rc(state, readers[3], "open")["rc"] == "EPERM", log_of(state, readers[3])
