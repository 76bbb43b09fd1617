-- cella.db: SQLite in the data directory, and what SQL may not reach
-- (docs/lua-api.md "cella.db"). Rights: none.
--   db.lua setup   creates notes.db and prints OK db setup
--   db.lua check   run after the test planted link.db -> /etc/passwd and
--                  up.db -> ../../x beside it
local db = require "cella.db"
local mode = ...

local function refused(fn, ...)
        local ok, err = pcall(fn, ...)
        assert(not ok, "expected an error")
        return tostring(err)
end

if mode == "setup" then
        local d <close> = db.open("notes.db")
        d:exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, blob BLOB)")
        local ins <close> = d:prepare("INSERT INTO t (name, score, blob) VALUES (?1, ?2, ?3)")
        ins:bind("one", 1.5, "\0\1\2"):step()
        ins:bind("two; DROP TABLE t; --", nil, nil):step()
        print("OK db setup")
        return
end
assert(mode == "check", "usage: db.lua setup|check")

-- Allowed: the rows of the first run, binds as values, rows(), reset, close.
local d = db.open("notes.db")
local rows = {}
local all <close> = d:prepare("SELECT * FROM t ORDER BY id")
for r in all:rows() do
        rows[#rows + 1] = r
end
all:finalize()
assert(#rows == 2 and rows[1].name == "one" and rows[1].score == 1.5)
assert(rows[1].blob == "\0\1\2")
assert(rows[2].name == "two; DROP TABLE t; --" and rows[2].score == nil, "NULL is absent")
local q = d:prepare("SELECT count(*) AS n FROM t WHERE name = ?1")
assert(q:bind("one"):step().n == 1)
assert(q:reset():step().n == 1)
q:finalize()
q:finalize() -- idempotent
refused(q.step, q)

-- SQL cannot reach other files or process-wide state.
refused(d.exec, d, "ATTACH DATABASE 'other.db' AS o")
refused(d.exec, d, "ATTACH DATABASE '/etc/passwd' AS o")
refused(d.exec, d, "VACUUM INTO 'copy.db'")
refused(d.exec, d, "PRAGMA temp_store_directory = '/tmp'")
refused(d.exec, d, "PRAGMA cache_size = 1000000")
refused(d.exec, d, "PRAGMA mmap_size = 1000000000")
refused(d.exec, d, "SELECT load_extension('/usr/lib/x86_64-linux-gnu/libsqlite3.so.0')")
-- A runaway query stops at the instruction bound, not at the CPU budget.
local err = refused(d.exec, d,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c")
assert(err:find("instructions", 1, true), err)
-- Bounds: one statement per prepare, 100 parameters.
refused(d.prepare, d, "SELECT 1; SELECT 2")
refused(d.prepare, d, "SELECT ?101")
d:close()
d:close() -- idempotent
refused(d.exec, d, "SELECT 1")

-- Names: one plain file name in the data directory; planted symlinks refused.
for _, name in ipairs({"", "../x.db", "/etc/passwd", "a/b.db", ".hidden", "x\0y",
                       string.rep("a", 65), "link.db", "up.db", "sp ace.db"}) do
        refused(db.open, name)
end
assert(db.open(string.rep("a", 64)))
print("OK db")
