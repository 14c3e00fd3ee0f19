"""The response cache: a paid answer is never paid for twice.

One sqlite file (`$GREVAL_CACHE_DIR/responses.sqlite`, default
`~/.cache/greval/responses.sqlite`) shared by every run, task and report. An entry's key
is the sha256 of everything that decides the answer: adapter, model, endpoint, rendered
system + user prompt, the image's bytes, generation settings and image-preparation
settings (see `cache_key`). So a re-run, or a new task that renders the same prompt for
the same image, is answered from here.

`with_cache` puts it in front of any adapter the run engine sends to, as long as the
adapter says what changes its answers (`cache_key_extra()`): the API adapters and the
local models do; replay, random and a user's adapter without that method are never cached.

Only real answers are stored: never errors, never empty text. A truncated answer is
stored (the same settings would truncate again). WAL mode with synchronous=NORMAL: a
commit costs no fsync, readers never block the writer, and several shards or runs may
share the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greval.adapter import option
from greval.types import Usage

log = logging.getLogger("greval.cache")
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


# -- the cache in front of any adapter ------------------------------------------------------


@dataclass
class CacheOptions:
    """The options of every adapter the cache can stand in front of (`with_cache`)."""

    no_cache: bool | None = option(help="do not use the response cache")
    cache_dir: str | None = option(help="response cache folder")


def with_cache(adapter: Any) -> Any:
    """`adapter` behind the response cache, as `greval run` and `greval judge` send through it;
    the adapter itself when it opts out (`cache_key_extra()` is None: replay, random) or the
    user did (`--no-cache`, the `no_cache` option). `cache_dir` picks the sqlite folder."""
    options = getattr(adapter, "options", None) or {}
    extra = adapter.cache_key_extra()  # once: a local checkpoint's identity stats its files
    if options.get("no_cache") or extra is None:
        return adapter
    try:
        cache = ResponseCache(options.get("cache_dir"))
    except (OSError, sqlite3.Error) as exc:  # a read-only home, a full disk: run, uncached
        log.warning("the response cache cannot be opened (%s): answers are not cached in this run", exc)
        return adapter
    return CachedAdapter(adapter, cache, extra)


class CachedAdapter:
    """Looks each request up before the adapter sees it; the adapter answers the misses, and
    their real answers are stored (never errors, data problems or empty text). Everything
    else (batch size, concurrency, info, ...) is the adapter's own.

    The key holds everything that decides an answer: adapter, model, rendered prompt, the
    image's bytes, the adapter's generation settings for this request (`generation()`,
    its seed included) and its `cache_key_extra()` (endpoint, image preparation,
    checkpoint, dtype, ...). A hit costs nothing now: `cost_usd` 0.0 for an API (None
    where cost does not apply), `attempts` 0, `cached=True`, and
    `meta["original_cost_usd"]` keeps what the answer cost when it was bought."""

    def __init__(self, adapter: Any, cache: ResponseCache, extra: dict[str, Any]) -> None:
        self.inner, self.cache, self.extra = adapter, cache, extra  # extra: adapter.cache_key_extra()
        # A local adapter's `model` is the loaded network; its name is `model_ref`.
        self.model_name = adapter.model if isinstance(adapter.model, str) else getattr(adapter, "model_ref", None)
        self.hits, self.hits_original_cost_usd, self.hits_cost_unknown = 0, 0.0, 0

    def __getattr__(self, name: str) -> Any:  # only reached for what this class lacks
        return getattr(self.inner, name)

    def key(self, request: Any) -> tuple[str | None, bytes | None]:
        """The request's cache key and the image bytes it hashed; (None, None) when the image
        cannot be read (the adapter then answers with the data problem, naming the file)."""
        sample = request.sample
        try:
            raw = sample.image_bytes() if sample.has_image else None
        except Exception:
            return None, None
        return cache_key(
            {
                "v": 1,
                "adapter": self.inner.name,
                "model": self.model_name,
                "system": request.system,
                "prompt": request.prompt,
                "image_sha256": hashlib.sha256(raw).hexdigest() if raw is not None else None,
                "generation": self.inner.generation(request),
                **self.extra,
            }
        ), raw

    def _lookup(self, requests: list) -> tuple[list[tuple[str | None, CachedResponse | None]], list]:
        """(key, hit) per request, and the requests to send: the misses, each holding the
        image bytes already read for its key, so the adapter does not read the file again."""
        from dataclasses import replace

        keys = [self.key(request) for request in requests]
        try:
            found = [(key, self.cache.get(key) if key is not None else None) for key, _ in keys]
        except Exception as exc:  # an unreadable cache file: ask the model, as without a cache
            log.warning("could not read the response cache %s (%s): asking the model", self.cache.path, exc)
            found = [(None, None) for _ in keys]
        send = [
            request if raw is None else replace(request, sample=replace(request.sample, image_loader=lambda b=raw: b))
            for request, (_, raw), (_, hit) in zip(requests, keys, found, strict=True)
            if hit is None
        ]
        return found, send

    async def agenerate(self, requests: list) -> list:
        import asyncio

        found, send = await asyncio.to_thread(self._lookup, requests)
        misses = [i for i, (_, hit) in enumerate(found) if hit is None]
        answers = await self.inner.agenerate(send) if send else []
        if len(answers) != len(misses):
            raise RuntimeError(f"adapter returned {len(answers)} responses for {len(misses)} requests")
        responses: list = [self._from_cache(hit) if hit is not None else None for _, hit in found]
        fresh = []
        for i, response in zip(misses, answers, strict=True):
            responses[i] = response
            if found[i][0] is not None and response.error is None and response.data_problem is None:
                fresh.append((found[i][0], response))
        if fresh:
            try:
                await asyncio.to_thread(self._store, fresh)
            except Exception as exc:  # a full disk or a locked file must not cost the answers
                log.warning("could not store %d answers in the response cache %s: %s", len(fresh), self.cache.path, exc)
        return responses

    def generate(self, requests: list) -> list:
        import asyncio

        return asyncio.run(self.agenerate(requests))

    def _from_cache(self, hit: CachedResponse) -> Any:
        from greval.types import Response

        self.hits += 1
        if hit.cost_usd is None:
            self.hits_cost_unknown += 1  # bought without a known price (or free: a local model)
        else:
            self.hits_original_cost_usd += hit.cost_usd
        return Response(
            text=hit.text,
            finish_reason=hit.finish_reason,
            usage=hit.usage,
            cost_usd=0.0 if self.inner.kind == "api" else None,
            latency_s=0.0,
            attempts=0,
            cached=True,
            meta={**hit.meta, "original_cost_usd": hit.cost_usd},
        )

    def _store(self, fresh: list) -> None:
        for key, response in fresh:  # `put` refuses empty text itself
            self.cache.put(
                key,
                model=self.model_name,
                text=response.text or "",
                finish_reason=response.finish_reason,
                usage=response.usage,
                cost_usd=response.cost_usd,
                meta={k: v for k, v in response.meta.items() if k in ("model_reported", "reasoning")},
            )

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "cache": str(self.cache.path)}

    def run_summary(self) -> dict[str, Any]:
        """The adapter's own totals (what this run paid for), with the answers the cache gave."""
        inner = self.inner.run_summary() if hasattr(self.inner, "run_summary") else {}
        # What the cached answers cost when bought: None (not a false 0.0) where that does
        # not apply (a local model) or where some were bought without a known price.
        known = self.inner.kind == "api" and not self.hits_cost_unknown
        return {
            **inner,
            "requests": inner.get("requests", 0) + self.hits,
            "cached_hits": self.hits,
            "cached_original_cost_usd": round(self.hits_original_cost_usd, 6) if known else None,
        }

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.cache.close()
