"""The keystore (docs/ipc.md): keys made and held by the kernel, used by
name from real sandboxed apps, never handed to them.

The app is tests/tools/keystore-probe (libcella's cella_keystore_*()) run by
`cella run` in a real sandbox; it prints one line per call and the test judges
them. Keys live in <state>/keystore.db sealed under <state>/keystore.key; where the
test needs an app key's private bytes (to look for them where they must not be) it
opens the row itself with the host key, through libsodium (ctypes).
"""
import ctypes
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CELLA, run_cella

PROBE = os.environ.get(
    "CELLA_KEYSTORE_PROBE",
    str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "keystore-probe"))
A = "org.test.ks.a"
B = "org.test.ks.b"


@pytest.fixture
def state(tmp_path):
    s = tmp_path / "state"
    s.mkdir(mode=0o700)
    return s


@pytest.fixture
def probe(make_app):
    if not os.path.exists(PROBE):
        pytest.fail(f"{PROBE} is not built: build first (tests/run-all does)")

    def make(app_id, permissions=("keystore",)):
        app = make_app(app_id, entry="keystore-probe", permissions=list(permissions))
        shutil.copy(PROBE, app / "keystore-probe")
        os.chmod(app / "keystore-probe", 0o755)
        return app

    return make


def run(state, app, *ops):
    """Runs the probe with ops; returns its output lines (it must exit 0)."""
    r = run_cella("--no-prompt", app, "--", *ops, state_dir=state, json_status=False)
    assert r.code == 0, f"exit {r.code}: {r.err}\n{r.out}"
    return r.out.splitlines()


def field(line, i):
    return line.split()[i]


def hexflip(h, byte):
    """h (hex) with one bit of byte `byte` flipped."""
    b = bytearray.fromhex(h)
    b[byte] ^= 0x01
    return b.hex()


def grant(state, app, app_id, right):
    p = subprocess.run([CELLA, "grant", "--state-dir", str(state), "--app-dir", str(app), app_id,
                        right], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def pb_string(field_no, s):
    """One protobuf length-delimited field (string or bytes), for hand-made requests."""
    b = s.encode() if isinstance(s, str) else s
    assert len(b) < 128
    return bytes([field_no << 3 | 2, len(b)]) + b


# ---- libsodium, to open a row with the host key as the test's own check --------------

def sodium():
    try:
        lib = ctypes.CDLL("libsodium.so.23")
    except OSError:
        pytest.skip("libsodium.so.23 is not installed (Debian's libsodium23)")
    assert lib.sodium_init() >= 0
    return lib


def private_bytes(state, app_id, name):
    """The 32 private bytes of app_id's key name, opened from keystore.db with
    keystore.key (the row's format: keystore.h)."""
    lib = sodium()
    host = (state / "keystore.key").read_bytes()
    assert len(host) == 32
    db = sqlite3.connect(state / "keystore.db")
    kind, sealed, pub = db.execute(
        "SELECT kind, sealed, public_key FROM keys WHERE app_id = ? AND name = ?",
        (app_id, name)).fetchone()
    db.close()
    ad = b"cella-keystore-v1\0" + app_id.encode() + b"\0" + name.encode() + b"\0" + \
        str(kind).encode() + b"\0" + pub
    out = ctypes.create_string_buffer(32)
    nonce, ct = sealed[:24], sealed[24:]
    r = lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, None, None, ct, ctypes.c_ulonglong(len(ct)), ad, ctypes.c_ulonglong(len(ad)),
        nonce, host)
    assert r == 0, "the row does not open with the host key"
    priv = out.raw
    if kind == 1:  # ed25519: the expanded secret key is what signing uses
        pk = ctypes.create_string_buffer(32)
        sk = ctypes.create_string_buffer(64)
        assert lib.crypto_sign_seed_keypair(pk, sk, priv) == 0
        return priv, sk.raw
    return priv, None


# ---- the calls -----------------------------------------------------------------------

