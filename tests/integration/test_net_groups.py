"""App networks (docs/network.md, "App networks"): apps holding net.group:NAME get an
interface on network NAME (a veth into a bridge in a hub namespace cellad made), an
address from net.group.range, and an /etc/hosts naming the other members; nothing
outside the group reaches them, not even the host.

Every test runs cellad inside a NetLab (tests/integration/netlab.py): the "host" of
these tests is the lab's network namespace, so no link or namespace of the real
machine is touched, and what cellad makes dies with the lab at the latest.
The servers and clients are real programs (python3's http.server, curl, python3's
socket) running as apps, or through `cella exec` inside an app's sandbox."""
import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from daemon_util import CELLA, CELLAD, install_app, running_cellad, wait_for, wait_log_line
from netlab import PUBLIC_V4, NetLab

SRV = "org.test.web.srv"      # net.group:web, python3 -m http.server on port 8000
CLI = "org.test.web.cli"      # net.group:web, a holder (probes go through cella exec)
OUT = "org.test.outsider"     # no net.group
DB = "org.test.db.srv"        # net.group:db, an http.server too
BOTH = "org.test.both"        # net.group:web and net.group:db
PORT = 8000
MARK = "hello from the web group"
SERVING = f"Serving HTTP on 0.0.0.0 port {PORT} (http://0.0.0.0:{PORT}/) ..."

# Connects to host:port (argv), prints "OK <first line of the answer>" or the errno's
# name. A refusal by routing is immediate (ENETUNREACH), never a timeout.
PROBE = textwrap.dedent("""\
    import errno, socket, sys
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
    except socket.gaierror as e:
        print("NONAME", e); sys.exit(0)
    s = socket.socket(); s.settimeout(10)
    try:
        s.connect(addr)
        s.sendall(b"GET /index.html HTTP/1.0\\r\\n\\r\\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b: break
            data += b
        print("OK", data.decode(errors="replace").splitlines()[-1])
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__)
    """)


def _app(root, app_id, script, permissions, files=None):
    d = root / app_id
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({
        "id": app_id, "runtime": "native", "entry": "main.sh", "permissions": permissions}))
    (d / "main.sh").write_text("#!/bin/sh\n" + script)
    os.chmod(d / "main.sh", 0o755)
    (d / "probe.py").write_text(PROBE)
    (d / "attempts.py").write_text(ATTEMPTS)
    for name, text in (files or {}).items():
        (d / name).write_text(text)
    for p in (root, d):
        os.chmod(p, 0o755)
    return d


def server(root, app_id, groups, mark=MARK):
    return _app(root, app_id, f"exec python3 -u -m http.server --bind 0.0.0.0 {PORT}\n",
                [f"net.group:{g}" for g in groups], files={"index.html": mark + "\n"})


def holder(root, app_id, groups):
    return _app(root, app_id, "exec sleep 3600\n", [f"net.group:{g}" for g in groups])


def cella(state, *args, timeout=60):
    return subprocess.run([CELLA, args[0], "--state-dir", str(state), *args[1:]],
                          capture_output=True, text=True, timeout=timeout)


def grant_groups(state, app_id):
    """net.group is dangerous: the user grants what the manifest asks for."""
    folder = Path(state) / "apps" / app_id / "current"
    m = json.loads((folder / "manifest.json").read_text())
    for right in m.get("permissions", []):
        if right.startswith("net.group:"):
            p = cella(state, "grant", "--app-dir", str(folder), app_id, right)
            assert p.returncode == 0, p.stdout + p.stderr


def start(state, app_id):
    grant_groups(state, app_id)
    p = cella(state, "start", "--background", app_id)
    assert p.returncode == 0, p.stdout + p.stderr


def ex(state, app_id, *cmd):
    """Runs cmd inside app_id's sandbox (cella exec): as confined as the app, in its
    network namespace."""
    p = cella(state, "exec", app_id, "--", *cmd)
    assert p.returncode == 0, (cmd, p.stdout, p.stderr)
    return p.stdout


def probe(state, app_id, host, port=PORT):
    return ex(state, app_id, "python3", "/app/probe.py", host, str(port)).strip()


