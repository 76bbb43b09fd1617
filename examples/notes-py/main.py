#!/usr/bin/python3
"""notes-py: an unmodified python3 script as a cella app.

Each run appends a line to /data/notes.txt (its persistent, private storage)
and prints what earlier runs left there, so a second run shows the first one's
note: /data survives across runs, /tmp does not.
"""
import datetime
import os
import sys

NOTES = "/data/notes.txt"


def main() -> int:
    earlier = []
    if os.path.exists(NOTES):
        with open(NOTES, encoding="utf-8") as f:
            earlier = [line.rstrip("\n") for line in f]
    print(f"notes-py: {len(earlier)} note(s) from earlier runs")
    for line in earlier:
        print(f"  {line}")
    text = " ".join(sys.argv[1:]) or "hello"
    run = len(earlier) + 1
    with open(NOTES, "a", encoding="utf-8") as f:
        f.write(f"run {run}: {text} ({datetime.datetime.now().isoformat(timespec='seconds')})\n")
    print(f"notes-py: wrote note {run} to {NOTES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