def test_every_call(state, probe):
    a = probe(A)
    out = run(state, a, "create", "s", "ed25519", "create", "x", "x25519",
              "create", "k", "secret", "sign", "s", "hello", "list",
              "pub", "s", "pub", "x", "pub", "k", "seal", "k", "secret text", "ctx",
              "create", "s", "ed25519", "create", "Bad", "ed25519")
    assert out[0].startswith("create s ok ") and len(field(out[0], 3)) == 64
    assert out[1].startswith("create x ok ")
    assert out[2] == "create k ok " + "0" * 64, out[2]
    assert out[3].startswith("sign s ok ") and len(field(out[3], 3)) == 128
    assert out[4] == "list ok n=3 max=64 names=k:secret,s:ed25519,x:x25519"
    assert out[5] == "pub s ok ed25519 " + field(out[0], 3)
    assert out[6] == "pub x ok x25519 " + field(out[1], 3)
    assert out[7] == "pub k EINVAL"  # a secret key has no public key
    assert out[8].startswith("seal k ok ")
    assert out[9] == "create s EEXIST"
    assert out[10] == "create Bad EINVAL"
    pub_s, sig, box = field(out[0], 3), field(out[3], 3), field(out[8], 3)
    pub_x = field(out[1], 3)
    assert len(bytes.fromhex(box)) == len("secret text") + 40

    out = run(state, a, "verify", pub_s, "hello", sig, "verify", pub_s, "hellO", sig,
              "verify", pub_s, "hello", hexflip(sig, 5), "open", "k", box, "ctx",
              "sealto", pub_x, "to x", "sign", "k", "m", "seal", "s", "m", "-",
              "delete", "s", "sign", "s", "m", "delete", "s", "list")
    assert out[0] == "verify ok"
    assert out[1] == "verify EBADMSG"
    assert out[2] == "verify EBADMSG"
    assert out[3] == "open k ok secret text"
    assert out[4].startswith("sealto ok ")
    assert out[5] == "sign k EINVAL"  # not an ed25519 key
    assert out[6] == "seal s EINVAL"  # not a secret key
    assert out[7:10] == ["delete s ok", "sign s ENOENT", "delete s ENOENT"]
    assert out[10] == "list ok n=2 max=64 names=k:secret,x:x25519"
    out = run(state, a, "open", "x", field(out[4], 2), "-")
    assert out == ["open x ok to x"]


def test_audited_without_key_bytes(state, probe):
    a = probe(A)
    out = run(state, a, "create", "s", "ed25519", "sign", "s", "payload-not-logged",
              "create", "k", "secret", "seal", "k", "plaintext-not-logged", "-")
    pub, sig, box = field(out[0], 3), field(out[1], 3), field(out[3], 3)
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--app", A],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    log = p.stdout
    assert "op=keystore.create" in log and "key=s kind=ed25519" in log
    assert "op=keystore.sign" in log and "bytes=18" in log
    assert "op=keystore.seal" in log and "key=k kind=secret" in log
    for secret in (sig, box, "payload-not-logged", "plaintext-not-logged"):
        assert secret not in log
    for name in ("s", "k"):
        priv, _ = private_bytes(state, A, name)
        assert priv.hex() not in log
    audit = b"".join(f.read_bytes() for f in (state / "audit").iterdir() if f.is_file())
    for name in ("s", "k"):
        priv, _ = private_bytes(state, A, name)
        assert priv not in audit and priv.hex().encode() not in audit


# ---- misuse --------------------------------------------------------------------------

def test_another_apps_keys_are_not_there(state, probe):
    a, b = probe(A), probe(B)
    out = run(state, a, "create", "shared", "ed25519", "create", "sec", "secret",
              "seal", "sec", "for a only", "-")
    pub_a, box = field(out[0], 3), field(out[2], 3)
    # B names A's keys: the same answer as a key that does not exist
    out = run(state, b, "sign", "shared", "m", "pub", "shared", "delete", "shared",
              "open", "sec", box, "-", "list", "sign", "nosuchkey", "m")
    assert out == ["sign shared ENOENT", "pub shared ENOENT", "delete shared ENOENT",
                   "open sec ENOENT", "list ok n=0 max=64 names=", "sign nosuchkey ENOENT"]
    # B makes its own keys of the same names: other keys; A's box does not open with them
    out = run(state, b, "create", "shared", "ed25519", "create", "sec", "secret",
              "open", "sec", box, "-")
    assert out[0].startswith("create shared ok ") and field(out[0], 3) != pub_a
    assert out[2] == "open sec EBADMSG"
    # A's keys are untouched
    out = run(state, a, "pub", "shared", "open", "sec", box, "-")
    assert out == [f"pub shared ok ed25519 {pub_a}", "open sec ok for a only"]


