"""Unmodified real programs behave inside a cella sandbox as they do outside, except
for what the manifest forbids. Each test runs the same thing on the host and in a
sandbox and compares, or runs the program's own test suite inside."""
import os
import subprocess
import textwrap

import pytest

from conftest import run_cella, which

# CPython's own regression tests, run inside. Only the differences cella means to
# make are ignored, each for a stated reason:
CPYTHON_MODULES = ["test_os", "test_subprocess", "test_signal", "test_shutil", "test_tempfile",
                   "test_threading", "test_select", "test_json", "test_pathlib", "test_fcntl",
                   "test_mmap", "test_pty", "test_fileio", "test_glob", "test_posix"]
CPYTHON_IGNORED = [
    # Unmapped ids: the sandbox maps one uid (1000). chown/setuid to any other id
    # fails with EINVAL where a host root gets success and a host user EPERM.
    "*.test_chown_without_permission", "*.POSIXProcessTestCase.test_user",
    "*.POSIXProcessTestCase.test_group", "*.POSIXProcessTestCase.test_extra_groups",
    "*.PosixTester.test_chown", "*.PosixTester.test_fchown", "*.PosixTester.test_lchown",
    "*.PosixTester.test_setgroups", "*.PosixTester.test_initgroups",
    # No network right in this manifest: AF_INET sockets are refused (EAFNOSUPPORT).
    "*.TestSendfile.*", "*.WakeupFDTests.test_invalid_socket",
    "*.WakeupFDTests.test_set_wakeup_fd_socket_result",
]


def _testsuite_present():
    return os.path.exists("/usr/lib/python3.11/test/test_os.py")


@pytest.mark.skipif(not _testsuite_present(),
                    reason="CPython's test suite is not installed (apt-get install libpython3.11-testsuite)")
def test_cpython_regression_suite_inside(state, make_app):
    ignores = " ".join(f"-i '{p}'" for p in CPYTHON_IGNORED)
    app = make_app("org.test.cpython", f"cd /tmp && exec python3 -m test -j2 {ignores} {' '.join(CPYTHON_MODULES)}\n",
                   limits={"memory": "1G", "pids": 256, "tmp": "512M"})
    r = run_cella(app, state_dir=state, timeout=900)
    tail = "\n".join(r.out.splitlines()[-25:])
    assert "Tests result: SUCCESS" in r.out, tail + r.err[-2000:]
    assert r.code == 0, tail


SHELL_SCRIPT = textwrap.dedent("""\
    set -e
    cd "$WORK"
    mkdir -p d/sub
    for i in 3 1 2; do printf 'line %s\\n' "$i" > "d/f$i.txt"; done
    seq 1 2000 | awk '{ s += $1 } END { print "sum", s }'
    cat d/*.txt | sort -r | uniq -c | sed 's/^ *//'
    find d -type f | sort | xargs wc -l | tail -1
    printf 'b\\na\\nc\\n' | sort | tr 'a-z' 'A-Z' | paste -sd,
    tar -C d -cf - f1.txt f2.txt f3.txt | gzip -n | gunzip | tar -tf - | sort | paste -sd' '
    printf 'hello' | sha256sum | cut -c1-16
    date -u -d @0 +%Y-%m-%dT%H:%M:%S
    echo "$((6 * 7))" "$(basename /a/b/c.txt .txt)" "$(dirname /a/b/c.txt)"
    grep -c line d/*.txt | sort
    expr length "sandbox"
    ls d | sort | paste -sd' '
    """)


def _host_and_sandbox(state, make_app, app_id, script, files=None):
    """Runs script with /bin/sh on the host and in a sandbox; $WORK is a scratch
    directory and $APP the app folder on each side. Returns both results."""
    app = make_app(app_id, f"WORK=/tmp/work; APP=/app; mkdir -p $WORK\n{script}", files=files)
    inside = run_cella(app, state_dir=state)
    work = app / "hostwork"
    work.mkdir()
    outside = subprocess.run(["/bin/sh", "-c", f"WORK={work}; APP={app}\ncd {app}\n{script}"], capture_output=True,
                             text=True, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return inside, outside


def test_shell_tools_behave_as_outside(state, make_app):
    inside, outside = _host_and_sandbox(state, make_app, "org.test.shell", SHELL_SCRIPT)
    assert outside.returncode == 0, outside.stderr
    assert inside.code == 0, inside.err
    assert inside.out == outside.stdout
    assert "sum 2001000" in inside.out


LUA_SCRIPT = textwrap.dedent("""\
    local co = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i * i) end end)
    print(co(), co(), co())
    local t = {}
    for w in string.gmatch("the quick brown fox", "%a+") do t[#t + 1] = w:upper() end
    table.sort(t)
    print(table.concat(t, ","), string.format("%5.2f|%x|%q", math.pi, 255, "a\\n"))
    print(os.date("!%Y-%m-%d", 0), utf8.char(0x263A), #utf8.char(0x263A), math.maxinteger)
    local f = assert(io.open(os.getenv("WORK") .. "/x.txt", "w")); f:write("lua io\\n"); f:close()
    for l in io.lines(os.getenv("WORK") .. "/x.txt") do print(l) end
    print(select("#", pcall(error, {code = 1})), string.rep("ab", 3, "-"))
    """)


@pytest.mark.skipif(not which("lua5.4"), reason="lua5.4 is not installed (apt-get install lua5.4)")
def test_lua_behaves_as_outside(state, make_app):
    script = 'export WORK\nexec lua5.4 "$APP/t.lua"\n'
    inside, outside = _host_and_sandbox(state, make_app, "org.test.lua54", script,
                                        files={"t.lua": (LUA_SCRIPT, 0o644)})
    assert outside.returncode == 0, outside.stderr
    assert inside.code == 0, inside.err
    assert inside.out == outside.stdout
    assert "1\t4\t9" in inside.out


SQL = textwrap.dedent("""\
    CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
    WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
      INSERT INTO t(b) SELECT printf('row-%04d', x) FROM n;
    SELECT count(*), min(b), max(b) FROM t;
    SELECT json_object('n', count(*), 'sum', sum(a)) FROM t WHERE a % 7 = 0;
    CREATE INDEX tb ON t(b);
    SELECT b FROM t WHERE b LIKE 'row-09%' ORDER BY b DESC LIMIT 3;
    PRAGMA integrity_check;
    """)


def test_sqlite3_behaves_as_outside(state, make_app):
    script = 'sqlite3 "$WORK/db.sqlite" < "$APP/t.sql" && sqlite3 "$WORK/db.sqlite" "SELECT count(*) FROM t"\n'
    inside, outside = _host_and_sandbox(state, make_app, "org.test.sqlite", script,
                                        files={"t.sql": (SQL, 0o644)})
    assert outside.returncode == 0, outside.stderr
    assert inside.code == 0, inside.err
    assert inside.out == outside.stdout
    assert "1000|row-0001|row-1000" in inside.out
