"""The app's own network and its own block of ids (docs/security.md, "Network" and
"Ids"), tried from inside real sandboxes.

Every app has a network namespace of its own with only loopback in it: INET and
INET6 sockets and route netlink work there, the host's network stays out of reach.
Every app has a block of 65,536 host ids recorded in state.db: chown and setuid to
another id of it fail with EPERM, as for any unprivileged user; two apps' blocks
never share an id; a state folder from before blocks keeps each app's uid and data.
"""
import os
import socket
import sqlite3
import subprocess

import pytest

from conftest import CELLA, run_cella, which

BLOCK = 65536

LOOPBACK_PY = r"""
import socket, threading
for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.bind((addr, 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    def serve():
        c, _ = srv.accept()
        c.sendall(c.recv(100).upper())
        c.close()
    t = threading.Thread(target=serve)
    t.start()
    with socket.create_connection((addr, port), timeout=10) as c:
        c.sendall(b"ping " + addr.encode())
        print(c.recv(100).decode())
    t.join()
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.bind((addr, 0))
    u.sendto(b"udp", u.getsockname())
    print(family.name, u.recv(10).decode())
# Route netlink: the interfaces of its own namespace, and getaddrinfo's AI_ADDRCONFIG.
print("interfaces", [n for _, n in socket.if_nameindex()])
print("localhost", sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80, proto=socket.IPPROTO_TCP)}))
"""


@pytest.mark.twin
def test_sockets_on_its_own_loopback(state, make_app):
    app = make_app("org.test.loopback", "exec python3 /app/lo.py\n", files={"lo.py": (LOOPBACK_PY, 0o644)})
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.out + r.err
    lines = r.out.splitlines()
    assert lines[:4] == ["PING 127.0.0.1", "AF_INET udp", "PING ::1", "AF_INET6 udp"], r.out
    assert lines[4] == "interfaces ['lo']", r.out
    assert lines[5].startswith("localhost ") and "127.0.0.1" in lines[5], r.out


