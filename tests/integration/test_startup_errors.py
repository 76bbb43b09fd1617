"""Start-up errors name the file, the cause and the fix (docs/cli.md, "Exit status").

execve() says ENOENT for a missing entry and for a missing #! or ELF interpreter
alike; the sandbox looks at the file from inside the jail to tell them apart.
Each case is a real app in a real sandbox.
"""
import json
import os
import shutil
import struct
import subprocess

import pytest

from conftest import CELLA, boot_cella, run_cella


def _elf_interp_offset(data):
    """Offset and size of the PT_INTERP string of a 64-bit little-endian ELF."""
    assert data[:4] == b"\x7fELF" and data[4] == 2
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            return p_offset, p_filesz
    raise AssertionError("no PT_INTERP")


def _copy_true(app, name):
    dst = app / name
    shutil.copy("/usr/bin/true", dst)
    os.chmod(dst, 0o755)
    return dst


@pytest.mark.twin
def test_missing_shebang_interpreter_is_named(state, make_app):
    app = make_app("org.test.shebang", files={"main.sh": ("#!/usr/bin/no-such-shell -e\necho hi\n", 0o755)})
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    assert "#! interpreter /usr/bin/no-such-shell does not exist in the jail" in r.err, r.err
    assert "the entry /app/main.sh does not exist" not in r.err
    assert r.event("failed")["exit_code"] == 127


@pytest.mark.twin
def test_shebang_with_dos_line_ends_is_named(state, make_app):
    app = make_app("org.test.crlf", files={"main.sh": ("#!/bin/sh\r\necho hi\r\n", 0o755)})
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    assert "carriage return" in r.err and "dos2unix" in r.err, r.err


@pytest.mark.twin
def test_script_without_shebang_is_named(state, make_app):
    app = make_app("org.test.noshebang", files={"main.sh": ("echo hi\n", 0o755)})
    r = run_cella(app, state_dir=state)
    assert r.code == 126, r.err
    assert "neither an ELF program nor a script starting with #!" in r.err, r.err


@pytest.mark.twin
def test_missing_elf_interpreter_is_named(state, make_app):
    app = make_app("org.test.elfinterp", entry="prog")
    prog = _copy_true(app, "prog")
    data = bytearray(prog.read_bytes())
    off, size = _elf_interp_offset(data)
    bogus = b"/lib64/no-such-loader.so"
    assert len(bogus) < size
    data[off:off + size] = bogus + b"\0" * (size - len(bogus))
    prog.write_bytes(bytes(data))
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    assert "ELF interpreter (dynamic loader) /lib64/no-such-loader.so does not exist" in r.err, r.err


# ESC [2J (erase the screen), OSC 0 (the window title), SGR red: what a hostile
# file's #! line or PT_INTERP may put in the start-up message.
TERMINAL_BAIT = "\x1b[2J\x1b]0;pwned\x07\x1b[31m"


def _assert_inert(r, text):
    """The message quotes the app's bytes visibly (\\xNN), on the terminal and
    in the JSON status, and not one control byte reaches either."""
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31m" in text, text
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in r.err), repr(r.err)
    assert "\\x1b[2J" in r.err, repr(r.err)


@pytest.mark.twin
def test_shebang_line_with_escape_sequences_stays_text(state, make_app):
    app = make_app("org.test.shebangesc",
                   files={"main.sh": ("#!/usr/bin/" + TERMINAL_BAIT + "sh\necho hi\n", 0o755)})
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    err = r.event("failed")["error"]
    assert "does not exist in the jail" in err, err
    _assert_inert(r, err)


@pytest.mark.twin
def test_elf_interpreter_with_escape_sequences_stays_text(state, make_app):
    app = make_app("org.test.elfesc", entry="prog")
    prog = _copy_true(app, "prog")
    data = bytearray(prog.read_bytes())
    off, size = _elf_interp_offset(data)
    bogus = ("/lib64/" + TERMINAL_BAIT).encode()
    assert len(bogus) < size
    data[off:off + size] = bogus + b"\0" * (size - len(bogus))
    prog.write_bytes(bytes(data))
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    err = r.event("failed")["error"]
    assert "ELF interpreter (dynamic loader)" in err, err
    _assert_inert(r, err)


@pytest.mark.twin
def test_fifo_entry_fails_at_once(state, make_app):
    """A FIFO as the entry: execve says EACCES, and the diagnosis must not open it
    (an open for reading waits for a writer: the start hung 10 s, then failed as
    "no answer from the sandbox")."""
    app = make_app("org.test.fifo", entry="main")
    os.mkfifo(app / "main", 0o755)
    os.chmod(app / "main", 0o755)
    r = run_cella(app, state_dir=state, timeout=8)
    assert r.code == 126, (r.code, r.err)
    assert "the entry /app/main is not a regular file" in r.err, r.err


@pytest.mark.twin
def test_symlink_loop_entry_is_named(state, make_app):
    app = make_app("org.test.loop", entry="main")
    os.symlink("main", app / "main")
    r = run_cella(app, state_dir=state, timeout=8)
    assert r.code in (126, 127), (r.code, r.err)
    assert "the entry /app/main is a symlink loop" in r.err, r.err


