"""net.internet: a real interface in the app's own network namespace, made by pasta,
with nftables rules in that namespace that refuse the private, loopback, link-local,
metadata, CGNAT and multicast ranges (docs/network.md, "Full network
(net.internet)"; docs/security.md, "Full network").

Every test runs cellad inside a NetLab (netlab.py), so pasta's "outside" is the
lab's namespace, never the host's network: the lab gets an uplink of its own (a
veth pair whose both ends stay in the lab, with a default route through it, which
pasta needs to copy an address and routes from), a DNS server on its loopback (the
lab's resolv.conf names 127.0.0.1; pasta forwards the app's DNS there), and servers
on a public address and on the addresses the rules must refuse. Those addresses are
the lab's own (on its loopback), so a wrong rule WOULD connect, and the test would
fail.
"""
import json
import os
import select
import signal
import subprocess
import textwrap
import time

import pytest

from conftest import CELLA, run_cella
from daemon_util import running_cellad, wait_for, wait_log_line
from netlab import PUBLIC_V4, PUBLIC_V6, NetLab

PRIVATE = "10.77.0.1"        # RFC 1918, on the lab's loopback
EXCEPTION = "10.77.0.2"      # RFC 1918 too, opened by net.connect:10.77.0.2:8083
METADATA = "169.254.169.254"
CGNAT = "100.64.7.7"
UPLINK = "198.51.100.1"      # the lab's uplink address (TEST-NET-2), pasta's template
GATEWAY = "198.51.100.254"   # its default gateway: with --no-map-gw, not the lab's loopback
UPLINK6 = "2001:db8:1::1"    # the same for IPv6 (documentation prefix)
GATEWAY6 = "2001:db8:1::fe"
PRIVATE6 = "fd00:77::1"      # unique-local, on the lab's loopback
DEADLINE = 30.0

# The lab's servers, one process: HTTP on each address (the body names it), a stream
# that sends until its connection is cut (then says how), and DNS on 127.0.0.1:53
# answering the names in argv[1] (JSON) with their A records.
SERVERS_PY = textwrap.dedent(r"""
    import json, socket, struct, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    names = json.loads(sys.argv[1])
    binds = json.loads(sys.argv[2])

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = ("served by %s:%d\n" % self.server.server_address[:2]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass

    class H6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    for addr, port in binds:
        srv = (H6 if ":" in addr else ThreadingHTTPServer)((addr, port), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    stream = socket.socket()
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    stream.bind((sys.argv[3], 8090))
    stream.listen(4)
    def serve_stream():
        while True:
            c, _ = stream.accept()
            def pump(c=c):
                chunk = b"x" * 16384
                try:
                    while True:
                        c.sendall(chunk)
                        time.sleep(0.005)
                except OSError as e:
                    print("STREAM-CUT", e.__class__.__name__, flush=True)
            threading.Thread(target=pump, daemon=True).start()
    threading.Thread(target=serve_stream, daemon=True).start()

    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    def serve_dns():
        while True:
            q, peer = dns.recvfrom(512)
            if len(q) < 12:
                continue
            i, labels = 12, []
            while i < len(q) and q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
                i += 1 + q[i]
            qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
            question = q[12:i + 5]
            name = ".".join(labels).lower()
            addr = names.get(name)
            if addr and qtype == 1:
                ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)
                hdr = q[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
                dns.sendto(hdr + question + ans, peer)
            else:
                rcode = 0 if addr else 3  # known name, no AAAA: empty answer; else NXDOMAIN
                hdr = q[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, 0, 0, 0)
                dns.sendto(hdr + question, peer)
    threading.Thread(target=serve_dns, daemon=True).start()
    print("READY", flush=True)
    threading.Event().wait()
    """)

