"""ipc semaphores and message queues (docs/ipc.md "Semaphores", "Message queues"),
end to end with real apps in their sandboxes: tests/tools/ipc-semq-probe (libcella's
cella_sem_* and cella_queue_*) under one kernel, either `cella boot` of a folder of
apps or a bare cellad whose installed apps the test starts, kills and revokes.

Each app prints one line per finding; the test reads the apps' logs (for cellad,
org.cella.Logs as a stream: the line is an event, no polling)."""
import collections
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CELLA, boot_cella
from daemon_util import require_cellad, running_cellad

PROBE = os.environ.get(
    "CELLA_IPC_SEMQ_PROBE",
    str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "ipc-semq-probe"))

OWNER = "org.test.semq.a"
# The owner's names are normal rights for other apps only when it exports them
# (docs/capabilities.md "Reaching other apps").
OWNER_EXPORTS = [f"ipc.sem:{OWNER}.**", f"ipc.queue:{OWNER}.**"]


def write_app(root, app_id, args, permissions=(), exports=(), kind="app"):
    """An app folder under root running the probe with args."""
    d = Path(root) / app_id
    d.mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(d, 0o755)
    shutil.copy(PROBE, d / "ipc-semq-probe")
    os.chmod(d / "ipc-semq-probe", 0o755)
    manifest = {"id": app_id, "runtime": "native", "entry": "ipc-semq-probe", "kind": kind,
                "args": list(args), "permissions": list(permissions)}
    if exports:
        manifest["exports"] = list(exports)
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def log_of(state, app_id):
    f = Path(state) / "logs" / f"{app_id}.log"
    return f.read_text(errors="replace") if f.exists() else ""


def boot(root, state, timeout=180):
    p, status = boot_cella(root, state, "--no-prompt", timeout=timeout)
    logs = {d.name: log_of(state, d.name) for d in Path(root).iterdir()}
    assert p.returncode == 0, f"boot failed: {p.returncode}\n{p.stderr}\n" + "\n".join(
        f"--- {k}\n{v}" for k, v in logs.items())
    return logs


@pytest.fixture
def probe_ok():
    if not Path(PROBE).exists():
        pytest.fail(f"the probe is not built at {PROBE}: build first")


def test_a_semaphore_between_two_apps_with_timeouts(tmp_path, state, probe_ok):
    root = tmp_path / "apps"
    peer = "org.test.semq.b"
    write_app(root, OWNER, ["sem-owner", f"{OWNER}.s", peer, "300"],
              permissions=[f"ipc.sem:{OWNER}.s.**"], exports=OWNER_EXPORTS)
    write_app(root, peer, ["sem-peer", f"{OWNER}.s", "300"],
              permissions=[f"ipc.sem:{OWNER}.s.**"])
    logs = boot(root, state)
    a, b = logs[OWNER], logs[peer]
    assert "trywait on 0: EAGAIN" in a, a
    m = re.search(r"wait 200 ms on 0: (\w+) after (\d+) ms", a)
    assert m and m.group(1) == "ETIMEDOUT", a
    assert 200 <= int(m.group(2)) < 5000, a
    assert re.search(r"299 round trips, [\d.]+ us each", a), a
    assert "peer done" in a and "sem-owner: done" in a, a
    assert "answered 300" in b and "sem-peer: done" in b, b


def test_a_holder_clearing_o_nonblock_cannot_make_a_wait_outlast_its_timeout(tmp_path, state,
                                                                            probe_ok):
    """Every holder of a semaphore shares one open file description, so one can
    clear O_NONBLOCK for all. cella_sem_wait() reads with preadv2(RWF_NOWAIT): the
    other app's wait still ends at its timeout, and still takes a post."""
    root = tmp_path / "apps"
    holder = "org.test.semq.h"
    s = f"{OWNER}.nb"
    write_app(root, OWNER, ["try", f"screate:{s}:0", f"waitdone:{OWNER}.nbok:1", "swait:300",
                            "spost", "swait:300"],
              permissions=[f"ipc.sem:{s}", f"ipc.sem:{OWNER}.nbok"], exports=OWNER_EXPORTS)
    write_app(root, holder, ["try", f"sopenwait:{s}", "sblock", f"postdone:{OWNER}.nbok"],
              permissions=[f"ipc.sem:{s}", f"ipc.sem:{OWNER}.nbok"])
    logs = boot(root, state, timeout=60)
    assert "ALLOWED sblock" in logs[holder], logs[holder]
    o = logs[OWNER]
    assert "REFUSED swait 300: ETIMEDOUT" in o and "ALLOWED swait 300" in o, o


