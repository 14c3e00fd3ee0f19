"""The leaderboard's tables: which runs share a ranking, and what each row says.

- Runs of one task share a ranking only when they were scored on the same data (run.json's
  `data_hash` of that task): runs on other data get a table of their own, labelled by the
  hash. A run that recorded no hash (an old run) is ranked with the others without one.
- Coverage is answered / the task's whole size (run.json's `task_sizes`: before --limit and
  --shard), e.g. "421 / 1,602", and a run short of the whole task is marked incomplete. A
  run from before `task_sizes` counts its planned samples as the size only when it ran
  without --limit and --shard (a merged run: with no shard missing); otherwise the size is
  unknown and the cell says so ("421 / ?").
- `common=True` (`--common-samples`) re-scores every run of a table (greval.score) on the
  samples all of them answered, so each number in the table is over the same photos.
- A number greval could not compute (the cost of an unpriced model, a median with no
  parsed answer) is None: "unknown" or "—" on the page, null in the JSON, never 0.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greval.constants import GRANULARITY_LIST
from greval.cost import PARTIAL, UNKNOWN, cost_summary
from greval.records import ERROR as STATUS_ERROR
from greval.records import RunFolder
from greval.report import prompt_label

# (metric key, threshold km, short label, granularity name) — the benchmark's five levels.
# (metric key, km, column label, name) of each granularity (greval/constants.py).
GRANULARITIES: tuple[tuple[str, float, str, str], ...] = tuple(
    (g.key, g.km, f"{g.km:g} km", g.name) for g in GRANULARITY_LIST
)
KIND_LABELS = {"api": "API", "open-weights": "open weights", "offline": "offline"}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    fmt: str  # text | int | pct | km | score | usd | date
    better: str | None = None  # "high" | "low" | None (not ranked)
    title: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("model", "Model", "text"),
    Column("adapter", "Adapter", "text"),
    Column("kind", "Kind", "text"),
    Column("date", "Date", "date"),
    Column("prompt", "Prompt", "text", title="prompt template and the first 8 characters of its hash"),
    Column("n", "n", "int", title="samples scored"),
    Column("coverage", "Coverage", "text", title="samples answered / samples of the task"),
    *(
        Column(key, label, "pct", "high", f"% within {label} ({name}), 95 % interval below")
        for key, _, label, name in GRANULARITIES
    ),
    Column("median_km", "Median km", "km", "low", "median great-circle error"),
    Column("geoscore", "GeoScore", "score", "high", "mean 5000·exp(−d/1492.7)"),
    Column("country_acc", "Country", "pct", "high", "% in the right country"),
    Column("continent_acc", "Continent", "pct", "high", "% on the right continent"),
    Column("parse_failure_rate", "Parse fail", "pct", "low", "% of answers with no readable coordinates"),
    Column("refusal_rate", "Refusal", "pct", "low", "% of answers that refused"),
    Column("flagged_rate", "Flagged", "pct", None, "% of answers whose reading is doubtful (greval audit)"),
    Column("cot_score", "CoT", "pct", "high", "reasoning-chain score"),
    Column("cost_usd", "Cost", "usd", "low", "API cost of this task, USD"),
)


@dataclass
class RunData:
    """A run folder (greval/records.py's RunFolder reads its files) with its page's slug."""

    folder: RunFolder
    slug: str
    data_root: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    @property
    def info(self):
        return self.folder.info

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return self.folder.metrics["tasks"]

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.folder.predictions()

    @property
    def model(self) -> str:
        return str(self.info.get("model") or self.info.get("run_id") or self.run_dir.name)

    @property
    def run_id(self) -> str:
        return str(self.info.get("run_id") or self.run_dir.name)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _task_cost(run: RunData, task: str) -> dict[str, Any]:
    """greval.cost's summary of one task's records (a run.json without records: its total)."""
    records = [rec for rec in run.records if rec.get("task") == task]
    if records:
        return cost_summary(records, run.info.get("kind"))
    if len(run.tasks) == 1 and run.info.get("cost_status"):
        return {k: run.info.get(k) for k in ("cost_usd", "cost_status")}
    return {"cost_usd": _finite(run.info.get("cost_usd")) if len(run.tasks) == 1 else None, "cost_status": None}


def task_size(info: dict[str, Any], task: str) -> int | None:
    """The whole size of `task` (every sample, before --limit and --shard), or None when the
    run did not record it and its planned samples cannot stand for it."""
    total = (info.get("task_sizes") or {}).get(task)
    if isinstance(total, int) and not isinstance(total, bool) and total > 0:
        return total
    args = info.get("args") or {}
    whole = args.get("limit") is None and (
        not args.get("shard") or (bool(info.get("merged_from")) and not info.get("missing_shards"))
    )
    planned = (info.get("samples_per_task") or {}).get(task)  # a run from before task_sizes
    return planned if whole and isinstance(planned, int) and planned > 0 else None


def coverage(run: RunData, task: str, n: float | None) -> dict[str, Any]:
    """{"answered", "total", "incomplete", "text"}: metrics.json's n (samples answered and
    scored) against the task's whole size; total and incomplete are None when unknown."""
    total = task_size(run.info, task)
    if n is None:
        return {"answered": None, "total": total, "incomplete": None, "text": "—"}
    answered = int(n)
    if total is None:
        return {"answered": answered, "total": None, "incomplete": None, "text": f"{answered:,} / ?"}
    incomplete = answered < total
    text = f"{answered:,} / {total:,}" + (" (incomplete)" if incomplete else "")
    return {"answered": answered, "total": total, "incomplete": incomplete, "text": text}


