"""The documented way to build a C app (README, docs/cli.md "Building an app"):
install cella, then compile against the installed tree with pkg-config, and run
the app in cella from that installed tree.

Needs a built tree to install from: CELLA_INSTALL_BUILD, a meson build directory
without sanitizers (tests/run-all passes build-release); skipped without it. The
install goes into a temporary --destdir, so the prefix (/usr/local) is one the
jail does not show under it: the static libcella must work from there, and the
shared one must fail with the loader's own message and cella's word on it. The
real install into the prefix (ldconfig, the /usr path that works dynamically)
changes the machine: it runs when CELLA_TEST_SYSTEM_INSTALL=1 (tests/run-all sets
it under CI, a throwaway machine) and is uninstalled afterwards.
"""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import run_cella

BUILD = os.environ.get("CELLA_INSTALL_BUILD")

APP_C = r"""
#include <cella.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
        Cella *c = NULL;
        CellaSystemInfo *info = NULL;
        int r = cella_open(&c);

        if (r < 0 || (r = cella_system_info(c, &info)) < 0) {
                fprintf(stderr, "libcella: %d\n", r);
                return 1;
        }
        printf("cella %s, terminal %s\n", info->cella_version, isatty(1) ? "yes" : "no");
        cella_free(info);
        cella_close(c);
        return 0;
}
"""

MANIFEST = '{"id": "org.test.installed", "runtime": "native", "entry": "app"}'


def _need_build():
    if not BUILD or not os.path.exists(os.path.join(BUILD, "build.ninja")):
        pytest.skip("CELLA_INSTALL_BUILD (a release build directory) is not set")
    for tool in ("cc", "pkg-config"):
        if not shutil.which(tool):
            pytest.skip(f"no {tool}")


def _prefix():
    out = subprocess.run(["meson", "introspect", "--buildoptions", BUILD], check=True,
                         capture_output=True, text=True).stdout
    import json
    opts = {o["name"]: o["value"] for o in json.loads(out)}
    return opts["prefix"], opts["libdir"], opts["bindir"]


def _pkg(pcdir, *args, define_prefix=None):
    """pkg-config ARGS, finding the .pc files in pcdir (None: where pkg-config looks
    by itself, as a user's shell would)."""
    env = dict(os.environ)
    if pcdir:
        env["PKG_CONFIG_PATH"] = pcdir
    cmd = ["pkg-config"]
    if define_prefix:
        cmd.append(f"--define-variable=prefix={define_prefix}")
    return subprocess.run(cmd + list(args), check=True, capture_output=True, text=True, env=env).stdout.split()


def _make_app(folder, cflags_libs, extra=()):
    folder.mkdir(parents=True)
    (folder / "app.c").write_text(APP_C)
    (folder / "manifest.json").write_text(MANIFEST)
    subprocess.run(["cc", "-o", str(folder / "app"), str(folder / "app.c"), *cflags_libs, *extra],
                   check=True)
    for p in [folder.parent, folder, *folder.iterdir()]:
        os.chmod(p, 0o755)
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    _need_build()
    dest = tmp_path_factory.mktemp("destdir")
    subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", str(dest)],
                   check=True, capture_output=True)
    prefix, libdir, bindir = _prefix()
    root = str(dest) + prefix
    return {"root": root, "pcdir": os.path.join(str(dest) + prefix, libdir, "pkgconfig"),
            "libdir": os.path.join(root, libdir), "cella": os.path.join(root, bindir, "cella"),
            "dest": dest, "prefix": prefix}


def test_install_puts_header_libraries_pc_files_and_proto(installed):
    root, libdir = installed["root"], installed["libdir"]
    for f in ("include/cella.h", "share/cella/cella.proto"):
        assert os.path.isfile(os.path.join(root, f)), f
    for f in ("libcella.so.0", "libcella.a", "pkgconfig/cella.pc", "pkgconfig/cella-static.pc"):
        assert os.path.exists(os.path.join(libdir, f)), f
    protodir = _pkg(installed["pcdir"], "--variable=protodir", "cella", define_prefix=installed["root"])
    assert os.path.isfile(os.path.join(protodir[0], "cella.proto"))
    # The static archive exports the API and nothing that could clash with an app's names.
    syms = subprocess.run(["nm", "-g", "--defined-only", os.path.join(libdir, "libcella.a")],
                          check=True, capture_output=True, text=True).stdout.split("\n")
    names = [line.split()[-1] for line in syms if len(line.split()) == 3]
    assert "cella_open" in names and "cella_system_info" in names
    assert all(n.startswith("cella_") for n in names), [n for n in names if not n.startswith("cella_")]


