"""perm.request from a running app, answered on the terminal that runs cella.

notes-c asks for fs.write:documents (a dangerous right) when its fs.open is
refused; cella shows the question on its controlling terminal (a pty here) and
the answer decides: y grants for good, o once, n (or nothing) refuses."""
import json
import os
import pty
import select
import signal
import socket
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



class OtherKernel:
    """Another kernel's control socket on the same state directory (docs/cli.md,
    "Control socket": <state>/run/<pid>.sock, one JSON request per line): records
    every request line it is sent, answers nothing (a kernel telling another one
    does not wait for the answer)."""

    def __init__(self, state):
        run = state / "run"
        run.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state, 0o711)
        self.path = run / f"{os.getpid()}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(16)
        self.requests = []

    def read_requests(self):
        """Every request line sent so far (non-blocking accepts)."""
        self.sock.setblocking(False)
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return self.requests
            with conn:
                conn.settimeout(5)
                buf = b""
                while b"\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if b"\n" in buf:
                    self.requests.append(json.loads(buf.split(b"\n")[0]))

    def close(self):
        self.sock.close()
        self.path.unlink(missing_ok=True)


def test_a_prompt_grant_reaches_the_other_kernels(tmp_path, state):
    """A grant given at the prompt is told to every other kernel sharing the state
    directory, as `cella grant`'s is, so their caches of the app's grants follow."""
    other = OtherKernel(state)
    try:
        folder = apps_folder(tmp_path, "clock", "notes-c")
        code, out = boot_on_pty(folder, state, b"y\n")
        assert code == 0, out
        assert "fs.write:documents" in grants(state)
        assert {"method": "org.cella.GrantsChanged", "parameters": {"app": NOTES},
                "oneway": True} in other.read_requests()
    finally:
        other.close()


def test_a_refused_prompt_tells_nobody(tmp_path, state):
    other = OtherKernel(state)
    try:
        folder = apps_folder(tmp_path, "clock", "notes-c")
        code, out = boot_on_pty(folder, state, b"n\n")
        assert code == 1, out
        assert [r for r in other.read_requests() if r.get("app") == NOTES] == []
    finally:
        other.close()


# --- the prompt owns the terminal (cella run on a pty) ---------------------------

SPOOF = "org.test.spoof"
SPOOF_LUA = r'''
local perm = require "cella.perm"
local timer = require "cella.timer"
local fs = require "cella.fs"
-- What a hostile app prints while a real question shows: a clipboard write (OSC
-- 52), a window title, clear screen and cursor home, a device status query, a C1
-- CSI, a bidi override, and a fake question about a harmless right.
local junk = "\27]52;c;UFdORUQ=\7\27]0;pwned\7\27[2J\27[H\27[6n\194\155" .. "31m\226\128\174" ..
        "cella: org.trusted.app asks for \"notify\". FAKE-PROMPT Allow? [y]es always / [o]nce / [N]o: "
local pad = string.rep("FAKE ", 160)
print("SPOOF-START " .. junk)
local ticks = 0
local t = timer.every(0.002, function()
        ticks = ticks + 1
        print(junk .. pad)
        fs.append("progress", "x")
end)
local granted = perm.request("location", "to show the weather")
timer.cancel(t)
print("SPOOF-END granted=" .. tostring(granted) .. " ticks=" .. ticks)
'''


def spoof_app(make_app):
    return make_app(SPOOF, files={"main.lua": (SPOOF_LUA, 0o644)}, entry="main.lua",
                    runtime="lua", permissions=["location"])


def read_pty(fd, out, timeout):
    """Reads what is there on the pty within timeout s; returns out + it, and
    whether the other side closed."""
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return out, False
    try:
        chunk = os.read(fd, 65536)
    except OSError:  # EIO: every slave fd is closed
        return out, True
    return out + chunk, not chunk


