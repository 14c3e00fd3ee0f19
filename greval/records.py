"""The run folder: per-sample records on disk, written as they arrive.

RUN_DIR/predictions.jsonl holds one JSON object per line. The file is append-only:
a re-run appends new lines for samples that errored before, and readers keep the
last line per (task, sample_id). Each line is written with one `write` call and
flushed, so a crash leaves whole lines only (a torn last line is ignored on read).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greval.constants import ERROR, OK, REFUSAL, TRUNCATED  # noqa: F401  (statuses, re-exported)

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
RUN_INFO = "run.json"


@dataclass
class Prediction:
    sample_id: str
    task: str
    output: str | None
    lat: float | None
    lon: float | None
    status: str
    distance_km: float | None
    error: str | None = None
    gt_lat: float | None = None
    gt_lon: float | None = None
    scene: str | None = None
    scene_source: str | None = None
    image: str | None = None  # image path relative to the data folder, for viewers
    prompt_hash: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    latency_s: float | None = None
    attempts: int = 1
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # doubts about the reading (greval/audit.py)

    def to_json(self) -> str:
        # vars() not asdict(): the fields are plain values and dicts, and asdict's deep copy
        # was the slowest step of a 100k-sample replay.
        return json.dumps(vars(self), ensure_ascii=False, allow_nan=False)


class PredictionWriter:
    """Appends records to predictions.jsonl, one flushed line each."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / PREDICTIONS
        # A run killed mid-write may have left a torn last line: end it so ours start clean.
        if path.exists() and path.stat().st_size:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:
                with path.open("ab") as f:
                    f.write(b"\n")
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: Prediction) -> None:
        self._file.write(record.to_json() + "\n")
        self._file.flush()

    def write_many(self, records: list[Prediction]) -> None:
        """A batch in one write: a crash can still only tear the last line."""
        if records:
            self._file.write("".join(r.to_json() + "\n" for r in records))
            self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_raw(run_dir: Path) -> Iterator[dict[str, Any]]:
    path = Path(run_dir) / PREDICTIONS
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn final line from a crash: the sample will be redone
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line followed by a newline written on resume


def read_predictions(run_dir: Path, overrides: bool = True) -> list[dict[str, Any]]:
    """The current record per (task, sample_id): the last one written wins, and the user's
    overrides (`greval audit --override`) are applied unless `overrides=False`."""
    records = latest_records(iter_raw(run_dir))
    return with_overrides(run_dir, records) if overrides else records


def with_overrides(run_dir: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`records` of `run_dir` with its overrides.jsonl applied (in place)."""
    from greval.audit import apply_overrides, read_overrides

    moved = apply_overrides(records, read_overrides(run_dir))
    if moved:  # their distances, measured as the run measured them
        from greval.score import distance_km

        info_path = Path(run_dir) / RUN_INFO
        earth = read_json(info_path).get("earth", "haversine") if info_path.exists() else "haversine"
        km = distance_km(
            *zip(*((r["gt_lat"], r["gt_lon"], r["lat"], r["lon"]) for r in moved), strict=True), earth=earth
        )
        for record, d in zip(moved, km.tolist(), strict=True):
            record["distance_km"] = d
    return records


def latest_records(raw) -> list[dict[str, Any]]:
    """The last record per (task, sample_id) of an iterable of raw lines."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in raw:
        latest[(rec["task"], rec["sample_id"])] = rec
    return list(latest.values())


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write via a temp file + rename so a crash never leaves half a metrics.json."""
    tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