@pytest.mark.parametrize("forged,answer", [
    # well-formed names, but B's own namespace: B has no such key
    (f"{A}.shared", "ENOENT"), ("shared", "ENOENT"),
    # not names: refused before any lookup
    (f"{A}/shared", "EINVAL"), ("../keys", "EINVAL"), ("SHARED", "EINVAL"),
    ("shared\u00e9", "EINVAL"), ("x" * 65, "EINVAL"), ("", "EINVAL"), ("a b", "EINVAL")])
def test_forged_names_reach_the_kernel_and_fail(state, probe, forged, answer):
    """Names sent as hand-made frames (libcella refuses the bad ones itself): the
    kernel never reaches another app's key, whatever the name says."""
    a, b = probe(A), probe(B)
    run(state, a, "create", "shared", "ed25519")
    sign = 0x0C02
    body = pb_string(1, forged) + pb_string(2, "m")
    assert run(state, b, "raw", str(sign), body.hex()) == [f"raw {sign} {answer}"]
    # the same frame from A signs (the well-formed names that A has)
    if forged == "shared":
        assert run(state, a, "raw", str(sign), body.hex())[0].startswith(f"raw {sign} ok")


def test_tampered_truncated_replayed_boxes(state, probe):
    a = probe(A)
    out = run(state, a, "create", "k", "secret", "seal", "k", "pay 10", "seq=1")
    box = field(out[1], 3)
    n = len(bytes.fromhex(box))
    out = run(state, a,
              "open", "k", hexflip(box, 0), "seq=1",        # the nonce
              "open", "k", hexflip(box, 30), "seq=1",       # the ciphertext
              "open", "k", hexflip(box, n - 1), "seq=1",    # the tag
              "open", "k", box[:-2], "seq=1",               # truncated by a byte
              "open", "k", box[:40], "seq=1",               # shorter than the overhead
              "open", "k", box + "00", "seq=1",             # extended
              "open", "k", box, "seq=2",                    # replayed in another context
              "open", "k", box, "-",
              "open", "k", box, "seq=1",                    # the real one
              "open", "k", box, "seq=1")                    # again: opening is stateless
    assert out[:8] == ["open k EBADMSG"] * 8, out
    assert out[8:] == ["open k ok pay 10"] * 2


def test_no_keystore_right(state, probe):
    a = probe(A, permissions=())
    out = run(state, a, "create", "k", "secret", "list", "sign", "k", "m", "pub", "k",
              "delete", "k")
    assert out == ["create k EPERM", "list EPERM", "sign k EPERM", "pub k EPERM",
                   "delete k EPERM"]
    assert not (state / "keystore.key").exists()  # no call reached the keystore
    # verify needs no right: it holds no key
    b = probe(B)
    out = run(state, b, "create", "s", "ed25519", "sign", "s", "m")
    pub, sig = field(out[0], 3), field(out[1], 3)
    assert run(state, a, "verify", pub, "m", sig) == ["verify ok"]


