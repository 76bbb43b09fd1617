"""The design as the tree has it (docs/design.md section 2, "Layout and layering"):
which folder of src/ may include which, and that the docs and the code's comments
name paths and design sections that exist.

Source checks only: nothing is built or run, so they hold on any host.
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
SRC = ROOT / "src"

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z]+)/([^"]+)"', re.M)


def layering_table():
    """{folder: set of folders it may include}, from the table of section 2."""
    text = DESIGN.read_text()
    section = text.split("## 2. Layout and layering", 1)[1].split("\n## ", 1)[0]
    table = {}
    for m in re.finditer(r"^\| `src/([a-z]+)` \| ([^|]*) \|\s*$", section, re.M):
        table[m.group(1)] = {w for w in re.findall(r"[a-z]+", m.group(2)) if w != "nothing"}
        table[m.group(1)] -= {"of", "cella"}
    assert table, "docs/design.md section 2 has no layering table"
    return table


def includes(folder):
    """[(file, included folder, header)] for every quoted include of src/folder."""
    found = []
    for f in sorted((SRC / folder).rglob("*.[ch]")):
        for m in INCLUDE.finditer(f.read_text()):
            found.append((f.relative_to(ROOT), m.group(1), m.group(2)))
    return found


def src_folders():
    return {p.name for p in SRC.iterdir() if p.is_dir()}


def test_the_table_names_every_folder():
    assert set(layering_table()) == src_folders()


def test_every_include_follows_the_table():
    table = layering_table()
    folders = src_folders()
    wrong = [
        f"{f}: {inc}/{h} ({f.parts[1]} may include {sorted(table[f.parts[1]]) or 'nothing'})"
        for folder in sorted(folders)
        for f, inc, h in includes(folder)
        if inc in folders and inc != folder and inc not in table[folder]
    ]
    assert not wrong, "includes against docs/design.md section 2:\n" + "\n".join(wrong)


def test_internal_headers_stay_in_their_folder():
    """A folder's *-internal.h is its own business: another folder uses its public
    headers (cella stop once reached into supervisor-internal.h for a constant)."""
    wrong = [f"{f}: {inc}/{h}" for folder in sorted(src_folders())
             for f, inc, h in includes(folder)
             if inc != folder and h.endswith("-internal.h")]
    assert not wrong, "\n".join(wrong)


# The includes of another folder that docs/design.md section 2 says go through one
# header only (three down, one sideways).
SIDEWAYS = {
    ("broker", "sandbox"): {"cgroup.h"},
    ("supervisor", "lua"): {"stats.h", "hostctl.h"},
    ("lua", "lib"): {"client.h"},
    ("policy", "audit"): {"audit.h"},
    ("daemon", "cli"): {"exit-codes.h"},
}


def test_sideways_reaches_go_through_the_named_header():
    text = DESIGN.read_text()
    for (folder, other), headers in SIDEWAYS.items():
        used = {h for _, inc, h in includes(folder) if inc == other}
        assert used <= headers, f"src/{folder} includes {sorted(used - headers)} of src/{other}"
        for h in headers:
            assert f"{other}/{h}" in text, f"docs/design.md does not name {other}/{h}"


def test_code_in_a_sandbox_uses_only_header_only_base():
    """libcella, cella-lua, libwire and cella-init link no cella library but
    libwire: a base header they include must have no .c behind it."""
    files = [f for d in ("lib", "lua", "wire") for f in (SRC / d).rglob("*.[ch]")]
    files += [SRC / "sandbox" / "cella-init.c", SRC / "sandbox" / "init.c", SRC / "sandbox" / "init.h"]
    wrong = []
    for f in files:
        for m in INCLUDE.finditer(f.read_text()):
            if m.group(1) == "base" and (SRC / "base" / m.group(2)).with_suffix(".c").exists():
                wrong.append(f"{f.relative_to(ROOT)}: base/{m.group(2)}")
    assert not wrong, "\n".join(wrong)


PATH = re.compile(r"(?<![\w/.-])((?:src|tests|include|proto|scripts|bench|examples|docs)/"
                  r"[A-Za-z0-9_./{},-]*[A-Za-z0-9_}])")


def expand(path):
    m = re.search(r"\{([^}]*)\}", path)
    if not m:
        return [path]
    return [path[:m.start()] + alt + path[m.end():] for alt in m.group(1).split(",")]


def built_here(path):
    """A program the build makes from path.c, or a meson target named so."""
    p = ROOT / path
    if p.with_name(p.name + ".c").exists():
        return True
    build = p.parent / "meson.build"
    return build.exists() and f"'{p.name}'" in build.read_text()


def test_docs_name_paths_that_exist():
    docs = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    missing = []
    for d in docs:
        for m in PATH.finditer(d.read_text()):
            for p in expand(m.group(1).rstrip(".")):
                if "<" in p or "*" in p or (ROOT / p).exists() or built_here(p):
                    continue
                missing.append(f"{d.relative_to(ROOT)}: {p}")
    assert not missing, "paths the docs name that the tree does not have:\n" + "\n".join(missing)


def design_text():
    return " ".join(DESIGN.read_text().replace("`", "").split())


def test_design_references_in_code_exist():
    """Every `docs/design.md section N` in a comment or another doc names a section
    the page has, and a quoted phrase after it is on the page."""
    sections = set(re.findall(r"^## (\d+)\. ", DESIGN.read_text(), re.M))
    page = design_text()
    ref = re.compile(r'docs/design\.md,?\s+sections?\s+(\d+)(?:\s+and\s+(\d+))?'
                     r'(?:\s+step\s+\d+)?(?:[,:]\s*"([^"]+)")?')
    stale = "DESIGN" + ".md"  # the first design text, not in the repository
    wrong = []
    files = [f for d in ("src", "include", "tests", "bench", "examples", "scripts")
             for f in (ROOT / d).rglob("*") if f.is_file() and f.suffix in (".c", ".h", ".py", ".lua", "")]
    files += [ROOT / "README.md"] + [f for f in (ROOT / "docs").glob("*.md") if f != DESIGN]
    for f in files:
        try:
            text = f.read_text()
        except (UnicodeDecodeError, IsADirectoryError):
            continue
        flat = " ".join(re.sub(r"\n\s*(\*|#|//|--)?\s*", " ", text).split())
        if stale in text:
            wrong.append(f"{f.relative_to(ROOT)}: cites {stale}, which is docs/design.md")
        for m in ref.finditer(flat):
            for n in (m.group(1), m.group(2)):
                if n and n not in sections:
                    wrong.append(f"{f.relative_to(ROOT)}: section {n}")
            if m.group(3) and " ".join(m.group(3).split()) not in page:
                wrong.append(f'{f.relative_to(ROOT)}: section {m.group(1)} "{m.group(3)}"')
    assert not wrong, "docs/design.md references that do not resolve:\n" + "\n".join(wrong)


WEAK = re.compile(r"__attribute__\s*\(\(\s*weak\b|#\s*pragma\s+weak\b")


def test_no_weak_stubs():
    """A weak do-nothing default of a hook (the daemon's hooks-default.c, kept until
    every part had its real hook) silently wins when the real one is not linked: once
    the parts are merged, every hook has one definition and no weak stand-in."""
    wrong = [str(f.relative_to(ROOT)) for f in sorted(SRC.rglob("*.[ch]"))
             if WEAK.search(f.read_text())]
    assert not wrong, "weak definitions (stubs) in src/:\n" + "\n".join(wrong)


STORE_LAYOUT = re.compile(r'/current"|"current"|STORE_CURRENT\b')


def test_only_the_store_reads_its_layout():
    """apps/<id>/current is the store's (src/store/store.h): the daemon's autostart,
    its app methods and `cella ps --all` go through store_list(), store_get() and
    store_app_dir(), so that one reader knows the layout (and validates it)."""
    wrong = [f"{f.relative_to(ROOT)}: {m.group(0)}"
             for f in sorted(SRC.rglob("*.[ch]")) if f.parts[-2] != "store"
             for m in STORE_LAYOUT.finditer(f.read_text())]
    assert not wrong, "the store's layout read outside src/store:\n" + "\n".join(wrong)