def links(state, app_id):
    """The interfaces in app_id's network namespace (from /proc/net/dev)."""
    text = ex(state, app_id, "cat", "/proc/net/dev")
    return sorted(l.split(":")[0].strip() for l in text.splitlines()[2:])


def net_ls(state, *args):
    p = cella(state, "net", *args)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def networks(state):
    return {n["name"]: n for n in json.loads(net_ls(state, "ls", "--json"))["networks"]}


def member(state, network, app_id):
    for m in networks(state).get(network, {}).get("members", []):
        if m["app"] == app_id:
            return m
    return None


def processes():
    """{pid: start time} of every process now."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                out[pid] = f.read().rpartition(")")[2].split()[19]
        except OSError:
            pass
    return out


def audit(state, app_id):
    """The audit records of app_id so far (docs/audit.md)."""
    out = []
    for f in sorted((Path(state) / "audit").glob("log.*.jsonl")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("app") == app_id:
                out.append(rec)
    return out


def netns_holders(inode):
    """Every /proc/PID/ns/net and /proc/PID/fd/N naming network namespace inode."""
    want = f"net:[{inode}]"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        paths = [f"/proc/{pid}/ns/net"]
        try:
            paths += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for p in paths:
            try:
                if os.readlink(p) == want:
                    found.append(p)
            except OSError:
                pass
    return found


def lab_links(lab):
    out = lab.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return sorted(l.split(":")[1].strip().split("@")[0] for l in out.splitlines())


@pytest.fixture
def lab():
    with NetLab() as lab:
        yield lab


@pytest.fixture
def web(tmp_path, lab):
    """cellad in a lab, with SRV serving and CLI holding, both in group "web"."""
    state = tmp_path / "state"
    root = tmp_path / "apps"
    for d in (server(root, SRV, ["web"]), holder(root, CLI, ["web"]),
              holder(root, OUT, []), server(root, DB, ["db"], mark="db"),
              holder(root, BOTH, ["web", "db"])):
        install_app(state, d)
    with running_cellad(state, preexec_fn=lab.enter) as d:
        start(state, SRV)
        wait_log_line(d, SRV, SERVING)
        start(state, CLI)
        yield state, d, root


def test_members_talk_by_app_id(web):
    """Two apps of group web: the client reaches the server's http.server by its app id
    and by <app id>.web, with python3 and with curl; both /etc/hosts list both."""
    state, d, root = web
    srv, cli = member(state, "web", SRV), member(state, "web", CLI)
    assert srv and cli, networks(state)
    assert srv["address"] != cli["address"]
    assert srv["address"].startswith("10.213.") and srv["interface"] == "cg-web"
    for app in (SRV, CLI):
        hosts = ex(state, app, "cat", "/etc/hosts")
        assert "127.0.0.1\tlocalhost" in hosts
        assert f"{srv['address']}\t{SRV} {SRV}.web" in hosts, hosts
        assert f"{cli['address']}\t{CLI} {CLI}.web" in hosts, hosts
        assert links(state, app) == ["cg-web", "lo"]
    insp = json.loads(cella(state, "inspect", "--json", CLI).stdout)
    assert insp["networks"] == [{"network": "web", "address": cli["address"],
                                 "interface": "cg-web"}], insp["networks"]
    assert json.loads(cella(state, "inspect", "--json", OUT).stdout).get("networks", []) == []
    assert probe(state, CLI, SRV) == f"OK {MARK}"
    assert probe(state, CLI, f"{SRV}.web") == f"OK {MARK}"
    out = ex(state, CLI, "curl", "-sS", "--max-time", "10", f"http://{SRV}:{PORT}/index.html")
    assert out.strip() == MARK
    # The server saw the client's own address: no NAT, no proxy in between.
    logs = cella(state, "logs", SRV).stdout
    assert re.search(rf"^{re.escape(cli['address'])} - - .*GET /index.html", logs, re.M), logs


def test_a_client_app_reaches_the_server_at_its_first_instruction(web):
    """A client whose entry point is curl itself (no retry, no wait) finds its
    interface and its peers' names already there: the interface is made before the
    app runs."""
    state, d, root = web
    app_id = "org.test.web.curl"
    install_app(state, _app(root, app_id,
                            f"exec curl -sS --max-time 10 http://{SRV}:{PORT}/index.html\n",
                            ["net.group:web"]))
    start(state, app_id)
    wait_log_line(d, app_id, MARK)
    wait_for(f"{app_id} to exit", lambda: networks(state).get("web") and
             member(state, "web", app_id) is None)


def test_nothing_outside_the_group_reaches_it(web, lab):
    """An app without net.group has no route to the group; an app of group db reaches
    its own group's server but not web's; the host (the lab's namespace) reaches
    neither, and has no link of cellad's; an app in both groups has an interface on
    each and reaches both; no member reaches the host's addresses."""
    state, d, root = web
    srv = member(state, "web", SRV)["address"]
    start(state, OUT)
    start(state, DB)
    wait_log_line(d, DB, SERVING)
    start(state, BOTH)
    db = member(state, "db", DB)["address"]
    assert networks(state)["db"]["subnet"] != networks(state)["web"]["subnet"]

    assert links(state, OUT) == ["lo"]
    assert probe(state, OUT, srv) == "ENETUNREACH"
    assert probe(state, OUT, SRV).startswith("NONAME")
    assert SRV not in ex(state, OUT, "cat", "/etc/hosts")

    assert links(state, DB) == ["cg-db", "lo"]
    assert probe(state, DB, srv) == "ENETUNREACH"
    assert probe(state, DB, SRV).startswith("NONAME")
    assert probe(state, CLI, db) == "ENETUNREACH"

    assert links(state, BOTH) == ["cg-db", "cg-web", "lo"]
    assert probe(state, BOTH, SRV) == f"OK {MARK}"
    assert probe(state, BOTH, DB) == "OK db"
    hosts = ex(state, BOTH, "cat", "/etc/hosts")
    assert f"{SRV} {SRV}.web" in hosts and f"{DB} {DB}.db" in hosts, hosts

    # The host: no route to any group, no veth or bridge of cellad's in its namespace.
    for addr in (srv, db):
        p = lab.run(["python3", "-c", PROBE, addr, str(PORT)], capture_output=True, text=True)
        assert p.stdout.strip() == "ENETUNREACH", p.stdout + p.stderr
    assert lab_links(lab) == ["lo"]
    # Nor does a member reach the host: the hub is no router.
    lab_srv = lab.popen(["python3", "-m", "http.server", "--bind", PUBLIC_V4, str(PORT)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert probe(state, CLI, PUBLIC_V4) == "ENETUNREACH"
        assert probe(state, BOTH, PUBLIC_V4) == "ENETUNREACH"
    finally:
        lab_srv.kill()
        lab_srv.wait()


def test_the_hub_holds_only_the_bridge_and_no_address(web, lab):
    """The hub namespace, entered through cellad's own fd to it: the bridge and one
    veth end per member, up; no address of any kind (IPv4, IPv6 link-local), no route,
    loopback down."""
    state, d, root = web
    inode = networks(state)["web"]["hub"]["netns_inode"]
    fds = [h for h in netns_holders(inode) if h.startswith(f"/proc/{d.proc.pid}/fd/")]
    assert len(fds) == 1, fds

    def hub(*cmd):
        return subprocess.run(["nsenter", f"--net={fds[0]}", "--", *cmd], capture_output=True,
                              text=True, check=True).stdout

    names = sorted(l.split(":")[1].strip().split("@")[0] for l in hub("ip", "-o", "link")
                   .splitlines())
    assert names == ["br0", "lo", "v0", "v1"], names
    assert "master br0" in hub("ip", "-o", "link", "show", "v0")
    assert "state DOWN" in hub("ip", "-o", "link", "show", "lo")
    assert hub("ip", "-o", "addr").strip() == "", hub("ip", "-o", "addr")
    assert hub("ip", "route").strip() == "" and hub("ip", "-6", "route").strip() == ""


def test_revoke_takes_the_interface_away_at_once(web):
    """`cella revoke` returns once the interface is gone: the app has no cg-web, its
    connection attempts fail, the others' /etc/hosts no longer name it; a grant
    gives it back."""
    state, d, root = web
    assert probe(state, CLI, SRV) == f"OK {MARK}"
    p = cella(state, "revoke", CLI, "net.group:web")
    assert p.returncode == 0, p.stdout + p.stderr
    assert links(state, CLI) == ["lo"]
    assert probe(state, CLI, member(state, "web", SRV)["address"]) == "ENETUNREACH"
    assert probe(state, CLI, SRV).startswith("NONAME")
    assert CLI not in ex(state, SRV, "cat", "/etc/hosts")
    assert member(state, "web", CLI) is None
    assert "left app network web: its net.group right was revoked" in d.log()
    wait_for("the revoke's audit record", lambda: [
        r for r in audit(state, CLI) if r["event"] == "grant" and
        r.get("what") == "net-group-left" and r.get("network") == "web" and
        r.get("reason") == "revoked"])
    assert [r for r in audit(state, CLI) if r.get("what") == "net-group-joined" and
            r["network"] == "web" and r["at_start"] is True]

    p = cella(state, "grant", CLI, "net.group:web")
    assert p.returncode == 0, p.stdout + p.stderr
    assert links(state, CLI) == ["cg-web", "lo"]
    assert probe(state, CLI, SRV) == f"OK {MARK}"
    assert CLI in ex(state, SRV, "cat", "/etc/hosts")


def test_stop_and_cleanup(web, lab):
    """A member's stop removes it from the network and the others' /etc/hosts; the
    last one's frees the hub; after cellad stops no process or fd holds a hub's
    namespace, the lab has only its loopback, and the hosts files are gone."""
    state, d, root = web
    start(state, BOTH)
    hubs = [n["hub"]["netns_inode"] for n in networks(state).values()]
    assert len(hubs) == 2 and all(netns_holders(h) for h in hubs)
    p = cella(state, "stop", CLI)
    assert p.returncode == 0, p.stderr
    assert member(state, "web", CLI) is None
    assert CLI not in ex(state, SRV, "cat", "/etc/hosts")
    p = cella(state, "stop", BOTH)
    assert p.returncode == 0, p.stderr
    assert "db" not in networks(state)  # its last member left: the hub is freed
    stats = json.loads(net_ls(state, "ls", "--json"))["kernels"][0]["stats"]
    assert stats["hubs_freed"] >= 1 and stats["leaves"] >= 3
    before = processes()
    d.stop()
    assert d.proc.returncode == 0, d.log()[-2000:]
    # No process that lived before the stop still holds a hub (an inode number the
    # kernel freed may be reused at once by a namespace made since, by anyone).
    now = processes()
    for h in hubs:
        old = [x for x in netns_holders(h)
               if before.get(x.split("/")[2]) == now.get(x.split("/")[2], "gone")]
        assert old == [], (h, old)
    assert lab_links(lab) == ["lo"]
    assert not list((Path(state) / "net").iterdir())


def test_net_ls_and_inspect_output(web):
    state, d, root = web
    out = net_ls(state, "ls")
    web_net = networks(state)["web"]
    assert re.search(rf"^web\s+{re.escape(web_net['subnet'])}\s+2$", out, re.M), out
    for m in web_net["members"]:
        assert re.search(rf"^  {re.escape(m['app'])}\s+{re.escape(m['address'])}\s*$", out,
                         re.M), out
    out = net_ls(state, "inspect", "web")
    assert f"subnet      {web_net['subnet']}" in out
    assert f"network namespace inode {web_net['hub']['netns_inode']}, bridge br0" in out
    assert "cg-web" in out and "joins 2" in out, out
    j = json.loads(net_ls(state, "inspect", "web", "--json"))
    assert [n["name"] for n in j["networks"]] == ["web"]
    assert j["kernels"][0]["stats"]["joins"] == 2
    assert j["kernels"][0]["stats"]["max_join_us"] > 0

    p = cella(state, "net", "inspect", "nosuch")
    assert p.returncode == 1 and "nosuch is no app network now" in p.stderr
    p = cella(state, "net", "inspect", "Bad/Name")
    assert p.returncode == 240 and "no network name" in p.stderr
    p = cella(state, "net", "frob")
    assert p.returncode == 240 and "unknown subcommand" in p.stderr


def test_packed_member_asking_for_net_group_is_refused(tmp_path, lab):
    """Packed Lua apps share one network namespace: one asking for net.group never
    joins its group's host, neither when it is started itself nor when the host starts
    for another member, with a message saying why and what to do."""
    state = tmp_path / "state"
    apps = {"org.test.packnet": ["net.group:web"], "org.test.packplain": []}
    for app_id, perms in apps.items():
        d = tmp_path / "apps" / app_id
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({
            "id": app_id, "runtime": "lua", "entry": "main.lua", "isolation": "packed",
            "group": "pk", "permissions": perms}))
        (d / "main.lua").write_text(textwrap.dedent("""\
            print("ran")
            require("cella.timer").after(3600, function() end)
            """))
        for p in (tmp_path / "apps", d):
            os.chmod(p, 0o755)
        os.chmod(d / "main.lua", 0o644)
        install_app(state, d)
    with running_cellad(state, preexec_fn=lab.enter) as dd:
        start(state, "org.test.packplain")
        wait_log_line(dd, "org.test.packplain", "ran")
        p = cella(state, "start", "--background", "org.test.packnet")
        assert p.returncode != 0, p.stdout
        assert "packed into the Lua host of group 'pk'" in dd.log(), dd.log()[-3000:]
        assert "ran" not in cella(state, "logs", "org.test.packnet").stdout
        out = json.loads(cella(state, "ps", "--json").stdout)
        rows = {r["id"]: r for r in (out["apps"] if isinstance(out, dict) else out)}
        assert rows["org.test.packplain"]["running"] is True
        assert not rows.get("org.test.packnet", {}).get("running"), rows
        assert networks(state) == {}

    # `cella boot` of both, where a host starts every member at once: refused at its
    # registration (the boot, as for any app it cannot register, runs none).
    boot = tmp_path / "boot"
    boot.mkdir(mode=0o755)
    for app_id in apps:
        d = boot / app_id
        shutil.copytree(tmp_path / "apps" / app_id, d)
        (d / "main.lua").write_text('print("ran")\n')
        os.chmod(d / "main.lua", 0o644)
    state2 = tmp_path / "state2"
    p = subprocess.run([CELLA, "boot", "--no-prompt", "--state-dir", str(state2), str(boot)],
                       capture_output=True, text=True, timeout=120, preexec_fn=lab.enter)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "packed into the Lua host of group 'pk'" in p.stderr, p.stderr
    assert "ran" not in cella(state2, "logs", "org.test.packnet").stdout, p.stderr


def test_range_from_cellad_conf(tmp_path, lab):
    """net.group.range and net.group.prefix in cellad.conf set the subnets; a range
    outside RFC 1918 is refused before cellad starts."""
    state = tmp_path / "state"
    root = tmp_path / "apps"
    state.mkdir(mode=0o711)
    conf = state / "cellad.conf"
    conf.write_text(json.dumps({"net": {"group": {"range": "8.8.0.0/16"}}}))
    p = subprocess.run([CELLAD, "--state-dir", str(state)], capture_output=True, text=True, timeout=60,
                       preexec_fn=lab.enter)
    assert p.returncode != 0
    assert "net.group.range: not inside a private range of RFC 1918" in p.stderr, p.stderr
    conf.write_text(json.dumps({"net": {"group": {"range": "192.168.77.0/24", "prefix": 28}}}))
    install_app(state, server(root, SRV, ["web"]))
    with running_cellad(state, preexec_fn=lab.enter) as d:
        start(state, SRV)
        wait_log_line(d, SRV, SERVING)
        n = networks(state)["web"]
        assert n["subnet"] == "192.168.77.0/28" and n["members"][0]["address"] == "192.168.77.2"


def test_reexec_rejoins_the_adopted_apps(web):
    """SIGHUP re-executes cellad; its hubs die with the old image's fds, and the new one
    puts the adopted members back on their networks: same /etc/hosts file (the app's
    bind), a new interface, the server reached again by name."""
    state, d, root = web
    old = networks(state)["web"]["hub"]["netns_inode"]
    d.send(signal.SIGHUP)
    wait_for("the re-executed cellad's adoption",
             lambda: "adopted 2 app(s) left running by an earlier cellad" in d.log())
    try:
        n = wait_for("the network made again",
                     lambda: len(networks(state).get("web", {}).get("members", [])) == 2 and
                     networks(state)["web"], timeout=20)
    except BaseException:
        print(d.log()[-4000:], networks(state))
        raise
    # The old hub went with the old image's fds. (Its inode number may be given to
    # the new hub: nsfs reuses them.)
    if n["hub"]["netns_inode"] != old:
        assert [h for h in netns_holders(old) if h.startswith(f"/proc/{d.proc.pid}/")] == []
    assert links(state, CLI) == ["cg-web", "lo"]
    assert probe(state, CLI, SRV) == f"OK {MARK}"
    hosts = ex(state, CLI, "cat", "/etc/hosts")
    for m in n["members"]:
        assert f"{m['address']}\t{m['app']} {m['app']}.web" in hosts, hosts


# Every way a member might take over its interface or speak as another member; each
# must fail. Prints "<what>: REFUSED <errno name>" or "<what>: DONE".
ATTEMPTS = textwrap.dedent("""\
    import errno, fcntl, socket, struct, sys
    peer = sys.argv[1]
    def attempt(what, fn):
        try:
            fn()
            print(f"{what}: DONE")
        except OSError as e:
            print(f"{what}: REFUSED {errno.errorcode.get(e.errno, e.errno)}")
    def ifreq_flags(flags):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"cg-web", flags))  # SIOCSIFFLAGS
    def ifreq_addr():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sin = struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(peer))
        fcntl.ioctl(s, 0x8916, struct.pack("16s", b"cg-web") + sin)  # SIOCSIFADDR
    def forwarding():
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")
    def transparent():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT
    def spoof_udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: bind to the peer's address
        s.bind((peer, 0))
        s.sendto(b"from the peer, honest", (peer, 9))
    attempt("take the peer's address (SIOCSIFADDR)", ifreq_addr)
    attempt("bring cg-web down (SIOCSIFFLAGS)", lambda: ifreq_flags(0))
    attempt("make cg-web promiscuous (SIOCSIFFLAGS)", lambda: ifreq_flags(0x1 | 0x40 | 0x100))
    attempt("turn on forwarding", forwarding)
    attempt("IP_TRANSPARENT", transparent)
    attempt("send UDP from the peer's address (IP_FREEBIND)", spoof_udp)
    attempt("open a packet socket", lambda: socket.socket(17, socket.SOCK_RAW, 0))
    attempt("open a raw IP socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1))
    """)


def test_a_member_cannot_take_over_its_interface_or_speak_as_another(web):
    """Real attempts from inside a member: ioctls and route netlink on its interface,
    forwarding, transparent and free-bind sockets sending from a peer's address,
    packet and raw sockets: each refused (the namespace is cellad's, the app has no
    capability over it), and `ip` run inside fails the same way."""
    state, d, root = web
    srv = member(state, "web", SRV)["address"]
    out = ex(state, CLI, "python3", "/app/attempts.py", srv)
    lines = out.strip().splitlines()
    assert len(lines) == 8, out
    assert all(": REFUSED " in l for l in lines), out
    for cmd in (["ip", "addr", "add", f"{srv}/24", "dev", "cg-web"],
                ["ip", "link", "set", "cg-web", "down"],
                ["ip", "route", "add", "default", "dev", "cg-web"],
                ["ip", "link", "add", "x", "type", "bridge"]):
        p = cella(state, "exec", CLI, "--", *cmd)
        assert p.returncode != 0 and "Operation not permitted" in p.stderr, (cmd, p.stderr)
    # And it all stands: the same address, the server still reached.
    assert member(state, "web", CLI)["address"] != srv
    assert probe(state, CLI, SRV) == f"OK {MARK}"
