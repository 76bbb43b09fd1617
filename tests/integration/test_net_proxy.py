"""The per-app proxy (docs/network.md, "The proxy"): unmodified curl, python's urllib,
git and pip, run inside a sandbox with nothing but the proxy variables cella put in
their environment, reach the hosts the app's net.connect rights name, over http://
(absolute-form requests), https:// (CONNECT, TLS end to end against a test CA) and
SOCKS5, and nothing else: a host not granted, a loopback or private address, a name
that resolves to one, each refused with cella's reason and an audit record.

Everything runs in a NetLab (tests/integration/netlab.py): cella and the servers in a
network namespace of the test's own with only loopback, so a wrong check cannot send a
packet off the machine."""
import json
import signal
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from conftest import CELLA, Result
from netlab import PUBLIC_V4, PUBLIC_V4_2, NetLab

PORT = 61080  # cellad.conf net.proxy.port's default
ALLOWED = "allowed.test"  # PUBLIC_V4: granted on 8080 and 8443
OTHER = "other.test"  # PUBLIC_V4_2: a server there, no right for it
PRIVATE = "private.test"  # resolves to the lab's 127.0.0.1, where a server listens
HELLO = "hello from the allowed host\n"

# A server that says "ready" once it listens (the test waits for that line, not a
# sleep): http.server's handler on ADDR PORT for DIR, with TLS when CERT KEY are given.
SERVER_PY = textwrap.dedent("""\
    import functools, http.server, socket, ssl, sys
    addr, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
    handler.log_message = lambda *a: None
    srv = Server((addr, port), handler)
    if len(sys.argv) > 5:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready", flush=True)
    srv.serve_forever()
    """)


def make_ca(d):
    """A test CA and a certificate for ALLOWED signed by it, made with openssl.
    Returns (ca.pem, cert.pem, key.pem)."""
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("the HTTPS server needs openssl")

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cella test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ALLOWED}", "-keyout", "key.pem",
        "-out", "req.pem")
    (d / "ext.cnf").write_text(f"subjectAltName=DNS:{ALLOWED}\n")
    run("x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "ext.cnf", "-out", "cert.pem")
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


def make_wheel(path):
    """A minimal pure-Python wheel (PEP 427) for pip to download."""
    dist = "demo_pkg-1.0.dist-info"
    files = {
        "demo_pkg/__init__.py": "VALUE = 42\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: cella-test\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    record = "".join(f"{n},,\n" for n in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for n, text in files.items():
            z.writestr(n, text)
        z.writestr(f"{dist}/RECORD", record)


def make_site(root):
    """The allowed host's files: hello.txt, a bare git repository served the dumb way
    (git update-server-info), and a PEP 503 simple index with one wheel."""
    www = root / "www"
    www.mkdir()
    (www / "hello.txt").write_text(HELLO)
    git = shutil.which("git")
    if git:
        work = root / "work"
        env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                   GIT_COMMITTER_EMAIL="t@t", HOME=str(root))
        subprocess.run([git, "init", "-q", "-b", "main", str(work)], check=True, env=env)
        (work / "README").write_text("cloned through cella's proxy\n")
        subprocess.run([git, "-C", str(work), "add", "README"], check=True, env=env)
        subprocess.run([git, "-C", str(work), "commit", "-q", "-m", "one"], check=True, env=env)
        subprocess.run([git, "clone", "-q", "--bare", str(work), str(www / "repo.git")], check=True,
                       env=env)
        subprocess.run([git, "-C", str(www / "repo.git"), "update-server-info"], check=True, env=env)
    simple = www / "simple" / "demo-pkg"
    simple.mkdir(parents=True)
    make_wheel(simple / "demo_pkg-1.0-py3-none-any.whl")
    (simple / "index.html").write_text(
        '<html><body><a href="demo_pkg-1.0-py3-none-any.whl">demo_pkg-1.0-py3-none-any.whl</a>'
        "</body></html>\n")
    other = root / "other"
    other.mkdir()
    (other / "hello.txt").write_text("the other host\n")
    loop = root / "loopback"
    loop.mkdir()
    (loop / "hello.txt").write_text("the lab's loopback\n")
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    return www, other, loop


class Lab:
    """The lab, its servers, and a state directory whose apps run in it."""

    def __init__(self, root):
        self.root = root
        self.lab = NetLab(hosts={ALLOWED: PUBLIC_V4, OTHER: PUBLIC_V4_2, PRIVATE: "127.0.0.1"})
        self.servers = []
        try:
            self.ca, cert, key = make_ca(root)
            www, other, loop = make_site(root)
            server = root / "server.py"
            server.write_text(SERVER_PY)
            for args in ([PUBLIC_V4, "8080", www], [PUBLIC_V4, "8443", www, cert, key],
                         [PUBLIC_V4_2, "8080", other], [PUBLIC_V4_2, "8443", other, cert, key],
                         ["127.0.0.1", "8080", loop]):
                p = self.lab.popen([sys.executable, str(server), *map(str, args)],
                                   stdout=subprocess.PIPE, text=True)
                self.servers.append(p)
                assert p.stdout.readline() == "ready\n", f"server {args} did not start"
        except BaseException:
            self.close()
            raise

    def close(self):
        for p in self.servers:
            p.kill()
            p.wait()
        self.lab.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("netproxy"))
    try:
        yield lab
    finally:
        lab.close()


