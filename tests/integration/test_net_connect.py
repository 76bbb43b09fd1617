"""net.connect (docs/network.md): an app reaches exactly the hosts its rights name,
through the broker and the relay, and nothing else however the address is written.

Every test runs cella and its servers inside a NetLab (tests/integration/netlab.py):
a network namespace with only loopback, holding "public" addresses, and its own
/etc/hosts, so that even a wrong check sends nothing off the machine. The app is
tests/tools/net-probe (libcella's cella_net_connect()) in a real sandbox; it prints
one line per attempt and the test judges them.
"""
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CELLA
from daemon_util import running_cellad
from netlab import NetLab, PUBLIC_V4, PUBLIC_V4_2, PUBLIC_V6

APP = "org.test.netprobe"
PROBE = os.environ.get(
    "CELLA_NET_PROBE", str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "net-probe"))

# A server for the lab, ready when it prints "ready": "http" (python's http.server),
# "stream" (after a line, endless bytes until the peer goes), "count" (after a line
# N, N bytes), "udp" (echoes datagrams, upper-cased).
SERVER = r'''
import http.server, socket, socketserver, sys, threading
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
if mode == "http":
    class S(http.server.ThreadingHTTPServer):
        address_family = fam
    class H(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from the lab\n" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    srv = S((host, port), H)
    print("ready", flush=True)
    srv.serve_forever()
elif mode in ("stream", "count"):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(64)
    print("ready", flush=True)
    def serve(c):
        try:
            f = c.makefile("rb")
            line = f.readline()
            chunk = b"x" * 65536
            if mode == "stream":
                while True:
                    c.sendall(chunk)
            n = int(line)
            while n > 0:
                k = c.send(chunk[:min(n, len(chunk))]); n -= k
            c.shutdown(socket.SHUT_WR)
            c.recv(1)
        except OSError:
            pass
        finally:
            c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
elif mode == "udp":
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, port))
    print("ready", flush=True)
    while True:
        d, a = s.recvfrom(65536)
        s.sendto(d.upper(), a)
'''


