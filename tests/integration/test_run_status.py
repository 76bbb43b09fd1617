"""`--json-status` through cellad (docs/cli.md "Through cellad", docs/api.md
"org.cella.Run"): the client hands cellad its status fd as the request's fifth, and
the run's kernel (cellad's child) writes the records an embedded run writes there.
What the daemon twins rely on; here the fd's checks, with a real cellad."""
import os

import pytest

from conftest import run_cella
from daemon_util import ControlError, call, require_cellad, running_cellad


def test_records_come_from_the_run_kernel_in_cellad(make_app, state):
    """The "started" and "exited" records arrive on the client's fd from a kernel
    that is not the client (cellad's child), and say what an embedded run's say."""
    require_cellad()
    app = make_app("org.test.status", "echo hi\nexit 3\n")
    with running_cellad(state) as d:
        r = run_cella(app, state_dir=state)
        assert "org.cella.Run: kernel " in d.log(), d.log()
    assert r.code == 3 and r.out == "hi\n", (r.code, r.out, r.err)
    started, exited = r.event("started"), r.event("exited")
    assert started["app"] == exited["app"] == "org.test.status", r.status
    assert exited["how"] == "exited" and exited["status"] == 3, exited


@pytest.mark.parametrize("how", ["missing", "read-only", "o_path"])
def test_a_status_fd_that_cannot_be_written_is_refused(make_app, state, how):
    """json_status without a fifth fd, or with one not open for writing (read-only,
    O_PATH): org.cella.InvalidParameter naming fds, and no run."""
    require_cellad()
    app = make_app("org.test.status2", "echo never\n")
    folder = os.open(app, os.O_RDONLY | os.O_DIRECTORY)
    stdin = os.open("/dev/null", os.O_RDONLY)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    path_fd = os.open("/dev/null", os.O_PATH)
    fifth = {"missing": (), "read-only": (st_r,), "o_path": (path_fd,)}[how]
    try:
        with running_cellad(state) as d:
            with pytest.raises(ControlError) as e:
                call(d.socket, "org.cella.Run", {"json_status": True}, more=True,
                     fds=(folder, stdin, out_w, err_w, *fifth))
            assert e.value.error == "org.cella.InvalidParameter", e.value
            assert e.value.parameters.get("parameter") == "fds", e.value.parameters
            assert "org.cella.Run: kernel " not in d.log(), d.log()
    finally:
        for fd in (folder, stdin, out_r, out_w, err_r, err_w, st_r, st_w, path_fd):
            os.close(fd)