def test_the_readiness_fd_follows_the_queue_and_a_hostile_holder_cannot_stall_the_kernel(
        tmp_path, state, probe_ok):
    """A READ handle's fd is readable while messages wait and not when the queue is
    empty. A holder that clears O_NONBLOCK on it and drains it itself must not make
    the kernel's own drain block (which would stall every app of the kernel): the
    owner's receives and sends after that still complete."""
    root = tmp_path / "apps"
    h = "org.test.semq.h"
    q = f"{OWNER}.ready"
    write_app(root, OWNER, [
        "try", f"qcreate:{q}:8:100:offer={h}/r", "sendtext:one:0", f"waitdone:{OWNER}.ok:1",
        "recv:10:0", "sendtext:two:0", f"waitdone:{OWNER}.ok2:1", "recv:10:0",
        f"screate:{OWNER}.g:1", f"waitdone:{OWNER}.ok3:1"],
        permissions=[f"ipc.queue:{q}", f"ipc.sem:{OWNER}.*"], exports=OWNER_EXPORTS)
    write_app(root, h, [
        "try", f"qopenwait:{q}:r", "qready:5000", "qblock", "qdrain", f"postdone:{OWNER}.ok",
        "qready:5000", f"postdone:{OWNER}.ok2", f"gate:{OWNER}.g", "qready:300",
        f"postdone:{OWNER}.ok3"],
        permissions=[f"ipc.queue:{q}", f"ipc.sem:{OWNER}.*"])
    logs = boot(root, state, timeout=60)
    o, x = logs[OWNER], logs[h]
    assert x.count("ALLOWED qready 5000") == 2, x
    assert "ALLOWED qblock" in x and "ALLOWED qdrain" in x, x
    assert "REFUSED qready 300: ETIMEDOUT" in x, x
    assert o.count("ALLOWED recv 10 0") == 2 and "got 1 0" in o and "got 2 0" in o, o
    assert "try: done" in o, o


def test_a_create_refused_for_the_handle_quota_leaves_no_queue(tmp_path, state, probe_ok):
    """ipc.handles_max 3 (cellad.conf): the app holds three semaphore handles, so a
    queue create (persistent or not) is EDQUOT for its handle, and the queue it made
    goes again, from the store too: opening the name finds nothing."""
    root = tmp_path / "apps"
    state.mkdir(mode=0o711)
    (state / "cellad.conf").write_text(json.dumps({"ipc": {"handles_max": 3}}))
    os.chmod(state / "cellad.conf", 0o644)
    write_app(root, OWNER, ["try", f"screate:{OWNER}.s:0", f"sopen:{OWNER}.s", f"sopen:{OWNER}.s",
                            f"qcreate:{OWNER}.p:4:10:persist", f"qcreate:{OWNER}.t:4:10",
                            f"qopen:{OWNER}.p:rw", f"qopen:{OWNER}.t:rw"],
              permissions=[f"ipc.sem:{OWNER}.s", f"ipc.queue:{OWNER}.*"])
    o = boot(root, state)[OWNER]
    assert o.count("ALLOWED s") == 3, o
    assert f"REFUSED qcreate {OWNER}.p 4: EDQUOT" in o, o
    assert f"REFUSED qcreate {OWNER}.t 4: EDQUOT" in o, o
    assert f"REFUSED qopen {OWNER}.p rw: ENOENT" in o, o
    assert f"REFUSED qopen {OWNER}.t rw: ENOENT" in o, o
    import sqlite3
    db = sqlite3.connect(f"file:{state / 'ipc-queues.db'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT count(*) FROM queues").fetchone()[0] == 0
    finally:
        db.close()


def test_a_semaphore_under_contention_counts_exactly(tmp_path, state, probe_ok):
    """One app posts 6000 in uneven chunks, four take concurrently: the takes add up
    to exactly 6000 and nothing is left."""
    root = tmp_path / "apps"
    takers = [f"org.test.semq.t{i}" for i in range(4)]
    write_app(root, OWNER, ["sem-give", f"{OWNER}.pool", "org.test.semq.t*", "6000", "4"],
              permissions=[f"ipc.sem:{OWNER}.pool", f"ipc.sem:{OWNER}.pool.done"],
              exports=OWNER_EXPORTS)
    for t in takers:
        write_app(root, t, ["sem-take", f"{OWNER}.pool"],
                  permissions=[f"ipc.sem:{OWNER}.pool", f"ipc.sem:{OWNER}.pool.done"])
    logs = boot(root, state)
    assert "posted 6000" in logs[OWNER] and "left 0" in logs[OWNER], logs[OWNER]
    took = [int(re.search(r"took (\d+)", logs[t]).group(1)) for t in takers]
    assert sum(took) == 6000, took


