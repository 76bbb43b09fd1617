"""`cella run -t`: the app gets a pty of its own (docs/cli.md, "A terminal of its
own"). The user's terminal is a real pty made here (python's pty module), with
cella as its session's foreground program, as a shell would run it."""
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

import pytest

from conftest import CELLA


class Terminal:
    """cella run -t ARGS on a pty of rows x cols; read() waits for text, never sleeps."""

    def __init__(self, args, rows=33, cols=101):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.saved = termios.tcgetattr(slave)

        def ctty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([CELLA, "run", "-t", *map(str, args)], stdin=slave, stdout=slave,
                                     stderr=slave, preexec_fn=ctty)
        self.slave = slave
        self.buf = b""

    def read_until(self, text, timeout=30):
        text = text.encode() if isinstance(text, str) else text
        deadline = time.monotonic() + timeout
        while text not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} in {self.buf!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    d = os.read(self.master, 4096)
                except OSError:
                    d = b""
                if not d:
                    raise AssertionError(f"terminal closed; no {text!r} in {self.buf!r}")
                self.buf += d
        return self.buf

    def write(self, data):
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def wait(self, timeout=30):
        code = self.proc.wait(timeout=timeout)
        # Drain what is left.
        while True:
            r, _, _ = select.select([self.master], [], [], 0)
            if not r:
                break
            try:
                d = os.read(self.master, 4096)
            except OSError:
                break
            if not d:
                break
            self.buf += d
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def term():
    made = []

    def make(*args, **kw):
        t = Terminal(args, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def text(buf):
    return buf.decode(errors="replace").replace("\r", "")


def test_app_has_its_own_terminal_of_the_users_size(state, make_app, term):
    app = make_app("org.test.tty", """\
        tty
        stty size
        [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-three-are-terminals
        exit 7
        """)
    t = term("--state-dir", state, app, rows=33, cols=101)
    assert t.wait() == 7
    out = text(t.buf)
    assert "/dev/pts/0\n" in out, out
    assert "33 101\n" in out, out
    assert "all-three-are-terminals" in out, out


def test_output_is_line_buffered_as_on_a_terminal(state, make_app, term):
    """python's print() is flushed at each line on a terminal: the first line shows
    while the program still waits for input."""
    app = make_app("org.test.linebuf", 'exec python3 -c "print(\'first line\'); input(); print(\'done\')"\n')
    t = term("--state-dir", state, app)
    t.read_until("first line")
    assert b"done" not in t.buf
    t.write("\r")
    t.read_until("done")
    assert t.wait() == 0


def test_input_and_echo_reach_the_app(state, make_app, term):
    app = make_app("org.test.input", "echo ready\nread line\necho \"got:$line\"\n")
    t = term("--state-dir", state, app)
    t.read_until("ready")
    t.write("hello there\r")
    t.read_until("got:hello there")
    assert t.wait() == 0
    # The user's terminal is as it was once cella is done (cooked, echo on).
    assert termios.tcgetattr(t.slave) == t.saved


def test_ctrl_c_is_sigint_to_the_app(state, make_app, term):
    app = make_app("org.test.ctrlc", "trap 'echo got-sigint; exit 3' INT\necho ready\nwhile :; do sleep 0.1; done\n")
    t = term("--state-dir", state, app)
    t.read_until("ready")
    t.write(b"\x03")
    t.read_until("got-sigint")
    assert t.wait() == 3
    assert termios.tcgetattr(t.slave) == t.saved


def test_window_size_change_reaches_the_app(state, make_app, term):
    app = make_app("org.test.winch", "trap 'stty size; exit 5' WINCH\necho ready\nwhile :; do sleep 0.1; done\n")
    t = term("--state-dir", state, app, rows=24, cols=80)
    t.read_until("ready")
    # The kernel sends SIGWINCH to the terminal's foreground group: cella.
    fcntl.ioctl(t.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
    t.read_until("50 132")
    assert t.wait() == 5


def test_escape_sequences_are_rendered_inert(state, make_app, term):
    """An app with a terminal still cannot retitle, query or rewrite the user's."""
    app = make_app("org.test.ttyesc", r"""
        printf 'title:\033]0;pwned\007|query:\033[6n|clear:\033[2J|csi:\302\233c|end\n'
        """)
    t = term("--state-dir", state, app)
    assert t.wait() == 0
    assert b"\x1b" not in t.buf and b"\x07" not in t.buf and b"\xc2\x9b" not in t.buf, t.buf
    out = text(t.buf)
    assert "title:^[]0;pwned^G|query:^[[6n|clear:^[[2J|csi:\\u009bc|end" in out, out


def test_tty_without_a_terminal_on_stdin_gives_eof(state, make_app):
    app = make_app("org.test.ttynoin", "[ -t 0 ] && echo terminal\nif read x; then echo read:$x; else echo eof; fi\n")
    p = subprocess.run([CELLA, "run", "-t", "--state-dir", str(state), str(app)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = text(p.stdout)
    assert "terminal\n" in out and "eof\n" in out, out


def test_app_that_closes_its_terminal_first_is_not_hung_up(state, make_app):
    """An app may close its stdin, stdout and stderr before it exits (cat and the
    other coreutils do at their end). Its terminal must stay until it has exited:
    cella reading the end of its output must not hang the terminal up, which would
    kill the app with SIGHUP (exit 129) instead of its own status. The app waits
    after closing them, so a hang-up, if cella made one, would come first."""
    app = make_app("org.test.ttyclose", "echo before\nexec 0<&- 1>&- 2>&-\nsleep 1\nexit 3\n")
    p = subprocess.run([CELLA, "run", "-t", "--state-dir", str(state), str(app)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "before" in text(p.stdout)


def test_boot_refuses_tty(state, tmp_path):
    p = subprocess.run([CELLA, "boot", "--tty", "--state-dir", str(state), str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 240 and "--tty is for 'cella run'" in p.stderr, p.stderr


def test_terminal_restored_when_cella_is_signalled(state, make_app, term):
    """SIGTERM to cella (forwarded to the app): the user's terminal is put back."""
    app = make_app("org.test.ttyterm", "echo ready\nexec sleep 100\n")
    t = term("--state-dir", state, app)
    t.read_until("ready")
    assert termios.tcgetattr(t.slave) != t.saved  # raw while the app runs
    t.proc.terminate()
    assert t.wait() == 128 + 15
    assert termios.tcgetattr(t.slave) == t.saved