class Lab:
    """A NetLab with servers started in it; everything ended at close."""

    def __init__(self, hosts):
        self.lab = NetLab(hosts=hosts)
        self.procs = []

    def serve(self, mode, host, port):
        p = self.lab.popen([sys.executable, "-c", SERVER, mode, host, str(port)],
                           stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        ready, _, _ = select.select([p.stdout], [], [], 30)
        assert ready and p.stdout.readline().strip() == "ready", f"{mode} server on {host}"
        return p

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.lab.close()


@pytest.fixture
def lab_factory():
    labs = []

    def make(hosts):
        lab = Lab(hosts)
        labs.append(lab)
        return lab

    yield make
    for l in labs:
        l.close()


@pytest.fixture
def probe(make_app):
    if not os.path.exists(PROBE):
        pytest.fail(f"{PROBE} is not built: build first (tests/run-all does)")

    def make(permissions):
        app = make_app(APP, entry="net-probe", permissions=permissions)
        shutil.copy(PROBE, app / "net-probe")
        os.chmod(app / "net-probe", 0o755)
        return app

    return make


class Lines:
    """Lines from a pipe as they come, waited for with select() on the fd itself
    (a file object's readline() would buffer lines select() then cannot see)."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b""
        self.seen = []

    def next(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], max(0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        self.seen.append(line.decode())
        return self.seen[-1]

    def until(self, text, timeout):
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            line = self.next(max(0, deadline - time.monotonic()))
            assert line is not None, f"no {text!r} yet: {self.seen}"
        return self.seen


def cella_cmd(state, *args):
    p = subprocess.run([CELLA, *args[:1], "--state-dir", str(state), *args[1:]],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p


def run_probe(lab, state, app, *args, timeout=120):
    """`cella run` in the lab; returns [dict of each output line]."""
    p = subprocess.run([CELLA, "run", "--state-dir", str(state), str(app), "--", *args, "done"],
                       capture_output=True, text=True, timeout=timeout,
                       preexec_fn=lab.lab.enter)
    assert "net-probe: done" in p.stdout, p.stdout + p.stderr
    return parse(p.stdout)


def parse(text):
    out = []
    for line in text.splitlines():
        words = line.split(" ")
        d = {"op": words[0]}
        rest = line[len(words[0]):].strip()
        # why= runs to the end of the line: it may hold spaces.
        if " why=" in " " + rest:
            rest, why = (" " + rest).split(" why=", 1)
            d["why"] = why
        for w in rest.split():
            if "=" in w:
                k, v = w.split("=", 1)
                d[k] = v
        out.append(d)
    return out


def tries(lines):
    return {(d["host"], d["port"]): d for d in lines if d["op"] == "try"}


def audit(state):
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--json", "--app", APP],
                       capture_output=True, text=True, timeout=30)
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def test_an_allowed_host_is_reached_through_the_relay(state, probe, lab_factory):
    lab = lab_factory({"allowed.test": PUBLIC_V4, "v6.test": PUBLIC_V6})
    lab.serve("http", PUBLIC_V4, 8080)
    lab.serve("http", PUBLIC_V6, 8080)
    lab.serve("udp", PUBLIC_V4, 5353)
    app = probe(["net.connect:allowed.test:8080", "net.connect:v6.test:8080",
                 f"net.connect:[{PUBLIC_V6}]:8080", f"net.connect:{PUBLIC_V4}:8080",
                 "net.connect:allowed.test:5353"])
    out = run_probe(lab, state, app, "get", "allowed.test", "8080", "/",
                    "get", "v6.test", "8080", "/",
                    "try", PUBLIC_V4, "8080", f"[{PUBLIC_V6}]", "8080",
                    "udp", "allowed.test", "5353")
    udp = [d for d in out if d["op"] == "udp"]
    assert udp == [{"op": "udp", "rc": "OK", "got": "PING"}], out
    t = tries(out)
    assert t[("allowed.test", "8080")]["rc"] == "OK", out
    assert t[("allowed.test", "8080")]["address"] == PUBLIC_V4
    assert t[("allowed.test", "8080")]["right"] == "net.connect:allowed.test:8080"
    assert t[("v6.test", "8080")]["address"] == PUBLIC_V6
    assert t[(PUBLIC_V4, "8080")]["rc"] == "OK"
    assert t[(f"[{PUBLIC_V6}]", "8080")]["rc"] == "OK"
    gets = [d for d in out if d["op"] == "get"]
    assert [g["rc"] for g in gets] == ["OK", "OK"], out
    assert all(g["status"].startswith("HTTP/1.0") for g in gets), out
    assert all(int(g["bytes"]) > 1900 for g in gets), out
    # One record per connection, with bytes both ways and how it ended.
    recs = [r for r in audit(state) if r.get("what") == "connection"]
    conn = [r for r in recs if r.get("host") == "allowed.test"]
    assert conn, recs
    r = conn[0]
    assert r["address"] == PUBLIC_V4 and r["port"] == 8080 and r["proto"] == "tcp"
    assert r["via"] == "call" and r["right"] == "net.connect:allowed.test:8080"
    assert r["bytes_out"] > 30 and r["bytes_in"] > 1900, r
    assert r["ended"] == "eof" and r["tried"] == [PUBLIC_V4], r
    assert "duration_ms" in r


# Literals no scoped right reaches, with a phrase the error must carry.
LITERALS = [
    ("127.0.0.1", "loopback"), ("127.1", "loopback"), ("2130706433", "loopback"),
    ("0177.0.0.1", "loopback"), ("0x7f.0.0.1", "loopback"), ("0x7f000001", "loopback"),
    ("::1", "loopback"), ("[::1]", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("[::ffff:7f00:1]", "loopback"), ("0.0.0.0", "unspecified"), ("0", "unspecified"),
    ("[::]", "unspecified"),
    ("10.0.0.1", "private address (RFC 1918)"), ("012.0.0.1", "RFC 1918"),
    ("167772161", "RFC 1918"), ("10.1", "RFC 1918"), ("172.16.0.1", "RFC 1918"),
    ("192.168.1.1", "RFC 1918"), ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1"),
    ("64:ff9b::a00:1", "NAT64 form of 10.0.0.1"), ("2002:a00:1::", "6to4 form of 10.0.0.1"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("169.254.169.254", "metadata"), ("2852039166", "metadata"), ("0xa9fea9fe", "metadata"),
    ("0251.0376.0251.0376", "metadata"), ("[::ffff:169.254.169.254]", "metadata"),
    ("[::ffff:a9fe:a9fe]", "metadata"), ("64:ff9b::a9fe:a9fe", "metadata"),
    ("[fd00:ec2::254]", "metadata"), ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"), ("[fc00::1]", "unique-local"), ("fd12::1", "unique-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("255.255.255.255", "broadcast"),
    ("100.64.0.1", "RFC 6598"), ("192.0.2.1", "TEST-NET-1"), ("198.18.0.1", "benchmarking"),
    ("240.0.0.1", "reserved"), ("[2001:db8::1]", "documentation"),
]

# Names in the lab's /etc/hosts that resolve to addresses no name reaches.
BAD_NAMES = {
    "priv.test": ("10.0.0.1", "10.0.0.1, a private address (RFC 1918)"),
    "lo.test": ("127.0.0.1", "127.0.0.1, a loopback address"),
    "meta.test": ("169.254.169.254", "169.254.169.254, a cloud metadata service"),
    "mapped.test": ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, a private address"),
}


def test_every_spelling_of_an_unreachable_address_is_refused(state, probe, lab_factory):
    hosts = {"allowed.test": PUBLIC_V4, "revoked.test": PUBLIC_V4}
    hosts.update({n: a for n, (a, _) in BAD_NAMES.items()})
    lab = lab_factory(hosts)
    lab.serve("http", PUBLIC_V4, 8080)
    perms = ["net.connect:allowed.test:8080", "net.connect:revoked.test:8080"]
    perms += [f"net.connect:{n}:8080" for n in BAD_NAMES]
    app = probe(perms)
    # Installed (and its normal rights granted) by a first run; then one taken back:
    # requested but not granted is EACCES.
    run_probe(lab, state, app)
    cella_cmd(state, "revoke", APP, "net.connect:revoked.test:8080")
    args = ["try", "allowed.test", "8080", "revoked.test", "8080", "other.test", "8080",
            "allowed.test", "9090", "1.2.3.4.5", "8080", "256.0.0.1", "8080", "-x", "8080"]
    for lit, _ in LITERALS:
        args += [lit, "8080"]
    for n in BAD_NAMES:
        args += [n, "8080"]
    out = run_probe(lab, state, app, *args)
    t = tries(out)
    assert t[("allowed.test", "8080")]["rc"] == "OK", out
    assert t[("revoked.test", "8080")]["rc"] == "EACCES", out
    assert "net.connect:revoked.test:8080" in t[("revoked.test", "8080")]["why"]
    for h in ("other.test", "allowed.test"):
        port = "9090" if h == "allowed.test" else "8080"
        d = t[(h, port)]
        assert d["rc"] == "EPERM" and "not requested" in d["why"], d
    for bad in ("1.2.3.4.5", "256.0.0.1", "-x"):
        assert t[(bad, "8080")]["rc"] == "EINVAL", t[(bad, "8080")]
    for lit, phrase in LITERALS:
        d = t[(lit, "8080")]
        assert d["rc"] == "EPERM", d
        assert phrase in d["why"] and "only a right naming that address" in d["why"], d
    for n, (addr, phrase) in BAD_NAMES.items():
        d = t[(n, "8080")]
        assert d["rc"] == "EPERM", d
        assert d["why"].startswith(f"{n} resolves to ") and phrase in d["why"], d
    # A record for every refusal, with the class.
    refused = [r for r in audit(state) if r.get("what") == "refused"]
    assert {r["host"] for r in refused} >= {"127.0.0.1", "[::ffff:10.0.0.1]", "priv.test",
                                             "meta.test"}, refused
    meta = [r for r in refused if r["host"] == "meta.test"][0]
    assert meta["class"] == "metadata" and meta["address"] == "169.254.169.254", meta
    assert meta["errno"] == 1, meta


def test_an_explicit_right_opens_that_loopback_address_and_port_only(state, probe,
                                                                      lab_factory):
    lab = lab_factory({})
    lab.serve("http", "127.0.0.1", 5432)
    lab.serve("http", "127.0.0.1", 5433)
    app = probe(["net.connect:127.0.0.1:5432", "net.connect:127.0.0.1:5433"])
    run_probe(lab, state, app)
    # Dangerous (an address that is not public): granted by the user, never by the
    # manifest alone.
    out = run_probe(lab, state, app, "try", "127.0.0.1", "5432")
    assert tries(out)[("127.0.0.1", "5432")]["rc"] == "EACCES", out
    cella_cmd(state, "grant", APP, "net.connect:127.0.0.1:5432")
    out = run_probe(lab, state, app, "get", "127.0.0.1", "5432", "/",
                    "try", "127.1", "5432", "127.0.0.1", "5433", "[::ffff:127.0.0.1]", "5432",
                    "localhost", "5432")
    t = tries(out)
    get = [d for d in out if d["op"] == "get"][0]
    assert get["rc"] == "OK" and get["status"] == "HTTP/1.0" and int(get["bytes"]) > 1900, out
    assert t[("127.1", "5432")]["rc"] == "OK"  # the same address, another spelling
    assert t[("127.0.0.1", "5433")]["rc"] == "EACCES"  # requested, not granted
    assert t[("[::ffff:127.0.0.1]", "5432")]["rc"] == "EPERM"  # another address
    assert t[("localhost", "5432")]["rc"] == "EPERM"  # a name: never loopback


def test_a_revoke_cuts_the_connection_mid_transfer(state, probe, lab_factory):
    lab = lab_factory({"allowed.test": PUBLIC_V4})
    lab.serve("stream", PUBLIC_V4, 8081)
    app = probe(["net.connect:allowed.test:8081"])
    p = subprocess.Popen([CELLA, "run", "--state-dir", str(state), str(app), "--", "stream",
                          "allowed.test", "8081", "done"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, preexec_fn=lab.lab.enter)
    try:
        out = Lines(p.stdout)
        out.until("stream connected", 60)
        cella_cmd(state, "revoke", APP, "net.connect:allowed.test:8081")
        line = out.next(20)
        assert line is not None, "the connection was not cut after the revoke"
        ended = parse(line)[0]
        assert ended["op"] == "stream" and "bytes" in ended, ended
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert int(ended["bytes"]) > 0
    recs = [r for r in audit(state) if r.get("what") == "connection"]
    assert recs and recs[-1]["ended"] == "revoked", recs
    assert recs[-1]["bytes_in"] > 0


def test_the_connection_limit_and_the_rate_refuse_with_their_errors(state, probe, lab_factory,
                                                                    tmp_path):
    lab = lab_factory({"allowed.test": PUBLIC_V4})
    lab.serve("http", PUBLIC_V4, 8080)
    app = probe(["net.connect:allowed.test:8080"])
    (state).mkdir(exist_ok=True)
    conf = state / "cellad.conf"
    conf.write_text(json.dumps({"net": {"connections_max": 3, "connect_rate": 1,
                                        "connect_burst": 5}}))
    os.chmod(conf, 0o600)
    with running_cellad(state, preexec_fn=lab.lab.enter):
        p = subprocess.Popen([CELLA, "run", "--state-dir", str(state), str(app), "--", "hold",
                              "allowed.test", "8080", "4"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             preexec_fn=lab.lab.enter)
        try:
            lines = Lines(p.stdout).until("hold done", 60)
        finally:
            p.stdin.close()
            p.wait(timeout=30)
        held = [d for d in parse("\n".join(lines)) if d["op"] == "try"]
        assert [d["rc"] for d in held] == ["OK", "OK", "OK", "EMFILE"], held
        assert "net.connections_max" in held[3]["why"]
        # A new run is a new bucket of 5, refilled at 1 a second: 8 at once meet the rate.
        out = run_probe(lab, state, app, "try", *(["allowed.test", "8080"] * 8))
        rcs = [d["rc"] for d in out if d["op"] == "try"]
        assert rcs[0] == "OK" and "EAGAIN" in rcs, out
        why = [d for d in out if d.get("rc") == "EAGAIN"][0]["why"]
        assert "net.connect_rate" in why, why
    limited = [r for r in audit(state) if r.get("limit")]
    assert {r["limit"] for r in limited} == {"connections", "rate"}, limited
