"""Port forwarding (docs/network.md, "Port forwarding"): cellad listens on a host port
and forwards each connection (TCP) or client (UDP) to 127.0.0.1:<app port> inside the
app's own network namespace. Real sandboxes under a cellad that runs in a NetLab
(netlab.py), so the "host" ports are the lab's: an app runs python's http.server, a
UDP echo and an endless writer; the tests reach them from the lab's side through the
manifest's "ports" and through `cella port add`, remove and list forwards, see a
forward refused without its right, a revoke cut a transfer in progress, and the
app's exit free the port."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from daemon_util import (CELLA, Cellad, ControlError, install_app, require_cellad, running_cellad,
                         wait_for, wait_log_line)
from netlab import PUBLIC_V4, PUBLIC_V6, NetLab, require_netlab

APP = "org.test.ports"
HTTP_PORT, UDP_PORT, STREAM_PORT = 8000, 9000, 8001

# The app: python's http.server on 127.0.0.1:8000 serving /app, a UDP echo on 9000
# and a TCP writer of endless zeros on 8001, all bound before it says "ready".
APP_PY = textwrap.dedent(f"""\
    import functools, http.server, socket, sys, threading
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="/app")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", {HTTP_PORT}), handler)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", {UDP_PORT}))
    stream = socket.socket()
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    stream.bind(("127.0.0.1", {STREAM_PORT}))
    stream.listen(8)
    def echo():
        while True:
            data, peer = udp.recvfrom(65535)
            udp.sendto(b"echo:" + data, peer)
    def endless():
        while True:
            c, _ = stream.accept()
            def write(c=c):
                try:
                    while True:
                        c.sendall(bytes(65536))
                except OSError:
                    pass
            threading.Thread(target=write, daemon=True).start()
    threading.Thread(target=echo, daemon=True).start()
    threading.Thread(target=endless, daemon=True).start()
    print("ready", flush=True)
    httpd.serve_forever()
    """)

INDEX = "hello through the forward\n"


def write_app(d, ports=(), permissions=()):
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    m = {"id": APP, "version": "1.0", "runtime": "native", "entry": "app.sh",
         "kind": "service", "permissions": list(permissions),
         "limits": {"pids": 64, "memory": "256M"}}
    if ports:
        m["ports"] = list(ports)
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "app.sh").write_text("#!/bin/sh\nexec python3 -u /app/app.py\n")
    os.chmod(d / "app.sh", 0o755)
    (d / "app.py").write_text(APP_PY)
    (d / "index.html").write_text(INDEX)
    return d


def cella(state, *args):
    return subprocess.run([CELLA, *map(str, args), "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def in_lab(lab, code, timeout=60):
    """Runs python code on the lab's side (the host cellad listens on); its stdout."""
    p = lab.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                timeout=timeout, check=False)
    assert p.returncode == 0, f"lab client failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def http_get(lab, port, host="127.0.0.1"):
    return in_lab(lab, f"""
        import urllib.request
        print(urllib.request.urlopen("http://{host}:{port}/index.html", timeout=20).read().decode(), end="")
        """)


