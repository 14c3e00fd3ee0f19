"""Batching for local GPU models: `--batch-size auto` and length-aware grouping.

`auto` (the default on CUDA) probes the largest batch that fits: it generates a few
tokens for batches of the run's LONGEST inputs, doubling from 8 up to 256, and keeps the
last size that did not run out of memory. The result is remembered per model, GPU and
image budget in `$GREVAL_CACHE_DIR/batch_sizes.json` (default ~/.cache/greval), so the
next run skips the probe; run.json records the size chosen and how. On a CPU, `auto`
is 8.

Length-aware grouping: the run sorts requests by `input_size` (image pixels, then prompt
length) before cutting batches, so a batch holds inputs of similar size and little of it
is padding. Each response still belongs to its own request (the run writes records by
sample), and under greedy decoding the outputs equal those of batch size 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CPU_AUTO = 8
PROBE_SIZES = (8, 16, 32, 64, 128, 256)


def cache_file() -> Path:
    root = os.environ.get("GREVAL_CACHE_DIR") or Path.home() / ".cache" / "greval"
    return Path(root) / "batch_sizes.json"


def remembered(key: str) -> int | None:
    try:
        return int(json.loads(cache_file().read_text())[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(key: str, size: int) -> None:
    path = cache_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        data = {}
    data[key] = size
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def input_size(request: Any) -> tuple[int, int]:
    """(image pixels, prompt characters): read from the image header only, no decoding."""
    sample = request.sample
    pixels = 0
    if sample.image_path is not None:
        try:
            from PIL import Image

            with Image.open(sample.image_path) as image:
                pixels = image.size[0] * image.size[1]
        except Exception:  # noqa: BLE001 - an unreadable image is reported when it is loaded
            pixels = 0
    return pixels, len(request.prompt)


def probe(try_batch, longest: list[Any], is_oom) -> int:
    """The largest size in PROBE_SIZES whose batch of `longest` inputs runs; `try_batch(reqs)`
    raises an out-of-memory error (`is_oom(exc)`) when it does not fit."""
    best = 1
    for size in PROBE_SIZES:
        batch = (longest * (size // max(1, len(longest)) + 1))[:size]
        try:
            try_batch(batch)
        except Exception as exc:
            if is_oom(exc):
                break
            raise
        best = size
    return best
