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
COT = "cot.jsonl"  # `greval judge`: one record per judged chain
PROBLEMS = "problems.txt"  # the data problems of the last run, one per line


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


def end_torn_line(path: Path) -> None:
    """A process killed mid-write may leave a last line without its newline: end it, so the
    next record starts on a line of its own (the torn line is then skipped as unreadable)."""
    if path.exists() and path.stat().st_size:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
        if torn:
            with path.open("ab") as f:
                f.write(b"\n")


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Append records, one flushed write (a crash can tear only the last line)."""
    end_torn_line(path)
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        f.flush()


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Every whole record of a JSONL file, in the order written: a torn last line (a crash)
    ends the file, a torn line a resume has since ended is skipped; both are redone."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


class PredictionWriter:
    """Appends records to predictions.jsonl, one flushed line each."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / PREDICTIONS
        end_torn_line(path)
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
    """Every whole record of RUN_DIR/predictions.jsonl, in the order written."""
    return iter_jsonl(Path(run_dir) / PREDICTIONS)


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


# --------------------------------------------------------------------------- the folder

SCHEMA_VERSION = 1  # run.json's layout; written as "schema_version" (absent: 1, the first)


@dataclass
class RunInfo:
    """run.json: provenance of a run. Read like the mapping it is stored as (`info.get(k)`),
    with the fields every reader needs typed."""

    data: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def __bool__(self) -> bool:
        return bool(self.data)

    @property
    def schema_version(self) -> int:
        return int(self.data.get("schema_version", 1))

    @property
    def run_id(self) -> str | None:
        return self.data.get("run_id")

    @property
    def model(self) -> str | None:
        return self.data.get("model")

    @property
    def adapter(self) -> str | None:
        return self.data.get("adapter")

    @property
    def kind(self) -> str | None:
        return self.data.get("kind")


class RunFolder:
    """One run folder, the only code that knows its files: run.json (`.info`), metrics.json
    (`.metrics`), predictions.jsonl (`.predictions()`, overrides applied) and cot.jsonl
    (`.cot()`). Missing files read as empty; `greval.report.load_run` checks a folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._info: RunInfo | None = None
        self._metrics: dict[str, Any] | None = None
        self._predictions: list[dict[str, Any]] | None = None

    @property
    def info(self) -> RunInfo:
        if self._info is None:
            file = self.path / RUN_INFO
            self._info = RunInfo(read_json(file) if file.is_file() else {})
        return self._info

    @property
    def metrics(self) -> dict[str, Any]:
        if self._metrics is None:
            file = self.path / METRICS
            self._metrics = read_json(file) if file.is_file() else {}
        return self._metrics

    def predictions(self) -> list[dict[str, Any]]:
        """The current record per (task, sample_id), with `greval audit` overrides applied."""
        if self._predictions is None:
            self._predictions = read_predictions(self.path)
        return self._predictions

    def cot(self) -> list[dict[str, Any]]:
        """cot.jsonl's current record per (task, sample_id) (`greval judge`)."""
        latest = {(r["task"], r["sample_id"]): r for r in iter_jsonl(self.path / COT)}
        return list(latest.values())

    @property
    def tasks(self) -> list[str]:
        return list((self.metrics.get("tasks") or {}).keys())

    @property
    def label(self) -> str:
        """The model name a reader knows the run by: run.json's model, else adapter, else folder."""
        return str(self.info.get("model") or self.info.get("adapter") or self.path.name)
