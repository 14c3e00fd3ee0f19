"""The response cache: a paid answer is never paid for twice.

One sqlite file (`$GREVAL_CACHE_DIR/responses.sqlite`, default
`~/.cache/greval/responses.sqlite`) shared by every run, task and report. An entry's key
is the sha256 of everything that decides the answer: adapter, model, endpoint, rendered
system + user prompt, the image's bytes, generation settings and image-preparation
settings (see `cache_key`). So a re-run, or a new task that renders the same prompt for
the same image, is answered from here.

Only real answers are stored: never errors, never empty text. A truncated answer is
stored (the same settings would truncate again). WAL mode with synchronous=NORMAL: a
commit costs no fsync, readers never block the writer, and several shards or runs may
share the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greval.types import Usage

CACHE_FILE = "responses.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT,
    text TEXT NOT NULL,
    finish_reason TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost_usd REAL,
    meta TEXT,
    created REAL
)
"""


def default_cache_dir() -> Path:
    env = os.environ.get("GREVAL_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "greval"


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `parts` (sorted keys, so dict order never matters)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CachedResponse:
    text: str
    finish_reason: str | None
    usage: Usage
    cost_usd: float | None  # what the answer cost when it was first bought
    meta: dict[str, Any]


class ResponseCache:
    """Thread-safe (one connection behind a lock); call it from worker threads, not the event loop."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        directory = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / CACHE_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, finish_reason, input_tokens, output_tokens, reasoning_tokens, cost_usd, meta FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        text, finish_reason, inp, out, reasoning, cost, meta = row
        return CachedResponse(
            text, finish_reason, Usage(inp or 0, out or 0, reasoning or 0), cost, json.loads(meta or "{}")
        )

    def put(
        self,
        key: str,
        *,
        model: str | None,
        text: str,
        finish_reason: str | None,
        usage: Usage,
        cost_usd: float | None,
        meta: dict[str, Any] | None = None,
    ) -> bool:
        """Store a real answer; refuses (returns False) empty text."""
        if not text or not text.strip():
            return False
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    model,
                    text,
                    finish_reason,
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.reasoning_tokens,
                    cost_usd,
                    json.dumps(meta or {}, default=str),
                    time.time(),
                ),
            )
        return True

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
