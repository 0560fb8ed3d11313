"""Other processes, seen from a test: a process's children read from /proc (the ffmpeg a worker or the encoder
started, to stop or kill it mid-clip), and another process holding SQLite's write lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of a process's children, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if int(rest[1]) == pid:
                found.append((int(entry.name), name))
    return found


def ffmpeg_child(parent: int | None = None, timeout: float = 10) -> int:
    """The pid of the ffmpeg that `parent` (this process by default) started; waits for it, as the encoder thread
    may still be starting it."""
    parent = os.getpid() if parent is None else parent
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, name in children(parent):
            if name.startswith("ffmpeg"):
                return pid
        time.sleep(0.01)
    raise AssertionError(f"no ffmpeg child of {parent}")


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def hold_write_lock(database, seconds: float) -> subprocess.Popen:
    """Another process holds SQLite's write lock for `seconds` (returns once it holds it)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(database), str(seconds)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    return holder
