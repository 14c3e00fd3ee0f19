"""A static leaderboard site built from run folders: `greval leaderboard RUN_DIR… --out SITE`.

The site works from file://, offline: no CDN, no fonts, no request to any host. One page
(`index.html`) holds the main table per task, the per-scene breakdown and a significance
matrix; one page per run (`runs/<slug>/index.html`) holds its plots, provenance and a
sample viewer. Per-sample data lives only in the run pages, so the main page stays small.

Model output is untrusted text. Templates autoescape; data handed to the JavaScript is
embedded as `<script type="application/json">` with `<`, `>` and `&` escaped, and the
JavaScript inserts it with `textContent` only. A Content-Security-Policy allows scripts
from the site folder alone (no inline script), so anything that slipped through escaping
still could not run. Images are copied in as thumbnails; no path outside the site folder
is ever referenced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import numpy as np
from markupsafe import Markup
from PIL import Image

import greval
from greval.compare import mcnemar_p
from greval.constants import GRANULARITY_LIST
from greval.cost import PARTIAL, UNKNOWN, cost_summary
from greval.cost import describe as describe_cost
from greval.records import ERROR as STATUS_ERROR
from greval.records import METRICS, OK, RUN_INFO, RunFolder, read_json, write_json_atomic
from greval.report import prompt_label

log = logging.getLogger(__name__)

# (metric key, threshold km, short label, granularity name) — the benchmark's five levels.
# (metric key, km, column label, name) of each granularity (greval/constants.py).
GRANULARITIES: tuple[tuple[str, float, str, str], ...] = tuple(
    (g.key, g.km, f"{g.km:g} km", g.name) for g in GRANULARITY_LIST
)
KIND_LABELS = {"api": "API", "open-weights": "open weights", "offline": "offline"}
# Tabs come in this order when present; any other task (other datasets) follows by name.
TASK_ORDER = ("urban", "natural", "landmark", "all")
THUMB_PX = 256
SITE_MARKER = ".greval-site"  # marks a folder we built, so a rebuild may clear its runs/
SIGNIFICANCE_ALPHA = 0.05


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


# ---------------------------------------------------------------------------------------
# Loading


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _slugify(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80] or "run"
    slug, i = base, 2
    while slug.lower() in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug.lower())
    return slug


def _find_data_root(run_dir: Path, info: dict[str, Any], data_root: Path | None) -> Path | None:
    if data_root is not None:
        return Path(data_root)
    data_dir = info.get("data_dir")
    if not data_dir:
        return None
    candidate = Path(data_dir)
    if candidate.is_absolute():
        return candidate
    for base in (Path.cwd(), run_dir):
        if (base / candidate).is_dir():
            return base / candidate
    return None


def load_run(run_dir: Path, slug: str, data_root: Path | None = None) -> RunData:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no such directory)")
    for name in (RUN_INFO, METRICS):
        if not (run_dir / name).is_file():
            hint = " — run `greval report` on it first" if name == METRICS else ""
            raise FileNotFoundError(f"{run_dir}: missing {name}{hint}")
    folder = RunFolder(run_dir)
    tasks = folder.metrics.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError(f"{run_dir / METRICS}: no per-task metrics under 'tasks'")
    return RunData(folder=folder, slug=slug, data_root=_find_data_root(run_dir, folder.info, data_root))


# ---------------------------------------------------------------------------------------
# Scoring helpers


def hit_bits(record: dict[str, Any]) -> int:
    """Bit g is set when the record is a hit at GRANULARITIES[g].

    Only a parsed answer can hit: refusals, parse failures and truncated outputs count as
    wrong even if a distance was computed. A hit is d ≤ threshold.
    """
    d = _finite(record.get("distance_km"))
    if record.get("status") != OK or d is None:
        return 0
    return sum(1 << g for g, (_, km, _, _) in enumerate(GRANULARITIES) if d <= km)


def significance(runs: list[RunData], task: str) -> dict[str, Any]:
    """Paired exact McNemar tests between every two runs on the samples both scored.

    Errored samples (no model answer) are left out of the pair; everything else scored
    counts, failures as misses. Returns per granularity a list of
    [i, j, n, acc_i, acc_j, p] over run indices i < j of `runs`.
    """
    index: dict[str, int] = {}
    per_run: list[tuple[np.ndarray, np.ndarray]] = []
    for run in runs:
        ids, bits = [], []
        for rec in run.records:
            if rec.get("task") == task and rec.get("status") != STATUS_ERROR:
                ids.append(index.setdefault(str(rec.get("sample_id")), len(index)))
                bits.append(hit_bits(rec))
        per_run.append((np.asarray(ids, dtype=np.int64), np.asarray(bits, dtype=np.uint8)))
    size = len(index)
    present = np.zeros((len(runs), size), dtype=bool)
    hits = np.zeros((len(runs), size), dtype=np.uint8)
    for r, (ids, bits) in enumerate(per_run):
        present[r, ids] = True
        hits[r, ids] = bits
    out: dict[str, Any] = {}
    for g, (key, *_rest) in enumerate(GRANULARITIES):
        level = ((hits >> g) & 1).astype(bool)
        pairs = []
        for i in range(len(runs)):
            for j in range(i + 1, len(runs)):
                both = present[i] & present[j]
                n = int(both.sum())
                if n == 0:
                    continue
                a, b = level[i] & both, level[j] & both
                only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
                p = mcnemar_p(only_a, only_b)  # the test greval compare uses, on counts: cheap for 190 pairs
                pairs.append([i, j, n, round(int(a.sum()) / n, 5), round(int(b.sum()) / n, 5), float(f"{p:.4g}")])
        out[key] = pairs
    return out


# ---------------------------------------------------------------------------------------
# Tables


def _ordered_tasks(runs: list[RunData]) -> list[str]:
    names = {task for run in runs for task in run.tasks}

    def key(task: str) -> tuple[int, str]:
        low = task.lower()
        for rank, word in enumerate(TASK_ORDER):
            if low == word or low.endswith(("-" + word, "_" + word, "/" + word)):
                return rank, low
        return len(TASK_ORDER), low

    return sorted(names, key=key)


def _task_cost(run: RunData, task: str) -> dict[str, Any]:
    """greval.cost's summary of one task's records (a run.json without records: its total)."""
    records = [rec for rec in run.records if rec.get("task") == task]
    if records:
        return cost_summary(records, run.info.get("kind"))
    if len(run.tasks) == 1 and run.info.get("cost_status"):
        return {k: run.info.get(k) for k in ("cost_usd", "cost_status")}
    return {"cost_usd": _finite(run.info.get("cost_usd")) if len(run.tasks) == 1 else None, "cost_status": None}


def _coverage(run: RunData, task: str, n: float | None) -> tuple[str, bool]:
    """("421 / 1,602", incomplete) from metrics.json's n and run.json's task size (the whole
    task, before --limit and --shard; runs from before task_sizes: the samples they planned)."""
    total = (run.info.get("task_sizes") or run.info.get("samples_per_task") or {}).get(task)
    if n is None:
        return "—", False
    if not isinstance(total, int) or total <= 0:
        return f"{int(n):,}", False
    incomplete = int(n) < total
    return f"{int(n):,} / {total:,}" + (" (incomplete)" if incomplete else ""), incomplete


def _row(run: RunData, task: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    m = run.tasks[task] if metrics is None else metrics
    cost = _task_cost(run, task)
    kind = str(run.info.get("kind") or "")
    created = str(run.info.get("created") or "")
    values: dict[str, Any] = {
        "model": run.model,
        "adapter": str(run.info.get("adapter") or ""),
        "kind": kind,
        "date": created,
        "prompt": prompt_label(run.info, task),
        "n": _finite(m.get("n")),
        "coverage": _coverage(run, task, _finite(m.get("n")))[0] if metrics is None else f"{int(m['n']):,} (common)",
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


def data_groups(runs: list[RunData], task: str) -> list[tuple[str, list[RunData]]]:
    """The runs of `task`, one group per data hash, largest first: runs scored on different
    data never share a ranking. One group keeps the task's name; several are named by hash."""
    groups: dict[str, list[RunData]] = {}
    for run in runs:
        if task in run.tasks:
            hashes = run.info.get("data_hash") or {}
            digest = hashes.get(task) if isinstance(hashes, dict) else hashes  # one hash for all tasks
            groups.setdefault(str(digest or "unknown"), []).append(run)
    if len(groups) <= 1:
        return [(task, members) for members in groups.values()]
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [(f"{task} · data {digest[:8]}", members) for digest, members in ordered]


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
        out[run.slug] = (
            summarize(records, earth=run.info.get("earth", "haversine"), seed=run.info.get("seed", 0))
            if records
            else {"n": 0}
        )
    return out