def test_a_queue_under_contention_loses_and_doubles_nothing(tmp_path, state, probe_ok):
    """Three producers send 3000 messages each through a queue of depth 256 (so
    they meet a full queue and retry), two consumers receive in batches until the
    owner's STOP (priority 0: after every message): every message arrives exactly
    once, each producer's in its order, with the kernel's sender id."""
    root = tmp_path / "apps"
    producers = [f"org.test.semq.p{i}" for i in range(3)]
    consumers = [f"org.test.semq.c{i}" for i in range(2)]
    rights = [f"ipc.queue:{OWNER}.jobs", f"ipc.sem:{OWNER}.jobs.done"]
    write_app(root, OWNER, ["q-owner", f"{OWNER}.jobs", "org.test.semq.*", "256", "3", "2"],
              permissions=rights, exports=OWNER_EXPORTS)
    for i, p in enumerate(producers):
        write_app(root, p, ["q-produce", f"{OWNER}.jobs", f"p{i}", "3000"], permissions=rights)
    for c in consumers:
        write_app(root, c, ["q-consume", f"{OWNER}.jobs"], permissions=rights)
    logs = boot(root, state, timeout=300)
    got = collections.Counter()
    for c in consumers:
        assert "ORDER" not in logs[c], logs[c][-2000:]
        for line in logs[c].splitlines():
            m = re.match(r"m (p(\d+):\d+) (\S+)$", line)
            if m:
                assert m.group(3) == producers[int(m.group(2))], line
                got[m.group(1)] += 1
    want = {f"p{i}:{k}" for i in range(3) for k in range(3000)}
    assert set(got) == want, (len(set(got)), len(want))
    assert max(got.values()) == 1, [k for k, v in got.items() if v > 1][:10]
    for p in producers:
        assert "sent 3000" in logs[p], logs[p]


