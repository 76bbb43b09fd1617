"""tests/tally.py, the counting and the security-skip decision of tests/run-all, fed
a fake meson testlog, a fake JUnit XML and fake probes. Run by meson (unit suite,
test "tally") and directly: python3 -m pytest tests/test_tally.py."""
import io
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tally  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def probes(**no):
    """Every probe says yes, except the ones named here (value: False or None)."""
    p = {k: (True, "fake") for k in tally.probe_all()}
    for k, v in no.items():
        p[k] = (v, "fake: " + k)
    return p


def meson_log(tmp_path, rows):
    path = tmp_path / "testlog.json"
    path.write_text("".join(json.dumps({"name": n, "result": r, "stdout": out}) + "\n"
                            for n, r, out in rows))
    return str(path)


def run(results, p):
    out = io.StringIO()
    counts = tally.tally(results, p, out)
    return counts, out.getvalue()


def test_meson_results_are_counted_each_as_what_it_was(tmp_path):
    log = meson_log(tmp_path, [("base", "OK", ""), ("bus", "FAIL", ""), ("lua", "TIMEOUT", ""),
                               ("manifest", "EXPECTEDFAIL", ""),
                               ("cgroup-v2", "SKIP", "Running\nSKIP: cgroup v2: host is hybrid\n")])
    (counts, out) = run(tally.read_meson(log), probes(cgroup_v2=False))
    assert counts == (2, 2, 1)
    assert "skip cgroup-v2: SKIP: cgroup v2: host is hybrid" in out


def test_a_security_suite_skipped_where_it_can_run_fails(tmp_path):
    log = meson_log(tmp_path, [("sandbox", "SKIP", "SKIP: test_exit_status: needs root\n")])
    (counts, out) = run(tally.read_meson(log), probes())
    assert counts == (0, 1, 0)
    assert out.startswith("FAIL sandbox was skipped (SKIP: test_exit_status: needs root)")


def test_a_security_suite_skipped_where_it_cannot_run_is_a_skip(tmp_path):
    log = meson_log(tmp_path, [("sandbox", "SKIP", ""), ("seccomp-ia32", "SKIP", ""),
                               ("storage-loop", "SKIP", "")])
    (counts, out) = run(tally.read_meson(log), probes(root=False, ia32=False))
    assert counts == (0, 0, 3)
    assert "skip sandbox: exit status 77" in out


def test_a_probe_that_cannot_tell_never_fails_the_run(tmp_path):
    log = meson_log(tmp_path, [("seccomp-ia32", "SKIP", "")])
    assert run(tally.read_meson(log), probes(ia32=None))[0] == (0, 0, 1)
    assert run(tally.read_meson(log), probes())[0] == (0, 1, 0)


def test_suites_that_need_nothing_may_never_skip(tmp_path):
    log = meson_log(tmp_path, [("broker", "SKIP", ""), ("cgroup", "SKIP", "")])
    assert run(tally.read_meson(log), probes(root=False, cgroup=False))[0] == (0, 2, 0)


def test_a_skip_outside_the_security_suites_is_a_skip(tmp_path):
    log = meson_log(tmp_path, [("signature", "SKIP", "")])
    assert run(tally.read_meson(log), probes())[0] == (0, 0, 1)


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="3" tests="7">
<testcase classname="tests.integration.test_docs" name="test_block[README.md:17]">
  <skipped type="pytest.skip" message="setup.sh installs packages">skip</skipped></testcase>
<testcase classname="tests.integration.test_isolation" name="test_pid_namespace"/>
<testcase classname="tests.integration.test_isolation" name="test_suid_dumpable">
  <skipped type="pytest.skip" message="needs root">skip</skipped></testcase>
<testcase classname="test_real_programs" name="test_cpython_regression_suite_inside">
  <skipped type="pytest.skip" message="no testsuite">skip</skipped></testcase>
<testcase classname="tests.integration.test_run" name="test_a"><failure message="x"/></testcase>
<testcase classname="tests.integration.test_run" name="test_b"><error message="y"/></testcase>
<testcase classname="tests.integration.test_cli" name="test_c"/>
</testsuite></testsuites>
"""


def test_junit_is_counted_and_security_modules_are_checked(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    results = tally.read_junit(str(path))
    assert ("test_isolation.py::test_suid_dumpable", "skip", "needs root") in results
    (counts, out) = run(results, probes())
    assert counts == (2, 4, 1)  # two security skips refused, one docs skip
    assert "FAIL test_isolation.py::test_suid_dumpable was skipped (needs root)" in out
    assert "FAIL test_real_programs.py::test_cpython_regression_suite_inside" in out
    assert "skip test_docs.py::test_block[README.md:17]: setup.sh installs packages" in out
    (counts, _) = run(results, probes(python_testsuite=False, root=False))
    assert counts == (2, 2, 3)


def test_the_command_line_ends_with_the_three_counts(tmp_path):
    log = meson_log(tmp_path, [("base", "OK", ""), ("signature", "SKIP", "")])
    p = subprocess.run([sys.executable, os.path.join(HERE, "tally.py"), "meson", log],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "= 1 0 1"
    # A log that cannot be read is a failure, not silence.
    p = subprocess.run([sys.executable, os.path.join(HERE, "tally.py"), "junit",
                        str(tmp_path / "missing.xml")], capture_output=True, text=True)
    assert p.stdout.splitlines()[-1] == "= 0 1 0"


def test_every_security_entry_names_known_probes():
    known = tally.probe_all()
    for name, req in tally.SECURITY.items():
        assert all(k in known for k in req), name
        assert tally.security_requirements(name) == req