@pytest.mark.twin
def test_elf_for_another_machine_is_named(state, make_app):
    app = make_app("org.test.machine", entry="prog")
    prog = _copy_true(app, "prog")
    data = bytearray(prog.read_bytes())
    struct.pack_into("<H", data, 0x12, 183 if os.uname().machine != "aarch64" else 62)
    prog.write_bytes(bytes(data))
    r = run_cella(app, state_dir=state)
    assert r.code == 126, r.err
    assert "ELF program for machine" in r.err and "rebuild it for this host" in r.err, r.err


@pytest.mark.twin
def test_entry_that_is_a_directory_is_named(state, make_app):
    app = make_app("org.test.dir", entry="sub")
    (app / "sub").mkdir()
    os.chmod(app / "sub", 0o755)
    r = run_cella(app, state_dir=state)
    assert r.code == 126, r.err
    assert "/app/sub is a directory" in r.err, r.err


@pytest.mark.twin
def test_lua_missing_entry_is_127_and_named(state, make_app):
    app = make_app("org.test.luamissing", runtime="lua", entry="main.lua")
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    assert "the entry /app/main.lua does not exist" in r.err, r.err
    assert f"folder {app}" in r.err
    assert "cella-lua:" not in r.err


@pytest.mark.twin
def test_lua_unreadable_entry_is_126_and_named(state, make_app):
    app = make_app("org.test.luaunreadable", runtime="lua", entry="main.lua",
                   files={"main.lua": ("print('hi')\n", 0o600)})
    r = run_cella(app, state_dir=state)
    assert r.code == 126, r.err
    assert "/app/main.lua is not readable by the app's uid" in r.err and "chmod o+r" in r.err, r.err


@pytest.mark.twin
def test_missing_shared_library_reaches_the_user(state, make_app, tmp_path):
    """The loader's own message (a library outside the jail) reaches the user, and
    cella says that this 127 is the app's, not a missing entry."""
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    lib = tmp_path / "outside"
    lib.mkdir()
    (lib / "x.c").write_text("int x(void) { return 0; }\n")
    (lib / "main.c").write_text("int x(void);\nint main(void) { return x(); }\n")
    import subprocess
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib / "libcellatestx.so"), str(lib / "x.c")], check=True)
    app = make_app("org.test.needslib", entry="prog")
    subprocess.run(["cc", "-o", str(app / "prog"), str(lib / "main.c"), f"-L{lib}", "-lcellatestx",
                    f"-Wl,-rpath,{lib}"], check=True)
    os.chmod(app / "prog", 0o755)
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    assert "error while loading shared libraries: libcellatestx.so" in r.err, r.err
    assert "its own: its entry did start" in r.err, r.err
    assert r.event("exited")["status"] == 127


@pytest.mark.twin
def test_dependency_that_failed_is_named_with_its_own_code(state, make_app, tmp_path):
    boot = tmp_path / "boot"
    boot.mkdir()
    os.chmod(boot, 0o755)
    svc = make_app("org.test.depsvc", entry="nope", kind="service")
    user = make_app("org.test.depuser", "echo hi\n", depends=["org.test.depsvc"])
    svc.rename(boot / "svc")
    user.rename(boot / "user")
    p, status = boot_cella(boot, state)
    assert p.returncode == 1, p.stderr
    assert "org.test.depuser: not started: org.test.depsvc, which it depends on, failed to start" in p.stderr, p.stderr
    failed = {r["app"]: r for r in status if r["event"] == "failed"}
    assert failed["org.test.depsvc"]["exit_code"] == 127
    assert failed["org.test.depuser"]["exit_code"] == 255
    assert failed["org.test.depuser"]["step"] == "depends"
    assert "(exit status 243)" not in p.stderr


@pytest.mark.twin
def test_two_folders_with_one_id_are_both_named(state, make_app, tmp_path):
    boot = tmp_path / "boot"
    boot.mkdir()
    os.chmod(boot, 0o755)
    a = make_app("org.test.dupid", "true\n")
    (boot / "first").mkdir()
    (boot / "second").mkdir()
    for d in ("first", "second"):
        shutil.copy(a / "manifest.json", boot / d / "manifest.json")
        shutil.copy(a / "main.sh", boot / d / "main.sh")
        os.chmod(boot / d, 0o755)
    p, _ = boot_cella(boot, state)
    assert p.returncode == 241, p.stderr
    assert f"{boot}/first" in p.stderr and f"{boot}/second" in p.stderr, p.stderr
    assert "org.test.dupid" in p.stderr