def _listener(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((addr, 0))
    s.listen(8)
    s.setblocking(False)
    return s


def _host_addresses():
    """The host's own global addresses (ip -o addr), without the prefix length."""
    ip = which("ip")
    if not ip:
        return []
    out = subprocess.run([ip, "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    return [l.split()[3].split("/")[0] for l in out.splitlines() if len(l.split()) > 3]


@pytest.mark.twin
def test_host_loopback_and_network_are_out_of_reach(state, make_app):
    """A listener on the host's own 127.0.0.1 and ::1 is not reachable from the app's
    loopback (a separate namespace), nor one on every address of the host, nothing
    off the loopback is routed, and the app cannot change its namespace's
    addresses, links or routes."""
    v4, v6 = _listener(socket.AF_INET, "127.0.0.1"), _listener(socket.AF_INET6, "::1")
    p4, p6 = v4.getsockname()[1], v6.getsockname()[1]
    # One listener on every address of the host (:: takes IPv4 too), tried at each
    # of the host's own global addresses.
    anyaddr = _listener(socket.AF_INET6, "::")
    pany = anyaddr.getsockname()[1]
    hosts = _host_addresses()
    script = f"""
import errno, socket
def attempt(what, f):
    try:
        f()
        print(what, "ok")
    except OSError as e:
        print(what, errno.errorcode[e.errno])
attempt("host-v4", lambda: socket.create_connection(("127.0.0.1", {p4}), timeout=5))
attempt("host-v6", lambda: socket.create_connection(("::1", {p6}), timeout=5))
attempt("off-loopback", lambda: socket.create_connection(("192.0.2.1", 80), timeout=5))
for i, a in enumerate({hosts!r}):
    attempt("host-address-%d" % i, lambda: socket.create_connection((a, {pany}), timeout=5))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("audit", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9))
attempt("uevent", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15))
"""
    ip = which("ip")
    shell = "python3 /app/net.py\n"
    if ip:
        shell += ("for c in 'link set lo down' 'addr add 10.99.0.1/24 dev lo' 'route add default via 127.0.0.1'"
                  " 'link add d0 type dummy'; do ip $c 2>/dev/null && echo \"ip $c: ok\" || echo \"ip $c: refused\"; done\n")
    app = make_app("org.test.hostnet", shell, files={"net.py": (script, 0o644)})
    try:
        r = run_cella(app, state_dir=state)
        # Nothing ever knocked at the host's listeners.
        for s in (v4, v6, anyaddr):
            with pytest.raises(BlockingIOError):
                s.accept()
    finally:
        v4.close()
        v6.close()
        anyaddr.close()
    assert r.code == 0, r.out + r.err
    got = dict(l.rsplit(" ", 1) for l in r.out.splitlines() if not l.startswith("ip "))
    assert got == {"host-v4": "ECONNREFUSED", "host-v6": "ECONNREFUSED", "off-loopback": "ENETUNREACH",
                   "raw": "EPERM", "audit": "EPERM", "uevent": "EPERM",
                   **{f"host-address-{i}": "ENETUNREACH" for i in range(len(hosts))}}, r.out
    if ip:
        ip_lines = [l for l in r.out.splitlines() if l.startswith("ip ")]
        assert len(ip_lines) == 4 and all(l.endswith(": refused") for l in ip_lines), r.out


IDS_PY = r"""
import errno, os
open("/tmp/f", "w").close()
for name, f in (("chown-root", lambda: os.chown("/tmp/f", 0, -1)),
                ("chown-other", lambda: os.chown("/tmp/f", 2000, -1)),
                ("chgrp-other", lambda: os.chown("/tmp/f", -1, 65000)),
                ("setuid-other", lambda: os.setuid(2000)),
                ("setgid-root", lambda: os.setgid(0))):
    try:
        f()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
for m in ("uid_map", "gid_map"):
    print(m, "|".join(" ".join(l.split()) for l in open("/proc/self/" + m)))
print("setgroups", open("/proc/self/setgroups").read().strip(), os.getuid(), os.getgid(), os.getgroups())
"""


def _ids(state, make_app, app_id):
    app = make_app(app_id, "exec python3 /app/ids.py\n", files={"ids.py": (IDS_PY, 0o644)})
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.out + r.err
    return r, dict(l.split(" ", 1) for l in r.out.splitlines())


def _blocks(state):
    with sqlite3.connect(state / "state.db") as db:
        return {i: (u, b) for i, u, b in db.execute("SELECT id, uid, ids_base FROM apps")}


@pytest.mark.twin
def test_app_ids_are_a_block_of_its_own(state, make_app):
    r, a = _ids(state, make_app, "org.test.ids_a")
    uid = r.event("started")["uid"]
    base = uid - 1000
    # Id i inside is host id base + i; the app runs as 1000 (its recorded uid).
    assert a["uid_map"] == a["gid_map"] == f"0 {base} {BLOCK}", r.out
    assert a["setgroups"] == "deny 1000 1000 []", r.out
    # No capability in its namespace: the other ids are mapped, and refused.
    for call in ("chown-root", "chown-other", "chgrp-other", "setuid-other", "setgid-root"):
        assert a[call] == "EPERM", (call, r.out)
    assert _blocks(state)["org.test.ids_a"] == (uid, base)
    # The block comes from the default range, whole, at a multiple of the block size.
    assert 0x70010000 <= base and base + BLOCK <= 0x7FFE0000 and (base - 0x70010000) % BLOCK == 0

    # A second app: another block, sharing no id with the first.
    r2, b = _ids(state, make_app, "org.test.ids_b")
    base2 = r2.event("started")["uid"] - 1000
    assert b["uid_map"] == f"0 {base2} {BLOCK}"
    assert base2 >= base + BLOCK or base2 + BLOCK <= base, (base, base2)
    # And the first keeps its own on its next run.
    r3, a3 = _ids(state, make_app, "org.test.ids_a")
    assert a3["uid_map"] == a["uid_map"] and r3.event("started")["uid"] == uid


# Not a twin: it makes a state dir of an older layout; a cellad on it would have made it new first.
def test_state_dir_from_before_blocks_keeps_each_apps_uid_and_data(state, make_app):
    """A state folder written by cella before blocks (schema 2, one uid per app in
    0x70000000 + 65536, /data a plain directory owned by it): the app keeps its uid,
    so its files stay its own, and gets a block for its other ids that holds no other
    app's uid."""
    old_uid, other_uid = 0x70000042, 0x70000043
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o711)
    with sqlite3.connect(state / "state.db") as db:
        db.executescript(f"""
            CREATE TABLE apps (id TEXT PRIMARY KEY NOT NULL, uid INTEGER UNIQUE NOT NULL,
              created INTEGER NOT NULL DEFAULT (strftime('%s','now')), path TEXT, dev INTEGER,
              ino INTEGER, key_id TEXT, digest TEXT, claimed_at INTEGER, updated_at INTEGER);
            INSERT INTO apps (id, uid) VALUES ('org.test.old', {old_uid}), ('org.test.other', {other_uid});
            PRAGMA user_version = 2;""")
    data = state / "apps" / "org.test.old" / "data"
    data.mkdir(parents=True)
    os.chmod(data.parent, 0o711)
    os.chmod(data, 0o700)
    (data / "note").write_text("written before the upgrade\n")
    os.chmod(data / "note", 0o600)
    for p in (data, data / "note"):
        os.chown(p, old_uid, old_uid)

    app = make_app("org.test.old", "cat /data/note; echo appended >> /data/note && cat /data/note\n"
                   "grep -v '^$' /proc/self/uid_map | tr -s ' ' | sed 's/^ //' | paste -sd'|'\n")
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.out + r.err
    assert r.event("started")["uid"] == old_uid
    uid, base = _blocks(state)["org.test.old"]
    assert uid == old_uid and base is not None
    lines = r.out.splitlines()
    assert lines[:3] == ["written before the upgrade", "written before the upgrade", "appended"], r.out
    assert lines[3] == f"0 {base} 1000|1000 {old_uid} 1|1001 {base + 1001} {BLOCK - 1001}", r.out
    # The new block holds neither the app's own old uid nor the other old app's.
    for u in (old_uid, other_uid):
        assert not base <= u < base + BLOCK
    # A new app gets a block of its own, apart from both.
    r2, n = _ids(state, make_app, "org.test.new")
    nb = r2.event("started")["uid"] - 1000
    assert nb >= base + BLOCK or nb + BLOCK <= base
    for u in (old_uid, other_uid):
        assert not nb <= u < nb + BLOCK
