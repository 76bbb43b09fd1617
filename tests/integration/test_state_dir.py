"""Who cella trusts with its state (docs/security.md, "The state directory"): a
state directory someone else could have written (their own, group- or
world-writable, reached through a symlink or a parent another user may write) is
refused before cella reads or writes anything in it, by the CLI and by a kernel;
a missing one is made 0711, its last component only, and said so."""
import os
import subprocess

from conftest import CELLA, run_cella

APP = "org.test.statedir"
NOBODY = 65534
EXIT_STATE = 242


def cella(cmd, *args, state, env=None):
    return subprocess.run([CELLA, cmd, "--state-dir", str(state), *map(str, args)],
                          capture_output=True, text=True, timeout=60, env=env)


def refused(p, path, found):
    """p was refused with one message naming path and what was found."""
    assert p.returncode == EXIT_STATE, (p.returncode, p.stderr)
    assert str(path) in p.stderr, p.stderr
    assert found in p.stderr, p.stderr


def test_someone_elses_state_dir_is_refused(tmp_path, make_app):
    """A directory another user made (as in /tmp): not a grant read from it, not a
    kernel started on it; their planted grants.db is never opened."""
    app = make_app(APP, script="echo ran\n", permissions=["camera"])
    state = tmp_path / "theirs"
    state.mkdir(mode=0o711)
    (state / "grants.db").write_text("planted")
    os.chown(state / "grants.db", NOBODY, NOBODY)
    os.chown(state, NOBODY, NOBODY)

    p = cella("grant", "--app-dir", app, APP, "camera", state=state)
    refused(p, state, f"owned by uid {NOBODY} with mode 0711")
    assert (state / "grants.db").read_text() == "planted"

    r = run_cella(app, state_dir=state)
    assert r.code == EXIT_STATE, r.err
    assert f"{state} is owned by uid {NOBODY}" in r.err
    assert "ran" not in r.out
    assert sorted(os.listdir(state)) == ["grants.db"]

    # The same through CELLA_STATE_DIR, and for the commands that only read.
    env = dict(os.environ, CELLA_STATE_DIR=str(state))
    p = subprocess.run([CELLA, "permissions", APP], capture_output=True, text=True,
                       timeout=60, env=env)
    assert p.returncode != 0 and f"owned by uid {NOBODY}" in p.stderr, p.stderr
    for cmd in (["ps"], ["stats"], ["audit"], ["audit", "--verify"], ["logs", APP]):
        p = cella(*cmd, state=state)
        assert p.returncode == EXIT_STATE, (cmd, p.stderr)
        assert f"owned by uid {NOBODY}" in p.stderr, (cmd, p.stderr)


def test_a_file_planted_in_our_state_dir_is_refused(tmp_path, make_app):
    """A grants.db, audit/ or run/ someone else owns, in a directory that is ours
    (put there before it was ours, or by a mistake): not believed."""
    app = make_app(APP, script="echo ran\n", permissions=["camera"])
    state = tmp_path / "state"
    assert cella("grant", "--app-dir", app, APP, "camera", state=state).returncode == 0
    os.chown(state / "grants.db", NOBODY, NOBODY)
    p = cella("grant", "--app-dir", app, APP, "camera", state=state)
    refused(p, state / "grants.db", f"owned by uid {NOBODY}")
    os.chown(state / "grants.db", 0, 0)

    # Their audit/: not one record written into it (the revoke itself, a change
    # the user asked for, is made and said to be unaudited).
    os.chown(state / "audit", NOBODY, NOBODY)
    before = sorted(os.listdir(state / "audit"))
    sizes = {n: (state / "audit" / n).stat().st_size for n in before}
    p = cella("revoke", APP, "camera", state=state)
    assert f"audit is owned by uid {NOBODY}" in p.stderr, p.stderr
    assert "no audit record of it could be written" in p.stderr, p.stderr
    assert sorted(os.listdir(state / "audit")) == before
    assert {n: (state / "audit" / n).stat().st_size for n in before} == sizes

    # Their run/ (control sockets): a kernel does not listen there, cella ps does
    # not ask there.
    os.chown(state / "audit", 0, 0)
    (state / "run").mkdir(mode=0o700, exist_ok=True)
    os.chown(state / "run", NOBODY, NOBODY)
    p = cella("ps", state=state)
    assert p.returncode != 0, p.stdout


def test_a_writable_state_dir_is_refused(tmp_path, make_app):
    app = make_app(APP, script="echo ran\n")
    for mode in (0o771, 0o713, 0o777):
        state = tmp_path / f"state-{mode:o}"
        state.mkdir()
        os.chmod(state, mode)
        p = cella("grant", "--app-dir", app, APP, "camera", state=state)
        refused(p, state, f"owned by uid 0 with mode 0{mode:o}")
        r = run_cella(app, state_dir=state)
        assert r.code == EXIT_STATE and "not writable by group or others" in r.err, r.err
        assert os.listdir(state) == []


def test_a_parent_others_may_write_is_refused(tmp_path, make_app):
    """Whoever may write a parent can rename our state dir away and put theirs in
    its place: refused, unless the parent is sticky (/tmp)."""
    app = make_app(APP, script="echo ran\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    state = shared / "state"
    r = run_cella(app, state_dir=state)
    assert r.code == EXIT_STATE, r.err
    assert f"{shared}, on the way to the state directory {state}" in r.err, r.err
    assert not state.exists()  # nothing made there
    os.chmod(shared, 0o1777)
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert (state.stat().st_mode & 0o7777) == 0o711
    # A parent owned by another user, even not writable by others.
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    p = cella("grant", "--app-dir", app, APP, "camera", state=theirs / "state")
    refused(p, theirs / "state", f"{theirs}, on the way to the state directory")
    assert not (theirs / "state").exists()


def test_a_symlinked_state_dir_is_refused(tmp_path, make_app):
    """Not followed, even to a good state dir; a dangling one does not make its
    target (mkdir through a link another user placed)."""
    app = make_app(APP, script="echo ran\n")
    good = tmp_path / "good"
    assert cella("grant", "--app-dir", app, APP, "camera", state=good).returncode == 1
    link = tmp_path / "link"
    link.symlink_to(good)
    p = cella("grant", "--app-dir", app, APP, "camera", state=link)
    refused(p, link, "is a symbolic link")
    r = run_cella(app, state_dir=link)
    assert r.code == EXIT_STATE and "is a symbolic link" in r.err, r.err
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "target")
    r = run_cella(app, state_dir=dangling)
    assert r.code == EXIT_STATE and "is a symbolic link" in r.err, r.err
    assert not (tmp_path / "target").exists()


def test_a_missing_parent_is_not_made(tmp_path, make_app):
    """--state-dir /typo/x: no tree is made; the error names the missing parent."""
    app = make_app(APP, script="echo ran\n")
    state = tmp_path / "typo" / "state"
    r = run_cella(app, state_dir=state)
    assert r.code == EXIT_STATE, r.err
    assert f"its parent {tmp_path / 'typo'} does not exist" in r.err, r.err
    assert not (tmp_path / "typo").exists()


def test_a_missing_state_dir_is_made_and_said_once(tmp_path, make_app):
    app = make_app(APP, script="echo ran\n")
    state = tmp_path / "state"
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert r.err.count(f"created the state directory {state}") == 1, r.err
    assert (state.stat().st_mode & 0o7777) == 0o711 and state.stat().st_uid == 0
    r = run_cella(app, state_dir=state)
    assert r.code == 0, r.err
    assert "created the state directory" not in r.err
