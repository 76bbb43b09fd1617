"""Runs cellad with its stderr "connected to the journal", and collects what it sends
to journald: for test_daemon.py's journald test, on a machine with no journald.

Run as `unshare -m --propagation private python3 fake_journald.py CELLAD STATE`: in
its own mount namespace it mounts a tmpfs on /run, binds the journal's native socket
/run/systemd/journal/socket there (a datagram socket, as journald's; sd_journal_send(3)
writes to it), starts cellad with stderr a file and $JOURNAL_STREAM naming that
file's device and inode (systemd.exec(5)), waits for READY, then for the records
the test asks for (argv[3:]: CELLA_EVENT=... lines to wait for, each "APP EVENT"),
stops cellad with SIGTERM, and prints one JSON list of the entries received, each a
{field: value} dict, then cellad's exit code and stderr as the last two lines.
"""
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

cellad, state = sys.argv[1], sys.argv[2]
wanted = [tuple(w.split(" ", 1)) for w in sys.argv[3:]]

subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
os.makedirs("/run/systemd/journal")
sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sink.bind("/run/systemd/journal/socket")
sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)


def parse(data):
    """The native journal protocol (systemd's "Native Journal Protocol"): KEY=VALUE
    lines, or KEY\\n<le64 size><value>\\n for a value with a newline."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode()] = v.decode(errors="replace")
    return fields


entries = []


def drain(timeout):
    r, _, _ = select.select([sink], [], [], timeout)
    while r:
        entries.append(parse(sink.recv(1 << 20)))
        r, _, _ = select.select([sink], [], [], 0)


err = open(os.path.join(os.path.dirname(state), "cellad.err"), "w+")
st = os.fstat(err.fileno())
env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
env.pop("NOTIFY_SOCKET", None)
rfd, wfd = os.pipe()
p = subprocess.Popen([cellad, "--state-dir", state, "--ready-fd", str(wfd)], stdout=err,
                     stderr=err, stdin=subprocess.DEVNULL, env=env, pass_fds=(wfd,))
os.close(wfd)
deadline = time.monotonic() + 60
ready = b""
# The journal is read while cellad starts too, as journald does: a datagram socket
# queues only net.unix.max_dgram_qlen (10) messages, and a sender past them blocks
# (cellad's start says more than ten things before READY when, say, its memory
# manager runs degraded).
while not ready.endswith(b"\n") and time.monotonic() < deadline:
    r, _, _ = select.select([rfd, sink], [], [], 1)
    if sink in r:
        drain(0)
    if rfd in r:
        chunk = os.read(rfd, 16)
        if not chunk:
            break
        ready += chunk


def seen(app, event):
    return any(e.get("CELLA_APP") == app and e.get("CELLA_EVENT") == event for e in entries)


while time.monotonic() < deadline and not all(seen(*w) for w in wanted):
    drain(0.5)
p.send_signal(signal.SIGTERM)
# Read on while it stops (its last messages must not block it).
stop_deadline = time.monotonic() + 60
while p.poll() is None and time.monotonic() < stop_deadline:
    drain(0.1)
code = p.wait(timeout=1)
drain(0.2)
err.seek(0)
print(json.dumps(entries))
print(code)
print(json.dumps(err.read()))
