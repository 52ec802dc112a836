"""Durable storage of finalized blocks and state (SQLite, one transaction per finality step).

Only finalized data is written, each step atomically with WAL and full
sync, so a `kill -9` at any moment leaves the last finalized block and its
state intact; unfinalized blocks are rebuilt by producing them again.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from devnet.state import Changes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE,
                                   header BLOB NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


@dataclass(frozen=True)
class StoredBlock:
    number: int
    hash: bytes
    header: bytes
    body: bytes  # SCALE Vec<Extrinsic>


class BlockStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def genesis_hash(self) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE name='genesis'").fetchone()
        return row[0] if row else None

    def load_blocks(self) -> list[StoredBlock]:
        return [StoredBlock(*row) for row in
                self._db.execute("SELECT number, hash, header, body FROM blocks ORDER BY number")]

    def load_state(self) -> dict[bytes, bytes]:
        return dict(self._db.execute("SELECT key, value FROM state"))

    def persist(self, blocks: list[StoredBlock], changes: list[Changes], genesis: bytes | None = None) -> None:
        """Write finalized blocks and their state changes in one atomic transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if genesis is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('genesis', ?)", (genesis,))
            db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)",
                           [(b.number, b.hash, b.header, b.body) for b in blocks])
            for change in changes:
                db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)",
                               [(k, v) for k, v in change.items() if v is not None])
                db.executemany("DELETE FROM state WHERE key = ?", [(k,) for k, v in change.items() if v is None])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
