-- lua-notes: a notes app in Lua (docs/lua-api.md).
--
--   lua-notes [TEXT...]
--
-- Adds a note (TEXT, or "note written at <time>" without arguments) to a SQLite
-- database in the app's data directory (/data/notes.db, cella.db), then lists
-- every note, oldest first: the database survives restarts, so a second run
-- sees the first run's notes. Each note gets a random id (cella.crypto) and is
-- stored as a JSON document (cella.json) with its text, time and run number.
-- It ends by posting a notification (right "notify").
local db = require "cella.db"
local json = require "cella.json"
local crypto = require "cella.crypto"
local log = require "cella.log"
local notify = require "cella.notify"

local function hex(bytes)
        return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local text = table.concat({...}, " ")
if text == "" then
        text = "note written at " .. os.date("!%Y-%m-%dT%H:%M:%SZ")
end

local d <close> = db.open("notes.db")
d:exec([[
        CREATE TABLE IF NOT EXISTS notes (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                doc TEXT NOT NULL
        );
]])

-- One run is one transaction: the count and the insert see the same table.
d:exec("BEGIN IMMEDIATE")
local count <close> = d:prepare("SELECT count(*) AS n FROM notes")
local row = count:step()
local note = {
        id = hex(crypto.random(8)),
        text = text,
        time = os.time(),
        run = row.n + 1,
}
local ins <close> = d:prepare("INSERT INTO notes (id, doc) VALUES (?1, ?2)")
ins:bind(note.id, json.encode(note)):step()
d:exec("COMMIT")
log.info("added note %s (run %d): %s", note.id, note.run, note.text)

local list <close> = d:prepare("SELECT id, doc FROM notes ORDER BY seq")
local n = 0
print("lua-notes: notes so far:")
for r in list:rows() do
        local doc = json.decode(r.doc)
        n = n + 1
        print(string.format("  %d. [%s] %s (%s)", n, r.id, doc.text,
                            os.date("!%Y-%m-%d %H:%M:%S", doc.time)))
end
print(string.format("lua-notes: %d note(s)", n))

-- A refused notification is not worth failing the note for: say so and go on.
local ok, err = pcall(notify.post, "note saved", note.text, {tag = "lua-notes"})
if not ok then
        log.warn("no notification: %s", err)
end