def test_queue_rights_and_refusals(tmp_path, state, probe_ok):
    root = tmp_path / "apps"
    reader, stranger, noright = "org.test.semq.r", "org.test.semq.s", "org.test.semq.n"
    q = f"{OWNER}.q"
    write_app(root, OWNER, [
        "try",
        f"qcreate:{q}:4:100:offer={reader}/r",
        "recv:1:0",             # empty, no wait: EAGAIN
        "recv:1:300",           # empty, waits: ETIMEDOUT
        "send:5:10",            # over depth 4: EAGAIN, nothing sent
        "send:1:101",           # over message_bytes_max 100: EMSGSIZE
        "sendtext:low:0", "sendtext:high:31", "sendtext:mid:5", "sendtext:low2:0",
        "send:1:1",             # the queue holds 4: full
        "recv:10:0",            # high, mid, low, low2
        f"qcreate:{reader}.x:4:100",     # outside the owner's namespace: EPERM
        f"qcreate:{OWNER}.deep:5000:100",  # over ipc.queue_depth_max (1024): EDQUOT
        f"qcreate:{OWNER}.mid:16:20000",
        "send:3:20000", "send:3:20000",  # 6 messages of 20000 bytes
        "recv:10:0", "recv:10:0",        # a reply holds 64 KiB: 3, then 3
        f"qcreate:{OWNER}.big:1024:65000",
        "fill:65000",           # until the owner's ipc.queued_bytes_max (4 MiB)
        f"qcreate:{q}:4:100",   # the name is taken: EEXIST
        f"waitdone:{OWNER}.done:2",
    ], permissions=[f"ipc.queue:{OWNER}.**", f"ipc.queue:{reader}.x", f"ipc.sem:{OWNER}.done"],
        exports=OWNER_EXPORTS)
    write_app(root, reader, [
        "try", f"qopenwait:{q}:r", "send:1:1", f"qopen:{q}:w", f"qopen:{q}:rw",
        f"postdone:{OWNER}.done",
    ], permissions=[f"ipc.queue:{q}", f"ipc.sem:{OWNER}.done"])
    write_app(root, stranger, ["try", f"qopenwait:{q}:r", f"postdone:{OWNER}.done"],
              permissions=[f"ipc.queue:{q}", f"ipc.sem:{OWNER}.done"])
    # Asks for nothing: the open is refused before the name is looked at.
    write_app(root, noright, ["try", f"qopen:{q}:r"], permissions=[])
    # A right on another app's name is never granted at install; the user grants it,
    # and the kernel's namespace check still refuses the create.
    g = subprocess.run([CELLA, "grant", "--state-dir", str(state), "--app-dir",
                        str(root / OWNER), OWNER, f"ipc.queue:{reader}.x"],
                       capture_output=True, text=True)
    assert g.returncode == 0, g.stderr
    logs = boot(root, state)
    o, r, s, n = logs[OWNER], logs[reader], logs[stranger], logs[noright]
    assert f"ALLOWED qcreate {q} 4" in o, o
    assert "REFUSED recv 1 0: EAGAIN" in o, o
    assert "REFUSED recv 1 300: ETIMEDOUT" in o, o
    assert "REFUSED send 5 10: EAGAIN" in o, o
    assert "REFUSED send 1 101: EMSGSIZE" in o, o
    assert "REFUSED send 1 1: EAGAIN" in o, o
    got = re.findall(r"got (\d+) (\d+) (\S+) (\S+)", o[:o.index(f"qcreate {OWNER}.mid")])
    assert [(g[1], g[3]) for g in got] == [("31", "high"), ("5", "mid"), ("0", "low"),
                                           ("0", "low2")], o
    assert all(g[2] == OWNER for g in got), got
    seqs = {g[3]: int(g[0]) for g in got}
    assert seqs["low"] < seqs["high"] < seqs["mid"] < seqs["low2"], seqs
    assert f"REFUSED qcreate {reader}.x 4: EPERM" in o, o
    assert f"REFUSED qcreate {OWNER}.deep 5000: EDQUOT" in o, o
    assert f"ALLOWED qcreate {OWNER}.big 1024" in o, o
    # each receive of the 20000-byte messages stops at the 64 KiB reply: 3 and 3
    mid = o[o.index(f"ALLOWED qcreate {OWNER}.mid"):o.index(f"ALLOWED qcreate {OWNER}.big")]
    assert re.findall(r"depth (\d+)", mid) == ["3", "0"], mid
    assert len(re.findall(r"got \d+ 0 " + OWNER + " x{20000}\n", mid)) == 6, mid[:300]
    m = re.search(r"filled (\d+)", o)
    assert m and int(m.group(1)) == (4 << 20) // 65000, o
    assert "REFUSED fill 65000: EDQUOT" in o, o
    assert f"REFUSED qcreate {q} 4: EEXIST" in o, o
    assert f"ALLOWED waitdone {OWNER}.done" in o, o
    # the reader: READ only, as offered
    assert f"ALLOWED qopenwait {q} r" in r, r
    assert "REFUSED send 1 1: EPERM" in r, r
    assert f"REFUSED qopen {q} w: EPERM" in r, r
    assert f"REFUSED qopen {q} rw: EPERM" in r, r
    # the stranger holds the right but was offered nothing
    assert f"REFUSED qopenwait {q} r: EPERM" in s, s
    assert re.search(rf"REFUSED qopen {re.escape(q)} r: E(PERM|ACCES)", n), n


# ---- under cellad: crashes, revocation, persistence -----------------------------------


