"""SQLite files that a service and a CLI use at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_wal(path: Path, schema: str) -> sqlite3.Connection:
    """`path` (created with its parent) in WAL mode, autocommit, usable from any thread (the
    caller serialises with its own lock), with `schema` applied. WAL lets a CLI write while the
    service reads; the busy timeout waits out the other writer instead of failing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=10000")
    db.executescript(schema)
    return db