def run_in_lab(lab, app, *args, state, env=None, timeout=120):
    """`cella run --state-dir STATE APP -- ARGS` inside the lab (its kernel, and so
    the broker's connections, in the lab's namespaces)."""
    cmd = [CELLA, "run", "--state-dir", str(state), str(app)]
    if args:
        cmd += ["--", *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env if env is not None else dict(os.environ), preexec_fn=lab.lab.enter)
    return Result(p.returncode, p.stdout, p.stderr)


def audit(state, app_id):
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--json", "--app", app_id],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


RIGHTS = [f"net.connect:{ALLOWED}:8080", f"net.connect:{ALLOWED}:8443", f"net.connect:{PRIVATE}:8080"]


@pytest.fixture
def proxied(make_app, lab):
    """An app that runs its arguments, asking for RIGHTS, with the test CA at /app/ca.pem."""
    return make_app("org.test.proxied", 'exec "$@"\n', permissions=RIGHTS,
                    files={"ca.pem": (lab.ca.read_text(), 0o644)})


def test_environment_announces_the_proxy(lab, proxied, make_app, state):
    r = run_in_lab(lab, proxied, "/usr/bin/env", state=state)
    assert r.code == 0, r.err
    env = dict(l.split("=", 1) for l in r.out.splitlines() if "=" in l)
    for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        assert env.get(k) == f"http://127.0.0.1:{PORT}", (k, env)
    for k in ("all_proxy", "ALL_PROXY"):
        assert env.get(k) == f"socks5h://127.0.0.1:{PORT}", (k, env)
    for k in ("no_proxy", "NO_PROXY"):
        assert env.get(k) == "localhost,127.0.0.1,::1", (k, env)

    # An app with no net.connect right: no variable, and nothing listens there.
    plain = make_app("org.test.plain", 'exec "$@"\n')
    r = run_in_lab(lab, plain, "/bin/sh", "-c",
                   f"env | grep -ci proxy; /usr/bin/curl -sS -o /dev/null "
                   f"-x http://127.0.0.1:{PORT} http://{ALLOWED}:8080/hello.txt; echo curl=$?",
                   state=state)
    lines = r.out.splitlines()
    assert lines[0] == "0", r.out
    assert "curl=7" in lines, r.out + r.err  # 7: could not connect to the proxy


def test_curl_http_https_socks(lab, proxied, state):
    script = textwrap.dedent(f"""\
        set -e
        /usr/bin/curl -sS http://{ALLOWED}:8080/hello.txt
        /usr/bin/curl -sS --cacert /app/ca.pem https://{ALLOWED}:8443/hello.txt
        /usr/bin/curl -sS -x "$ALL_PROXY" http://{ALLOWED}:8080/hello.txt
        /usr/bin/curl -sS --noproxy '' -x socks5h://[::1]:{PORT} --cacert /app/ca.pem \
            https://{ALLOWED}:8443/hello.txt
        """)
    r = run_in_lab(lab, proxied, "/bin/sh", "-c", script, state=state)
    assert r.code == 0, r.out + r.err
    assert r.out == HELLO * 4, r.out + r.err


