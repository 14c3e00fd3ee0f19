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
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
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
from greval.cost import describe as describe_cost
from greval.leaderboard_tables import (
    GRANULARITIES,
    KIND_LABELS,
    RunData,
    _finite,
    _round,
    analysis_of,
    data_groups,
    export_row,
    table_folders,
    task_table,
)
from greval.records import ERROR as STATUS_ERROR
from greval.records import METRICS, OK, RUN_INFO, RunFolder, read_json, write_json_atomic

log = logging.getLogger(__name__)

# Tabs come in this order when present; any other task (other datasets) follows by name.
TASK_ORDER = ("urban", "natural", "landmark", "all")
THUMB_PX = 256
SITE_MARKER = ".greval-site"  # marks a folder we built, so a rebuild may clear its runs/
SIGNIFICANCE_ALPHA = 0.05


# ---------------------------------------------------------------------------------------
# Loading


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


def _latex(tables: list[dict[str, Any]]) -> str:
    """One booktabs table per leaderboard table (a task, one data group): the same LaTeX as
    `greval report --format latex`, over the same numbers as the page."""
    from greval import report

    parts = [f"% Geolocation leaderboard, generated by greval {greval.__version__}. Needs booktabs and graphicx."]
    for table in tables:
        task, key = table["task"], table["key"]
        df = report.metrics_table(table_folders(table), [task], ci=True)
        accs = [c for c in df.columns if c.startswith("acc@") and not c.endswith("_ci")]
        on = f" on the {table['n_common']:,} samples every run answered" if table["common"] else ""
        caption = (
            f"Geolocation accuracy on {report.latex_escape(key.replace(' · ', ', '))}{on} (\\%, within each distance; "
            "$\\pm$: half the 95\\,\\% interval), median error (km) and GeoScore. Best value per column in bold."
        )
        label = "tab:greval-" + re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")
        parts.append(
            report.render(df, "latex", columns=["model", *accs, "median_km", "geoscore"], caption=caption, label=label)
        )
    return "\n".join(parts)


def _write_run_page(
    run_template: jinja2.Template,
    run: RunData,
    out: Path,
    tables: list[dict[str, Any]],
    thumbs: dict[tuple[str, str], str],
    default_key: str,
    common: dict[str, Any],
) -> None:
    """SITE/runs/<slug>/index.html: the run's rows, plots, provenance and sample viewer."""
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
        task_table(members, task, key, common_samples, digest)
        for task in tasks
        for key, digest, members in data_groups(runs, task)
    ]
    analysis = {t["key"]: {**analysis_of(t), "pairs": significance(t["runs"], t["task"])} for t in tables}
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    granularities = [{"key": k, "label": label, "name": name} for k, _, label, name in GRANULARITIES]
    common = {"version": greval.__version__, "built": built, "granularities": granularities}

    export = {
        "generator": f"greval {greval.__version__}",
        "built": built,
        "granularities": {k: km for k, km, *_ in GRANULARITIES},
        "tasks": {t["key"]: [export_row(r) for r in t["rows"]] for t in tables},
        # What each key of "tasks" is: runs of one task on one data hash share a table.
        "tables": {
            t["key"]: {"task": t["task"], "data_hash": t["data_hash"], "n_common": t["n_common"]} for t in tables
        },
        "common_samples": common_samples,
        "significance": {
            "test": "exact McNemar, two-sided, paired on shared samples; rows: [i, j, n, acc_i, acc_j, p]",
            "tasks": {
                task: {"runs": [r["run_id"] for r in a["runs"]], "pairs": a["pairs"]} for task, a in analysis.items()
            },
        },
    }
    write_json_atomic(out / "leaderboard.json", export)
    (out / "leaderboard.tex").write_text(_latex(tables), encoding="utf-8")

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
    for run in runs:
        _write_run_page(env.get_template("run.html"), run, out, tables, thumbs, default_key, common)
    return index