def test_revoked_keystore_right(state, probe):
    a = probe(A)
    assert run(state, a, "create", "k", "secret")[0].startswith("create k ok")
    p = subprocess.run([CELLA, "revoke", "--state-dir", str(state), A, "keystore"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert run(state, a, "seal", "k", "m", "-", "list") == ["seal k EACCES", "list EACCES"]


def test_quota(state, probe):
    (state / "cellad.conf").write_text(json.dumps({"keystore": {"keys_max": 3}}))
    os.chmod(state / "cellad.conf", 0o600)
    a, b = probe(A), probe(B)
    out = run(state, a, "fill", "k", "10", "list")
    assert out == ["fill ok made=3 EDQUOT", "list ok n=3 max=3 names=k0:secret,k1:secret,k2:secret"]
    r = run_cella("--no-prompt", a, "--", "create", "one.more", "secret", state_dir=state,
                  json_status=False)
    assert r.out.strip() == "create one.more EDQUOT"
    # per app: B has its own three
    assert run(state, b, "fill", "k", "10") == ["fill ok made=3 EDQUOT"]
    # a deletion makes room
    assert run(state, a, "delete", "k1", "create", "k9", "secret")[1].startswith("create k9 ok")


def test_sizes(state, probe):
    """The data bound (64000 bytes) is the kernel's too: a hand-made frame over it is
    EMSGSIZE."""
    a = probe(A)
    run(state, a, "create", "s", "ed25519")
    big = b"\x0a\x01s" + b"\x12" + _varint(64001) + b"x" * 64001
    out = run(state, a, "raw", str(0x0C02), big.hex())
    assert out == [f"raw {0x0C02} EMSGSIZE"]
    ok = b"\x0a\x01s" + b"\x12" + _varint(64000) + b"x" * 64000
    out = run(state, a, "raw", str(0x0C02), ok.hex())
    assert out[0].startswith(f"raw {0x0C02} ok")
    # the largest boxes of both kinds, sealed and opened
    data = "d" * 64000
    out = run(state, a, "create", "x", "x25519", "create", "k", "secret", "seal", "k", data, "-")
    pub_x, box = field(out[0], 3), field(out[2], 3)
    out = run(state, a, "sealto", pub_x, data, "open", "k", box, "-")
    assert out[1] == "open k ok " + data
    assert run(state, a, "open", "x", field(out[0], 2), "-") == ["open x ok " + data]
    assert run(state, a, "seal", "k", data + "d", "-") == ["seal k EMSGSIZE"]
    out = run(state, a, "create", "big", "ed25519", "sign", "big", data)
    pub, sig = field(out[0], 3), field(out[1], 3)
    out = run(state, a, "verify", pub, data, sig, "verify", pub, data[:-1] + "e", sig)
    assert out == ["verify ok", "verify EBADMSG"]
    # data over 4 KiB went to the threadpool: its CPU time is in the records
    p = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--app", A],
                       capture_output=True, text=True, timeout=60)
    big = [l for l in p.stdout.splitlines() if "bytes=640" in l]
    assert big and all("worker_cpu_us=" in l for l in big), p.stdout
    small = [l for l in p.stdout.splitlines() if "op=keystore.create" in l]
    assert small and not any("worker_cpu_us=" in l for l in small)


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


# ---- other apps' public keys ----------------------------------------------------------

def test_peer_public_key(state, probe):
    a, b = probe(A), probe(B)
    out = run(state, a, "create", "id", "ed25519", "create", "kx", "x25519",
              "create", "sec", "secret", "sign", "id", "from a")
    pub_id, pub_kx, sig = field(out[0], 3), field(out[1], 3), field(out[3], 3)
    # without bus.send for A: refused, and nothing is said about A's keys
    assert run(state, b, "peer", A, "id") == [f"peer {A} id EPERM"]
    b = probe(B, permissions=("keystore", f"bus.send:{A}"))
    # requested, but reaching another app is not granted at install (A exports nothing)
    assert run(state, b, "peer", A, "id") == [f"peer {A} id EACCES"]
    grant(state, b, B, f"bus.send:{A}")
    out = run(state, b, "peer", A, "id", "peer", A, "kx", "peer", A, "sec", "peer", A, "nope",
              "peer", "org.test.ks.nobody", "id")
    assert out[0] == f"peer {A} id ok ed25519 {pub_id}"
    assert out[1] == f"peer {A} kx ok x25519 {pub_kx}"
    assert out[2] == f"peer {A} sec ENOENT"      # a secret key has no public half
    assert out[3] == f"peer {A} nope ENOENT"
    assert out[4] == "peer org.test.ks.nobody id EPERM"  # no bus.send for it
    # B checks A's signature with the vouched key, and seals to A's x25519 key
    out = run(state, b, "verify", pub_id, "from a", sig, "sealto", pub_kx, "for a's eyes")
    assert out[0] == "verify ok"
    sealed = field(out[1], 2)
    assert run(state, a, "open", "kx", sealed, "-") == ["open kx ok for a's eyes"]
    # B cannot open it with a key of its own of the same name
    run(state, b, "create", "kx", "x25519")
    assert run(state, b, "open", "kx", sealed, "-") == ["open kx EBADMSG"]


# ---- persistence, removal -------------------------------------------------------------

def test_keys_survive_a_kernel_restart(state, probe):
    """Each `cella run` is a kernel of its own: the second one finds the keys the
    first made, sealed in keystore.db, and they sign and open as before."""
    a = probe(A)
    out = run(state, a, "create", "s", "ed25519", "create", "k", "secret",
              "seal", "k", "kept", "-")
    pub, box = field(out[0], 3), field(out[2], 3)
    out = run(state, a, "pub", "s", "sign", "s", "later", "open", "k", box, "-")
    assert out[0] == f"pub s ok ed25519 {pub}"
    assert out[2] == "open k ok kept"
    assert run(state, a, "verify", pub, "later", field(out[1], 3)) == ["verify ok"]


def test_at_rest_the_file_holds_no_private_byte(state, probe):
    a = probe(A)
    run(state, a, "create", "s", "ed25519", "create", "x", "x25519", "create", "k", "secret")
    st = os.lstat(state / "keystore.key")
    assert st.st_mode & 0o7777 == 0o600 and st.st_size == 32
    data = (state / "keystore.db").read_bytes()
    for name in ("s", "x", "k"):
        priv, sk = private_bytes(state, A, name)
        assert priv not in data and priv[:8] not in data
        if sk:
            assert sk not in data


def test_a_bad_host_key_is_refused(state, probe):
    a = probe(A)
    run(state, a, "create", "k", "secret")
    os.chmod(state / "keystore.key", 0o644)
    r = run_cella("--no-prompt", a, "--", "seal", "k", "m", "-", state_dir=state,
                  json_status=False)
    assert r.out.strip() == "seal k EIO"
    # the kernel's log names the file and the fix
    assert "keystore.key" in r.err and "0644" in r.err, r.err
    os.chmod(state / "keystore.key", 0o600)
    assert run(state, a, "seal", "k", "m", "-")[0].startswith("seal k ok")


def test_forget_deletes_the_keys(state, probe):
    a, b = probe(A), probe(B)
    run(state, a, "create", "s", "ed25519")
    run(state, b, "create", "s", "ed25519")
    p = subprocess.run([CELLA, "forget", "--state-dir", str(state), A], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    db = sqlite3.connect(state / "keystore.db")
    rows = db.execute("SELECT app_id, name FROM keys ORDER BY app_id").fetchall()
    db.close()
    assert rows == [(B, "s")]
    assert run(state, a, "pub", "s") == ["pub s ENOENT"]


# ---- the app's memory ------------------------------------------------------------------

def descendants(pid):
    kids = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def memory_of(pid):
    """Every readable mapping of pid's memory, concatenated (separators between)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "r" not in parts[1] or (len(parts) > 5 and parts[5] == "[vvar]"):
                continue
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except OSError:
                continue
    return b"\0--\0".join(chunks)


def test_the_private_key_never_enters_the_app(state, probe):
    """The app signs, seals, opens and exchanges with its keys, then stops; its whole
    memory is read from /proc/PID/mem and holds none of its keys' private bytes,
    while the plaintext it opened is there (the scan sees what the app holds)."""
    a = probe(A)
    run(state, a, "create", "s", "ed25519", "create", "x", "x25519", "create", "k", "secret")
    out = run(state, a, "seal", "k", "MARKER-7d41c0-opened-plaintext", "-", "pub", "x")
    box, pub_x = field(out[0], 3), field(out[1], 4)
    p = subprocess.Popen([CELLA, "run", "--state-dir", str(state), "--no-prompt", str(a), "--",
                          "sign", "s", "m", "open", "k", box, "-", "sealto", pub_x, "y",
                          "list", "pause"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = b""
        deadline = time.monotonic() + 60
        while b"paused\n" not in lines:
            left = deadline - time.monotonic()
            assert left > 0, f"the probe did not pause: {lines!r}"
            ready, _, _ = select.select([p.stdout], [], [], left)
            if ready:
                chunk = os.read(p.stdout.fileno(), 65536)
                assert chunk, f"the probe exited: {lines!r} {p.stderr.read()!r}"
                lines += chunk
        assert b"open k ok MARKER" in lines
        probes = [pid for pid in descendants(p.pid)
                  if Path(f"/proc/{pid}/comm").read_text().strip() == "keystore-probe"]
        assert len(probes) == 1, probes
        mem = memory_of(probes[0])
        assert b"MARKER-7d41c0-opened-plaintext" in mem  # the scan sees the app's data
        for name in ("s", "x", "k"):
            priv, sk = private_bytes(state, A, name)
            assert priv not in mem, f"key {name}'s private bytes in the app's memory"
            assert priv.hex().encode() not in mem
            if sk:
                assert sk[:32] not in mem and sk not in mem
        host = (state / "keystore.key").read_bytes()
        assert host not in mem
    finally:
        for pid in descendants(p.pid):
            if Path(f"/proc/{pid}/comm").exists() and \
                    Path(f"/proc/{pid}/comm").read_text().strip() == "keystore-probe":
                os.kill(pid, signal.SIGKILL)
        p.wait(timeout=60)


def test_keys_survive_a_cellad_restart(state, probe):
    """An app installed in cellad's store, started by cellad itself (autostart: its
    calls are served by the daemon's own broker), makes keys under one cellad; the
    next cellad's run of the app's next version finds them. cellad.conf's
    keystore.keys_max is the daemon's quota."""
    from daemon_util import install_app, require_cellad, running_cellad, wait_log_line
    require_cellad()
    (state / "cellad.conf").write_text(json.dumps({"keystore": {"keys_max": 2}}))
    os.chmod(state / "cellad.conf", 0o600)
    a = probe(A)
    log = state / "logs" / f"{A}.log"

    def version(v, *ops):
        m = json.loads((a / "manifest.json").read_text())
        m.update(version=v, args=list(ops), restart="on-failure")
        (a / "manifest.json").write_text(json.dumps(m))
        install_app(state, a)

    version("1.0", "create", "s", "ed25519", "create", "k", "secret", "create", "third",
            "secret", "seal", "k", "through cellad", "-", "pause")
    with running_cellad(state) as d:
        wait_log_line(d, A, "paused")
    out = [l for l in log.read_text().splitlines() if not l.startswith("[")]
    assert out[2] == "create third EDQUOT", out
    pub, box = field(out[0], 3), field(out[3], 3)

    version("2.0", "pub", "s", "sign", "s", "after", "open", "k", box, "-", "list", "pause")
    with running_cellad(state) as d:
        wait_log_line(d, A, "list ok n=2 max=2 names=k:secret,s:ed25519")
        # `cella remove` (cellad's store) forgets the app's keys with its data
        for cmd in (["stop", A], ["remove", A]):
            p = subprocess.run([CELLA, *cmd, "--state-dir", str(state)], capture_output=True,
                               text=True, timeout=120)
            assert p.returncode == 0, (cmd, p.stdout, p.stderr)
        db = sqlite3.connect(state / "keystore.db")
        assert db.execute("SELECT count(*) FROM keys WHERE app_id = ?", (A,)).fetchone() == (0,)
        db.close()
    out = [l for l in log.read_text().splitlines() if not l.startswith("[")][5:]
    assert out[0] == f"pub s ok ed25519 {pub}", out
    assert out[2] == "open k ok through cellad"
    # any app checks the signature with the public key of the first cellad's time
    assert run(state, probe(B), "verify", pub, "after", field(out[1], 3)) == ["verify ok"]