def data_hash(info: dict[str, Any], task: str) -> str | None:
    """run.json's hash of the data `task` was scored on (None for a run that recorded none)."""
    hashes = info.get("data_hash") or {}
    digest = hashes.get(task) if isinstance(hashes, dict) else hashes  # one hash for all tasks
    return str(digest) if digest else None


def _row(run: RunData, task: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run's row of a task's table: its own metrics, or those re-scored on the common samples."""
    m = run.tasks[task] if metrics is None else metrics
    cost = _task_cost(run, task)
    own = coverage(run, task, _finite(run.tasks[task].get("n")))
    kind = str(run.info.get("kind") or "")
    created = str(run.info.get("created") or "")
    values: dict[str, Any] = {
        "model": run.model,
        "adapter": str(run.info.get("adapter") or ""),
        "kind": kind,
        "date": created,
        "prompt": prompt_label(run.info, task),
        "n": _finite(m.get("n")),
        "coverage": own["text"],
        "cost_usd": cost["cost_usd"],
    }
    for col in COLUMNS:
        if col.key not in values:
            values[col.key] = _finite(m.get(col.key))
    ci = {}
    for key, *_ in GRANULARITIES:
        pair = (m.get("ci") or {}).get(key)
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_finite(v) is not None for v in pair):
            ci[key] = [float(pair[0]), float(pair[1])]
    return {
        "slug": run.slug,
        "run_id": run.run_id,
        "kind_label": KIND_LABELS.get(kind, kind or "—"),
        "data": values,
        "ci": ci,
        "best": set(),
        "cost_status": cost["cost_status"],
        "coverage": own,
        "data_hash": data_hash(run.info, task),
        "prompt": {
            "template": (run.info.get("prompt_templates") or {}).get(task)
            or (run.info.get("args") or {}).get("template"),
            "hash": (run.info.get("prompt_hashes") or {}).get(task),
        },
        # What a cell shows instead of a number greval could not compute: never "$0.00".
        "missing": {"cost_usd": "unknown"} if cost["cost_status"] in (UNKNOWN, PARTIAL) else {},
    }


def _mark_best(rows: list[dict[str, Any]], columns: list[Column]) -> None:
    for col in columns:
        if col.better is None:
            continue
        vals = [r["data"][col.key] for r in rows if r["data"][col.key] is not None]
        if len(vals) < 2 or max(vals) == min(vals):
            continue  # with one value, or all equal, nothing stands out
        best = max(vals) if col.better == "high" else min(vals)
        for r in rows:
            if r["data"][col.key] is not None and math.isclose(r["data"][col.key], best, rel_tol=1e-12, abs_tol=1e-12):
                r["best"].add(col.key)


def data_groups(runs: list[RunData], task: str) -> list[tuple[str, str | None, list[RunData]]]:
    """(table key, data hash, runs) of `task`, one group per data hash, largest first: runs
    scored on different data never share a ranking. One group keeps the task's name as its
    key; several are named by hash ("urban · data 1f2e3d4c", "urban · data unknown")."""
    groups: dict[str | None, list[RunData]] = {}
    for run in runs:
        if task in run.tasks:
            groups.setdefault(data_hash(run.info, task), []).append(run)
    if len(groups) <= 1:
        return [(task, digest, members) for digest, members in groups.items()]
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0] is None, kv[0] or ""))
    return [(f"{task} · data {_short(digest)}", digest, members) for digest, members in ordered]


def _short(digest: str | None) -> str:
    return digest.rpartition(":")[2][:8] if digest else "unknown"  # "sha256:1f2e…" → "1f2e3d4c"


def common_metrics(members: list[RunData], task: str) -> dict[str, dict[str, Any]]:
    """Each run's metrics of `task` re-scored on the samples every run answered."""
    from greval.score import summarize

    answered = [
        {r["sample_id"] for r in run.records if r["task"] == task and r["status"] != STATUS_ERROR} for run in members
    ]
    common = set.intersection(*answered) if answered else set()
    out = {}
    for run in members:
        records = [r for r in run.records if r["task"] == task and r["sample_id"] in common]
        granularities = (run.info.get("args") or {}).get("granularities")  # the run's own columns
        out[run.slug] = (
            summarize(records, granularities, earth=run.info.get("earth", "haversine"), seed=run.info.get("seed", 0))
            if records
            else {"n": 0}
        )
    return out


def task_table(
    runs: list[RunData], task: str, key: str | None = None, common: bool = False, digest: str | None = None
) -> dict[str, Any]:
    """The ranking of one task over `runs` (one data group, its hash `digest`); `common`
    re-scores every run on the samples all of them answered."""
    members = [run for run in runs if task in run.tasks]
    scored = common_metrics(members, task) if common else {}
    rows = [_row(run, task, scored.get(run.slug)) for run in members]
    # Columns with no value in any row (e.g. no chain scores) are left out.
    columns = [
        c
        for c in COLUMNS
        if c.fmt in ("text", "date") or any(r["data"][c.key] is not None or c.key in r["missing"] for r in rows)
    ]
    _mark_best(rows, columns)
    first = GRANULARITIES[3][0]
    rows.sort(key=lambda r: -(r["data"][first] or -1.0))
    metrics = {run.slug: scored.get(run.slug) or run.tasks[task] for run in members}
    return {
        "task": task,
        "key": key or task,
        "data_hash": digest,
        "columns": columns,
        "rows": rows,
        "runs": members,
        "metrics": metrics,  # what the rows show, per run slug: for the breakdown and charts
        "common": common,
        "n_common": next(iter(scored.values()), {}).get("n") if common else None,
    }


def _scenes(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-scene accuracies of the runs' metric blocks (in the table's order of runs)."""
    counts: Counter[str] = Counter()
    for block in blocks:
        for scene, m in (block.get("by_scene") or {}).items():
            counts[scene] = max(counts[scene], int(_finite((m or {}).get("n")) or 0))
    scenes = [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    acc = {}
    for key, *_ in GRANULARITIES:
        acc[key] = [[_round(((b.get("by_scene") or {}).get(s) or {}).get(key)) for s in scenes] for b in blocks]
    return {"scenes": [{"name": s, "n": counts[s]} for s in scenes], "acc": acc}


def analysis_of(table: dict[str, Any]) -> dict[str, Any]:
    """The page's chart data of a table: runs, accuracies and the per-scene breakdown, from
    the same metrics as its rows (re-scored ones under --common-samples)."""
    members = table["runs"]
    blocks = [table["metrics"][run.slug] for run in members]
    return {
        "runs": [{"model": r.model, "run_id": r.run_id, "slug": r.slug} for r in members],
        "acc": {key: [_round(b.get(key)) for b in blocks] for key, *_ in GRANULARITIES},
        "scenes": _scenes(blocks),
    }


def _round(value: Any, digits: int = 5) -> float | None:
    v = _finite(value)
    return None if v is None else round(v, digits)


def table_folders(table: dict[str, Any]) -> list[RunFolder]:
    """The table's runs as run folders whose metrics are what the table shows (for
    greval.report's LaTeX): under --common-samples, the re-scored ones."""
    if not table["common"]:
        return [run.folder for run in table["runs"]]
    folders = []
    for run in table["runs"]:
        folder = RunFolder(run.run_dir)
        folder._info, folder._metrics = run.info, {"tasks": {table["task"]: table["metrics"][run.slug]}}
        folders.append(folder)
    return folders


def export_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of leaderboard.json: metrics as numbers (null where greval could not compute
    one), cost_status, coverage, data hash and prompt."""
    v = row["data"]
    return {
        "run_id": row["run_id"],
        "page": f"runs/{row['slug']}/index.html",
        "model": v["model"],
        "adapter": v["adapter"],
        "kind": v["kind"],
        "created": v["date"],
        # Every metric, null where greval could not compute it (the page leaves empty columns out).
        "metrics": {c.key: v[c.key] for c in COLUMNS if c.fmt not in ("text", "date")},
        "cost_status": row["cost_status"],
        "coverage": {k: row["coverage"][k] for k in ("answered", "total", "incomplete")},
        "data_hash": row["data_hash"],
        "prompt": row["prompt"],
        "ci95": row["ci"],
        "best": sorted(row["best"]),
    }
