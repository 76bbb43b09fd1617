"""cella run: the command, its exit codes, its output, and the bundled examples."""
import os
import sqlite3
import signal
import subprocess
import time

import pytest

from conftest import CELLA, example, run_cella


# Not a twin: no run reaches a kernel (the command answers alone).
def test_version_and_help():
    v = subprocess.run([CELLA, "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("cella ")
    h = subprocess.run([CELLA, "--help"], capture_output=True, text=True)
    assert h.returncode == 0 and "run" in h.stdout
    rh = subprocess.run([CELLA, "run", "--help"], capture_output=True, text=True)
    assert rh.returncode == 0 and "--state-dir" in rh.stdout and "--json-status" in rh.stdout


# Not a twin: no run reaches a kernel (the command refuses it alone).
def test_usage_errors_exit_240():
    for args in (["frobnicate"], ["run"], ["run", "--cgroup-mode", "v9", "x"],
                 ["run", "--uid-range", "0:10", "x"], ["run", "--json-status", "999", "x"],
                 ["run", "--no-such-option", "x"]):
        p = subprocess.run([CELLA, *args], capture_output=True, text=True)
        assert p.returncode == 240, (args, p.returncode, p.stderr)
        assert p.stderr.startswith("cella: ") or "Usage" in p.stderr, p.stderr


@pytest.mark.twin
def test_hello(state):
    r = run_cella(example("hello"), "--", "extra", state_dir=state)
    assert r.code == 0, r.err
    assert "hello from org.cella.example.hello (uid 1000, pid 2)" in r.out
    assert "hostname: org.cella.example.hello" in r.out
    assert "arg 1: world" in r.out and "arg 2: extra" in r.out
    started, exited = r.event("started"), r.event("exited")
    assert started["uid"] >= 0x70000000 and started["uid"] == exited["uid"]
    assert exited["how"] == "exited" and exited["status"] == 0 and exited["oom_killed"] is False


@pytest.mark.twin
def test_exit_status_passes_through(state, make_app):
    app = make_app("org.test.exit", "exit 42\n")
    assert run_cella(app, state_dir=state).code == 42


@pytest.mark.twin
def test_killed_by_signal_is_128_plus_n(state, make_app):
    app = make_app("org.test.signal", "kill -TERM $$\nsleep 5\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 128 + signal.SIGTERM, r.err
    assert "killed by signal 15" in r.err
    assert r.event("exited")["signal"] == signal.SIGTERM


@pytest.mark.twin
def test_entry_not_found_is_127(state, make_app):
    app = make_app("org.test.missing", entry="nope")
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    assert "the entry /app/nope does not exist" in r.err and f"folder {app}" in r.err, r.err
    assert r.event("failed")["step"] == "exec"


@pytest.mark.twin
def test_entry_not_executable_is_126(state, make_app):
    app = make_app("org.test.noexec", files={"main.sh": ("#!/bin/sh\necho hi\n", 0o644)})
    r = run_cella(app, state_dir=state)
    assert r.code == 126, r.err
    assert "/app/main.sh is not executable by the app's uid" in r.err, r.err


@pytest.mark.twin
def test_manifest_errors_exit_241_and_name_file_and_key(state, make_app, tmp_path):
    app = make_app("org.test.badkey", "true\n", limits={"memory": "64Q"})
    r = run_cella(app, state_dir=state)
    assert r.code == 241
    assert f"{app}/manifest.json: limits.memory:" in r.err, r.err

    bad = tmp_path / "syntax"
    bad.mkdir()
    (bad / "manifest.json").write_text('{\n  "id": "org.test.x",\n  "runtime": \n}\n')
    r = run_cella(bad, state_dir=state)
    assert r.code == 241 and f"{bad}/manifest.json:4:" in r.err, r.err

    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cella(empty, state_dir=state)
    assert r.code == 241 and "manifest.json" in r.err

    r = run_cella(tmp_path / "does-not-exist", state_dir=state)
    assert r.code == 241 and "No such file" in r.err


@pytest.mark.twin
def test_files_limit_above_host_hard_limit_is_refused(state, make_app):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard >= 1048576:
        import pytest
        pytest.skip("host hard limit is at the manifest maximum")
    app = make_app("org.test.files", "true\n", limits={"files": hard + 1})
    r = run_cella(app, state_dir=state)
    assert r.code == 243, r.err
    assert "exceeds this host's hard limit" in r.err


@pytest.mark.twin
def test_stdout_stderr_and_stdin_stream(state, make_app, tmp_path):
    app = make_app("org.test.cat", "echo to-err >&2\ncat\n")
    data = tmp_path / "in.txt"
    data.write_text("line one\nline two\n")
    state.mkdir(mode=0o711, exist_ok=True)  # made already: its making is said on stderr
    with open(data) as f:
        r = run_cella(app, state_dir=state, stdin=f)
    assert r.code == 0
    assert r.out == "line one\nline two\n"
    assert r.err == "to-err\n"


@pytest.mark.twin
def test_large_output_is_not_lost(state, make_app):
    app = make_app("org.test.big", "head -c 3000000 /dev/zero | tr '\\0' x\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 0 and len(r.out) == 3000000


@pytest.mark.twin
def test_notes_py_persists_data_between_runs(state):
    app = example("notes-py")
    r1 = run_cella(app, "first", state_dir=state)
    assert r1.code == 0, r1.err
    assert "0 note(s) from earlier runs" in r1.out
    r2 = run_cella(app, "second", state_dir=state)
    assert r2.code == 0, r2.err
    assert "1 note(s) from earlier runs" in r2.out and "run 1: first" in r2.out
    notes = state / "apps" / "org.cella.example.notes_py" / "data" / "notes.txt"
    st = os.stat(notes)
    assert st.st_uid == r2.event("started")["uid"], "the note is owned by the app's own host uid"
    assert "run 2: second" in notes.read_text()


@pytest.mark.twin
def test_sqlite_notes_persists_rows(state):
    app = example("sqlite-notes")
    assert run_cella(app, "one", state_dir=state).code == 0
    r = run_cella(app, "two", state_dir=state)
    assert r.code == 0, r.err
    assert "2 row(s)" in r.out and "one" in r.out and "two" in r.out
    db = state / "apps" / "org.cella.example.sqlite_notes" / "data" / "notes.db"
    rows = sqlite3.connect(db).execute("SELECT body FROM notes ORDER BY id").fetchall()
    assert rows == [("one",), ("two",)]


@pytest.mark.twin
def test_uids_are_per_app_stable_and_recorded(state, make_app):
    a = make_app("org.test.uid_a", "true\n")
    b = make_app("org.test.uid_b", "true\n")
    ua1 = run_cella(a, state_dir=state).event("started")["uid"]
    ub = run_cella(b, state_dir=state).event("started")["uid"]
    ua2 = run_cella(a, state_dir=state).event("started")["uid"]
    assert ua1 == ua2 and ua1 != ub
    rows = dict(sqlite3.connect(state / "state.db").execute("SELECT id, uid FROM apps"))
    assert rows == {"org.test.uid_a": ua1, "org.test.uid_b": ub}


# Not a twin: --uid-range is embedded-only (cellad's range is its own).
def test_uid_range_is_configurable_and_bounded(state, make_app):
    a = make_app("org.test.range_a", "true\n")
    b = make_app("org.test.range_b", "true\n")
    r = run_cella("--uid-range", "3000000:65536", a, state_dir=state)
    # The app's block starts at the range's base; it runs as id 1000 of it.
    assert r.code == 0 and r.event("started")["uid"] == 3001000
    # The range holds one block of 65,536 ids, and it is taken.
    p = subprocess.run([CELLA, "run", "--state-dir", str(state), "--uid-range", "3000000:65536", str(b)],
                       capture_output=True, text=True)
    assert p.returncode == 242 and "No space left" in p.stderr, p.stderr
    # Only whole blocks.
    p = subprocess.run([CELLA, "run", "--state-dir", str(state), "--uid-range", "3000000:1", str(b)],
                       capture_output=True, text=True)
    assert p.returncode == 240 and "multiple of 65536" in p.stderr, p.stderr


@pytest.mark.twin
def test_sigterm_is_forwarded_to_the_app(state, make_app):
    app = make_app("org.test.term", "trap 'echo got-term; exit 7' TERM\necho ready\nwhile :; do sleep 0.1; done\n")
    p = subprocess.Popen([CELLA, "run", "--state-dir", str(state), str(app)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 7, err
    assert "got-term" in out


@pytest.mark.twin
def test_second_interrupt_kills(state, make_app):
    # The app does not exit on SIGINT: its handler says it got one, and the loop then
    # says it lives on. The test waits on those lines, not on a sleep.
    app = make_app("org.test.int", "trap 'echo got-int; seen=1' INT\ntrap '' TERM\necho ready\n"
                   "while :; do sleep 0.1; if [ -n \"$seen\" ]; then echo alive; seen=; fi; done\n")
    p = subprocess.Popen([CELLA, "run", "--state-dir", str(state), str(app)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGINT)
    assert p.stdout.readline() == "got-int\n", "the first SIGINT is forwarded to the app"
    assert p.stdout.readline() == "alive\n", "the app ignores SIGINT, so it is still running"
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=10)
    assert p.returncode == 128 + signal.SIGKILL


@pytest.mark.twin
def test_kernel_holding_thousands_of_fds(state):
    """A kernel running hundreds of apps holds thousands of fds; the sandbox must
    not make the app's fds (its seccomp listener first) above the app's
    RLIMIT_NOFILE (1024): regression, 'load the seccomp filter with a listener:
    Too many open files'."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def hold_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
        for _ in range(2000):
            os.set_inheritable(os.open("/dev/null", os.O_RDONLY), True)

    if hard < 4096:
        import pytest
        pytest.skip("the hard RLIMIT_NOFILE is too low to hold 2000 fds")
    p = subprocess.run([CELLA, "run", "--state-dir", str(state), "--no-prompt",
                        example("hello")], capture_output=True, text=True, timeout=60,
                       preexec_fn=hold_fds, close_fds=False)
    assert p.returncode == 0, p.stderr
    assert "hello from org.cella.example.hello" in p.stdout


@pytest.mark.twin
def test_messages_show_untrusted_text_inert(make_app, state):
    """cella's own messages can quote an app's bundle (a manifest's permission, a
    key): its control characters reach stderr as text, on the message's line
    (the manifest parser escapes them; every message is rendered safe again,
    test-base's test_log_renders_controls)."""
    app = make_app("org.test.badperm", script="exit 0\n",
                   permissions=["\x1b]0;pwned\x07\x1b[2J\nfake line"])
    r = run_cella(app, state_dir=state, json_status=False)
    assert r.code == 241, r.err
    assert "\x1b" not in r.err and "\x07" not in r.err
    assert "pwned" in r.err and "fake line" in r.err, r.err
    assert len(r.err.splitlines()) == 1, r.err


@pytest.mark.twin
def test_terminal_stdin_and_the_shared_description(make_app, state):
    """A terminal on stdin is copied to the app through a pipe; cella reads and
    writes the terminal through descriptions of its own, so the one it shares with
    its shell is left blocking (O_NONBLOCK there would hand EAGAIN to the shell's
    next program)."""
    import fcntl
    import pty
    import select
    app = make_app("org.test.ttyin", script="read line; echo \"got:$line\"\n")
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([CELLA, "run", "--state-dir", str(state), "--no-prompt", str(app)],
                             stdin=slave, stdout=slave, stderr=slave)
        os.write(master, b"hello\n")
        out, deadline = b"", time.monotonic() + 30
        while b"got:hello" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 4096)
        assert p.wait(timeout=30) == 0, out
        assert b"got:hello" in out, out
        assert not fcntl.fcntl(slave, fcntl.F_GETFL) & os.O_NONBLOCK
    finally:
        os.close(master)
        os.close(slave)
