#!/bin/sh
# sqlite-notes: drives the unmodified sqlite3 CLI on a database in /data.
# Each run adds a row and prints the table, so rows from earlier runs show up.
set -eu
DB=/data/notes.db
sqlite3 "$DB" "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL,
               at TEXT NOT NULL DEFAULT (datetime('now')));"
sqlite3 "$DB" "INSERT INTO notes (body) VALUES ('$(printf '%s' "${*:-hello}" | sed "s/'/''/g")');"
echo "sqlite-notes: $(sqlite3 "$DB" 'SELECT count(*) FROM notes;') row(s) in $DB"
sqlite3 -header -column "$DB" "SELECT id, body FROM notes ORDER BY id;"