def test_install_puts_cellad_and_its_units(installed):
    """cellad in the bindir, its units in systemd's unit directory (systemd.pc's, else
    /lib/systemd/system), ExecStart naming the installed cellad (docs/daemon.md)."""
    prefix, _, bindir = _prefix()
    cellad = os.path.join(installed["root"], bindir, "cellad")
    assert os.access(cellad, os.X_OK)
    units = [os.path.join(d, f) for d, _, fs in os.walk(installed["dest"]) for f in fs
             if f in ("cellad.service", "cellad.socket")]
    assert sorted(os.path.basename(u) for u in units) == ["cellad.service", "cellad.socket"], units
    service = open(next(u for u in units if u.endswith(".service"))).read()
    assert f"ExecStart={os.path.join(prefix, bindir, 'cellad')}\n" in service


def test_static_app_from_installed_tree_runs_in_cella(installed, tmp_path):
    """Installed under a prefix the jail does not show (the destdir): static libcella."""
    flags = _pkg(installed["pcdir"], "--cflags", "--libs", "cella-static", define_prefix=installed["root"])
    app = _make_app(tmp_path / "apps" / "static", flags)
    needed = subprocess.run(["readelf", "-d", str(app / "app")], capture_output=True, text=True).stdout
    assert "libcella" not in needed
    r2 = subprocess.run([installed["cella"], "run", "--state-dir", str(tmp_path / "state2"), str(app)],
                        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.startswith("cella 0."), r2.stdout
    # The kernel of the tree being tested runs it too.
    r = run_cella(app, state_dir=tmp_path / "state")
    assert r.code == 0 and r.out.startswith("cella 0."), r.err


def test_shared_app_from_prefix_outside_the_jail_says_why(installed, tmp_path):
    """Linked against the shared libcella of a prefix the jail does not show: the
    loader's message reaches the user, and cella says what to do."""
    flags = _pkg(installed["pcdir"], "--cflags", "--libs", "cella", define_prefix=installed["root"])
    app = _make_app(tmp_path / "apps" / "shared", flags, [f"-Wl,-rpath,{installed['libdir']}"])
    r = subprocess.run([installed["cella"], "run", "--state-dir", str(tmp_path / "state"), str(app)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 127, r.stderr
    assert "error while loading shared libraries: libcella.so.0" in r.stderr, r.stderr
    assert "cella-static" in r.stderr, r.stderr


def test_system_install_runs_ldconfig_and_shared_app_runs(tmp_path):
    """`meson install` into the real prefix (under /usr): ldconfig runs, and an
    app linked the documented way (pkg-config cella, no rpath) starts in cella."""
    _need_build()
    if os.environ.get("CELLA_TEST_SYSTEM_INSTALL") != "1":
        pytest.skip("changes the machine: set CELLA_TEST_SYSTEM_INSTALL=1 (CI does)")
    prefix, libdir, bindir = _prefix()
    if not prefix.startswith("/usr"):
        pytest.skip(f"the build's prefix {prefix} is outside /usr")
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet"],
                       capture_output=True, text=True)
    try:
        assert r.returncode == 0, r.stderr
        # Debian's pkg-config looks in /usr/local/lib/<multiarch>/pkgconfig by itself.
        pcdir = None if prefix == "/usr/local" else os.path.join(prefix, libdir, "pkgconfig")
        flags = _pkg(pcdir, "--cflags", "--libs", "cella")
        app = _make_app(tmp_path / "apps" / "system", flags)
        cella = os.path.join(prefix, bindir, "cella")
        r = subprocess.run([cella, "run", "--state-dir", str(tmp_path / "state"), str(app)],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("cella 0."), r.stdout
    finally:
        subprocess.run(["ninja", "-C", BUILD, "uninstall"], capture_output=True)
        subprocess.run(["ldconfig"], capture_output=True)