def test_python_urllib(lab, proxied, state):
    code = textwrap.dedent(f"""\
        import ssl, urllib.request
        print(urllib.request.urlopen("http://{ALLOWED}:8080/hello.txt").read().decode(), end="")
        ctx = ssl.create_default_context(cafile="/app/ca.pem")
        print(urllib.request.urlopen("https://{ALLOWED}:8443/hello.txt", context=ctx)
              .read().decode(), end="")
        """)
    r = run_in_lab(lab, proxied, "/usr/bin/python3", "-c", code, state=state)
    assert r.code == 0, r.err
    assert r.out == HELLO * 2, r.out + r.err


def test_git_clone_over_http(lab, proxied, state):
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    r = run_in_lab(lab, proxied, "/bin/sh", "-c",
                   f"/usr/bin/git clone -q http://{ALLOWED}:8080/repo.git /tmp/c && cat /tmp/c/README",
                   state=state)
    assert r.code == 0, r.err
    assert r.out == "cloned through cella's proxy\n", r.out + r.err


def test_pip_download(lab, proxied, state):
    if subprocess.run(["/usr/bin/python3", "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("pip is not installed for /usr/bin/python3 (python3-pip)")
    # Over https:// (CONNECT) against the test CA: pip warns off a plain http index.
    r = run_in_lab(lab, proxied, "/bin/sh", "-c",
                   "/usr/bin/python3 -m pip download -q --no-deps --disable-pip-version-check "
                   f"--no-cache-dir --cert /app/ca.pem --index-url https://{ALLOWED}:8443/simple/ "
                   "-d /tmp/dl demo-pkg && ls /tmp/dl", state=state)
    assert r.code == 0, r.out + r.err
    assert r.out == "demo_pkg-1.0-py3-none-any.whl\n", r.out + r.err


def test_bulk_download_is_whole(lab, proxied, state):
    """64 MiB through the proxy and the relay, by http:// and https://: every byte
    there, in order, and the end seen (curl exits on the server's close)."""
    big = lab.root / "www" / "big.bin"
    if not big.exists():
        with open(big, "wb") as f:
            f.write(os.urandom(1 << 20) * 64)
        os.chmod(big, 0o644)
    want = subprocess.run(["sha256sum", str(big)], capture_output=True, text=True,
                          check=True).stdout.split()[0]
    r = run_in_lab(lab, proxied, "/bin/sh", "-c",
                   f"/usr/bin/curl -sS http://{ALLOWED}:8080/big.bin | sha256sum; "
                   f"/usr/bin/curl -sS --cacert /app/ca.pem https://{ALLOWED}:8443/big.bin "
                   "| sha256sum", state=state, timeout=120)
    assert r.code == 0, r.err
    assert [l.split()[0] for l in r.out.splitlines()] == [want, want], r.out + r.err


# Each refused target, through the proxy's HTTP side: the URL, what the body says,
# and the host of its audit record (an address in its canonical text).
REFUSED_HTTP = [
    (f"http://{OTHER}:8080/hello.txt", f"net.connect:{OTHER}:8080", OTHER),  # no right
    (f"http://{PRIVATE}:8080/hello.txt", "127.0.0.1", PRIVATE),  # a name resolving to loopback
    ("http://127.0.0.1:8080/hello.txt", "127.0.0.1", "127.0.0.1"),  # the lab's loopback
    ("http://10.1.2.3:8080/hello.txt", "10.1.2.3", "10.1.2.3"),  # private
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254"),  # metadata
    ("http://[::ffff:127.0.0.1]:8080/hello.txt", "127.0.0.1", None),  # IPv4-mapped loopback
    ("http://2130706433:8080/hello.txt", "127.0.0.1", "127.0.0.1"),  # 127.0.0.1 in decimal
    ("http://0x7f.1:8080/hello.txt", "127.0.0.1", "127.0.0.1"),  # and in hex, short form
]


@pytest.mark.parametrize("url,says,host", REFUSED_HTTP,
                         ids=[u.split("/")[2] for u, _, _ in REFUSED_HTTP])
def test_refused_http(lab, proxied, state, url, says, host):
    r = run_in_lab(lab, proxied, "/usr/bin/curl", "-sS", "--noproxy", "", "-x",
                   f"http://127.0.0.1:{PORT}", "-w", "\\ncode=%{http_code}\\n", url, state=state)
    lines = r.out.splitlines()
    assert "code=403" in lines, r.out + r.err
    body = lines[0]
    assert body.startswith("cella: ") and says in body, body
    # One audit record, the refusal, made through the proxy.
    records = [x for x in audit(state, "org.test.proxied") if x.get("via") == "proxy"]
    assert len(records) == 1 and records[0].get("what") == "refused", records
    assert records[0].get("errno") in (1, 13), records  # EPERM, EACCES
    if host is not None:
        assert records[0].get("host") == host, records
    assert records[0].get("why") and records[0]["why"] in body, (records, body)


def test_refused_connect_and_socks(lab, proxied, state):
    """The same refusals through CONNECT (curl's https://) and SOCKS5."""
    script = textwrap.dedent(f"""\
        /usr/bin/curl -sS --cacert /app/ca.pem https://{OTHER}:8443/hello.txt; echo "connect=$?"
        /usr/bin/curl -sS -x "$ALL_PROXY" http://{OTHER}:8080/hello.txt; echo "socks=$?"
        /usr/bin/curl -sS -x "$ALL_PROXY" http://{PRIVATE}:8080/hello.txt; echo "socks-private=$?"
        /usr/bin/curl -sS --noproxy '' -x socks5://127.0.0.1:{PORT} http://127.0.0.1:8080/hello.txt
        echo "socks-v4-loopback=$?"
        """)
    r = run_in_lab(lab, proxied, "/bin/sh", "-c", script, state=state)
    lines = r.out.splitlines()
    # curl: 56 a CONNECT answered other than 200, 97 a SOCKS5 refusal (7 before 7.87).
    assert "connect=56" in lines, r.out + r.err
    assert "403" in r.err, r.err
    assert "socks=97" in lines or "socks=7" in lines, r.out + r.err
    assert "socks-private=97" in lines or "socks-private=7" in lines, r.out + r.err
    # SOCKS5 with the address itself (ATYP IPv4), not a name.
    assert "socks-v4-loopback=97" in lines or "socks-v4-loopback=7" in lines, r.out + r.err
    # curl names SOCKS5's reply: 2, "connection not allowed by ruleset".
    assert r.err.count("(2)") == 3, r.err


def test_python_sees_the_reason(lab, proxied, state):
    code = textwrap.dedent(f"""\
        import urllib.error, urllib.request
        try:
            urllib.request.urlopen("http://{OTHER}:8080/hello.txt")
        except urllib.error.HTTPError as e:
            print(e.code, e.read().decode(), end="")
        """)
    r = run_in_lab(lab, proxied, "/usr/bin/python3", "-c", code, state=state)
    assert r.out.startswith("403 cella: "), r.out + r.err
    assert OTHER in r.out, r.out


SLOW_PY = textwrap.dedent("""\
    import socket, sys, time
    port, n_idle = int(sys.argv[1]), int(sys.argv[2])
    def conn():
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(30)
        return s
    def read_all(s):
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    # A slowloris head: a few bytes, then nothing. The proxy answers 408 and closes
    # after its handshake time, whatever the client does.
    t0 = time.monotonic()
    s = conn()
    s.sendall(b"GET http://allowed.test:8080/hello.txt HTTP/1.1\\r\\nHost: a")
    print("slow", read_all(s).split(b"\\r\\n")[0].decode(), round(time.monotonic() - t0, 1))
    # A head over 16 KiB: 431.
    s = conn()
    s.sendall(b"GET http://allowed.test:8080/ HTTP/1.1\\r\\n" + b"X-Pad: " + b"a" * 20000 + b"\\r\\n\\r\\n")
    print("large", read_all(s).split(b"\\r\\n")[0].decode())
    # n_idle connections that send nothing hold every handshake slot: a good request
    # after them is answered only once their time is up, not before.
    idle = [conn() for _ in range(n_idle)]
    t0 = time.monotonic()
    s = conn()
    s.sendall(b"GET http://allowed.test:8080/hello.txt HTTP/1.1\\r\\n\\r\\n")
    first = read_all(s).split(b"\\r\\n")[0].decode()
    print("after-idle", first, time.monotonic() - t0)
    for i in idle:
        print("idle", len(read_all(i)))
    """)


def test_slow_and_large_heads_and_the_cap(lab, proxied, state):
    handshake_ms = 700
    env = dict(os.environ, CELLA_TEST_PROXY_HANDSHAKE_MS=str(handshake_ms))
    r = run_in_lab(lab, proxied, "/usr/bin/python3", "-c", SLOW_PY, PORT, 32, state=state,
                   env=env)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    slow = lines[0].split()
    assert slow[:4] == ["slow", "HTTP/1.1", "408", "Request"], r.out
    assert float(slow[-1]) < 10, r.out  # the bound, not the client, ended it
    assert lines[1] == "large HTTP/1.1 431 Request Header Fields Too Large", r.out
    after = lines[2].split()
    assert after[1:3] == ["HTTP/1.0", "200"] or after[1:3] == ["HTTP/1.1", "200"], r.out
    assert float(after[-1]) >= handshake_ms / 1000 * 0.9, r.out
    # The idle ones were closed without a word (nothing to say to a client that said nothing).
    assert lines[3:] == ["idle 0"] * 32, r.out


LOOP_SH = textwrap.dedent(f"""\
    i=0
    while :; do
        code=$(/usr/bin/curl -s -o /dev/null -w '%{{http_code}}' http://{ALLOWED}:8080/hello.txt)
        echo "try $i $code"
        i=$((i + 1))
        sleep 0.05
    done
    """)


def test_adopted_app_gets_its_proxy_back(lab, tmp_path):
    """cellad SIGKILLed under an app that uses its proxy: its listener closed with
    that cellad; the next cellad adopts the app and makes a new one in the app's
    namespace, and the app's requests go through again, as do those of a command
    `cella exec` runs in its sandbox."""
    from daemon_util import Cellad, install_app, require_cellad, wait_for

    require_cellad()
    state = tmp_path / "state"
    app = tmp_path / "loop"
    app.mkdir()
    app_id = f"org.test.proxyadopt.p{os.getpid()}"
    (app / "manifest.json").write_text(json.dumps({
        "id": app_id, "runtime": "native", "entry": "main.sh", "restart": "always",
        "permissions": RIGHTS, "limits": {"memory": "64M", "pids": 32}}))
    (app / "main.sh").write_text("#!/bin/sh\n" + LOOP_SH)
    os.chmod(app / "main.sh", 0o755)
    install_app(state, app)
    log = state / "logs" / f"{app_id}.log"

    def tries():
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return [l.split() for l in lines if l.startswith("try ")]

    d = Cellad(state, preexec_fn=lab.lab.enter).start()
    d2 = None
    try:
        wait_for("requests answered through the proxy",
                 lambda: sum(1 for t in tries() if t[2] == "200") >= 3, timeout=60)
        d.send(signal.SIGKILL)
        d.proc.wait(timeout=60)
        n = len(tries())
        d2 = Cellad(state, preexec_fn=lab.lab.enter).start()
        assert "adopted 1 app(s)" in d2.log(), d2.log()
        wait_for("requests answered again after the adoption",
                 lambda: sum(1 for t in tries()[n:] if t[2] == "200") >= 3, timeout=60)
        # A command `cella exec` runs in the app's sandbox gets the same variables.
        p = subprocess.run([CELLA, "exec", "--state-dir", str(state), app_id, "--",
                            "/usr/bin/curl", "-sS", f"http://{ALLOWED}:8080/hello.txt"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout == HELLO, (p.returncode, p.stdout, p.stderr)
    finally:
        if d2:
            d2.stop(signal.SIGTERM)
        d.close()
        for m in reversed([l.split()[4] for l in open("/proc/self/mountinfo")
                           if l.split()[4].startswith(str(state) + "/")]):
            subprocess.run(["umount", m], capture_output=True)