# The app: a real python3 in the jail, each probe on a line of its own.
PROBE_PY = textwrap.dedent(r"""
    import socket, subprocess, sys, urllib.request

    def get(url):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return "OK " + r.read().decode().strip()
        except Exception as e:
            return "FAIL " + e.__class__.__name__

    print("interfaces", sorted(n for _, n in socket.if_nameindex()), flush=True)
    for label, url in [("public-name", "http://public.test:8080/"),
                       ("public-addr", "http://%s:8080/" % sys.argv[1]),
                       ("private", "http://10.77.0.1:8082/"),
                       ("private-mapped", "http://[::ffff:10.77.0.1]:8082/"),
                       ("private-name", "http://private.test:8082/"),
                       ("metadata", "http://169.254.169.254:8085/"),
                       ("cgnat", "http://100.64.7.7:8086/"),
                       ("loopback", "http://127.0.0.1:8081/"),
                       ("gateway-to-lab-loopback", "http://198.51.100.254:8081/"),
                       ("public-v6", "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8087/"),
                       ("unique-local-v6", "http://[fd00:77::1]:8088/"),
                       ("exception", "http://10.77.0.2:8083/"),
                       ("exception-other-port", "http://10.77.0.2:8084/")]:
        print(label, get(url), flush=True)
    if len(sys.argv) > 2:
        # Change the rules from inside: the namespace is not the app's to change.
        try:
            p = subprocess.run(["nft", "flush", "ruleset"], capture_output=True, text=True)
            print("nft-flush", "exit", p.returncode, flush=True)
        except OSError as e:
            print("nft-flush", "error", e.__class__.__name__, flush=True)
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
            print("netfilter-socket", "opened", flush=True)
        except OSError as e:
            print("netfilter-socket", "refused", e.__class__.__name__, flush=True)
        print("private-after-flush", get("http://10.77.0.1:8082/"), flush=True)
    """)

# The app for the revoke: reads the endless stream, says when it started, then how
# its read ended, and what interfaces are left.
STREAM_PY = textwrap.dedent(r"""
    import socket, sys
    s = socket.create_connection((sys.argv[1], 8090), timeout=10)
    s.settimeout(3)
    got, said = 0, False
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            print("STALLED after", got, flush=True)
            break
        except OSError as e:
            print("ERROR", e.__class__.__name__, "after", got, flush=True)
            break
        if not d:
            print("EOF after", got, flush=True)
            break
        got += len(d)
        if not said and got > 100000:
            print("STARTED", flush=True)
            said = True
    print("interfaces", sorted(n for _, n in socket.if_nameindex()), flush=True)
    """)

HOSTS = {"public.test": PUBLIC_V4, "private.test": PRIVATE}


def _require_tools():
    for tool in ("/usr/bin/pasta", "/usr/sbin/nft", "/usr/bin/python3"):
        if not os.path.exists(tool):
            pytest.skip(f"net.internet's tests need {tool} (scripts/install-deps)")


class _Lab:
    """A NetLab with an uplink, the extra addresses and the servers running."""

    def __init__(self):
        _require_tools()
        self.lab = NetLab(hosts=HOSTS)
        self.servers = None
        try:
            r = self.lab.run(["ip", "link", "add", "cella-up0", "type", "veth", "peer", "name",
                              "cella-up1"], check=False, capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"no veth links here (the lab's uplink): {r.stderr.strip()}")
            for cmd in (["ip", "link", "set", "cella-up1", "up"],
                        ["ip", "link", "set", "cella-up0", "up"],
                        ["ip", "addr", "add", f"{UPLINK}/24", "dev", "cella-up0"],
                        ["ip", "route", "add", "default", "via", GATEWAY, "dev", "cella-up0"],
                        ["ip", "-6", "addr", "add", f"{UPLINK6}/64", "dev", "cella-up0", "nodad"],
                        ["ip", "-6", "route", "add", "default", "via", GATEWAY6, "dev",
                         "cella-up0"]):
                self.lab.run(cmd)
            for a in (PRIVATE, EXCEPTION, METADATA, CGNAT):
                self.lab.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"])
            self.lab.run(["ip", "-6", "addr", "add", f"{PRIVATE6}/128", "dev", "lo", "nodad"])
            # 127.0.0.1:8081 is the lab's own loopback, where a connection to the
            # gateway would land if pasta mapped it to the host's (no --no-map-gw).
            binds = [[PUBLIC_V4, 8080], ["127.0.0.1", 8081], [PRIVATE, 8082], [EXCEPTION, 8083],
                     [EXCEPTION, 8084], [METADATA, 8085], [CGNAT, 8086], [PUBLIC_V6, 8087],
                     [PRIVATE6, 8088]]
            self.servers = self.lab.popen(
                ["python3", "-c", SERVERS_PY, json.dumps(HOSTS), json.dumps(binds), PUBLIC_V4],
                stdout=subprocess.PIPE, text=True)
            line = _readline(self.servers.stdout, DEADLINE)
            assert line.strip() == "READY", f"the lab's servers did not start: {line!r}"
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.servers and self.servers.poll() is None:
            self.servers.kill()
            self.servers.wait()
        # The lab's links and addresses go with its namespace.
        self.lab.close()