def cella(state, *args, check=0):
    p = subprocess.run([CELLA, *map(str, args), "--state-dir", str(state)],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check is not None:
        assert p.returncode == check, f"cella {args}: {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def wait_text(d, app, want, timeout=60, count=1):
    """Follows app's log through cellad (org.cella.Logs, more) until it holds want
    count times (the log outlives a restart: a second run's line is the second
    occurrence); returns the text seen."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.settimeout(timeout)
        s.sendall((json.dumps({"method": "org.cella.Logs",
                               "parameters": {"app": app, "lines": 1000},
                               "more": True}) + "\n").encode())
        f = s.makefile("rb")
        seen = ""
        while True:
            line = f.readline()
            assert line, f"cellad ended the log stream before '{want}': {seen}"
            reply = json.loads(line)
            assert "error" not in reply, reply
            seen += json.dumps(reply["parameters"])
            if seen.count(want) >= count:
                return seen


def kill_and_wait(d, state, app, timeout=60):
    """cella kill app (SIGKILL), then waits for the kernel's record of its exit on
    org.cella.Events (live status records: an event, not a poll)."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket))
        s.settimeout(timeout)
        s.sendall(b'{"method":"org.cella.Events","parameters":{},"more":true}\n')
        f = s.makefile("rb")
        while "live" not in json.loads(f.readline()).get("parameters", {}):
            pass
        cella(state, "kill", app)  # SIGKILL, the default
        while True:
            line = f.readline()
            assert line, f"cellad ended the event stream before {app} exited"
            ev = json.loads(line).get("parameters", {}).get("event", {})
            if ev.get("app") == app and ev.get("event", ev.get("what")) in ("exited", "failed"):
                return ev


def install(state, root, app_id, args, **kw):
    cella(state, "install", write_app(root, app_id, args, kind="service", **kw))


def test_crashes_and_a_revoke_leave_no_stuck_waiter_and_lose_nothing(tmp_path, probe_ok):
    """A receiver blocked in a receive is killed; another is revoked while blocked
    (its receive ends with ECANCELED and a new open is refused); a sender is killed
    after sending. A message sent afterwards is not swallowed by either waiter, and
    the dead sender's messages are all there: the owner receives the three itself."""
    require_cellad()
    root, state = tmp_path / "apps", tmp_path / "state"
    q = f"{OWNER}.crash"
    dead, revoked, sender, go = ("org.test.semq.dead", "org.test.semq.rv", "org.test.semq.snd",
                                 "org.test.semq.go")
    rights = [f"ipc.queue:{q}", f"ipc.sem:{OWNER}.go"]
    with running_cellad(state, "--no-autostart") as d:
        install(state, root, OWNER, [
            "try", f"qcreate:{q}:16:100:offer=org.test.semq.*/rw",
            f"waitdone:{OWNER}.go:1", "sendtext:after:2", "recv:4:5000"],
            permissions=[f"ipc.queue:{q}", f"ipc.sem:{OWNER}.go"], exports=OWNER_EXPORTS)
        install(state, root, dead, ["try", f"qopenwait:{q}:r", "hold"], permissions=rights)
        install(state, root, revoked, ["try", f"qopenwait:{q}:r", "hold", f"qopen:{q}:r"],
                permissions=rights)
        install(state, root, sender, ["try", f"qopenwait:{q}:w", "sendtext:s1:0",
                                      "sendtext:s2:0", "sleepms:600000"], permissions=rights)
        install(state, root, go, ["try", f"postdone:{OWNER}.go"], permissions=rights)
        cella(state, "start", OWNER)
        wait_text(d, OWNER, f"ALLOWED qcreate {q}")
        cella(state, "start", dead)
        cella(state, "start", revoked)
        wait_text(d, dead, "holding")
        wait_text(d, revoked, "holding")
        kill_and_wait(d, state, dead)
        cella(state, "revoke", revoked, f"ipc.queue:{q}")
        seen = wait_text(d, revoked, "REFUSED hold")
        assert "ECANCELED" in seen, seen
        seen = wait_text(d, revoked, f"REFUSED qopen {q} r")
        assert "EACCES" in seen, seen
        # both waiters are gone: the sender's messages stay in the queue
        cella(state, "start", sender)
        wait_text(d, sender, "sleeping")
        kill_and_wait(d, state, sender)
        cella(state, "start", go)
        seen = wait_text(d, OWNER, "ALLOWED recv 4 5000")
        got = re.findall(r"got (\d+) (\d+) (\S+) (\w+)", seen)
        assert [(g[2], g[3]) for g in got] == [(OWNER, "after"), (sender, "s1"),
                                               (sender, "s2")], seen


def test_a_revoked_semaphore_handle_refuses_opens_and_its_fd_stays_a_semaphore(tmp_path,
                                                                             probe_ok):
    """docs/ipc.md "Revocation": revoking ipc.sem closes the handle and refuses
    new opens; the eventfd the app already holds keeps working (a kernel cannot take
    an fd back), which the docs say and this checks."""
    require_cellad()
    root, state = tmp_path / "apps", tmp_path / "state"
    holder, go = "org.test.semq.h", "org.test.semq.go"
    s = f"{OWNER}.s"
    with running_cellad(state, "--no-autostart") as d:
        install(state, root, OWNER, ["try", f"screate:{s}:0", f"waitdone:{OWNER}.end:1"],
                permissions=[f"ipc.sem:{s}", f"ipc.sem:{OWNER}.end"], exports=OWNER_EXPORTS)
        install(state, root, holder, [
            "try", f"sopenwait:{s}", f"gate:{go}.gate", f"postdone:{go}.ok", "spost",
            "swait:0", "swait:0", f"sopen:{s}", f"postdone:{OWNER}.end"],
            permissions=[f"ipc.sem:{s}", f"ipc.sem:{go}.*", f"ipc.sem:{OWNER}.end"])
        # the gate lives while go waits for the holder's "ok"
        install(state, root, go, ["try", f"screate:{go}.gate:1", f"waitdone:{go}.ok:1"],
                permissions=[f"ipc.sem:{go}.*"], exports=[f"ipc.sem:{go}.**"])
        cella(state, "start", OWNER)
        wait_text(d, OWNER, f"ALLOWED screate {s}")
        cella(state, "start", holder)
        wait_text(d, holder, f"ALLOWED sopenwait {s}")
        cella(state, "revoke", holder, f"ipc.sem:{s}")
        cella(state, "start", go)  # opens the gate: the holder goes on, revoked
        seen = wait_text(d, holder, "try: done")
        assert f"ALLOWED gate {go}.gate" in seen, seen
        assert "ALLOWED spost" in seen, seen
        assert "ALLOWED swait 0" in seen and "REFUSED swait 0: EAGAIN" in seen, seen
        assert f"REFUSED sopen {s}: EACCES" in seen, seen
        wait_text(d, OWNER, "try: done")


def test_a_persistent_queue_survives_a_cellad_restart(tmp_path, probe_ok):
    require_cellad()
    root, state = tmp_path / "apps", tmp_path / "state"
    q = f"{OWNER}.keep"
    reader = "org.test.semq.r"
    with running_cellad(state, "--no-autostart") as d:
        install(state, root, OWNER, [
            "try", f"qcreate:{q}:16:100:persist:offer={reader}/r", "sendtext:one:0",
            "sendtext:two:7", "sendtext:three:0", "recv:1:0"],
            permissions=[f"ipc.queue:{q}"], exports=OWNER_EXPORTS)
        install(state, root, reader, ["try", f"qopenwait:{q}:r", "recv:10:0", "recv:1:0"],
                permissions=[f"ipc.queue:{q}"])
        cella(state, "start", OWNER)
        seen = wait_text(d, OWNER, "try: done")
        assert "got 2 7 org.test.semq.a two" in seen, seen
    # a new cellad on the same state directory: the queue and its two messages are back
    with running_cellad(state, "--no-autostart") as d:
        assert "restored 1 persistent queue" in d.log(), d.log()
        cella(state, "start", reader)
        seen = wait_text(d, reader, "try: done")
        assert "got 1 0 org.test.semq.a one" in seen, seen
        assert "got 3 0 org.test.semq.a three" in seen, seen
        assert "REFUSED recv 1 0: EAGAIN" in seen, seen
    # received is gone from the store too
    with running_cellad(state, "--no-autostart") as d:
        cella(state, "start", reader)
        seen = wait_text(d, reader, "try: done", count=2)
        assert "REFUSED recv 10 0: EAGAIN" in seen, seen


def test_a_store_held_by_another_kernel_is_restored_once_it_lets_go(tmp_path, probe_ok):
    """One kernel at a time holds ipc-queues.db (flock). While another holds it (here
    the test, as a cella run would), cellad's persistent creates are EIO naming the
    holder; once it lets go, cellad brings the stored queue back by itself."""
    import fcntl
    require_cellad()
    root, state = tmp_path / "apps", tmp_path / "state"
    q = f"{OWNER}.held"
    reader, other = "org.test.semq.r", "org.test.semq.o"
    with running_cellad(state, "--no-autostart") as d:
        install(state, root, OWNER, ["try", f"qcreate:{q}:4:10:persist:offer={reader}/r",
                                     "sendtext:kept:3"],
                permissions=[f"ipc.queue:{q}"], exports=OWNER_EXPORTS)
        install(state, root, reader, ["try", f"qopenwait:{q}:r", "recv:4:0"],
                permissions=[f"ipc.queue:{q}"])
        install(state, root, other, ["try", f"qcreate:{other}.p:4:10:persist"],
                permissions=[f"ipc.queue:{other}.p"])
        cella(state, "start", OWNER)
        wait_text(d, OWNER, "try: done")
    lock = os.open(state / "ipc-queues.db", os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with running_cellad(state, "--no-autostart") as d:
            cella(state, "start", other)
            seen = wait_text(d, other, "try: done")
            assert f"REFUSED qcreate {other}.p 4: EIO" in seen, seen
            cella(state, "start", reader)  # its open waits for the queue to exist
            fcntl.flock(lock, fcntl.LOCK_UN)
            seen = wait_text(d, reader, "try: done")
            assert f"ALLOWED qopenwait {q} r" in seen, seen
            assert f"got 1 3 {OWNER} kept" in seen, seen
            assert "restored 1 persistent queue" in d.log(), d.log()
    finally:
        os.close(lock)


def test_a_corrupt_queue_store_is_refused_with_a_clear_error(tmp_path, probe_ok):
    require_cellad()
    root, state = tmp_path / "apps", tmp_path / "state"
    state.mkdir(mode=0o711)
    (state / "ipc-queues.db").write_bytes(b"not a database " * 200)
    os.chmod(state / "ipc-queues.db", 0o600)
    with running_cellad(state, "--no-autostart") as d:
        install(state, root, OWNER, ["try", f"qcreate:{OWNER}.p:4:10:persist",
                                     f"qcreate:{OWNER}.t:4:10"],
                permissions=[f"ipc.queue:{OWNER}.*"])
        cella(state, "start", OWNER)
        seen = wait_text(d, OWNER, "try: done")
        assert f"REFUSED qcreate {OWNER}.p 4: EIO" in seen, seen
        assert f"ALLOWED qcreate {OWNER}.t 4" in seen, seen
        assert "ipc-queues.db" in d.log() and "move the file away" in d.log(), d.log()


# ---- pass-on, offers across a restart, removal -----------------------------------------


def test_a_queue_handle_passed_on_narrows_and_its_readiness_fd_works(tmp_path, state, probe_ok):
    """docs/ipc.md "Pass-on": the owner passes its READ|WRITE handle to B narrowed to
    WRITE: B accepts, sends, cannot receive (EPERM), its fd never turns readable, and
    it cannot pass the handle on wider (EPERM). C, offered READ, cannot pass READ|WRITE
    (EPERM) but passes READ to B, whose accepted READ handle gets a readiness fd that
    is readable while B's own message waits (the fd is bound to the accepted handle)."""
    root = tmp_path / "apps"
    b, cc = "org.test.semq.b", "org.test.semq.c"
    q = f"{OWNER}.pass"
    sems = f"ipc.sem:{OWNER}.*"
    write_app(root, OWNER, [
        "try", f"qcreate:{q}:8:100:offer={cc}/r", f"waitdone:{OWNER}.up:1", f"qpass:{b}:w",
        f"screate:{OWNER}.g:0", f"screate:{OWNER}.h:0", f"waitdone:{OWNER}.end:1"],
        permissions=[f"ipc.queue:{q}", sems, f"bus.send:{b}"], exports=OWNER_EXPORTS)
    write_app(root, b, [
        "try", f"postdone:{OWNER}.up", "qaccept", "sendtext:viaB:0", "recv:1:0", "qready:300",
        f"qpass:{cc}:rw", f"qpass:{cc}:w", f"postdone:{OWNER}.g", "qaccept", "qready:5000",
        "recv:10:0", f"postdone:{OWNER}.h", f"postdone:{OWNER}.end"],
        permissions=[f"ipc.queue:{q}", sems, f"bus.send:{cc}"], exports=["bus.send"])
    write_app(root, cc, [
        "try", f"qopenwait:{q}:r", f"gate:{OWNER}.g", f"qpass:{b}:rw", f"qpass:{b}:r",
        f"gate:{OWNER}.h"],
        permissions=[f"ipc.queue:{q}", sems, f"bus.send:{b}"], exports=["bus.send"])
    logs = boot(root, state, timeout=120)
    o, x, y = logs[OWNER], logs[b], logs[cc]
    assert f"ALLOWED qpass {b} w" in o, o
    lines = x.splitlines()
    assert lines.count(f"accepted 2 {q}") == 1 and lines.count(f"accepted 1 {q}") == 1, x
    assert x.index(f"accepted 2 {q}") < x.index(f"accepted 1 {q}"), x
    assert "ALLOWED sendtext viaB 0" in x, x
    assert "REFUSED recv 1 0: EPERM" in x, x              # a WRITE handle cannot receive
    assert "REFUSED qready 300: ETIMEDOUT" in x, x        # nor is its fd ever readable
    assert f"REFUSED qpass {cc} rw: EPERM" in x, x        # a pass never widens
    assert f"ALLOWED qpass {cc} w" in x, x                # equal modes pass
    assert "ALLOWED qready 5000" in x, x                  # the passed READ handle's fd
    assert f"got 1 0 {b} viaB" in x and "ALLOWED recv 10 0" in x, x
    assert f"REFUSED qpass {b} rw: EPERM" in y, y
    assert f"ALLOWED qpass {b} r" in y, y
    assert "try: done" in x and "try: done" in o and "try: done" in y, (o, x, y)


def stored_queues(state):
    """(name, owner) of every queue row in state's ipc-queues.db, and the number of
    offer and message rows (a read: WAL lets it run beside a kernel)."""
    import sqlite3
    db = sqlite3.connect(f"file:{state / 'ipc-queues.db'}?mode=ro", uri=True)
    try:
        rows = sorted(db.execute("SELECT name, owner FROM queues").fetchall())
        offers = db.execute("SELECT count(*) FROM offers").fetchone()[0]
        msgs = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        db.close()
    return rows, offers, msgs


def test_offers_changed_on_a_persistent_queue_survive_a_cellad_restart(tmp_path, probe_ok):
    """ipc.offer on a persistent queue is stored with it: after a restart the app
    offered later opens it, the one no longer offered is refused (EPERM)."""
    require_cellad()
    root, state = tmp_path / "apps", tmp_path / "state"
    q = f"{OWNER}.offers"
    early, late = "org.test.semq.early", "org.test.semq.late"
    with running_cellad(state, "--no-autostart") as d:
        install(state, root, OWNER, ["try", f"qcreate:{q}:4:10:persist:offer={early}/r",
                                     f"qoffer:{late}:rw"],
                permissions=[f"ipc.queue:{q}"], exports=OWNER_EXPORTS)
        install(state, root, early, ["try", f"qopen:{q}:r"], permissions=[f"ipc.queue:{q}"])
        install(state, root, late, ["try", f"qopen:{q}:w", f"qopen:{q}:rw"],
                permissions=[f"ipc.queue:{q}"])
        cella(state, "start", OWNER)
        seen = wait_text(d, OWNER, "try: done")
        assert f"ALLOWED qoffer {late} rw" in seen, seen
    assert stored_queues(state)[:2] == ([(q, OWNER)], 1)
    with running_cellad(state, "--no-autostart") as d:
        assert "restored 1 persistent queue" in d.log(), d.log()
        cella(state, "start", early)
        seen = wait_text(d, early, "try: done")
        assert f"REFUSED qopen {q} r: EPERM" in seen, seen
        cella(state, "start", late)
        seen = wait_text(d, late, "try: done")
        assert f"ALLOWED qopen {q} w" in seen and f"ALLOWED qopen {q} rw" in seen, seen


def test_removing_an_app_drops_its_queues_live_and_stored(tmp_path, probe_ok):
    """`cella remove` through cellad: the removed app's persistent queue goes from the
    running kernel (its holder gets IPC_CLOSED "destroyed") and from ipc-queues.db,
    with its offers and messages; other apps' queues stay. `cella forget` while a
    kernel that does not run the app holds the store has that kernel drop them
    (org.cella.AppForgotten); with no kernel running it drops the rows itself."""
    require_cellad()
    root, state = tmp_path / "apps", tmp_path / "state"
    q = f"{OWNER}.gone"
    b, c = "org.test.semq.b", "org.test.semq.c"
    with running_cellad(state, "--no-autostart") as d:
        install(state, root, OWNER, ["try", f"qcreate:{q}:4:10:persist:offer={b}/rw", "hold"],
                permissions=[f"ipc.queue:{q}"], exports=OWNER_EXPORTS)
        install(state, root, b, ["try", f"qcreate:{b}.keep:4:10:persist", "sendtext:k:0",
                                 f"qopenwait:{q}:rw", "sendtext:m:0", "qclosed"],
                permissions=[f"ipc.queue:{q}", f"ipc.queue:{b}.keep"])
        install(state, root, c, ["try", f"qcreate:{c}.keep:4:10:persist"],
                permissions=[f"ipc.queue:{c}.keep"])
        cella(state, "start", c)
        wait_text(d, c, "try: done")
        cella(state, "start", OWNER)
        wait_text(d, OWNER, "holding")
        cella(state, "stop", OWNER)
        cella(state, "start", b)
        wait_text(d, b, "ALLOWED sendtext m 0")
        assert stored_queues(state) == (
            [(q, OWNER), (f"{b}.keep", b), (f"{c}.keep", c)], 1, 2)
        cella(state, "remove", OWNER)
        seen = wait_text(d, b, "try: done")
        assert "closed destroyed" in seen and "ALLOWED qclosed" in seen, seen
        assert stored_queues(state) == ([(f"{b}.keep", b), (f"{c}.keep", c)], 0, 1)
        assert f"forgot 1 persistent queue(s) of {OWNER}" in d.log(), d.log()
    # a kernel that holds the store and does not run b: `cella forget` tells it
    with running_cellad(state, "--no-autostart") as d:
        assert "restored 2 persistent queue" in d.log(), d.log()
        p = cella(state, "forget", b)
        assert "queues are deleted" in p.stdout, p.stdout
        assert stored_queues(state) == ([(f"{c}.keep", c)], 0, 0)
        assert f"forgot 1 persistent queue(s) of {b}" in d.log(), d.log()
    # no kernel: `cella forget` drops the rows itself
    cella(state, "forget", c)
    assert stored_queues(state) == ([], 0, 0)
