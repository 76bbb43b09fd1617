"""The example apps of issue 3, end to end: the clock service and the notes-c app
under `cella boot` (bus, kernel timer, fs.open through a granted root, perm.request,
notify.post), and the hostile app's broker attempts under `cella run`."""
import json
import os
import re
import select
import shutil
import signal
import subprocess

import pytest

from conftest import CELLA, boot_cella, example, run_cella, wait_written
import test_isolation  # its helpers only: importing names would collect its tests here too

CLOCK = "org.cella.example.clock"
NOTES = "org.cella.example.notes_c"
HOSTILE = "org.cella.example.hostile"


boot = boot_cella


def exits(status, app):
    """The exit codes of app's runs, from the "exited" status records."""
    return [r.get("exit_code", r.get("status")) for r in status
            if r.get("event") == "exited" and r.get("app") == app]


def grant(state, app_dir, app_id, right):
    p = subprocess.run([CELLA, "grant", "--state-dir", str(state), "--app-dir", str(app_dir), app_id,
                        right], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def app_log(state, app_id):
    f = state / "logs" / f"{app_id}.log"
    return f.read_text() if f.exists() else ""


def apps_folder(tmp_path, *names):
    """A boot folder holding copies of the built examples names (world-readable)."""
    d = tmp_path / "apps"
    d.mkdir()
    for n in names:
        shutil.copytree(example(n), d / n, symlinks=True, ignore=shutil.ignore_patterns("*.p"))
    for p in [tmp_path, d, *d.iterdir()]:
        os.chmod(p, 0o755)
    return d


LINE = re.compile(r"^tick \d+ at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.twin
def test_clock_and_notes_c_save_a_note_and_notify(tmp_path, state):
    apps = apps_folder(tmp_path, "clock", "notes-c")
    # fs.write:documents is dangerous: the user grants it before the boot (as scripts/demo).
    grant(state, apps / "notes-c", NOTES, "fs.write:documents")
    grant(state, apps / "notes-c", NOTES, "fs.read:documents")

    p, status = boot(apps, state, "--no-prompt")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out + app_log(state, NOTES) + app_log(state, CLOCK)
    assert exits(status, NOTES) == [0], status
    # The clock ran first and was stopped by cella once the app was done.
    started = [r["app"] for r in status if r.get("event") == "started"]
    assert started.index(CLOCK) < started.index(NOTES), started
    assert ("clock: publishing org.cella.example.clock.tick every 200 ms"
            in app_log(state, CLOCK))

    notes = state / "roots" / "documents" / "notes.txt"
    lines = notes.read_text().splitlines()
    assert len(lines) == 1 and LINE.match(lines[0]), lines
    log = app_log(state, NOTES)
    assert f'appended "{lines[0]}" to documents/notes.txt' in log, log
    assert "note saved" in out, out  # the notification, shown by cella

    # A second boot appends: the file was opened O_APPEND through the broker.
    p, status = boot(apps, state, "--no-prompt")
    assert p.returncode == 0, p.stdout + p.stderr + app_log(state, NOTES)
    lines = notes.read_text().splitlines()
    assert len(lines) == 2 and all(LINE.match(l) for l in lines), lines


@pytest.mark.twin
def test_notes_c_without_the_grant_is_refused_and_says_how_to_grant(tmp_path, state):
    apps = apps_folder(tmp_path, "clock", "notes-c")
    p, status = boot(apps, state, "--no-prompt")
    assert p.returncode != 0, p.stdout + p.stderr
    assert exits(status, NOTES) == [1], status
    log = app_log(state, NOTES)
    assert "asking for fs.write:documents" in log, log
    assert "cannot save the note: writing to documents was refused" in log, log
    assert f"cella grant {NOTES} fs.write:documents" in log, log
    assert not (state / "roots" / "documents" / "notes.txt").exists()
    assert "note saved" not in p.stdout + p.stderr


# Every broker attempt of examples/hostile: each must print REFUSED.
BROKER_ATTEMPTS = [
    "fs.open a root it has no right to", "fs.open for writing with a read right at most",
    "fs.open ../ out of the root", "fs.open an absolute path", "fs.open through a symlink to /",
    "fs.open through a symlink up", "fs.open the root directory itself (.)",
    "fs.open with the raw DIRECTORY flag", "fs.open a FIFO in its root",
    "fs.open a root-only file in its root", "fs.list out of the root (..)",
    "fs.list through a symlink up", "fs.stat through a symlink to /",
    "fs.mkdir with a read right at most", "fs.rename with a read right at most",
    "fs.unlink with a read right at most", 'openat("../..") from a passed file',
    "fchdir to a passed file", "/proc/self/fd/N/.. of a passed file",
    "reopen a passed read-only file for writing",
    "bus.publish on another app's topic (clock.tick)",
    "bus.subscribe to every topic (**)", "bus.subscribe to clock.tick without the right",
    "bus.send to another app", "bus.request to another app", "app.launch another app",
    "notify.post without the notify right", "timer.create without the timer right",
    "perm.request a signature right (system.admin)",
    "perm.request a right its manifest lacks",
    "proc.signal pids outside its namespace", "proc.signal pid -1 (every process)",
    "proc.signal pid 0 (the kernel's process group)", "flood the broker with calls",
    "forged REPLY frame", "forged EVENT frame", "unknown opcode 0x7777",
    "an event opcode as a request", "a request carrying an fd", "a body that does not decode",
    "a datagram over 64 KiB", "garbage frames until the kernel hangs up",
    "use the channel after the hang-up",
]


# Not a twin: --root is embedded-only (cellad's roots are its own). The hostile example runs through cellad in test_isolation.py.
def test_hostile_broker_attempts_are_all_refused(tmp_path, state):
    app = example("hostile")
    # Give it what its manifest asks (fs.read:downloads) and a root with symlinks out
    # of it, so the path escapes are tried beneath a real grant.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "readme.txt").write_text("a file it may read\n")
    os.symlink("/", downloads / "link-root")
    os.symlink("../../../../../../..", downloads / "link-up")
    os.mkfifo(downloads / "fifo", 0o666)
    (downloads / "secret").write_text("root only\n")
    os.chmod(downloads / "secret", 0o600)
    grant(state, app, HOSTILE, "fs.read:downloads")

    r = run_cella("--root", f"downloads={downloads}", app, state_dir=state, timeout=120)
    lines = test_isolation.hostile_lines(r.out)
    escaped = [l for l in lines if l.startswith("ESCAPED")]
    assert not escaped, "\n".join(escaped)
    assert r.code == 0, r.out + r.err
    names = {l.split(" ", 1)[1].split(":", 1)[0] for l in lines}
    missing = [a for a in BROKER_ATTEMPTS if a not in names]
    # Every broker attempt really ran: none is "not applicable".
    assert not [l for l in lines if l.startswith("N/A ") and l.split(" ", 1)[1].split(":", 1)[0]
                in BROKER_ATTEMPTS], r.out
    assert not missing, f"attempts that did not run: {missing}\n{r.out}"
    # The refusals are scoped: what the manifest grants still works.
    assert ("ALLOWED bus.publish on its own topic org.cella.example.hostile.probe: published"
            in r.out), r.out
    # Its manifest asks for rights over every app's topics and ids ("bus.subscribe:**",
    # "bus.publish:**", "bus.send:**", "app.launch:**"): normal rights by name, but
    # they reach other apps, so install did not grant them (EACCES: only the user can).
    for probe in ["bus.publish on another app's topic (clock.tick)",
                  "bus.subscribe to every topic (**)",
                  "bus.subscribe to clock.tick without the right",
                  "bus.send to another app", "app.launch another app"]:
        assert re.search(rf"^REFUSED {re.escape(probe)}: EACCES$", r.out, re.M), r.out
    # Rights are checked before anything else: EACCES/EPERM, not ENOENT or EINVAL.
    assert re.search(r"^REFUSED bus\.send to another app: (EACCES|EPERM)$", r.out, re.M), r.out
    assert re.search(r"^REFUSED proc\.signal pids outside its namespace: ESRCH", r.out, re.M), r.out
    assert re.search(r"^REFUSED flood the broker with calls: .* [1-9]\d* answered EAGAIN", r.out, re.M), r.out
    # The kernel survived the forged frames and reported the app's own exit.
    assert test_isolation.hostile_summary(lines) in r.out, r.out
    assert r.event("exited")["status"] == 0
    # The user file root is untouched.
    assert sorted(os.listdir(downloads)) == ["fifo", "link-root", "link-up", "readme.txt", "secret"]
    assert (downloads / "readme.txt").read_text() == "a file it may read\n"
    # A file passed to it is never a way out: each of these got as far as trying.
    for attempt in ['openat("../..") from a passed file', "fchdir to a passed file",
                    "reopen a passed read-only file for writing"]:
        assert not re.search(rf"^REFUSED {re.escape(attempt)}: no fd to start from", r.out, re.M), r.out


@pytest.mark.twin
def test_revoke_while_running_closes_the_apps_handles_at_once(tmp_path, state):
    """`cella revoke` in another process reaches the running kernel: the clock is
    told (EVENT_PERM_REVOKED), says so and stops by itself. (That the broker
    closes the timer handle at once, so no event of it follows the revoke, is
    test-broker-calls' test_timer_revoke_closes: here a tick fired before the
    revoke may still be in the clock's queue, and its publish is legitimate.)"""
    folder = apps_folder(tmp_path, "clock")
    rfd, wfd = os.pipe()
    p = subprocess.Popen([CELLA, "boot", "--state-dir", str(state), "--json-status", str(wfd),
                          str(folder)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, pass_fds=(wfd,))
    os.close(wfd)
    status = os.fdopen(rfd)
    try:
        assert json.loads(status.readline())["event"] == "started"
        # A publish is in the audit log: looked for again at each write there.
        wait_written(lambda: audit_records(state, op="bus.publish"), state / "audit", 20,
                     "the clock's first publish in the audit log", p.pid)
        r = subprocess.run([CELLA, "revoke", "--state-dir", str(state), CLOCK, "timer"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        # The clock exits by itself, well before anyone stops it.
        ready, _, _ = select.select([status], [], [], 10)
        assert ready, "the clock did not stop after the revoke"
        rec = json.loads(status.readline())
        assert rec["event"] == "exited" and rec["app"] == CLOCK and rec["exit_code"] == 0, rec
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        status.close()
    assert 'clock: the right "timer" was revoked; stopping' in app_log(state, CLOCK), err
    records = audit_records(state)
    assert [r for r in records if r.get("what") == "revoked-in-broker"], records


def audit_records(state, op=None):
    """The clock's audit records (all, or those of call op)."""
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--json", "--app", CLOCK],
                       capture_output=True, text=True, timeout=30)
    records = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return [r for r in records if op is None or r.get("op") == op]