def task_table(runs: list[RunData], task: str, key: str | None = None, common: bool = False) -> dict[str, Any]:
    """The ranking of one task over `runs` (one data group); `common` re-scores every run on
    the samples all of them answered."""
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
    return {"task": task, "key": key or task, "columns": columns, "rows": rows, "runs": members, "common": common}


def _scenes(members: list[RunData], task: str) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    for run in members:
        for scene, m in (run.tasks[task].get("by_scene") or {}).items():
            counts[scene] = max(counts[scene], int(_finite((m or {}).get("n")) or 0))
    scenes = [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    acc = {}
    for key, *_ in GRANULARITIES:
        acc[key] = [
            [_round(((run.tasks[task].get("by_scene") or {}).get(s) or {}).get(key)) for s in scenes] for run in members
        ]
    return {"scenes": [{"name": s, "n": counts[s]} for s in scenes], "acc": acc}


def _round(value: Any, digits: int = 5) -> float | None:
    v = _finite(value)
    return None if v is None else round(v, digits)


# ---------------------------------------------------------------------------------------
# Formatting (jinja filters)


def fmt_value(value: Any, fmt: str) -> str:
    if value is None or value == "":
        return "—"
    if fmt == "pct":
        return f"{100 * value:.1f}"
    if fmt == "km":
        return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"
    if fmt == "score":
        return f"{value:,.0f}"
    if fmt == "usd":
        return f"${value:,.2f}"
    if fmt == "int":
        return f"{value:,.0f}"
    if fmt == "date":
        return str(value)[:10]
    return str(value)


def sort_value(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if fmt in ("text", "date"):
        return str(value).lower()
    return repr(float(value))


def script_json(data: Any) -> Markup:
    """JSON safe inside <script type="application/json">: no `</script>`, no `<!--`."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


# ---------------------------------------------------------------------------------------
# World map (sample viewer)

MAP_W, MAP_H = 720, 360  # plate carrée: x = (lon + 180) * 2, y = (90 - lat) * 2


def world_map_svg() -> str:
    """A standalone SVG world map, 720×360 plate carrée: country outlines and a graticule.

    Without outlines (greval.geo unavailable) the graticule alone still locates points.
    """
    graticule = [f"M{(lon + 180) * 2} 0V{MAP_H}" for lon in range(-180, 181, 30)]
    graticule += [f"M0 {(90 - lat) * 2}H{MAP_W}" for lat in range(-90, 91, 30)]
    land = ""
    try:
        from greval.geo import world_outlines

        parts = []
        for ring in world_outlines(0.25):
            xs, ys = (ring[:, 0] + 180.0) * 2.0, (90.0 - ring[:, 1]) * 2.0
            parts.append("M" + " ".join(f"{x:.1f} {y:.1f}" for x, y in zip(xs, ys, strict=True)) + "Z")
        land = "".join(parts)
    except Exception as exc:  # the map is decoration: never fail a build over it
        log.warning("world outlines unavailable (%s); the sample map shows a graticule only", exc)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {MAP_W} {MAP_H}" data-greval="{greval.__version__}">'
        f'<rect width="{MAP_W}" height="{MAP_H}" fill="#eef4fa"/>'
        f'<path d="{"".join(graticule)}" fill="none" stroke="#d3deea" stroke-width="0.6"/>'
        f'<path d="{land}" fill="#d9dee4" stroke="#aab4bf" stroke-width="0.4" fill-rule="evenodd"/>'
        "</svg>\n"
    )


def _write_world_map(assets: Path) -> None:
    """assets/world.svg, reused across rebuilds by the same greval version (parsing outlines takes ~1 s)."""
    path = assets / "world.svg"
    if path.is_file() and f'data-greval="{greval.__version__}"' in path.read_text(encoding="utf-8")[:300]:
        return
    path.write_text(world_map_svg(), encoding="utf-8")


# ---------------------------------------------------------------------------------------
# Images


def _safe_relative(image: str) -> PurePosixPath | None:
    """The image path if it stays inside the data folder (no absolute path, no `..`)."""
    path = PurePosixPath(str(image).replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or re.match(r"^[A-Za-z]:", str(image)):
        return None
    return path


def _make_thumbnail(job: tuple[Path, Path]) -> bool:
    src, dest = job
    try:
        if dest.exists() and dest.stat().st_mtime >= src.stat().st_mtime:
            return True
        with Image.open(src) as img:
            img.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at reduced scale, much faster
            img = img.convert("RGB")
            img.thumbnail((THUMB_PX, THUMB_PX))
            tmp = dest.with_suffix(".tmp")
            img.save(tmp, "JPEG", quality=80, optimize=True)
        os.replace(tmp, dest)
        return True
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.warning("no thumbnail for %s: %s", src, exc)
        return False


def _plan_thumbnails(runs: list[RunData], site: Path) -> tuple[dict[tuple[str, str], str], list[tuple[Path, Path]]]:
    """Map (run slug, sample image) → site-relative thumbnail path; list the files to make.

    Thumbnails are named by a hash of the source path, so runs over the same images share
    them and a rebuild reuses those still fresh.
    """
    thumbs_dir = site / "thumbs"
    thumbs_dir.mkdir(parents=True, exist_ok=True)
    names: dict[tuple[str, str], str] = {}
    jobs: dict[str, tuple[Path, Path]] = {}
    seen: dict[tuple[str, str], str | None] = {}  # (data root, image) → thumbnail name; runs share images
    missing = 0
    for run in runs:
        if run.data_root is None:
            continue
        root = str(run.data_root)
        for rec in run.records:
            image = rec.get("image")
            if not image or (run.slug, image) in names:
                continue
            key = (root, image)
            if key not in seen:
                seen[key] = None
                rel = _safe_relative(image)
                if rel is None:
                    log.warning(
                        "%s: sample %s: image path %r leaves the data folder; not shown",
                        run.run_dir,
                        rec.get("sample_id"),
                        image,
                    )
                    continue
                src = Path(root, *rel.parts)
                if not src.is_file():
                    missing += 1
                    continue
                digest = hashlib.sha1(str(src.absolute()).encode("utf-8")).hexdigest()[:20]
                name = f"thumbs/{digest}.jpg"
                jobs.setdefault(name, (src, site / name))
                seen[key] = name
            if seen[key] is not None:
                names[(run.slug, image)] = seen[key]
    if missing:
        log.warning("%d sample images not found; their samples are shown without a thumbnail", missing)
    return names, list(jobs.values())


# ---------------------------------------------------------------------------------------
# Site


def _templates_dir() -> Path:
    """Templates are package data `greval.leaderboard_templates` (the repo's leaderboard/)."""
    try:
        return Path(str(resources.files("greval.leaderboard_templates")))
    except ModuleNotFoundError:
        # An editable install made before the package mapping existed: use the source tree.
        fallback = Path(__file__).resolve().parent.parent / "leaderboard"
        if (fallback / "index.html").is_file():
            return fallback
        raise


def _environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt_value, sortval=sort_value, script_json=script_json)
    return env


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MARKER).exists():
        raise FileExistsError(f"{out}: folder is not empty and was not built by greval; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / SITE_MARKER).write_text("built by greval leaderboard; safe to delete\n", encoding="utf-8")
    shutil.rmtree(out / "runs", ignore_errors=True)  # pages of runs no longer listed


def _granularity_key(name: str) -> str:
    for key, km, label, gname in GRANULARITIES:
        if name in (key, gname, label, label.replace(" ", ""), f"{km:g}"):
            return key
    raise ValueError(f"unknown granularity {name!r}; use one of {[g[3] for g in GRANULARITIES]}")


def _sample_rows(run: RunData, thumbs: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    rows = []
    for rec in run.records:
        image = rec.get("image")
        thumb = thumbs.get((run.slug, image)) if image else None
        rows.append(
            {
                "id": str(rec.get("sample_id")),
                "task": str(rec.get("task")),
                "scene": rec.get("scene"),
                "status": rec.get("status"),
                "output": rec.get("output"),
                "lat": _finite(rec.get("lat")),
                "lon": _finite(rec.get("lon")),
                "gt_lat": _finite(rec.get("gt_lat")),
                "gt_lon": _finite(rec.get("gt_lon")),
                "d": _round(rec.get("distance_km"), 3),
                "error": rec.get("error"),
                "hits": hit_bits(rec),
                "thumb": f"../../{thumb}" if thumb else None,
            }
        )
    rows.sort(key=lambda r: (r["task"], r["id"]))
    return rows


def _provenance(run: RunData) -> list[tuple[str, str]]:
    info = run.info

    def text(value: Any) -> str:
        if value is None or value == "" or value == {}:
            return "—"
        if isinstance(value, (dict, list)):
            return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
        return str(value)

    return [
        ("Run id", text(info.get("run_id"))),
        ("Model", text(info.get("model"))),
        ("Adapter", text(info.get("adapter"))),
        ("Kind", text(KIND_LABELS.get(info.get("kind"), info.get("kind")))),
        ("Created", text(info.get("created"))),
        ("greval version", text(info.get("greval_version"))),
        ("Git commit", text(info.get("git_commit"))),
        ("Dataset hash", text(info.get("data_hash"))),
        ("Prompt hashes", text(info.get("prompt_hashes"))),
        ("Seed", text(info.get("seed"))),
        ("Settings", text(info.get("args"))),
        ("Adapter info", text(info.get("adapter_info"))),
        ("Distance", text(info.get("earth"))),
        ("Samples per task", text(info.get("samples_per_task"))),
        ("Cost (USD)", text(describe_cost(info) or info.get("cost_usd"))),
        ("Duration (s)", text(info.get("duration_s"))),
        ("Libraries", text(info.get("libraries"))),
        ("Python / platform", text(" · ".join(str(info[k]) for k in ("python", "platform") if info.get(k)))),
        ("Command", text(info.get("argv"))),
        ("Run folder", run.run_dir.name),
    ]


def _export_row(row: dict[str, Any], columns: list[Column]) -> dict[str, Any]:
    v = row["data"]
    return {
        "run_id": row["run_id"],
        "page": f"runs/{row['slug']}/index.html",
        "model": v["model"],
        "adapter": v["adapter"],
        "kind": v["kind"],
        "created": v["date"],
        "metrics": {c.key: v[c.key] for c in columns if c.fmt not in ("text", "date")},
        "cost_status": row["cost_status"],
        "ci95": row["ci"],
        "best": sorted(row["best"]),
    }


def _latex(runs: list[RunData], tasks: list[str]) -> str:
    """One booktabs table per task: the same LaTeX as `greval report --format latex`."""
    from greval import report

    parts = [f"% Geolocation leaderboard, generated by greval {greval.__version__}. Needs booktabs and graphicx."]
    for task in tasks:
        having = [report.load_run(run.run_dir) for run in runs if task in run.tasks]
        if not having:
            continue
        df = report.metrics_table(having, [task], ci=True)
        accs = [c for c in df.columns if c.startswith("acc@") and not c.endswith("_ci")]
        caption = (
            f"Geolocation accuracy on {report.latex_escape(task)} (\\%, within each distance; "
            "$\\pm$: half the 95\\,\\% interval), median error (km) and GeoScore. Best value per column in bold."
        )
        label = "tab:greval-" + re.sub(r"[^A-Za-z0-9]+", "-", task).strip("-")
        parts.append(
            report.render(df, "latex", columns=["model", *accs, "median_km", "geoscore"], caption=caption, label=label)
        )
    return "\n".join(parts)


def build_site(
    run_dirs: list[Path],
    out: Path,
    *,
    data_root: Path | None = None,
    granularity_for_significance: str = "country",
    common_samples: bool = False,
) -> Path:
    """Build the static leaderboard for `run_dirs` into `out`; returns `out/index.html`."""
    if not run_dirs:
        raise ValueError("no run folders given")
    default_key = _granularity_key(granularity_for_significance)
    out = Path(out)
    unique = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))
    taken: set[str] = set()
    runs = []
    for run_dir in unique:
        info_id = ""
        if (run_dir / RUN_INFO).is_file():
            info_id = str(read_json(run_dir / RUN_INFO).get("run_id") or "")
        runs.append(load_run(run_dir, _slugify(info_id or run_dir.name, taken), data_root))

    _prepare_out(out)
    templates = _templates_dir()
    env = _environment(templates)
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    for name in ("style.css", "greval.js"):
        shutil.copyfile(templates / name, assets / name)

    thumbs, jobs = _plan_thumbnails(runs, out)
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        failed = {
            f"thumbs/{dest.name}" for (_, dest), ok in zip(jobs, pool.map(_make_thumbnail, jobs), strict=True) if not ok
        }
    if failed:
        thumbs = {k: v for k, v in thumbs.items() if v not in failed}

    tasks = _ordered_tasks(runs)
    tables = [
        task_table(members, task, key, common_samples) for task in tasks for key, members in data_groups(runs, task)
    ]
    analysis = {}
    for table in tables:
        members = table["runs"]
        analysis[table["key"]] = {
            "runs": [{"model": r.model, "run_id": r.run_id, "slug": r.slug} for r in members],
            "acc": {key: [_round(r.tasks[table["task"]].get(key)) for r in members] for key, *_ in GRANULARITIES},
            "scenes": _scenes(members, table["task"]),
            "pairs": significance(members, table["task"]),
        }
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    granularities = [{"key": k, "label": label, "name": name} for k, _, label, name in GRANULARITIES]
    common = {"version": greval.__version__, "built": built, "granularities": granularities}

    export = {
        "generator": f"greval {greval.__version__}",
        "built": built,
        "granularities": {k: km for k, km, *_ in GRANULARITIES},
        "tasks": {t["key"]: [_export_row(r, t["columns"]) for r in t["rows"]] for t in tables},
        "common_samples": common_samples,
        "significance": {
            "test": "exact McNemar, two-sided, paired on shared samples; rows: [i, j, n, acc_i, acc_j, p]",
            "tasks": {
                task: {"runs": [r["run_id"] for r in a["runs"]], "pairs": a["pairs"]} for task, a in analysis.items()
            },
        },
    }
    write_json_atomic(out / "leaderboard.json", export)
    (out / "leaderboard.tex").write_text(_latex(runs, tasks), encoding="utf-8")

    index = out / "index.html"
    index.write_text(
        env.get_template("index.html").render(
            root="",
            n_runs=len(runs),
            common_samples=common_samples,
            tables=tables,
            kinds=sorted({r["data"]["kind"] for t in tables for r in t["rows"] if r["data"]["kind"]}),
            kind_labels=KIND_LABELS,
            analysis=analysis,
            default_granularity=default_key,
            alpha=SIGNIFICANCE_ALPHA,
            **common,
        ),
        encoding="utf-8",
    )

    _write_world_map(assets)
    run_template = env.get_template("run.html")
    for run in runs:
        page_dir = out / "runs" / run.slug
        plots = []
        if (run.run_dir / "plots").is_dir():
            (page_dir / "plots").mkdir(parents=True, exist_ok=True)
            for plot in sorted((run.run_dir / "plots").iterdir()):
                if plot.suffix.lower() in (".png", ".jpg", ".jpeg") and plot.is_file():
                    safe = _slugify(plot.stem, set()) + plot.suffix.lower()
                    shutil.copyfile(plot, page_dir / "plots" / safe)
                    plots.append({"src": f"plots/{safe}", "name": plot.stem})
        page_dir.mkdir(parents=True, exist_ok=True)
        summary = [
            (t["key"], next(r for r in t["rows"] if r["slug"] == run.slug), t["columns"])
            for t in tables
            if run.slug in {r["slug"] for r in t["rows"]}
        ]
        samples = _sample_rows(run, thumbs)
        (page_dir / "index.html").write_text(
            run_template.render(
                root="../../",
                run=run,
                kind_label=KIND_LABELS.get(run.info.get("kind"), run.info.get("kind") or "—"),
                summary=summary,
                plots=plots,
                provenance=_provenance(run),
                samples={
                    "granularities": [[k, km, label] for k, km, label, _ in GRANULARITIES],
                    "default": default_key,
                    "rows": samples,
                },
                tasks=sorted({s["task"] for s in samples}),
                scenes=sorted({s["scene"] for s in samples if s["scene"]}),
                statuses=sorted({s["status"] for s in samples if s["status"]}),
                map_w=MAP_W,
                map_h=MAP_H,
                **common,
            ),
            encoding="utf-8",
        )
    return index