def test_prompt_owns_the_terminal(make_app, state):
    """An app floods the terminal with escape sequences and a fake question while
    the kernel asks about its real request: from the question's first byte to the
    answer nothing of the app's reaches the terminal (its output waits, then the
    app itself on its pipe), and the escapes show inert (cat -v style) after."""
    app = spoof_app(make_app)
    progress = state / "apps" / SPOOF / "data" / "progress"
    question = f'cella: {SPOOF} asks for "location"'.encode()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.execv(CELLA, [CELLA, "run", "--state-dir", str(state), str(app)])
    out, closed = b"", False
    try:
        deadline = time.monotonic() + 60
        while question not in out or b"[N]o: " not in out[out.find(question):]:
            assert time.monotonic() < deadline and not closed, out[-2000:]
            out, closed = read_pty(fd, out, 0.2)
        start = out.find(question)
        shown = out.find(b"[N]o: ", start) + len(b"[N]o: ")
        # The question is drawn on a line of its own, after the terminal's drawing
        # state was reset, and in full: app id, right and the app's reason.
        assert out[:start].endswith(b"\x1b[J"), out[start - 80:start]
        assert b"Reason: to show the weather" in out[start:shown]
        # The app keeps printing while the question shows: wait (bounded) until it
        # has written 60 lines (~60 KB) more than the screen shows (one line per
        # tick, each with one FAKE-PROMPT; the first line has one too).
        size = lambda: progress.stat().st_size if progress.exists() else 0
        while size() - (out.count(b"FAKE-PROMPT") - 1) < 60:
            assert time.monotonic() < deadline, (size(), out.count(b"FAKE-PROMPT"))
            out, closed = read_pty(fd, out, 0.05)
        out, closed = read_pty(fd, out, 0.2)
        assert out[shown:] == b"", out[shown:shown + 300]
        os.write(fd, b"n\n")
        while not closed:
            assert time.monotonic() < deadline + 60, out[-2000:]
            out, closed = read_pty(fd, out, 0.2)
    finally:
        done, st = os.waitpid(pid, os.WNOHANG)
        if not done:  # a failed assertion left it running
            os.kill(pid, signal.SIGKILL)
            _, st = os.waitpid(pid, 0)
        os.close(fd)
    code = os.waitstatus_to_exitcode(st)
    after = out[shown:]
    assert code == 0, out[-2000:]
    assert b"SPOOF-END granted=false" in after
    # What the app printed meanwhile comes after the answer, rendered inert.
    assert b"FAKE-PROMPT" in after
    assert b"^[]52;c;UFdORUQ=^G^[]0;pwned^G^[[2J^[[H^[[6n\\u009b31m\\u202e" in after
    # Anywhere: no escape of the app's reached the terminal (the kernel's own
    # redraw uses \x1b[0m, \x1b(B, \x1b[4l, \x1b[?7h, \x1b[?25h and \x1b[J only).
    for seq in (b"\x1b]", b"\x1b[2J", b"\x1b[H", b"\x1b[6n", b"\xc2\x9b", b"\xe2\x80\xae"):
        assert seq not in out, seq


def drain(fd):
    """Everything readable now on the non-blocking pipe fd (b"" if nothing)."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def test_prompt_holds_output_going_to_a_pipe(make_app, state):
    """`cella run app | tee log`: the app's stdout is a pipe whose reader puts it on
    the same terminal as the question. While the question shows, nothing of the
    app's comes out of that pipe either; after the answer it all comes, byte-exact
    (a pipe gets the bytes as they are)."""
    app = spoof_app(make_app)
    progress = state / "apps" / SPOOF / "data" / "progress"
    question = f'cella: {SPOOF} asks for "location"'.encode()
    rfd, wfd = os.pipe()
    pid, fd = pty.fork()
    if pid == 0:
        os.dup2(wfd, 1)
        os.environ["TERM"] = "xterm"
        os.execv(CELLA, [CELLA, "run", "--state-dir", str(state), str(app)])
    os.close(wfd)
    os.set_blocking(rfd, False)
    out, piped, closed = b"", b"", False
    try:
        deadline = time.monotonic() + 60
        while question not in out or b"[N]o: " not in out[out.find(question):]:
            assert time.monotonic() < deadline and not closed, out[-2000:]
            out, closed = read_pty(fd, out, 0.2)
        # What the app wrote before the question is in the pipe by now.
        piped = drain(rfd)
        size = lambda: progress.stat().st_size if progress.exists() else 0
        before = size()
        while size() - before < 60:  # 60 more lines printed (one per tick)
            assert time.monotonic() < deadline, size()
            out, closed = read_pty(fd, out, 0.05)
        held = drain(rfd)
        assert held == b"", held[:300]
        os.write(fd, b"n\n")
        while not closed:  # the pipe is read on, as tee would
            assert time.monotonic() < deadline + 60, out[-2000:]
            out, closed = read_pty(fd, out, 0.05)
            piped += drain(rfd)
    finally:
        done, st = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, signal.SIGKILL)
            _, st = os.waitpid(pid, 0)
        os.close(fd)
    piped += drain(rfd)
    os.close(rfd)
    assert os.waitstatus_to_exitcode(st) == 0, out[-2000:]
    assert b"SPOOF-END granted=false" in piped
    # To a pipe the bytes stay exact: the escapes come through as they are.
    assert b"\x1b]52;c;UFdORUQ=\x07" in piped


def test_raw_output_passes_escapes(make_app, state):
    """--raw-output: the user trusts the app; its bytes reach the terminal as they
    are (and the question still owns the terminal while it shows)."""
    app = make_app("org.test.raw", script="printf 'a\\033[1mbold\\033[0m\\n'\n")
    for raw, want in ((False, b"a^[[1mbold^[[0m"), (True, b"a\x1b[1mbold\x1b[0m")):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(CELLA, [CELLA, "run", "--state-dir", str(state), "--no-prompt",
                             *(["--raw-output"] if raw else []), str(app)])
        out, closed = b"", False
        deadline = time.monotonic() + 60
        while not closed and time.monotonic() < deadline:
            out, closed = read_pty(fd, out, 0.2)
        _, st = os.waitpid(pid, 0)
        os.close(fd)
        assert os.waitstatus_to_exitcode(st) == 0, out
        assert want in out, out


def test_output_to_a_pipe_is_byte_exact(make_app, state):
    """Not a terminal: the app's bytes reach the pipe unchanged, escapes included."""
    app = make_app("org.test.exact",
                   script="printf 'a\\033]52;c;eA==\\007\\r\\001\\377\\342\\200\\256z\\n'\n")
    p = subprocess.run([CELLA, "run", "--state-dir", str(state), "--no-prompt", str(app)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"a\x1b]52;c;eA==\x07\r\x01\xff\xe2\x80\xaez\n"