def udp_echo(lab, port, payload="ping"):
    return in_lab(lab, f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(20)
        s.sendto(b"{payload}", ("127.0.0.1", {port}))
        print(s.recv(65535).decode(), end="")
        """)


def connect_result(lab, port, host="127.0.0.1"):
    """'ok' if a TCP connect to the lab's host:port is accepted, else the error."""
    family = "AF_INET6" if ":" in host else "AF_INET"
    return in_lab(lab, f"""
        import socket
        s = socket.socket(socket.{family})
        s.settimeout(20)
        try:
            s.connect(("{host}", {port}))
            print("ok", end="")
        except OSError as e:
            print(type(e).__name__, end="")
        """).strip()


def port_ls(state):
    p = cella(state, "port", APP, "ls", "--json")
    assert p.returncode == 0, p.stderr
    return {(e["host"], e["proto"]): e for e in json.loads(p.stdout)["ports"]}


@pytest.fixture
def lab():
    require_netlab()
    with NetLab() as lab:
        yield lab


@pytest.fixture
def env(tmp_path, lab):
    """(state dir, running cellad in the lab, app folder) with the app installed."""
    require_cellad()
    state = tmp_path / "state"
    folder = tmp_path / "app"

    def start(ports=(), permissions=(), grants=()):
        write_app(folder, ports, permissions)
        dest = install_app(state, folder)
        for g in grants:
            p = cella(state, "grant", "--app-dir", dest, APP, g)
            assert p.returncode == 0, p.stderr
        d.call("org.cella.Start", {"app": APP})
        wait_log_line(d, APP, "ready")

    with running_cellad(state, "--no-autostart", preexec_fn=lab.enter) as d:
        yield state, d, start
        # An orderly end: every forward, connection and the relay freed, nothing
        # leaked or touched after free (the ASan build checks at exit).
        code = d.stop()
        log = d.log()
        assert code == 0 and "Sanitizer" not in log, f"cellad exited {code}:\n{log[-4000:]}"


def audit_forward_records(state):
    p = cella(state, "audit", "--json")
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("event") == "net.forward":
            out.append(r)
    return out


def test_manifest_forwards_tcp_and_udp_into_the_app(env, lab):
    """The manifest's forwards open at the start: http.server and the UDP echo inside
    the sandbox answer on the lab's host ports; each connection is audited."""
    state, d, start = env
    start(ports=[{"host": 8080, "app": HTTP_PORT},
                 {"host": 5353, "app": UDP_PORT, "proto": "udp", "address": "127.0.0.1"}],
          permissions=["net.listen:8080", "net.listen:5353"],
          grants=["net.listen:8080", "net.listen:5353"])
    ls = port_ls(state)
    assert ls[(8080, "tcp")]["state"] == "open" and ls[(8080, "tcp")]["origin"] == "manifest"
    assert ls[(5353, "udp")]["state"] == "open"
    assert http_get(lab, 8080) == INDEX
    assert udp_echo(lab, 5353, "one") == "echo:one"
    assert udp_echo(lab, 5353, "two") == "echo:two"
    # Clients at once, each its own flow (the NAT table): every reply to its sender.
    out = in_lab(lab, """
        import socket
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
        for i, s in enumerate(socks):
            s.settimeout(20)
            s.sendto(b"c%d" % i, ("127.0.0.1", 5353))
        for i, s in enumerate(socks):
            assert s.recv(100) == b"echo:c%d" % i, i
            s.sendto(b"again%d" % i, ("127.0.0.1", 5353))
        for i, s in enumerate(socks):
            assert s.recv(100) == b"echo:again%d" % i, i
        print("ok", end="")
        """)
    assert out == "ok"
    assert port_ls(state)[(5353, "udp")]["connections"] >= 8
    # The app's own port is not the host's: nothing listens on the lab's 8000.
    assert connect_result(lab, HTTP_PORT) == "ConnectionRefusedError"
    recs = wait_for("the forwarded connection's audit record", lambda: [
        r for r in audit_forward_records(state)
        if r.get("what") == "forward" and r.get("host_port") == 8080])
    r = recs[0]
    assert r["app"] == APP and r["app_port"] == HTTP_PORT and r["proto"] == "tcp"
    assert r["client"].startswith("127.0.0.1:")
    assert r["bytes_in"] > 0 and r["bytes_out"] > len(INDEX)
    assert r["end"] in ("eof", "reset") and "duration_ms" in r


def test_cella_port_add_ls_rm(env, lab):
    """A forward added at runtime works at once, is listed, and goes with rm: the
    host port is refused again."""
    state, d, start = env
    start(permissions=["net.listen:8081", "net.listen:5354", "net.listen:8090",
                       "net.listen:8091"],
          grants=["net.listen:8081", "net.listen:5354", "net.listen:8090", "net.listen:8091"])
    assert port_ls(state) == {}
    assert connect_result(lab, 8081) == "ConnectionRefusedError"
    p = cella(state, "port", APP, "add", f"8081:{HTTP_PORT}")
    assert p.returncode == 0, p.stderr
    assert "8081/tcp" in p.stdout
    p = cella(state, "port", APP, "add", f"5354:{UDP_PORT}/udp")
    assert p.returncode == 0, p.stderr
    assert http_get(lab, 8081) == INDEX
    # Without --address: every address of the (lab's) host, IPv4 and IPv6.
    assert http_get(lab, 8081, PUBLIC_V4) == INDEX
    assert http_get(lab, 8081, f"[{PUBLIC_V6}]") == INDEX
    assert udp_echo(lab, 5354, "rt") == "echo:rt"
    # With --address: that address only.
    p = cella(state, "port", APP, "add", f"8090:{HTTP_PORT}", "--address", "127.0.0.1")
    assert p.returncode == 0, p.stderr
    assert http_get(lab, 8090) == INDEX
    assert connect_result(lab, 8090, PUBLIC_V4) == "ConnectionRefusedError"
    assert port_ls(state)[(8090, "tcp")]["address"] == "127.0.0.1"
    p = cella(state, "port", APP, "add", f"8091:{HTTP_PORT}", "--address", "192.0.2.1")
    assert p.returncode == 1 and "192.0.2.1 is not an address of this host" in p.stderr, p.stderr
    ls = port_ls(state)
    assert ls[(8081, "tcp")]["origin"] == "runtime" and ls[(8081, "tcp")]["app"] == HTTP_PORT
    assert ls[(5354, "udp")]["state"] == "open"
    p = cella(state, "port", APP, "ls")
    assert p.returncode == 0 and "8081" in p.stdout and "runtime" in p.stdout
    # The same host port twice is refused with a clear error.
    p = cella(state, "port", APP, "add", "8081:80")
    assert p.returncode == 1 and "8081/tcp already" in p.stderr, p.stderr
    p = cella(state, "port", APP, "rm", "8081")
    assert p.returncode == 0, p.stderr
    assert connect_result(lab, 8081) == "ConnectionRefusedError"
    assert (8081, "tcp") not in port_ls(state)
    p = cella(state, "port", APP, "rm", "8081")
    assert p.returncode == 1 and "no forward of host port 8081/tcp" in p.stderr, p.stderr
    # Bad command lines say what is expected.
    for bad in (["add", "8081"], ["add", "0:80"], ["add", "8081:80/sctp"], ["rm", "x"]):
        p = cella(state, "port", APP, *bad)
        assert p.returncode == 240 and "expected" in p.stderr, (bad, p.stderr)


def test_refused_without_the_grant(env, lab):
    """Without net.listen:<port> granted: `cella port add` is refused naming the right,
    and the manifest's forward does not open (listed not granted) until the user
    grants it, when it opens while the app runs."""
    state, d, start = env
    start(ports=[{"host": 8082, "app": HTTP_PORT}],
          permissions=["net.listen:8082", "net.listen:8083"])
    e = port_ls(state)[(8082, "tcp")]
    assert e["state"] == "not-granted" and "net.listen:8082 is not granted" in e["why"], e
    assert connect_result(lab, 8082) == "ConnectionRefusedError"
    p = cella(state, "port", APP, "add", f"8083:{HTTP_PORT}")
    assert p.returncode == 1 and "net.listen:8083 is not granted" in p.stderr, p.stderr
    assert connect_result(lab, 8083) == "ConnectionRefusedError"
    # A right the manifest does not ask for is never granted.
    p = cella(state, "port", APP, "add", f"8084:{HTTP_PORT}")
    assert p.returncode == 1 and "not among the rights" in p.stderr, p.stderr
    # Each refusal is audited.
    refused = [r for r in audit_forward_records(state) if r.get("what") in ("refused",
                                                                            "not-granted")]
    assert {r["host_port"] for r in refused} >= {8082, 8083, 8084}, refused
    p = cella(state, "grant", APP, "net.listen:8082")
    assert p.returncode == 0, p.stderr
    wait_for("the granted forward to open", lambda: port_ls(state)[(8082, "tcp")]["state"] == "open")
    assert http_get(lab, 8082) == INDEX


def test_revoke_cuts_a_transfer_and_closes_the_listener(env, lab):
    """A transfer in progress through the forward ends at once when net.listen:<port>
    is revoked, and the listener closes with it."""
    state, d, start = env
    start(ports=[{"host": 8085, "app": STREAM_PORT}], permissions=["net.listen:8085"],
          grants=["net.listen:8085"])
    client = lab.popen([sys.executable, "-c", textwrap.dedent("""
        import socket, sys
        s = socket.create_connection(("127.0.0.1", 8085), timeout=60)
        total = 0
        while total < 1 << 20:
            total += len(s.recv(65536))
        print("flowing", flush=True)
        sys.stdin.readline()
        try:
            while True:
                b = s.recv(1 << 20)
                if not b:
                    break
                total += len(b)
            print("ended eof", flush=True)
        except OSError as e:
            print("ended", type(e).__name__, flush=True)
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "flowing"
        p = cella(state, "revoke", APP, "net.listen:8085")
        assert p.returncode == 0, p.stderr
        client.stdin.write("go\n")
        client.stdin.flush()
        # The writer never stops on its own: only the cut ends the read.
        out, _ = client.communicate(timeout=30)
        assert out.startswith("ended"), out
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert connect_result(lab, 8085) == "ConnectionRefusedError"
    assert port_ls(state)[(8085, "tcp")]["state"] == "not-granted"
    recs = wait_for("the cut connection's record", lambda: [
        r for r in audit_forward_records(state)
        if r.get("what") == "forward" and r.get("host_port") == 8085])
    assert recs[0]["end"] == "closed" and recs[0]["reason"] == "revoked"
    assert recs[0]["bytes_out"] >= 1 << 20


def test_the_apps_exit_frees_the_port(env, lab):
    """When the app stops, its listeners close: the port is free on the host again
    (a program of the lab binds it), and a new start opens the manifest's forward."""
    state, d, start = env
    start(ports=[{"host": 8086, "app": HTTP_PORT}], permissions=["net.listen:8086"],
          grants=["net.listen:8086"])
    assert http_get(lab, 8086) == INDEX
    d.call("org.cella.Stop", {"app": APP, "wait": True})
    assert connect_result(lab, 8086) == "ConnectionRefusedError"
    # SO_REUSEADDR, as any server sets: the port's connections may linger in
    # TIME_WAIT; only a listener still open would make the bind fail.
    in_lab(lab, """
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 8086))
        s.listen(1)
        """)
    assert port_ls(state) == {}
    d.call("org.cella.Start", {"app": APP})
    # Its second run's "ready" (the log keeps the first run's).
    wait_for("the app's second start", lambda: cella(state, "logs", APP).stdout.count("ready") >= 2)
    assert http_get(lab, 8086) == INDEX


def test_a_port_in_use_is_a_clear_error(env, lab):
    """A host port another program holds: the app starts anyway with the forward listed
    failed and why; `cella port add` of it is an error naming the port."""
    state, d, start = env
    holder = lab.popen([sys.executable, "-c", textwrap.dedent("""
        import socket, sys
        s, t = socket.socket(), socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 8087))
        s.listen(1)
        t.bind(("127.0.0.1", 8088))
        t.listen(1)
        print("bound", flush=True)
        sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "bound"
        start(ports=[{"host": 8087, "app": HTTP_PORT}],
              permissions=["net.listen:8087", "net.listen:8088"], grants=["net.listen:8087",
                                                                          "net.listen:8088"])
        e = port_ls(state)[(8087, "tcp")]
        assert e["state"] == "failed" and "8087/tcp is in use" in e["why"], e
        # The app runs and serves through its other ways; the forward is an extra.
        p = cella(state, "port", APP, "add", "8088:8000")
        assert p.returncode == 1 and "8088/tcp is in use by another program" in p.stderr, p.stderr
        assert (8088, "tcp") not in port_ls(state)
    finally:
        holder.kill()
        holder.wait()


def test_port_methods_need_a_running_app(env, lab):
    """PortAdd on an app that does not run is org.cella.AppState; on an unknown app
    NoSuchApp; bad parameters InvalidParameter naming them."""
    state, d, start = env
    write_app(state.parent / "app", permissions=["net.listen:8089"])
    install_app(state, state.parent / "app")
    with pytest.raises(ControlError) as e:
        d.call("org.cella.PortAdd", {"app": APP, "host": 8089, "port": 80})
    assert e.value.error in ("org.cella.AppState", "org.cella.NoSuchApp")
    with pytest.raises(ControlError) as e:
        d.call("org.cella.PortAdd", {"app": "org.test.nothere", "host": 8089, "port": 80})
    assert e.value.error == "org.cella.NoSuchApp"
    for params, name in (({"app": APP, "host": 0, "port": 80}, "host"),
                         ({"app": APP, "host": 8089, "port": "80"}, "port"),
                         ({"app": APP, "host": 8089, "port": 80, "proto": "sctp"}, "proto"),
                         ({"app": APP, "host": 8089, "port": 80, "address": "localhost"},
                          "address")):
        with pytest.raises(ControlError) as e:
            d.call("org.cella.PortAdd", params)
        assert e.value.error == "org.cella.InvalidParameter"
        assert e.value.parameters["parameter"] == name


def test_an_adopted_app_gets_its_manifest_forwards_again(tmp_path, lab):
    """cellad SIGKILLed: its listeners die with it (the port is refused) while the app
    runs on, held by the keeper; the next cellad adopts the app and opens its
    manifest's forwards again."""
    require_cellad()
    state, folder = tmp_path / "state", tmp_path / "app"
    write_app(folder, ports=[{"host": 8092, "app": HTTP_PORT}], permissions=["net.listen:8092"])
    dest = install_app(state, folder)
    p = cella(state, "grant", "--app-dir", dest, APP, "net.listen:8092")
    assert p.returncode == 0, p.stderr
    d = Cellad(state, "--no-autostart", preexec_fn=lab.enter).start()
    d2 = None
    try:
        d.call("org.cella.Start", {"app": APP})
        wait_log_line(d, APP, "ready")
        assert http_get(lab, 8092) == INDEX
        d.send(signal.SIGKILL)
        d.proc.wait(timeout=60)
        assert connect_result(lab, 8092) == "ConnectionRefusedError"
        d2 = Cellad(state, "--no-autostart", preexec_fn=lab.enter).start()
        assert "adopted 1 app(s)" in d2.log(), d2.log()
        e = port_ls(state)[(8092, "tcp")]
        assert e["state"] == "open" and e["origin"] == "manifest", e
        assert http_get(lab, 8092) == INDEX
        assert d2.stop() == 0
    finally:
        d.close()
        if d2:
            d2.close()


def test_a_packed_app_cannot_have_forwards(env, lab, tmp_path):
    """A packed Lua app shares its group's network namespace: `cella port add` says so
    (and its manifest may not have "ports": docs/manifest.md)."""
    state, d, start = env
    app = "org.test.packedport"
    folder = tmp_path / "packed"
    folder.mkdir()
    os.chmod(folder, 0o755)
    (folder / "manifest.json").write_text(json.dumps({
        "id": app, "version": "1.0", "runtime": "lua", "entry": "main.lua", "kind": "service",
        "isolation": "packed", "group": "portgroup", "permissions": ["net.listen:8094"]}))
    (folder / "main.lua").write_text('require("cella.timer").every(1, function() end)\n')
    for f in ("manifest.json", "main.lua"):
        os.chmod(folder / f, 0o644)
    dest = install_app(state, folder)
    p = cella(state, "grant", "--app-dir", dest, app, "net.listen:8094")
    assert p.returncode == 0, p.stderr
    d.call("org.cella.Start", {"app": app})
    p = cella(state, "port", app, "add", "8094:80")
    assert p.returncode == 1, p.stderr
    assert "packed in group portgroup" in p.stderr and "sandbox of its own" in p.stderr, p.stderr
    assert connect_result(lab, 8094) == "ConnectionRefusedError"


def test_cella_run_opens_the_manifests_forwards(tmp_path, lab):
    """Not only cellad: `cella run` (the kernel in the command) opens the manifest's
    forwards too, and they close when the run ends."""
    state, folder = tmp_path / "state", tmp_path / "app"
    write_app(folder, ports=[{"host": 8095, "app": HTTP_PORT}], permissions=["net.listen:8095"])
    p = cella(state, "grant", "--app-dir", folder, APP, "net.listen:8095")
    assert p.returncode == 0, p.stderr
    run = lab.popen([CELLA, "run", "--embedded", "--no-prompt", "--state-dir", str(state),
                     str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline().strip() == "ready"
        assert http_get(lab, 8095) == INDEX
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
        assert "Sanitizer" not in err, err
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert connect_result(lab, 8095) == "ConnectionRefusedError"
