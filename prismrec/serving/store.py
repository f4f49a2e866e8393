"""SQLite persistence for what a running server learns: ingested items and feedback events.

The database runs in WAL mode with ``synchronous=FULL``: every write is one transaction,
and a method returns only after ``COMMIT`` has reached the disk, so an HTTP handler that
acknowledges after the call never acknowledges a write that a crash (even ``kill -9``)
can lose. One connection is shared by the server's threads behind a lock (SQLite
serialises writers anyway, and this keeps the ordering of ``seq`` numbers simple).

Example:
    >>> store = ServingStore("/tmp/state/serving.sqlite3")  # doctest: +SKIP
    >>> store.add_interaction("u1", "i9", timestamp=1.7e9)  # doctest: +SKIP
    1
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    fields TEXT NOT NULL,
    image_sha256 TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS interactions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    timestamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS interactions_user ON interactions(user_id);
"""


@dataclass
class StoredItem:
    item_id: str
    fields: dict
    image_sha256: str | None
    created: float


@dataclass
class StoredInteraction:
    seq: int
    user_id: str
    item_id: str
    event: str
    timestamp: float


class ServingStore:
    """Ingested items and feedback events in one SQLite file (WAL mode, durable commits)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        mode = self._connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); is it on a network drive?")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.execute("PRAGMA busy_timeout=5000")
        self._connection.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _write(self, sql: str, parameters: tuple) -> int:
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.execute(sql, parameters)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            return int(cursor.lastrowid)

    def add_item(self, item_id: str, fields: dict, image_sha256: str | None = None) -> int:
        """Record an ingested item; raises ``ValueError`` when the id is taken. Returns its sequence number."""
        try:
            return self._write("INSERT INTO items (item_id, fields, image_sha256, created) VALUES (?, ?, ?, ?)",
                               (item_id, json.dumps(fields, ensure_ascii=False), image_sha256, time.time()))
        except sqlite3.IntegrityError:
            raise ValueError(f"item {item_id!r} already exists; choose another item_id") from None

    def add_interaction(self, user_id: str, item_id: str, *, event: str = "click",
                        timestamp: float | None = None) -> int:
        """Record one feedback event; returns its sequence number once committed."""
        return self._write("INSERT INTO interactions (user_id, item_id, event, timestamp) VALUES (?, ?, ?, ?)",
                           (user_id, item_id, event, time.time() if timestamp is None else float(timestamp)))

    def items(self) -> list[StoredItem]:
        """Ingested items in the order they arrived."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT item_id, fields, image_sha256, created FROM items ORDER BY seq").fetchall()
        return [StoredItem(r[0], json.loads(r[1]), r[2], r[3]) for r in rows]

    def interactions(self) -> list[StoredInteraction]:
        """Feedback events in the order they were committed."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT seq, user_id, item_id, event, timestamp FROM interactions ORDER BY seq").fetchall()
        return [StoredInteraction(*row) for row in rows]

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound database."""
        with self._lock:
            return self._connection.execute("PRAGMA integrity_check").fetchone()[0]