def _readline(f, timeout):
    """One line from pipe f, waiting at most timeout s for it (an event, not a sleep)."""
    deadline = time.monotonic() + timeout
    buf = ""
    fd = f.fileno()
    while not buf.endswith("\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return buf
        c = os.read(fd, 1).decode()
        if not c:
            return buf
        buf += c
    return buf


@pytest.fixture
def lab():
    lab = _Lab()
    try:
        yield lab
    finally:
        lab.close()


def _cella(*args, state, timeout=60):
    return subprocess.run([CELLA, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, CELLA_STATE_DIR=str(state)))


def _pastas_below(pid):
    """pids of the pasta processes among pid's descendants (not counting the short-lived
    clones a pasta makes to act in the namespace: a pasta whose parent is a pasta)."""
    parents, comm = {}, {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        parents[int(p)] = int(rest[1])
        comm[int(p)] = st[st.index("(") + 1:st.rindex(")")]
    found = []
    for p, c in comm.items():
        if c not in ("pasta", "passt", "passt.avx2") or comm.get(parents[p]) == c:
            continue
        q = p
        while q in parents and q != pid and q > 1:
            q = parents[q]
        if q == pid:
            found.append(p)
    return found


def _results(out):
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()
            if " " in line}


def _probe_app(make_app, app_id, permissions, *extra):
    return make_app(app_id, f"exec python3 /app/probe.py {PUBLIC_V4} {' '.join(extra)}\n",
                    files={"probe.py": (PROBE_PY, 0o644)}, permissions=permissions)


# Not a twin: runs its own cellad in a NetLab.
def test_net_internet_reaches_public_hosts_and_nothing_private(tmp_path, lab, make_app):
    """An app holding net.internet (a real python3) reaches the lab's public server by
    name (through pasta's DNS forward) and by address; the private, IPv4-mapped,
    metadata and CGNAT addresses (each the lab's own, served) are refused, as is a
    name that resolves to a private address and the gateway (not mapped to the lab's
    loopback); an exact net.connect right opens its one address and port; the app
    cannot flush the rules (no capability over its namespace), and they still hold
    after it tried."""
    state = tmp_path / "state"
    app = _probe_app(make_app, "org.test.internet",
                     ["net.internet", f"net.connect:{EXCEPTION}:8083"], "try-flush")
    with running_cellad(state, preexec_fn=lab.lab.enter) as d:
        g = _cella("grant", "--app-dir", app, "org.test.internet", "net.internet", state=state)
        assert g.returncode == 0, g.stderr
        # An address that is not public makes net.connect dangerous: the user grants it.
        g = _cella("grant", "--app-dir", app, "org.test.internet", f"net.connect:{EXCEPTION}:8083",
                   state=state)
        assert g.returncode == 0, g.stderr
        r = _cella("run", app, state=state, timeout=120)
        log = d.log()
    res = _results(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr + log
    assert res["interfaces"] == "['cella-up0', 'lo']", r.stdout
    assert res["public-name"] == f"OK served by {PUBLIC_V4}:8080", r.stdout
    assert res["public-addr"] == f"OK served by {PUBLIC_V4}:8080", r.stdout
    for label in ("private", "private-mapped", "private-name", "metadata", "cgnat", "loopback",
                  "gateway-to-lab-loopback", "exception-other-port", "private-after-flush"):
        assert res[label].startswith("FAIL"), (label, r.stdout)
    assert res["exception"] == f"OK served by {EXCEPTION}:8083", r.stdout
    # IPv6 too (pasta's neighbour discovery through the rules): public, not unique-local.
    assert res["public-v6"] == f"OK served by {PUBLIC_V6}:8087", r.stdout
    assert res["unique-local-v6"].startswith("FAIL"), r.stdout
    assert not res["nft-flush"].startswith("exit 0"), r.stdout
    assert res["netfilter-socket"].startswith("refused"), r.stdout
    assert "network up (net.internet)" in log + r.stderr


# Not a twin: runs its own cellad in a NetLab.
def test_without_net_internet_only_loopback_and_no_pasta(tmp_path, lab, make_app):
    """Requested but not granted, and not requested at all: loopback only, every probe
    refused, and no pasta runs."""
    state = tmp_path / "state"
    asked = _probe_app(make_app, "org.test.asked", ["net.internet"])
    plain = _probe_app(make_app, "org.test.plain", [])
    with running_cellad(state, preexec_fn=lab.lab.enter) as d:
        for app in (asked, plain):
            r = _cella("run", app, state=state, timeout=120)
            res = _results(r.stdout)
            assert r.returncode == 0, r.stdout + r.stderr + d.log()
            assert res["interfaces"] == "['lo']", r.stdout
            for label, v in res.items():
                if label != "interfaces":
                    assert v.startswith("FAIL"), (label, r.stdout)
            assert _pastas_below(d.pid) == []
            said = "org.test.asked: net.internet is requested, not granted" in r.stderr
            assert said == (app == asked), r.stderr


# Not a twin: runs its own cellad in a NetLab.
def test_revoke_cuts_a_transfer_in_progress(tmp_path, lab, make_app):
    """A download runs from the lab's public server; `cella revoke ... net.internet`
    cuts it at once: the server's connection is cut (pasta is gone), the app's reads
    stop, its interface is gone, and the app itself runs on (loopback only)."""
    state = tmp_path / "state"
    app = make_app("org.test.stream", f"exec python3 /app/stream.py {PUBLIC_V4}\n",
                   files={"stream.py": (STREAM_PY, 0o644)}, permissions=["net.internet"])
    with running_cellad(state, preexec_fn=lab.lab.enter) as d:
        g = _cella("grant", "--app-dir", app, "org.test.stream", "net.internet", state=state)
        assert g.returncode == 0, g.stderr
        run = subprocess.Popen([CELLA, "run", str(app)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                               env=dict(os.environ, CELLA_STATE_DIR=str(state)))
        try:
            line = _readline(run.stdout, DEADLINE)
            assert line.strip() == "STARTED", line + d.log()
            pastas = _pastas_below(d.pid)
            assert len(pastas) == 1, pastas
            t0 = time.monotonic()
            rv = _cella("revoke", "org.test.stream", "net.internet", state=state)
            assert rv.returncode == 0, rv.stderr
            cut = _readline(lab.servers.stdout, DEADLINE)
            cut_s = time.monotonic() - t0
            assert cut.startswith("STREAM-CUT"), cut
            print(f"\nrevoke to the server's connection cut: {cut_s * 1000:.1f} ms")
            end = _readline(run.stdout, DEADLINE)
            assert end.startswith(("STALLED", "ERROR")), end
            assert _readline(run.stdout, DEADLINE).strip() == "interfaces ['lo']"
            run.wait(timeout=DEADLINE)
            assert run.returncode == 0, run.stderr.read()
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        wait_for("pasta reaped", lambda: _pastas_below(d.pid) == [])
        assert "lost net.internet: its interface is gone" in d.log() + run.stderr.read()


EXCEPTION_PY = textwrap.dedent(r"""
    import sys, urllib.request
    def get(url):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return "OK " + r.read().decode().strip()
        except Exception as e:
            return "FAIL " + e.__class__.__name__
    for line in sys.stdin:
        print(get("http://10.77.0.2:8083/"), "|", get("http://%s:8080/" % sys.argv[1]), flush=True)
    """)


# Not a twin: runs its own cellad in a NetLab.
def test_revoking_an_exception_closes_it_at_once(tmp_path, lab, make_app):
    """The exceptions follow the net.connect rights while the app runs: revoking
    net.connect:10.77.0.2:8083 closes that address at once (the rules are loaded
    again), and the rest of the network stays."""
    state = tmp_path / "state"
    app = make_app("org.test.except", f"exec python3 /app/e.py {PUBLIC_V4}\n",
                   files={"e.py": (EXCEPTION_PY, 0o644)},
                   permissions=["net.internet", f"net.connect:{EXCEPTION}:8083"])
    with running_cellad(state, preexec_fn=lab.lab.enter) as d:
        g = _cella("grant", "--app-dir", app, "org.test.except", "net.internet", state=state)
        assert g.returncode == 0, g.stderr
        # An address that is not public makes net.connect dangerous: the user grants it.
        g = _cella("grant", "--app-dir", app, "org.test.except", f"net.connect:{EXCEPTION}:8083",
                   state=state)
        assert g.returncode == 0, g.stderr
        run = subprocess.Popen([CELLA, "run", str(app)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
                               env=dict(os.environ, CELLA_STATE_DIR=str(state)))
        try:
            run.stdin.write("1\n")
            run.stdin.flush()
            before = _readline(run.stdout, DEADLINE)
            assert before == (f"OK served by {EXCEPTION}:8083 | OK served by {PUBLIC_V4}:8080\n"), \
                before + d.log()
            rv = _cella("revoke", "org.test.except", f"net.connect:{EXCEPTION}:8083", state=state)
            assert rv.returncode == 0, rv.stderr
            run.stdin.write("2\n")
            run.stdin.flush()
            after = _readline(run.stdout, DEADLINE)
            assert after.startswith("FAIL ") and \
                after.endswith(f"| OK served by {PUBLIC_V4}:8080\n"), after
            out, err = run.communicate("", timeout=DEADLINE)
            assert run.returncode == 0, err
            assert "0 exact net.connect exception(s)" in err, err
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()


# Not a twin: runs its own cellad in a NetLab.
def test_a_one_time_grant_is_one_run(tmp_path, lab, make_app):
    """`cella grant --once APP net.internet`: the next start uses it up and has the
    network for its run; the start after has loopback only."""
    state = tmp_path / "state"
    app = make_app("org.test.once", "exec python3 -c 'import socket; "
                   "print(sorted(n for _, n in socket.if_nameindex()))'\n",
                   permissions=["net.internet"])
    with running_cellad(state, preexec_fn=lab.lab.enter):
        g = _cella("grant", "--once", "--app-dir", app, "org.test.once", "net.internet",
                   state=state)
        assert g.returncode == 0, g.stderr
        first = _cella("run", app, state=state, timeout=120)
        second = _cella("run", app, state=state, timeout=120)
    assert first.returncode == 0 and first.stdout == "['cella-up0', 'lo']\n", first
    assert second.returncode == 0 and second.stdout == "['lo']\n", second
    assert "net.internet is requested, not granted" in second.stderr, second.stderr


# Not a twin: runs its own cellad in a NetLab.
def test_an_installed_app_started_by_cellad(tmp_path, lab, make_app):
    """An app installed into cellad's store and started by cellad itself (its own
    spawn, from its warm pool when a warm sandbox is ready, not a `cella run`
    kernel's) gets its network the same way, and `cella stop` takes pasta with it."""
    state = tmp_path / "state"
    app = make_app("org.test.installed", "python3 -c 'import socket; "
                   "print(sorted(n for _, n in socket.if_nameindex()))'\nexec sleep infinity\n",
                   permissions=["net.internet"])
    with running_cellad(state, "--no-autostart", "--warm", "2",
                        preexec_fn=lab.lab.enter) as d:
        i = _cella("install", app, state=state)
        assert i.returncode == 0, i.stderr
        g = _cella("grant", "--app-dir", state / "apps" / "org.test.installed" / "current",
                   "org.test.installed", "net.internet", state=state)
        assert g.returncode == 0, g.stderr
        st = _cella("start", "org.test.installed", state=state)
        assert st.returncode == 0, st.stderr
        wait_log_line(d, "org.test.installed", "['cella-up0', 'lo']")
        assert len(_pastas_below(d.pid)) == 1
        sp = _cella("stop", "org.test.installed", state=state)
        assert sp.returncode == 0, sp.stderr
        wait_for("pasta reaped", lambda: _pastas_below(d.pid) == [])


# Says its interfaces at once, and again whenever they change (its own pace).
WATCH_PY = textwrap.dedent(r"""
    import socket, time
    prev = None
    while True:
        cur = sorted(n for _, n in socket.if_nameindex())
        if cur != prev:
            print(cur, flush=True)
            prev = cur
        time.sleep(0.05)
    """)


# Not a twin: runs its own cellad in a NetLab.
def test_sighup_cuts_the_network_the_new_image_would_not_know(tmp_path, lab, make_app):
    """cellad's SIGHUP re-exec keeps the apps running, but not their pasta: the new
    image could neither revoke nor reap it. The network is cut before the exec (the
    app sees its interface go), no pasta is left, and the app runs on."""
    state = tmp_path / "state"
    app = make_app("org.test.reexec", "exec python3 /app/w.py\n",
                   files={"w.py": (WATCH_PY, 0o644)}, permissions=["net.internet"])
    with running_cellad(state, "--no-autostart", preexec_fn=lab.lab.enter) as d:
        assert _cella("install", app, state=state).returncode == 0
        g = _cella("grant", "--app-dir", state / "apps" / "org.test.reexec" / "current",
                   "org.test.reexec", "net.internet", state=state)
        assert g.returncode == 0, g.stderr
        assert _cella("start", "org.test.reexec", state=state).returncode == 0
        wait_log_line(d, "org.test.reexec", "['cella-up0', 'lo']")
        assert len(_pastas_below(d.pid)) == 1
        d.send(signal.SIGHUP)
        wait_for("the re-executed cellad's adoption",
                 lambda: "adopted 1 app(s) left running by an earlier cellad" in d.log())
        wait_log_line(d, "org.test.reexec", "['lo']")
        # Reaped before the exec, not left a zombie the new image does not know.
        assert _pastas_below(d.pid) == []
        assert "cellad re-executes itself, and the new image would not know its pasta" in d.log()


# Not a twin: runs its own cellad in a NetLab.
def test_pasta_goes_with_the_app(tmp_path, lab, make_app):
    """pasta is a child of the kernel while the app runs and is gone once it exited."""
    state = tmp_path / "state"
    app = make_app("org.test.brief", "read line\necho got $line\n", permissions=["net.internet"])
    with running_cellad(state, preexec_fn=lab.lab.enter) as d:
        g = _cella("grant", "--app-dir", app, "org.test.brief", "net.internet", state=state)
        assert g.returncode == 0, g.stderr
        run = subprocess.Popen([CELLA, "run", str(app)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
                               env=dict(os.environ, CELLA_STATE_DIR=str(state)))
        try:
            pastas = wait_for("pasta running", lambda: _pastas_below(d.pid))
            assert len(pastas) == 1
            out, err = run.communicate("bye\n", timeout=DEADLINE)
            assert run.returncode == 0 and out == "got bye\n", out + err
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        wait_for("pasta reaped", lambda: _pastas_below(d.pid) == [])


# Not a twin: runs its own cellad in a NetLab.
def test_pasta_dying_is_noticed_and_the_app_runs_on(tmp_path, lab, make_app):
    """A pasta that dies on its own (killed here, as a crash would) is noticed at once:
    the kernel says so, and the app runs on with its loopback only."""
    state = tmp_path / "state"
    app = make_app("org.test.crash", "read line\n"
                   "exec python3 -c 'import socket; print(sorted(n for _, n in socket.if_nameindex()))'\n",
                   permissions=["net.internet"])
    with running_cellad(state, preexec_fn=lab.lab.enter) as d:
        g = _cella("grant", "--app-dir", app, "org.test.crash", "net.internet", state=state)
        assert g.returncode == 0, g.stderr
        run = subprocess.Popen([CELLA, "run", str(app)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
                               env=dict(os.environ, CELLA_STATE_DIR=str(state)))
        try:
            said = ""
            while "org.test.crash: network up (net.internet)" not in said:
                line = _readline(run.stderr, DEADLINE)
                assert line, "the network never came up: " + said
                said += line
            (pasta,) = _pastas_below(d.pid)
            # Our cellad's child: the only pasta this test may kill.
            os.kill(pasta, 9)
            while "pasta, its network (net.internet), was killed by signal 9" not in said:
                line = _readline(run.stderr, DEADLINE)
                assert line, "the kernel never said pasta died: " + said
                said += line
            wait_for("pasta reaped", lambda: _pastas_below(d.pid) == [])
            out, err = run.communicate("go\n", timeout=DEADLINE)
            assert run.returncode == 0 and out == "['lo']\n", out + err
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()


# Not a twin: runs its own cellad in a NetLab.
def test_no_uplink_fails_the_start_clearly(tmp_path, make_app):
    """A host with no default route (a lab with loopback only): pasta cannot make the
    interface, and the app granted net.internet does not start, with pasta's reason
    named; it is not run without the network it was granted."""
    _require_tools()
    state = tmp_path / "state"
    app = make_app("org.test.nouplink", "echo ran\n", permissions=["net.internet"])
    with NetLab() as lab, running_cellad(state, preexec_fn=lab.enter) as d:
        g = _cella("grant", "--app-dir", app, "org.test.nouplink", "net.internet", state=state)
        assert g.returncode == 0, g.stderr
        r = run_cella(app, state_dir=state, timeout=120)
        # 246: the namespace's setup failed (docs/cli.md, exit codes).
        assert r.code == 246 and "ran" not in r.out, (r.code, r.out + r.err)
        assert "cannot give org.test.nouplink its network (net.internet): pasta exited with " \
               "status 1 before the interface was up" in r.err, r.err
        assert "External interface not usable" in r.err, r.err
        (failed,) = [x for x in r.status if x.get("event") == "failed"]
        assert failed["step"] == "namespace" and failed["exit_code"] == 246, failed
        assert failed["error"].startswith("net.internet: pasta exited"), failed
        assert _pastas_below(d.pid) == []


@pytest.mark.twin
def test_packed_app_with_net_internet_is_refused(state, make_app):
    """A packed Lua app shares its host's namespace: net.internet is a manifest error,
    named, and nothing runs."""
    app = make_app("org.test.packednet", entry="main.lua", runtime="lua", isolation="packed",
                   group="g1", permissions=["net.internet"],
                   files={"main.lua": ("print('hi')\n", 0o644)})
    r = run_cella(app, state_dir=state)
    assert r.code == 241, (r.code, r.err)  # the manifest (docs/cli.md, exit codes)
    assert "permissions" in r.err and \
        "\"net.internet\" needs a sandbox of the app's own" in r.err, r.err
    assert "hi" not in r.out
