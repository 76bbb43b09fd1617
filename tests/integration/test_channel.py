"""Secure channels and signed bus messages (docs/ipc.md "Secure channels", "Signed bus
messages"), end to end with real apps in their sandboxes.

Each test boots a folder of two apps, both tests/tools/channel-probe (libcella's
cella_channel_*() and cella_bus_verify()) in a role its args name; the boot ends when
the app of kind "app" exits (the other is a service, stopped then), and the test
judges the lines both printed into their logs. Which end is the "app" is chosen so
that the side whose outcome is judged is the one the boot waits for.
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import CELLA, boot_cella

PROBE = Path(os.environ.get(
    "CELLA_CHANNEL_PROBE",
    str(Path(CELLA).resolve().parents[2] / "tests" / "unit" / "channel-probe")))
OPENER, PEER = "org.test.chopener", "org.test.chpeer"


def app(root, name, app_id, args, kind="app", **manifest):
    if not os.access(PROBE, os.X_OK):
        pytest.skip(f"no channel-probe at {PROBE} (build the tests, or set CELLA_CHANNEL_PROBE)")
    d = root / name
    d.mkdir(parents=True)
    shutil.copy(PROBE, d / "channel-probe")
    (d / "channel-probe").chmod(0o755)
    m = {"id": app_id, "kind": kind, "runtime": "native", "entry": "channel-probe",
         "args": list(args), "restart": "no"}
    m.update(manifest)
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "manifest.json").chmod(0o644)
    for p in (root.parent, root, d):
        p.chmod(0o755)
    return d


def logs(state, *ids):
    out = {}
    for i in ids:
        f = state / "logs" / f"{i}.log"
        out[i] = f.read_text() if f.exists() else ""
    return out


def run(tmp_path, state, opener_args, peer_args, opener_kind="app", peer_kind="service",
        opener_perms=(f"bus.send:{PEER}",), peer_exports=("bus.send",)):
    root = tmp_path / "apps"
    app(root, "peer", PEER, peer_args, kind=peer_kind, exports=list(peer_exports))
    app(root, "opener", OPENER, opener_args, kind=opener_kind,
        permissions=list(opener_perms),
        **({"depends": [PEER]} if opener_kind == "app" else {}))
    p, _ = boot_cella(root, state, "--no-prompt", timeout=180)
    got = logs(state, OPENER, PEER)
    return got[OPENER], got[PEER], p


def audit(state):
    """Every record of the state dir's audit chain (docs/audit.md), in order."""
    recs = []
    for f in sorted((state / "audit").glob("log.*.jsonl")):
        recs += [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
    return recs


def line(log, prefix):
    """The first line of log holding prefix, from prefix on (None if none)."""
    for l in log.splitlines():
        if prefix in l:
            return l[l.index(prefix):]
    return None


def last(log, prefix):
    """As line(), the last such line (logs grow across boots on one state dir)."""
    return line("\n".join(reversed(log.splitlines())), prefix)


@pytest.mark.twin
@pytest.mark.parametrize("mode", ["encrypted", "plain"])
def test_open_accept_exchange_both_ways(tmp_path, state, mode):
    o, p, proc = run(tmp_path, state, ["open", PEER] + (["plain"] if mode == "plain" else []),
                     ["serve", "accept"])
    assert "EXCHANGE OK" in o, (o, p, proc.stderr)
    opened, accepted = line(o, "OPENED "), line(p, "ACCEPTED ")
    request = line(p, "REQUEST ")
    # Each side knows the other by the id the kernel vouches for, and by the key the
    # other side sent on its own channel.
    assert f"peer={PEER}" in opened and f"peer={OPENER}" in accepted, (o, p)
    assert f"from={OPENER}" in request and "purpose=probe exchange" in request, p
    opener_key = request.split("key=")[1].split()[0]
    assert accepted.split("key=")[1].split()[0] == opener_key, p
    assert len(opener_key) == 64 and opener_key != "0" * 64
    plain = "1" if mode == "plain" else "0"
    assert f"plaintext={plain}" in opened and f"plaintext={plain}" in accepted
    # The four messages came, the largest (64 KiB) too, and the close was seen as one.
    n = 3 if mode == "plain" else 4  # plaintext has no empty message
    assert p.count("GOT ") == n and "GOT 65536 " in p and f"PEER CLOSED after {n}" in p, p
    # The kernel's audit records both calls, with who opened to whom.
    recs = audit(state)
    opens = [r for r in recs if r.get("op") == "channel.open" and r.get("app") == OPENER]
    accepts = [r for r in recs if r.get("op") == "channel.accept" and r.get("app") == PEER]
    assert len(opens) == 1 and opens[0]["to"] == PEER and opens[0]["errno"] == 0, opens
    assert opens[0]["right"] == f"bus.send:{PEER}" and opens[0]["plaintext"] == (mode == "plain")
    assert len(accepts) == 1 and accepts[0]["from"] == OPENER, accepts


@pytest.mark.twin
def test_refused_without_bus_send(tmp_path, state):
    # The peer does not export bus.send: the opener's request for it is not granted.
    o, p, _ = run(tmp_path, state, ["open", PEER, "once"], ["serve", "accept"], peer_exports=())
    assert line(o, "OPEN ERROR") == "OPEN ERROR EACCES", o
    assert "REQUEST" not in p, p
    # Not even asked for in the manifest: never grantable.
    shutil.rmtree(tmp_path / "apps")
    o, p, _ = run(tmp_path, state, ["open", PEER, "once"], ["serve", "accept"], opener_perms=())
    assert last(o, "OPEN ERROR") == "OPEN ERROR EPERM", o
    assert "REQUEST" not in p, p


@pytest.mark.twin
def test_refused_by_the_peer(tmp_path, state):
    o, p, _ = run(tmp_path, state, ["open", PEER], ["serve", "refuse"])
    assert line(o, "OPEN ERROR") == "OPEN ERROR EPERM", (o, p)
    assert "REQUEST token=" in p and "REFUSED OK" in p, p


@pytest.mark.twin
def test_peer_not_running(tmp_path, state):
    import subprocess
    root = tmp_path / "apps"
    app(root, "opener", OPENER, ["open", "org.test.nobody", "once"],
        permissions=["bus.send:org.test.nobody"])
    # Nobody exports bus.send:org.test.nobody: the right is not granted, which is
    # checked first.
    boot_cella(root, state, "--no-prompt", timeout=120)
    assert last(logs(state, OPENER)[OPENER], "OPEN ERROR") == "OPEN ERROR EACCES"
    # Granted by the user: the peer's absence answers.
    r = subprocess.run([CELLA, "grant", "--state-dir", str(state), "--app-dir",
                        str(root / "opener"), OPENER, "bus.send:org.test.nobody"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    boot_cella(root, state, "--no-prompt", timeout=120)
    o = logs(state, OPENER)[OPENER]
    assert last(o, "OPEN ERROR") == "OPEN ERROR ENOENT", o


@pytest.mark.twin
def test_peer_crashes_mid_handshake(tmp_path, state):
    o, p, _ = run(tmp_path, state, ["open", PEER], ["serve", "crash-on-request"])
    assert "REQUEST token=" in p, p
    # The opener's call is answered, not left waiting for its timeout.
    assert line(o, "OPEN ERROR") == "OPEN ERROR ECONNRESET", (o, p)


@pytest.mark.twin
def test_opener_crashes_mid_handshake(tmp_path, state):
    # The peer is the app the boot waits for: it reports, then exits.
    o, p, _ = run(tmp_path, state, ["open-crash", PEER], ["serve", "slow"],
                  opener_kind="service", peer_kind="app")
    assert "OPEN SENT OK; crashing" in o, o
    token = line(p, "REQUEST token=").split()[1].split("=")[1]
    # The kernel withdrew the request when the opener went, and kept nothing: the
    # token is dead.
    assert f"CANCELLED token={token} ECANCELED" in p, p
    assert "LATE ACCEPT ENOENT" in p, p


@pytest.mark.twin
def test_another_app_cannot_take_a_request(tmp_path, state):
    """A spy that knows the live token of a request addressed to someone else (the
    peer tells it) cannot accept or refuse it, nor its neighbours: the kernel
    answers only the app the request was addressed to."""
    spy = "org.test.chspy"
    root = tmp_path / "apps"
    app(root, "peer", PEER, ["serve", "slow", spy], kind="service", exports=["bus.send"],
        permissions=[f"bus.send:{spy}"])
    app(root, "opener", OPENER, ["open", PEER], kind="service", permissions=[f"bus.send:{PEER}"])
    app(root, "spy", spy, ["steal"], kind="app", exports=["bus.send"])
    boot_cella(root, state, "--no-prompt", timeout=180)
    got = logs(state, spy, PEER)
    s, p = got[spy], got[PEER]
    assert "TOLD SPY OK" in p, p
    token = line(p, "REQUEST token=").split()[1].split("=")[1]
    assert f"SPY GOT token={token}" in s, (s, p)
    # The tokens around it (up to 8 each side), each accepted and refused: all
    # unknown to the spy.
    t = int(token)
    n = t + 8 - max(1, t - 8) + 1
    assert f"STEAL ok=0 enoent={2 * n} other=0" in s, s
    # And the request was still the peer's to answer: nothing accepted it.
    assert "ACCEPTED" not in p


@pytest.mark.twin
def test_peer_crashes_mid_stream(tmp_path, state):
    o, p, _ = run(tmp_path, state, ["open", PEER], ["serve", "crash-mid-stream"])
    assert "GOT 0 " in p, p  # the first message came; then the peer aborted
    # The stream ended without the peer's close: not a clean end.
    assert line(o, "RECV ERROR") == "RECV ERROR ECONNRESET", (o, p)
    assert "EXCHANGE OK" not in o


@pytest.mark.twin
def test_opener_crashes_mid_stream(tmp_path, state):
    o, p, _ = run(tmp_path, state, ["crash-mid-stream", PEER], ["serve", "accept"],
                  opener_kind="service", peer_kind="app")
    assert "ONE MESSAGE OK; crashing" in o, o
    assert "GOT 1024 " in p and line(p, "RECV ERROR") == "RECV ERROR ECONNRESET after 1", p


@pytest.mark.twin
@pytest.mark.parametrize("mode,peer_sees,opener_sees", [
    ("none", "PEER CLOSED after 3", "ECHO 3 OK"),
    ("alter", "RECV ERROR EBADMSG after 1", None),
    ("replay", "RECV ERROR EBADMSG after 1", None),
    ("reorder", "RECV ERROR EBADMSG after 0", None),
    ("truncate", "RECV ERROR EBADMSG after 0", None),
    ("drop", "RECV ERROR EBADMSG after 0", None),
    ("cut", "RECV ERROR ECONNRESET after 1", None),
    ("alter-back", "RECV ERROR ECONNRESET after 3", "ECHO 2 EBADMSG"),
])
def test_man_in_the_middle(tmp_path, state, mode, peer_sees, opener_sees):
    """The opener runs its channel through a relay of its own (a bridge carrying the
    frames), which alters, replays, reorders, cuts or drops one: the receiving end
    detects it and the channel dies."""
    o, p, _ = run(tmp_path, state, ["mitm", PEER, mode], ["serve", "accept"])
    assert f"MITM {mode}: frames 24 1041 1041 1041" in o, (o, p)
    assert "MITM DONE" in o, (o, p)
    assert peer_sees in p, (o, p)
    if opener_sees:
        assert opener_sees in o, (o, p)
    if mode != "none":
        assert "PEER CLOSED" not in p, p
    # Whatever reached the peer before the tampering came through intact.
    assert "GOT 1024 2222" not in p or mode in ("none", "alter-back"), p


@pytest.mark.twin
def test_signed_bus_messages(tmp_path, state):
    root = tmp_path / "apps"
    signer, verifier = "org.test.chsigner", "org.test.chverifier"
    topic = f"{signer}.news"
    app(root, "signer", signer, ["signer", verifier, topic], kind="service",
        permissions=[f"bus.publish:{topic}", f"bus.send:{verifier}"],
        exports=[f"bus.subscribe:{topic}"])
    app(root, "verifier", verifier, ["verifier", topic], kind="app", depends=[signer],
        permissions=[f"bus.subscribe:{topic}"], exports=["bus.send"])
    p, _ = boot_cella(root, state, "--no-prompt", timeout=180)
    got = logs(state, signer, verifier)
    s, v = got[signer], got[verifier]
    assert "VERIFIER DONE" in v, (s, v, p.stderr)
    # The key the call gives is the kernel's own, kept 0600 in the state dir.
    keyfile = state / "kernel-signing.key"
    st = keyfile.stat()
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid() and st.st_size == 64
    assert line(v, "KERNEL KEY ").split()[2] == keyfile.read_bytes()[32:].hex(), v
    # The signed ones verify, and name what they were sent to.
    pub = line(v, f"VERIFY {topic} ")
    assert pub and f"from={signer}" in pub and pub.split(": ")[1].startswith("OK") and \
        pub.endswith("target="), v
    direct = [l for l in v.splitlines() if "VERIFY direct" in l]
    assert any("data=signed direct: OK" in l and f"target={verifier}" in l for l in direct), v
    # The unsigned one is not taken for signed.
    assert any("data=unsigned direct: ENOMSG" in l for l in direct), v
    # Altered or forged copies fail; a counter seen before is a replay.
    assert v.count("SEEN OK") == 2 and v.count("REPLAYED EALREADY") == 2, v
    for what in ("ALTERED DATA", "ALTERED COUNTER", "ALTERED SENDER", "FORGED"):
        assert v.count(f"{what} EBADMSG") == 2, (what, v)
    # Counters increase per sender.
    counters = [int(l.split("counter=")[1].split()[0]) for l in v.splitlines()
                if "counter=" in l]
    assert len(counters) == 2 and counters[0] < counters[1], v


@pytest.mark.twin
def test_foreign_signing_key_is_refused(tmp_path, state):
    """A key file the kernel did not make (another owner, a wider mode, a symlink, the
    wrong size) is never used nor replaced: signing fails with EIO naming why."""
    import subprocess
    root = tmp_path / "apps"
    signer, verifier = "org.test.chsigner", "org.test.chverifier"
    topic = f"{signer}.news"
    for case in ("mode", "symlink", "size"):
        if root.exists():
            shutil.rmtree(root)
        state.mkdir(mode=0o711, exist_ok=True)
        key = state / "kernel-signing.key"
        if key.exists() or key.is_symlink():
            key.unlink()
        if case == "mode":
            key.write_bytes(os.urandom(64))
            key.chmod(0o644)
        elif case == "symlink":
            (tmp_path / "planted").write_bytes(os.urandom(64))
            (tmp_path / "planted").chmod(0o600)
            key.symlink_to(tmp_path / "planted")
        else:
            key.write_bytes(os.urandom(63))
            key.chmod(0o600)
        before = key.read_bytes() if case != "symlink" else None
        app(root, "verifier", verifier, ["verifier", topic], kind="app",
            permissions=[f"bus.subscribe:{topic}"])
        boot_cella(root, state, "--no-prompt", timeout=120)
        v = logs(state, verifier)[verifier]
        assert "KERNEL KEY ERROR EIO" in v.splitlines()[-1], (case, v)
        if before is not None:
            assert key.read_bytes() == before, case
        else:
            assert key.is_symlink()
