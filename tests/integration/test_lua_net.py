"""cella.net end to end (docs/lua-api.md "cella.net", docs/network.md "Lua"): Lua apps
under `cella run` through a cellad running inside a NetLab (a network namespace with
only loopback, "public" addresses on it and its own /etc/hosts), against real
servers in the lab (tests/integration/lua_net_servers.py): HTTP and HTTPS (a test CA
made here with openssl), a WebSocket echo (python3-websockets) and a TCP echo. Every
connection is the kernel's net.connect, so the rights decide: a host the app may not
reach, directly or through a redirect, is refused with a clear error.

Each app prints "OK <name>" as its last line and exits 0; an assert in Lua fails the
run with its message. Skipped (not passed) where the lab cannot be made, where this
build's kernel has no net.connect, or without python3-websockets or openssl."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CELLA, example, run_cella
from daemon_util import remove_pending_bases, require_cellad, running_cellad
from netlab import PUBLIC_V4, PUBLIC_V4_2, NetLab

SERVERS = Path(__file__).resolve().parent / "lua_net_servers.py"
# Debian's python3 (python3-websockets is a Debian package), whatever python3 runs pytest.
SYS_PYTHON = "/usr/bin/python3"
HTTP_PORT, HTTPS_PORT, WS_PORT, ECHO_PORT = 8080, 8443, 8765, 7007
HOSTS = {"files.test": PUBLIC_V4, "secure.test": PUBLIC_V4, "chat.test": PUBLIC_V4,
         "echo.test": PUBLIC_V4, "other.test": PUBLIC_V4_2, "wrongname.test": PUBLIC_V4}


def start(lab, procs, *args):
    """Starts a server of lua_net_servers.py in the lab and waits for its READY line."""
    p = lab.popen([SYS_PYTHON, str(SERVERS), *map(str, args)], stdout=subprocess.PIPE,
                  text=True)
    procs.append(p)
    line = p.stdout.readline()
    assert line.strip() == "READY", f"server {args} did not start: {line!r}"
    return p


def make_ca(d):
    """A test CA and a certificate for secure.test (and no other name) signed by it."""
    ossl = shutil.which("openssl")
    if not ossl:
        pytest.skip("the HTTPS test needs openssl")

    def run(*a):
        subprocess.run([ossl, *a], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=cella test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=secure.test")
    (d / "ext.cnf").write_text("subjectAltName=DNS:secure.test\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "srv.pem", d / "srv.key"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab, its servers and a cellad in it, for the module's tests."""
    require_cellad()
    if subprocess.run([SYS_PYTHON, "-c", "import websockets"], capture_output=True).returncode:
        pytest.skip("the WebSocket test needs python3-websockets")
    top = tmp_path_factory.mktemp("luanet")
    os.chmod(top, 0o755)
    ca, cert, key = make_ca(top)
    procs = []
    lab = NetLab(hosts=HOSTS)
    try:
        start(lab, procs, "http", PUBLIC_V4, HTTP_PORT)
        start(lab, procs, "http", PUBLIC_V4_2, HTTP_PORT)
        start(lab, procs, "http", PUBLIC_V4, HTTPS_PORT, cert, key)
        start(lab, procs, "ws", PUBLIC_V4, WS_PORT)
        start(lab, procs, "echo", PUBLIC_V4, ECHO_PORT)
        # The lua-fetch example's server, as its README starts it.
        site = top / "site"
        site.mkdir()
        (site / "index.html").write_text("<p>served in the lab</p>\n")
        p = lab.popen([SYS_PYTHON, "-u", "-m", "http.server", "8000", "--bind", "127.0.0.1",
                       "--directory", str(site)], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().startswith("Serving HTTP on 127.0.0.1 port 8000")
        start(lab, procs, "echo", "127.0.0.1", 7007)  # the lua-tcp-echo example's
        start(lab, procs, "ws", "127.0.0.1", 8765)  # the lua-ws-echo example's
        with running_cellad(top / "state", preexec_fn=lab.enter) as d:
            yield {"lab": lab, "state": top / "state", "top": top, "ca": ca.read_text(),
                   "cellad": d}
    finally:
        for p in procs:
            p.kill()
            p.wait()
        lab.close()
        # The cellad closed after the last test's own cleanup: its cgroup base goes here.
        remove_pending_bases()


def app(lab, name, script, permissions, args=()):
    """An app folder (world-readable) running script with the given rights."""
    d = lab["top"] / name
    d.mkdir()
    (d / "main.lua").write_text("local net = require('cella.net')\n" + script +
                                f"\nprint('OK {name}')\n")
    (d / "manifest.json").write_text(json.dumps({
        "id": f"org.cella.test.{name}", "runtime": "lua", "entry": "main.lua",
        "args": list(args), "permissions": permissions}))
    for p in (d, d / "main.lua", d / "manifest.json"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return d


def run_app(lab, name, script, permissions, args=()):
    r = run_cella(app(lab, name, script, permissions, args), state_dir=lab["state"],
                  timeout=120)
    if "has no net.connect call" in r.err or "Function not implemented" in r.err:
        pytest.skip("this build's kernel has no net.connect call (issue 14's egress part)")
    assert r.code == 0, (r.code, r.out, r.err)
    assert r.out.splitlines()[-1] == f"OK {name}", (r.out, r.err)
    return r


FILES = f"net.connect:files.test:{HTTP_PORT}"


def test_http_get_and_post_by_name(lab):
    run_app(lab, "get_post", f"""
local r = net.http.get('http://files.test:{HTTP_PORT}/hello')
assert(r.status == 200 and r.body == 'hello', r.status)
assert(r.headers['x-server'] == 'lab')
assert(r.address == '{PUBLIC_V4}', r.address)
r = net.http.post('http://files.test:{HTTP_PORT}/echo', 'a=1&b=\\0\\1',
                  {{headers = {{['X-Test'] = 'yes'}}}})
assert(r.status == 200 and r.body == 'POST|yes|a=1&b=\\0\\1', r.body)
r = net.http.request{{method = 'PUT', url = 'http://files.test:{HTTP_PORT}/echo', body = 'p'}}
assert(r.body == 'PUT||p', r.body)
r = net.http.get('http://files.test:{HTTP_PORT}/redir')
assert(r.status == 200 and r.body == 'hello' and r.url:find('/hello$'), r.url)
""", [FILES])


def test_https_with_a_test_ca(lab):
    ca = json.dumps(lab["ca"])
    run_app(lab, "https", f"""
local ca = {ca}
local r = net.http.get('https://secure.test:{HTTPS_PORT}/hello', {{ca_pem = ca}})
assert(r.status == 200 and r.body == 'hello', r.status)
-- the system's CA store (read inside the jail: /etc/ssl is bound) does not know the
-- test CA: verification fails on the issuer, not on a store it could not load
local ok, e = pcall(net.http.get, 'https://secure.test:{HTTPS_PORT}/hello')
assert(not ok and e:find('unable to get local issuer certificate'), e)
-- a certificate for another name fails too, whatever CA
ok, e = pcall(net.http.get, 'https://wrongname.test:{HTTPS_PORT}/hello', {{ca_pem = ca}})
assert(not ok and (e:find('certificate') or e:find('name')), e)
""", [f"net.connect:secure.test:{HTTPS_PORT}", f"net.connect:wrongname.test:{HTTPS_PORT}"])


def test_redirect_to_a_host_not_granted_is_refused(lab):
    r = run_app(lab, "redirect_away", f"""
local ok, e = pcall(net.http.get, 'http://files.test:{HTTP_PORT}/away')
-- a host the manifest does not name: EPERM ("never"); one it names but not granted: EACCES
assert(not ok and e:find('redirect: other.test:{HTTP_PORT} refused: Operation not permitted'), e)
print(e)
""", [FILES])
    assert "other.test" in r.out


def test_a_host_not_granted_is_refused_clearly(lab):
    run_app(lab, "refused", f"""
local ok, e = pcall(net.tcp.connect, 'other.test', {HTTP_PORT})
assert(not ok and e:find('cella.net.tcp.connect: other.test:{HTTP_PORT} refused: Operation not permitted'), e)
ok, e = pcall(net.http.get, 'http://other.test:{HTTP_PORT}/hello')
assert(not ok and e:find('refused'), e)
ok, e = pcall(net.websocket.connect, 'ws://other.test:{HTTP_PORT}/')
assert(not ok and e:find('refused'), e)
""", [FILES])


def test_timeout_suspends_only_its_task(lab):
    run_app(lab, "timeout", f"""
local timer = require('cella.timer')
local ticks, done = 0, false
timer.after(0, function() while not done do ticks = ticks + 1 timer.sleep(0.01) end end)
local t0 = timer.now()
local ok, e = pcall(net.http.get, 'http://files.test:{HTTP_PORT}/slow', {{timeout_ms = 500}})
done = true
assert(not ok and e:find('timed out'), e)
assert(timer.now() - t0 >= 0.49, timer.now() - t0)
assert(ticks >= 10, 'the other task ran only ' .. ticks .. ' times')
""", [FILES])


def test_websocket_echo(lab):
    run_app(lab, "ws_echo", f"""
local ws = net.websocket.connect('ws://chat.test:{WS_PORT}/echo', {{timeout_ms = 5000}})
ws:send('héllo')
local m, kind = ws:receive()
assert(m == 'héllo' and kind == 'text', tostring(m))
local bin = ('\\0\\255'):rep(50000)
ws:send(bin, 'binary')
m, kind = ws:receive()
assert(m == bin and kind == 'binary')
ws:ping('x')
assert(ws:close() == true)
""", [f"net.connect:chat.test:{WS_PORT}"])


def test_tcp_read_write(lab):
    run_app(lab, "tcp", f"""
local c = net.tcp.connect('echo.test', {ECHO_PORT}, {{timeout_ms = 5000}})
assert(c:info().address == '{PUBLIC_V4}')
local big = ('0123456789'):rep(100000)
require('cella.timer').after(0, function() c:write(big) c:shutdown() end)
local got = {{}}
while true do local s = c:read() if not s then break end got[#got + 1] = s end
assert(table.concat(got) == big)
c:close()
""", [f"net.connect:echo.test:{ECHO_PORT}"])


def grant_example(lab, name, app_id, right):
    """The user's grant the example's README asks for: a right naming the host's
    loopback is dangerous, never granted at install."""
    r = subprocess.run([CELLA, "grant", "--state-dir", str(lab["state"]), "--app-dir",
                        str(example(name)), app_id, right], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr


def test_example_lua_fetch(lab):
    grant_example(lab, "net/lua-fetch", "org.cella.example.lua_fetch",
                  "net.connect:127.0.0.1:8000")
    r = run_cella(example("net/lua-fetch"), state_dir=lab["state"], timeout=120)
    if "has no net.connect call" in r.err:
        pytest.skip("this build's kernel has no net.connect call")
    assert r.code == 0, (r.code, r.out, r.err)
    assert r.out.splitlines() == ["200 text/html 25 bytes from 127.0.0.1",
                                  "<p>served in the lab</p>"], (r.out, r.err)


def test_example_lua_tcp_echo(lab):
    grant_example(lab, "net/lua-tcp-echo", "org.cella.example.lua_tcp_echo",
                  "net.connect:127.0.0.1:7007")
    r = run_cella(example("net/lua-tcp-echo"), state_dir=lab["state"], timeout=120)
    if "has no net.connect call" in r.err:
        pytest.skip("this build's kernel has no net.connect call")
    assert r.code == 0, (r.code, r.out, r.err)
    assert "echoed 17 bytes through 127.0.0.1" in r.out, r.out


def test_example_lua_ws_echo(lab):
    grant_example(lab, "net/lua-ws-echo", "org.cella.example.lua_ws_echo",
                  "net.connect:127.0.0.1:8765")
    r = run_cella(example("net/lua-ws-echo"), state_dir=lab["state"], timeout=120)
    if "has no net.connect call" in r.err:
        pytest.skip("this build's kernel has no net.connect call")
    assert r.code == 0, (r.code, r.out, r.err)
    assert r.out.strip() == ("echoed 3 text messages and 4096 binary bytes from 127.0.0.1; "
                             "closed cleanly"), (r.out, r.err)


def test_revoking_the_right_cuts_a_connection_mid_transfer(lab):
    """The app echoes bytes in a loop over a connection; revoking its net.connect
    right while it does cuts the connection at once: the app's read or write ends
    (EOF or an error), it says so and exits 0."""
    right = f"net.connect:echo.test:{ECHO_PORT}"
    d = app(lab, "revoke_cut", f"""
local c = net.tcp.connect('echo.test', {ECHO_PORT}, {{timeout_ms = 20000}})
c:write('x') assert(c:read() == 'x')
print('connected')
local ok, e = pcall(function()
  while true do
    c:write(('y'):rep(4096))
    if not c:read() then return 'end of stream' end
  end
end)
print('cut: ' .. tostring(e))
""", [right])
    p = subprocess.Popen([CELLA, "run", "--state-dir",
                          str(lab["state"]), str(d)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line:
            err = p.stderr.read()
            if "has no net.connect call" in err:
                pytest.skip("this build's kernel has no net.connect call")
            pytest.fail(f"the app ended before it connected: {err}")
        assert line.strip() == "connected", line
        r = subprocess.run([CELLA, "revoke", "--state-dir",
                            str(lab["state"]), "org.cella.test.revoke_cut", right],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    assert out.splitlines()[-1].startswith("OK revoke_cut"), (out, err)
    assert any(l.startswith("cut: ") for l in out.splitlines()), out
