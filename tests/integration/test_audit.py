"""cella audit: listing, filtering and checking the audit log (docs/audit.md).

The log is written through the library itself, by tests/tools/audit-append (built
beside the unit tests), so these tests read what the supervisor will write.
"""
import datetime
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import CELLA

AUDIT_APPEND = os.environ.get(
    "CELLA_AUDIT_APPEND", str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "audit-append"))


@pytest.fixture(autouse=True)
def _root():
    """Overrides conftest's: reading and writing an audit log needs no root."""


def append(state, *records, file_max=None):
    """Appends records (dicts: event, app, time, fields...) to state's audit log."""
    if not os.path.exists(AUDIT_APPEND):
        pytest.fail(f"{AUDIT_APPEND} is not built: build first (tests/run-all does)")
    cmd = [AUDIT_APPEND]
    if file_max is not None:
        cmd += ["--file-max", str(file_max)]
    cmd += [str(state)] + [json.dumps(r) for r in records]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def audit(state, *args):
    cmd = [CELLA, "audit"]
    if state is not None:
        cmd += ["--state-dir", str(state)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)


def rfc3339(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_file(state, n=1):
    return Path(state) / "audit" / f"log.{n:06d}.jsonl"


def three(state):
    append(state,
           {"event": "lifecycle", "what": "boot", "time": "2024-05-01T10:00:00Z"},
           {"app": "org.example.notes", "event": "call", "op": "fs.open",
            "path": "/data/notes.txt", "decision": "granted", "time": "2024-05-01T11:00:00Z"},
           {"app": "org.example.notes", "event": "seccomp", "denied": {"ptrace": 3},
            "time": "2024-05-01T12:00:00Z"})


def test_help_and_usage_errors(state):
    h = audit(None, "--help")
    assert h.returncode == 0
    for opt in ("--state-dir", "--app", "--since", "--verify", "--json"):
        assert opt in h.stdout
    top = subprocess.run([CELLA, "--help"], capture_output=True, text=True)
    assert "audit" in top.stdout
    for args in (["--since", "yesterday"], ["--since", "10y"], ["--verify", "--app", "x"],
                 ["--verify", "--since", "1h"], ["extra"], ["--no-such-option"], ["--app", ""]):
        p = audit(state, *args)
        assert p.returncode == 240, (args, p.returncode, p.stderr)
        assert p.stderr.startswith("cella: ") or "Usage" in p.stderr, p.stderr


def test_no_audit_log(state):
    p = audit(state, "--verify")
    assert p.returncode == 242, p.stderr
    assert "no audit log in" in p.stderr


# Not a twin: no app runs: it writes and checks an audit log, which a cellad would append to.
def test_verify_ok(state):
    three(state)
    p = audit(state, "--verify")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "audit log OK: 3 records, chain intact\n"
    j = audit(state, "--verify", "--json")
    assert j.returncode == 0
    v = json.loads(j.stdout)
    assert v["ok"] is True and v["records"] == 3 and v["head_seq"] == 3 and v["files"] == 1
    last = log_file(state).read_bytes().splitlines()[-1]
    assert v["head_hash"] == hashlib.blake2b(last, digest_size=32).hexdigest()


# Not a twin: no app runs: it writes and checks an audit log, which a cellad would append to.
def test_listing(state):
    three(state)
    p = audit(state)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines == [
        "#1 2024-05-01T10:00:00.000000Z - lifecycle what=boot",
        "#2 2024-05-01T11:00:00.000000Z org.example.notes call op=fs.open path=/data/notes.txt "
        "decision=granted",
        '#3 2024-05-01T12:00:00.000000Z org.example.notes seccomp denied={"ptrace":3}',
    ]


# Not a twin: no app runs: it writes and checks an audit log, which a cellad would append to.
def test_json_output_is_the_chain(state):
    """--json prints the stored lines; the chain checks out with Python's own BLAKE2b."""
    three(state)
    p = audit(state, "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 3
    assert lines == log_file(state).read_text().splitlines()
    prev = "0" * 64
    for i, line in enumerate(lines, 1):
        rec = json.loads(line)
        keys = list(rec)
        assert keys[:4] == ["seq", "time", "app", "event"] and keys[-1] == "prev", keys
        assert rec["seq"] == i
        assert rec["prev"] == prev
        prev = hashlib.blake2b(line.encode(), digest_size=32).hexdigest()
    assert json.loads(lines[0])["app"] is None


# Not a twin: no app runs: it writes and checks an audit log, which a cellad would append to.
def test_tampered_record(state):
    three(state)
    f = log_file(state)
    f.write_bytes(f.read_bytes().replace(b'"granted"', b'"denied!"'))
    p = audit(state, "--verify")
    assert p.returncode == 1
    assert ("audit log BROKEN: record 3 in log.000001.jsonl (line 3): prev hash does not match "
            "record 2: the log was changed") in p.stdout
    j = json.loads(audit(state, "--verify", "--json").stdout)
    assert j["ok"] is False and j["problem"] == "prev" and j["seq"] == 3 and j["line"] == 3
    # Listing stops before the changed record, and says why.
    ls = audit(state)
    assert ls.returncode == 1
    assert ls.stdout.splitlines() == ["#1 2024-05-01T10:00:00.000000Z - lifecycle what=boot"]
    assert "audit log BROKEN" in ls.stderr


# Not a twin: no app runs: it writes and checks an audit log, which a cellad would append to.
def test_deleted_record(state):
    three(state)
    f = log_file(state)
    lines = f.read_bytes().splitlines(keepends=True)
    f.write_bytes(lines[0] + lines[2])
    p = audit(state, "--verify")
    assert p.returncode == 1
    assert "record 3 in log.000001.jsonl (line 2) follows record 1: record 2 is missing" in p.stdout


# Not a twin: no app runs: it writes and checks an audit log, which a cellad would append to.
def test_truncated_log(state):
    three(state)
    f = log_file(state)
    lines = f.read_bytes().splitlines(keepends=True)
    f.write_bytes(b"".join(lines[:2]))
    p = audit(state, "--verify")
    assert p.returncode == 1
    assert ("the log ends at record 2, but HEAD says it ran to record 3: record 3 was removed"
            in p.stdout)
    # cut inside the last line
    f.write_bytes(b"".join(lines)[:-10])
    p = audit(state, "--verify")
    assert p.returncode == 1
    assert "ends in an incomplete record after record 2" in p.stdout
    assert json.loads(audit(state, "--verify", "--json").stdout)["problem"] == "torn"


def test_filters(state):
    now = datetime.datetime.now(datetime.timezone.utc)
    ago = lambda **kw: rfc3339(now - datetime.timedelta(**kw))  # noqa: E731
    append(state,
           {"app": "org.a", "event": "call", "n": 1, "time": ago(hours=3)},
           {"app": "org.b", "event": "call", "n": 2, "time": ago(minutes=90)},
           {"app": "org.a", "event": "call", "n": 3, "time": ago(minutes=10)},
           {"event": "lifecycle", "n": 4, "time": ago(minutes=1)})

    def ns(*args):
        p = audit(state, "--json", *args)
        assert p.returncode == 0, p.stderr
        return [json.loads(line)["n"] for line in p.stdout.splitlines()]

    assert ns() == [1, 2, 3, 4]
    assert ns("--app", "org.a") == [1, 3]
    assert ns("--since", "1h") == [3, 4]
    assert ns("--since", "2h", "--app", "org.b") == [2]
    assert ns("--since", ago(minutes=30)) == [3, 4]
    assert ns("--since", "1d") == [1, 2, 3, 4]
    assert ns("--app", "org.none") == []


def test_rotation_and_reopen(state):
    """Records across several files and several writers read as one chain."""
    for i in range(5):
        append(state, *({"app": "org.a", "event": "call", "i": i * 20 + k} for k in range(20)),
               file_max=2048)
    assert log_file(state, 3).exists()
    p = audit(state, "--verify")
    assert p.returncode == 0, p.stdout
    assert "100 records, chain intact" in p.stdout
    out = audit(state, "--json").stdout.splitlines()
    assert [json.loads(line)["i"] for line in out] == list(range(100))
    # a missing rotated file is named
    log_file(state, 2).unlink()
    p = audit(state, "--verify")
    assert p.returncode == 1 and "log.000002.jsonl is missing" in p.stdout


def test_output_cannot_forge_lines(state):
    """Field values from apps are escaped: no terminal control, one line a record."""
    append(state, {"app": "org.evil", "event": "call",
                   "path": "x\n#9 2024-01-01T00:00:00Z org.good call ok=1\x1b[2J"})
    p = audit(state)
    assert p.returncode == 0
    assert len(p.stdout.splitlines()) == 1
    assert "\x1b" not in p.stdout
    assert '\\n#9' in p.stdout


# Not a twin: no app runs: its writers are the test's, and a cellad would be one more.
def test_concurrent_writers_one_chain(state):
    """Several writer processes (cella run, cella boot and cella grant share a state
    dir) append interleaved batches to one chain while `cella audit --verify` reads."""
    if not os.path.exists(AUDIT_APPEND):
        pytest.fail(f"{AUDIT_APPEND} is not built: build first (tests/run-all does)")
    append(state, {"event": "lifecycle", "what": "boot"})  # the log exists before readers
    writers, per = 4, 150
    procs = []
    for w in range(writers):
        records = [json.dumps({"app": f"org.w{w}", "event": "call", "w": w, "i": i})
                   for i in range(per)]
        procs.append(subprocess.Popen(
            [AUDIT_APPEND, "--file-max", "4096", "--flush-every", str(w + 1), str(state)]
            + records, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    checks = 0
    while any(p.poll() is None for p in procs) or checks == 0:
        v = audit(state, "--verify", "--json")
        assert v.returncode == 0, v.stdout + v.stderr
        checks += 1
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err
    p = audit(state, "--verify", "--json")
    v = json.loads(p.stdout)
    assert v["ok"] is True and v["writer_active"] is False, v
    assert v["records"] == 1 + writers * per and v["head_seq"] == v["records"], v
    assert v["files"] > 1
    lines = audit(state, "--json").stdout.splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    for w in range(writers):
        assert [r["i"] for r in recs if r.get("w") == w and r["event"] == "call"] == \
            list(range(per))
