"""perm.request from a running app, answered on the terminal that runs cella.

notes-c asks for fs.write:documents (a dangerous right) when its fs.open is
refused; cella shows the question on its controlling terminal (a pty here) and
the answer decides: y grants for good, o once, n (or nothing) refuses."""
import json
import os
import pty
import select
import subprocess
import time

from conftest import CELLA
from test_examples import NOTES, apps_folder

QUESTION = b"Allow? [y]es always / [o]nce / [N]o:"


def boot_on_pty(folder, state, answer, timeout=60):
    """Runs `cella boot` with a pty as its controlling terminal, answers the first
    question with answer (bytes; None: never), and returns (exit status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(CELLA, [CELLA, "boot", "--state-dir", str(state), str(folder)])
    out = b""
    answered = False
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the pty
                chunk = b""
            out += chunk
            if not answered and QUESTION in out and answer is not None:
                os.write(fd, answer)
                answered = True
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError(f"cella boot did not finish: {out.decode(errors='replace')}")
    os.close(fd)
    return status, out.decode(errors="replace")


def grants(state):
    """The rights notes-c holds now, from `cella permissions --json`."""
    p = subprocess.run([CELLA, "permissions", "--state-dir", str(state), "--json", NOTES],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return {g["right"] for g in json.loads(p.stdout)["grants"]}


def test_yes_grants_for_good(tmp_path, state):
    folder = apps_folder(tmp_path, "clock", "notes-c")
    code, out = boot_on_pty(folder, state, b"y\n")
    assert code == 0, out
    assert f'{NOTES} asks for "fs.write:documents"' in out
    assert (state / "roots" / "documents" / "notes.txt").read_text().startswith("tick 3 at ")
    assert "fs.write:documents" in grants(state)
    # Granted for good: the next boot asks nothing.
    code, out = boot_on_pty(folder, state, None)
    assert code == 0, out
    assert "asks for" not in out
    assert len((state / "roots" / "documents" / "notes.txt").read_text().splitlines()) == 2


def test_once_is_used_up(tmp_path, state):
    folder = apps_folder(tmp_path, "clock", "notes-c")
    code, out = boot_on_pty(folder, state, b"o\n")
    assert code == 0, out
    assert (state / "roots" / "documents" / "notes.txt").exists()
    assert "fs.write:documents" not in grants(state)


def test_no_refuses_and_the_app_says_so(tmp_path, state):
    folder = apps_folder(tmp_path, "clock", "notes-c")
    code, out = boot_on_pty(folder, state, b"n\n")
    assert code == 1, out
    assert not (state / "roots" / "documents" / "notes.txt").exists()
    assert "fs.write:documents" not in grants(state)

