"""The docs as tests: every command the README and docs/*.md show is run, and what
the docs show it prints is checked against what it prints.

What runs, from the code blocks of README.md, then docs/*.md in name order, in
one scratch environment shared by all (a folder in /tmp holding `build`, a link
to the build tree, with CELLA_STATE_DIR set to a state folder inside it and the
build's `cella` first on PATH; `/var/lib/cella` in a command or an output stands
for that state folder):

- ```console blocks: `$ COMMAND` lines, each followed by the output the docs show
  (stdout and stderr together). A command runs in one bash per block (so `cd`
  carries on to the next command of the block), from the scratch folder. It must
  exit 0, or N when it ends with `# exit N`. The output must match in shape:
  numbers, hex digests and runs of spaces stand for any (`shape()`); `...` on a
  line of its own stands for any lines, and within a line for any text; the lines
  between two `...` must come one after the other; the output must start with the
  first line shown (end with the last) unless a `...` comes first (last).
- ```sh blocks: a script run with `bash -e` from the scratch folder; it must exit 0.
- Other blocks are not run (synopses, file layouts, output shown on its own, JSON,
  C). But a line starting `$ ` in one fails the test (a command that escaped it:
  make the block ```console), and every `cella ...` line in any block must name a
  command and options that `cella CMD --help` knows (test_synopses_name_real_options).

Markers, an HTML comment on the line(s) right before a block (invisible when the
Markdown is rendered):

- `<!-- doc-test: skip REASON -->`: the block is not run; the test is reported as
  skipped with REASON (a block that installs packages, runs for minutes, ...).
- `<!-- doc-test: setup COMMAND -->`: COMMAND (bash) runs first, as the state the
  docs assume (an app folder named myapp, ...).
- `<!-- doc-test: background COMMAND -->`: COMMAND is started in the background
  (e.g. a `cella boot` of services, "in another terminal") and stopped with
  SIGTERM at the end of the document; the block waits until every app of every
  running kernel is running, and every Lua host has its stats (`cella stats`).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import CELLA, EXAMPLES, ROOT, unmount_below

DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*doc-test:\s*(\w+)\s*(.*?)\s*-->\s*$")
MARKER_KINDS = ("skip", "setup", "background")
EXIT = re.compile(r"\s#\s*exit\s+(\d+)\s*$")
SENTINEL = "@@doc-test-status@@"
STATE_DEFAULT = "/var/lib/cella"
WAIT_S = 30


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    body: list
    markers: list = field(default_factory=list)  # (kind, arg)

    @property
    def name(self):
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    def marker(self, kind):
        return [a for k, a in self.markers if k == kind]


def parse(doc):
    """The fenced code blocks of doc, each with the markers right before it."""
    lines = doc.read_text().split("\n")
    blocks, pending, i = [], [], 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if m:
            kind, arg = m.group(1), m.group(2)
            assert kind in MARKER_KINDS, f"{doc}:{i + 1}: unknown doc-test marker {kind!r}"
            assert arg, f"{doc}:{i + 1}: doc-test {kind} needs text (a reason or a command)"
            pending.append((kind, arg))
            i += 1
            continue
        f = FENCE.match(lines[i])
        if f:
            start, body = i, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"{doc}:{start + 1}: code block never closed"
            blocks.append(Block(doc, start + 1, f.group(1), body, pending))
            pending = []
        else:
            assert not pending, (f"{doc}:{i}: a doc-test marker must be right before a code "
                                 f"block, not before {lines[i]!r}")
        i += 1
    return blocks


ALL = [b for d in DOCS for b in parse(d)]
RUNNABLE = [b for b in ALL if b.lang in ("console", "sh")]
LAST_OF_DOC = {b.doc: b for b in RUNNABLE}


def console_steps(block):
    """[(command, expected exit status, [shown output lines])] of a console block."""
    steps = []
    for line in block.body:
        if line.startswith("$ "):
            cmd = line[2:]
            m = EXIT.search(cmd)
            steps.append((EXIT.sub("", cmd) if m else cmd, int(m.group(1)) if m else 0, []))
        else:
            assert steps, f"{block.name}: output before the first '$ ' command"
            steps[-1][2].append(line)
    return steps


def shape(line):
    """A line with what differs from run to run made uniform: RFC 3339 times and
    dates become D (whole: a number right after the T would otherwise keep its first
    digit, so that 11:00 and 20:17 differed); hex digests (16+ digits) become H;
    numbers, with a unit or a time suffix (796K, 1.2M, 1h02m, 2s), become N; runs of
    white space one space."""
    line = re.sub(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?",
                  "D", line)
    line = re.sub(r"[0-9a-f]{16,}", "H", line)
    line = re.sub(r"(?<![A-Za-z_])\d+(?:\.\d+)?(?:[A-Za-z]{1,2}(?:\d+[a-z])?)?", "N", line)
    return re.sub(r"\s+", " ", line).strip()


def line_pattern(shown):
    parts = [re.escape(p) for p in shape(shown).split("...")]
    return re.compile(".*".join(parts))


def match_output(shown, actual):
    """None if actual (lines) has the shape of shown (lines, with `...` lines), else
    why not."""
    actual = [a for a in actual if a.strip()]
    shown = [s for s in shown if s.strip()]
    if not shown:
        return None
    segments, cur = [], []
    for s in shown:
        if s.strip() == "...":
            segments.append(cur)
            cur = []
        else:
            cur.append(s)
    segments.append(cur)
    open_start, open_end = not segments[0], not segments[-1]
    segments = [s for s in segments if s]
    pos = 0
    for k, seg in enumerate(segments):
        pats = [line_pattern(s) for s in seg]
        first = k == 0 and not open_start
        found = None
        for at in range(pos, len(actual) - len(seg) + 1):
            if all(p.fullmatch(shape(actual[at + j])) for j, p in enumerate(pats)):
                found = at
                break
            if first:
                break
        if found is None:
            return (f"no run of lines shaped like\n  " + "\n  ".join(seg) +
                    f"\n{'at the start' if first else 'after line ' + str(pos)} of the output")
        pos = found + len(seg)
    if not open_end and pos != len(actual):
        return f"the output goes on after the last line shown: {actual[pos:]!r}"
    return None


class Scene:
    """The scratch environment every block runs in."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="cella-docs."))
        self.state = self.dir / "state"
        build = Path(EXAMPLES).resolve().parent
        (self.dir / "build").symlink_to(build)
        self.env = dict(os.environ)
        self.env["CELLA_STATE_DIR"] = str(self.state)
        self.env["PATH"] = f"{Path(CELLA).resolve().parent}:{self.env.get('PATH', '/usr/bin:/bin')}"
        self.background = []

    def subst(self, text):
        return text.replace(STATE_DEFAULT, str(self.state))

    def bash(self, script, timeout=180, check=True):
        p = subprocess.run(["bash", "-c", script], cwd=self.dir, env=self.env, text=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        if check:
            assert p.returncode == 0, f"`{script}` exited {p.returncode}:\n{p.stdout}"
        return p

    def start(self, cmd):
        log = open(self.dir / f"background.{len(self.background)}.log", "w")
        p = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=self.dir, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.background.append((p, log))
        self.wait_running(p)

    def wait_running(self, p):
        """Until every app of every kernel runs and every Lua host has written its
        stats header: polls `cella ps --json` and `cella stats --json` (events of
        other processes, seen through their control sockets)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            assert p.poll() is None, f"the background command ended ({p.returncode})"
            ps = subprocess.run([CELLA, "ps", "--json"], env=self.env, capture_output=True, text=True)
            apps = json.loads(ps.stdout or "[]")
            st = subprocess.run([CELLA, "stats", "--json"], env=self.env, capture_output=True,
                                text=True)
            hosts = json.loads(st.stdout or '{"hosts":[]}')["hosts"]
            if apps and all(a.get("running") for a in apps) and \
                    len(hosts) >= self.lua_hosts_expected(apps):
                return
            assert time.monotonic() < deadline, f"not all running after {WAIT_S} s: {apps}"
            time.sleep(0.05)

    def lua_hosts_expected(self, apps):
        n = 0
        for a in apps:
            # A Lua app alone is its own host (a packed group shares one): the
            # manifests of the examples say which is which.
            for m in EXAMPLES.rglob("manifest.json"):
                try:
                    j = json.loads(m.read_text())
                except ValueError:
                    continue
                if j.get("id") == a["id"] and j.get("runtime") == "lua" and "group" not in j:
                    n += 1
        return n

    def stop_background(self):
        for p, log in self.background:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=WAIT_S)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()
        self.background = []

    def close(self):
        self.stop_background()
        unmount_below(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def scene():
    s = Scene()
    yield s
    s.close()


def run_block(scene, block):
    for cmd in block.marker("setup"):
        scene.bash(scene.subst(cmd))
    for cmd in block.marker("background"):
        scene.start(scene.subst(cmd))
    if block.lang == "sh":
        scene.bash("set -e\n" + scene.subst("\n".join(block.body)))
        return
    steps = console_steps(block)
    script = "exec 2>&1\n"
    for cmd, _, _ in steps:
        script += f"{scene.subst(cmd)}\n__status=$?; echo; echo {SENTINEL} $__status\n"
    p = scene.bash(script, check=False)
    outputs = p.stdout.split(f"{SENTINEL} ")
    assert len(outputs) == len(steps) + 1, (f"{block.name}: the block's shell ended early "
                                            f"({p.returncode}):\n{p.stdout}")
    for k, (cmd, want, shown) in enumerate(steps):
        text = outputs[k]
        if k > 0:  # the status of the command before, then its output
            text = text.split("\n", 1)[1] if "\n" in text else ""
        got = int(outputs[k + 1].split("\n", 1)[0])
        lines = text.split("\n")
        assert got == want, (f"{block.name}: `{cmd}` exited {got}, the docs say {want}:\n{text}")
        why = match_output([scene.subst(s) for s in shown], lines)
        assert why is None, (f"{block.name}: `{cmd}` printed\n{text}\nwhich does not match the "
                             f"docs: {why}")


@pytest.mark.parametrize("block", [b for b in ALL if b.lang in ("console", "sh")],
                         ids=lambda b: b.name)
def test_doc_block(scene, block):
    skip = block.marker("skip")
    try:
        if skip:
            pytest.skip(f"{block.name}: {skip[0]}")
        run_block(scene, block)
    finally:
        if LAST_OF_DOC.get(block.doc) is block:
            scene.stop_background()


def test_no_command_outside_a_runnable_block():
    """A `$ command` line in a block that is not run would drift unseen."""
    bad = [f"{b.name}: {line}" for b in ALL if b.lang not in ("console", "sh")
           for line in b.body if line.startswith("$ ")]
    assert not bad, "commands in blocks that are not run (make them ```console):\n" + "\n".join(bad)


def test_markers_only_on_runnable_blocks():
    bad = [b.name for b in ALL if b.markers and b.lang not in ("console", "sh")]
    assert not bad, f"doc-test markers on blocks that are not run: {bad}"


def help_text(cmd):
    p = subprocess.run([CELLA, *cmd, "--help"], capture_output=True, text=True)
    assert p.returncode == 0, f"`cella {' '.join(cmd)} --help` exited {p.returncode}: {p.stderr}"
    return p.stdout


def test_synopses_name_real_options():
    """Every `cella ...` line in a code block (synopses included) names a command
    that exists and options its --help knows: a documented command or option that
    is not there (`cella stop` was) fails here."""
    top = help_text([])
    commands = set(re.findall(r"^  ([\w-]+) ", top, re.M))
    assert commands, top
    bad = []
    for b in ALL:
        if b.lang in ("json", "c", "python"):
            continue
        for line in b.body:
            text = line[2:] if line.startswith("$ ") else line
            text = text.removeprefix("build/src/cli/")
            if not text.startswith("cella "):
                continue
            text = EXIT.sub("", text).split(" #")[0]
            sub = text.split()[1]
            if sub.startswith("-"):
                known = top
            elif sub not in commands:
                bad.append(f"{b.name}: `{text}`: no command {sub!r} (cella --help)")
                continue
            else:
                known = help_text([sub])
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text):
                if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", known):
                    bad.append(f"{b.name}: `{text}`: cella {sub} has no option {opt}")
    assert not bad, "\n".join(bad)


def test_shape_of_a_time_does_not_depend_on_the_hour():
    """A doc's time shown at 11:00 matches an output at any hour (it did only when the
    hour's first digit was the same: the docs failed from 20:00 to 09:59 UTC)."""
    for shown, actual in [("tick 3 at 2024-05-01T11:00:01.157Z", "tick 3 at 2026-12-06T20:17:37.933Z"),
                          ("#1 2024-05-01T11:00:00.727713Z x", "#12 2026-01-31T09:05:59.000001Z x"),
                          ("at 2024-05-01T12:00:00+02:00", "at 2025-11-30T23:59:59-10:00")]:
        assert match_output([shown], [actual]) is None, (shown, actual)
    assert match_output(["tick 3 at 2024-05-01T11:00:01.157Z"], ["tick 3 at noon"]) is not None