@pytest.mark.twin
def test_packed_member_missing_entry_is_named(state, make_app, tmp_path):
    """A packed Lua app's missing entry: named with its folder, 127, not a
    cella-lua error with the group's internal path."""
    boot = tmp_path / "boot"
    boot.mkdir()
    os.chmod(boot, 0o755)
    ok = make_app("org.test.packok", runtime="lua", entry="main.lua", isolation="packed", group="g",
                  files={"main.lua": ("print('ok')\n", 0o644)})
    bad = make_app("org.test.packbad", runtime="lua", entry="main.lua", isolation="packed", group="g")
    ok.rename(boot / "ok")
    bad.rename(boot / "bad")
    p, status = boot_cella(boot, state)
    assert p.returncode == 1, p.stderr
    assert "the entry /apps/org.test.packbad/main.lua does not exist" in p.stderr, p.stderr
    assert f"the folder {boot / 'bad'} of org.test.packbad" in p.stderr, p.stderr
    assert "cella-lua:" not in p.stderr
    assert "org.test.packbad: failed (exit status 127)" in p.stderr, p.stderr
    # The host's failed start is each member's, told as a lone app's is
    # (sandboxed.c: one path for both): a "failed" record per member, with the
    # step, the exit code and its group, and the same in the audit log.
    failed = {r["app"]: r for r in status if r["event"] == "failed"}
    for app in ("org.test.packok", "org.test.packbad"):
        assert failed[app]["step"] == "exec" and failed[app]["exit_code"] == 127, failed
        assert failed[app]["group"] == "g" and failed[app]["errno"] == 2, failed
        au = subprocess.run([CELLA, "audit", "--state-dir", str(state), "--json", "--app", app],
                            capture_output=True, text=True, timeout=30)
        recs = [json.loads(line) for line in au.stdout.splitlines() if line.strip()]
        whats = [r.get("fields", r) for r in recs]
        assert any(f.get("what") == "failed" and f.get("step") == "exec" and f.get("group") == "g"
                   for f in whats), au.stdout


@pytest.mark.twin
def test_env_shebang_command_not_found_is_the_apps_own_127(state, make_app):
    """#!/usr/bin/env NAME starts (env exists); env's 127 for NAME is the app's own,
    and cella says that a command not found is one cause, not only a library."""
    app = make_app("org.test.envshebang",
                   files={"main.py": ("#!/usr/bin/env no-such-python\nprint(1)\n", 0o755)},
                   entry="main.py")
    r = run_cella(app, state_dir=state)
    assert r.code == 127, r.err
    assert "no-such-python" in r.err and "No such file or directory" in r.err, r.err
    assert "its own: its entry did start" in r.err, r.err
    assert "a shell or /usr/bin/env exits so for a command it cannot find" in r.err, r.err
    assert "the entry /app/main.py does not exist" not in r.err
    assert r.event("exited")["status"] == 127


@pytest.mark.parametrize("runtime,entry,text", [("native", "main.sh", "#!/bin/sh\necho hi\n"),
                                                ("lua", "main.lua", "print('hi')\n")])
@pytest.mark.twin
def test_app_folder_others_cannot_search_is_named(state, make_app, runtime, entry, text):
    """A folder made under umask 077: the exec fails on whatever file it was of
    (cella-lua for a Lua app); cella names the folder, its mode and the chmod."""
    app = make_app(f"org.test.private{runtime}", runtime=runtime, entry=entry,
                   files={entry: (text, 0o755)})
    os.chmod(app, 0o700)
    r = run_cella(app, state_dir=state)
    assert r.code == 126, r.err
    assert f"the app's folder {app} (mode 0700) is not searchable by others" in r.err, r.err
    assert f"chmod -R o+rX {app}" in r.err, r.err
    os.chmod(app, 0o755)
    r = run_cella(app, state_dir=state)
    assert r.code == 0 and r.out == "hi\n", r.err


@pytest.mark.twin
def test_lua_module_others_cannot_read_is_named(state, make_app):
    """A module file made under umask 077: require names it and the chmod, where
    plain Lua says only "no file"."""
    app = make_app("org.test.luamodperm", runtime="lua", entry="main.lua",
                   files={"main.lua": ("print((require('mod')))\n", 0o644),
                          "mod.lua": ("return 'loaded'\n", 0o600)})
    r = run_cella(app, state_dir=state)
    assert r.code == 1, r.err
    assert "module 'mod' not found" in r.err, r.err
    assert "no file './mod.lua' (not readable by the app's uid" in r.err and "chmod o+r" in r.err, r.err
    os.chmod(app / "mod.lua", 0o644)
    r = run_cella(app, state_dir=state)
    assert r.code == 0 and r.out == "loaded\n", r.err


@pytest.mark.twin
def test_lua_script_as_a_native_entry_points_at_the_runtime(state, make_app):
    app = make_app("org.test.luaasnative", entry="main.lua", files={"main.lua": ("print('hi')\n", 0o755)})
    r = run_cella(app, state_dir=state)
    assert r.code == 126, r.err
    assert "neither an ELF program nor a script starting with #!" in r.err, r.err
    assert "set the manifest's \"runtime\" to \"lua\"" in r.err, r.err
    # A script of another kind gets no such guess.
    other = make_app("org.test.shasnative", files={"main.sh": ("echo hi\n", 0o755)})
    r = run_cella(other, state_dir=state)
    assert r.code == 126 and "runtime" not in r.err, r.err
