"""Reports: tables and a run summary, made from a run folder's records and nothing else.

A table is a pandas DataFrame that keeps raw values (accuracies as fractions in [0, 1],
distances in km, None where a metric is missing). Formatting happens only in `render`:
accuracies and rates become percentages with two decimals (the paper's convention),
None becomes "–", and the column names become the headers a reader expects
("Street 1 km", "City 25 km", ...). JSON keeps the raw fractions, unrounded.

    runs = [load_run(d) for d in run_dirs]
    print(render(metrics_table(runs), "md"))
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greval.audit import EXTRACTION_FLAGS
from greval.constants import GRANULARITY_LIST
from greval.cost import describe as describe_cost
from greval.errors import GrevalError
from greval.records import ERROR, METRICS, PREDICTIONS, RUN_INFO, RunFolder

if TYPE_CHECKING:  # pandas is imported where a table is built, so `import greval.report` stays cheap
    import pandas as pd

FORMATS = ("md", "csv", "json", "latex")
REPORT_MARKER = "greval-report.json"  # marks a comparison folder, so it is never taken for a run
MISSING = "–"  # en dash: how a missing value reads in md, latex and summaries

# Names of the distance thresholds the paper reports; other thresholds read as "<r> km".
GRANULARITY_NAMES = {int(g.km): g.title for g in GRANULARITY_LIST}

# Columns after the accuracies, in table order, with their rendered headers.
_DISTANCE_COLUMNS = {"median_km": "Median km", "mean_km": "Mean km", "geoscore": "GeoScore"}
_RATE_COLUMNS = {
    "country_acc": "Country acc.",
    "continent_acc": "Continent acc.",
    "parse_failure_rate": "Parse fail.",
    "refusal_rate": "Refusal",
    "truncated_rate": "Truncated",
}
_LABEL_COLUMNS = {"model": "Model", "task": "Task", "scene": "Scene", "n": "N"}
# Shown only when some run was judged (`greval judge`): mean reasoning-chain F1.
_COT_COLUMNS = {"cot_score": "CoT"}
# Where a smaller number is the better one (for bolding the best value in LaTeX).
_LOWER_IS_BETTER = {"median_km", "mean_km", "parse_failure_rate", "refusal_rate", "truncated_rate"}
_CI_SUFFIX = "_ci"
_ACC_KEY = re.compile(r"^acc@(\d+(?:\.\d+)?)km$")


class ReportError(GrevalError):
    """A run folder or table that cannot be reported, with the reason in words."""


Run = RunFolder  # the report's name for a run folder (greval/records.py owns the files)


def load_run(run_dir: str | Path | RunFolder) -> RunFolder:
    """A run folder checked for what reports need: metrics.json with per-task metrics."""
    if isinstance(run_dir, RunFolder):
        return run_dir
    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise ReportError(f"{run.path} is not a greval run folder: no such folder")
    metrics_path = run.path / METRICS
    if not metrics_path.is_file():
        hint = " (it has predictions: score it first)" if (run.path / PREDICTIONS).is_file() else ""
        raise ReportError(f"{run.path} is not a greval run folder: no {METRICS}{hint}")
    try:
        metrics, _ = run.metrics, run.info
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{run.path}: not valid JSON: {exc}") from exc
    if not isinstance(metrics, dict) or not isinstance(metrics.get("tasks"), dict):
        raise ReportError(f"{metrics_path} has no 'tasks' object: not a greval metrics file")
    return run


# --- tables -------------------------------------------------------------------------


def threshold_km(column: str) -> float | None:
    """The radius of an accuracy column ("acc@25km" -> 25.0), None for other columns."""
    match = _ACC_KEY.match(column)
    return float(match.group(1)) if match else None


def threshold_header(column: str) -> str:
    """ "acc@25km" -> "City 25 km"; a threshold the paper does not name reads "10 km"."""
    radius = threshold_km(column)
    if radius is None:
        raise ValueError(f"{column!r} is not an accuracy column")
    number = f"{radius:g}"
    name = GRANULARITY_NAMES.get(int(radius)) if radius.is_integer() else None
    return f"{name} {number} km" if name else f"{number} km"


def _acc_columns(blocks: Sequence[dict[str, Any]]) -> list[str]:
    """Accuracy columns present in any of the metric blocks, by radius."""
    keys = {key for block in blocks for key in block if threshold_km(key) is not None}
    return sorted(keys, key=lambda key: threshold_km(key) or 0.0)


def _rows(labels: list[str], entries: list[tuple[dict[str, Any], dict[str, Any]]], ci: bool) -> pd.DataFrame:
    """One row per (label values, metric block); the union of accuracy columns across blocks."""
    acc_columns = _acc_columns([block for _, block in entries])
    columns = [*labels, "n", *acc_columns, *_DISTANCE_COLUMNS, *_RATE_COLUMNS]
    columns += [c for c in _COT_COLUMNS if any(block.get(c) is not None for _, block in entries)]
    if ci:
        columns += [key + _CI_SUFFIX for key in acc_columns]
    rows = []
    for label_values, block in entries:
        row: dict[str, Any] = dict(label_values)
        for column in columns[len(labels) :]:
            if column.endswith(_CI_SUFFIX):
                interval = (block.get("ci") or {}).get(column[: -len(_CI_SUFFIX)])
                row[column] = tuple(interval) if interval is not None else None
            else:
                row[column] = block.get(column)
        rows.append(row)
    import pandas as pd

    # A CI column no run filled would only add empty cells.
    columns = [c for c in columns if not c.endswith(_CI_SUFFIX) or any(r[c] is not None for r in rows)]
    # dtype=object keeps None as None (not NaN) so every format shows missing the same way.
    return pd.DataFrame(rows, columns=columns, dtype=object)


def metrics_table(runs: Sequence[Run], tasks: Sequence[str] | None = None, *, ci: bool = False) -> pd.DataFrame:
    """One row per (model, task), runs side by side in the order given.

    Columns: model, task, n, acc@<r>km for each radius any run reports (a run that
    narrowed its granularities has None there), median_km, mean_km, geoscore,
    country_acc, continent_acc, parse_failure_rate, refusal_rate, truncated_rate.
    With `ci`, one more column per accuracy, "acc@<r>km_ci", holding (lo, hi) or None.
    `tasks` keeps only those tasks, in that order; a task no run has is an error.
    """
    runs = [load_run(run) for run in runs]
    if tasks is not None:
        known = {task for run in runs for task in run.tasks}
        unknown = [task for task in tasks if task not in known]
        if unknown:
            raise ReportError(
                f"no run has task(s) {', '.join(unknown)}; tasks found: {', '.join(sorted(known)) or 'none'}"
            )
    entries = []
    for run in runs:
        run_tasks = run.tasks if tasks is None else [task for task in tasks if task in run.tasks]
        for task in run_tasks:
            entries.append(({"model": run.label, "task": task}, run.metrics["tasks"][task]))
    return _rows(["model", "task"], entries, ci)


def prompt_label(info: dict[str, Any], task: str) -> str:
    """`template hash8` of a task's prompt (a prompt change moves accuracy), or – when unknown."""
    template = (info.get("prompt_templates") or {}).get(task) or (info.get("args") or {}).get("template") or ""
    digest = str((info.get("prompt_hashes") or {}).get(task) or "")
    digest = digest if " " in digest else digest[:8]  # "12 distinct" stays as it is
    return " ".join(x for x in (template, digest) if x) or MISSING


def scene_table(run: Run | str | Path, *, ci: bool = False) -> pd.DataFrame:
    """Per-scene breakdown: for each task an "all" row, then its scenes, largest first."""
    run = load_run(run)
    entries = []
    for task in run.tasks:
        block = run.metrics["tasks"][task]
        entries.append(({"model": run.label, "task": task, "scene": "all"}, block))
        by_scene = block.get("by_scene") or {}
        for scene in sorted(by_scene, key=lambda s: (-(by_scene[s].get("n") or 0), s)):
            entries.append(({"model": run.label, "task": task, "scene": scene}, by_scene[scene]))
    return _rows(["model", "task", "scene"], entries, ci)


# --- rendering ----------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN (pandas or numpy) is the only value not equal to itself
    except (TypeError, ValueError):
        return False


def _is_fraction_column(column: str) -> bool:
    return threshold_km(column) is not None or column in _RATE_COLUMNS or column in _COT_COLUMNS


def header(column: str) -> str:
    """The rendered header of a table column."""
    if threshold_km(column) is not None:
        return threshold_header(column)
    for names in (_LABEL_COLUMNS, _DISTANCE_COLUMNS, _RATE_COLUMNS, _COT_COLUMNS):
        if column in names:
            return names[column]
    return column


def format_value(column: str, value: Any) -> str:
    """A cell as a reader sees it: percentages with 2 decimals, km with 1, "–" when missing."""
    if _is_missing(value):
        return MISSING
    if _is_fraction_column(column):
        return f"{100 * float(value):.2f}"
    if column in ("median_km", "mean_km"):
        return f"{float(value):.1f}"
    if column == "geoscore":
        return f"{float(value):.0f}"
    if column == "n":
        return str(int(value))
    return str(value)


def _ci_halfwidth(interval: Any) -> str | None:
    """± half the width of a (lo, hi) interval, in percentage points, 2 decimals."""
    if _is_missing(interval):
        return None
    lo, hi = interval
    if lo is None or hi is None:
        return None
    return f"{100 * (float(hi) - float(lo)) / 2:.2f}"


def _select(df: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    if columns is None:
        return df
    unknown = [c for c in columns if c not in df.columns]
    if unknown:
        raise ReportError(f"unknown column(s) {', '.join(unknown)}; the table has {', '.join(df.columns)}")
    keep = list(columns) + [c + _CI_SUFFIX for c in columns if c + _CI_SUFFIX in df.columns]
    return df[keep]


def _value_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if not c.endswith(_CI_SUFFIX)]


def render(
    df: pd.DataFrame,
    fmt: str,
    *,
    columns: Sequence[str] | None = None,
    caption: str | None = None,
    label: str = "tab:greval",
) -> str:
    """A table as md, csv, json or latex text.

    md / latex: percentages with 2 decimals, "–" for missing, and an accuracy's CI column
    (from `metrics_table(..., ci=True)`) shown as "± half-width" in its cell.
    csv: the same numbers as md, missing left empty (so spreadsheets and pandas read
    NaN), CI as "<col>_ci_lo" / "<col>_ci_hi" percentage columns.
    json: a list of records with raw values (fractions, unrounded; CI as [lo, hi]).
    latex: a booktabs table; the best value per column (per task) in bold.
    `columns` picks and orders the columns to show (CI columns follow their accuracy).
    """
    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    df = _select(df, columns)
    if fmt == "json":
        return _render_json(df)
    if fmt == "csv":
        return _render_csv(df)
    if fmt == "md":
        return _render_markdown(df)
    return _render_latex(df, caption=caption, label=label)


def _render_json(df: pd.DataFrame) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if _is_missing(value):
            return None
        if hasattr(value, "item"):  # numpy scalar
            return value.item()
        return value

    records = [{column: plain(value) for column, value in row.items()} for row in df.to_dict(orient="records")]
    return json.dumps(records, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _render_csv(df: pd.DataFrame) -> str:
    import pandas as pd

    out = pd.DataFrame(index=df.index)
    for column in _value_columns(df):
        out[header(column)] = ["" if _is_missing(value) else format_value(column, value) for value in df[column]]
        ci_column = column + _CI_SUFFIX
        if ci_column in df.columns:
            for side, name in ((0, "lo"), (1, "hi")):
                out[f"{header(column)} CI {name}"] = [
                    "" if _is_missing(iv) or iv[side] is None else f"{100 * float(iv[side]):.2f}"
                    for iv in df[ci_column]
                ]
    return out.to_csv(index=False, lineterminator="\n")


def _cells(df: pd.DataFrame) -> list[list[tuple[str, str | None]]]:
    """Per row, per value column: (formatted value, CI half-width or None)."""
    rows = []
    for _, row in df.iterrows():
        cells = []
        for column in _value_columns(df):
            text = format_value(column, row[column])
            half = _ci_halfwidth(row[column + _CI_SUFFIX]) if column + _CI_SUFFIX in df.columns else None
            cells.append((text, half if text != MISSING else None))
        rows.append(cells)
    return rows


def _is_text_column(column: str) -> bool:
    return column in ("model", "task", "scene")


def _render_markdown(df: pd.DataFrame) -> str:
    columns = _value_columns(df)
    headers = [header(c) for c in columns]
    align = [":---" if _is_text_column(c) else "---:" for c in columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    for cells in _cells(df):
        texts = [value if half is None else f"{value} ± {half}" for value, half in cells]
        lines.append("| " + " | ".join(text.replace("|", "\\|") for text in texts) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "–": "--",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell (model names like "qwen2.5_vl 7b & co")."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _best_rows(df: pd.DataFrame, column: str) -> set[int]:
    """Row positions holding the best value of a metric column, compared within each task
    (and scene, in a scene table).

    Values are compared as displayed (rounded), so a tie on paper is bolded twice; a task
    with fewer than two distinct values in the column has nothing to bold.
    """
    if _is_text_column(column) or column == "n":
        return set()
    # Rows compete with the rows of the same task (and scene): models against each other.
    keys = [c for c in ("task", "scene") if c in df.columns]
    groups = list(zip(*(df[c].tolist() for c in keys), strict=True)) if keys else [()] * len(df)
    best: set[int] = set()
    for group in dict.fromkeys(groups):
        candidates = []
        for position, (value, g) in enumerate(zip(df[column].tolist(), groups, strict=True)):
            if g == group and not _is_missing(value):
                candidates.append((float(format_value(column, value)), position))
        if len(candidates) < 2:
            continue
        values = {value for value, _ in candidates}
        if len(values) < 2:
            continue  # all equal: no value stands out
        target = min(values) if column in _LOWER_IS_BETTER else max(values)
        best |= {position for value, position in candidates if value == target}
    return best


def _render_latex(df: pd.DataFrame, *, caption: str | None, label: str) -> str:
    columns = _value_columns(df)
    has_ci = any(c + _CI_SUFFIX in df.columns for c in columns)
    best = {c: _best_rows(df, c) for c in columns}
    spec = "".join("l" if _is_text_column(c) else "r" for c in columns)
    if caption is None:
        caption = (
            "Geolocation accuracy (\\%) within each distance, median and mean error (km), "
            "GeoScore, and the share of answers that could not be parsed, were refused, or "
            "were cut by the token limit (\\%)."
        )
        if has_ci:
            caption += " $\\pm$: half the width of the 95\\,\\% confidence interval."
        caption += " Best value per column in bold."
    body = []
    for position, cells in enumerate(_cells(df)):
        out = []
        for column, (value, half) in zip(columns, cells, strict=True):
            value = latex_escape(value)
            if position in best[column]:
                value = f"\\textbf{{{value}}}"
            out.append(f"{value}\\,$\\pm$\\,{half}" if half else value)
        body.append(" & ".join(out) + r" \\")
    lines = [
        r"% greval table: needs \usepackage{booktabs} and \usepackage{graphicx}",
        r"\begin{table}[t]",
        r"\centering",
        f"\\caption{{{caption}}}",
        f"\\label{{{label}}}",
        r"\resizebox{\linewidth}{!}{%",
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(header(c)) for c in columns) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}%",
        r"}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


# --- the end-of-run summary ---------------------------------------------------------


def _pct(value: Any) -> str:
    return MISSING if _is_missing(value) else f"{100 * float(value):.2f} %"


def _km(value: Any) -> str:
    return MISSING if _is_missing(value) else f"{float(value):,.1f} km"


def _error_causes(run: Run, task: str, shown: int = 3) -> list[str]:
    """The commonest causes of a task's request errors: a count alone does not say
    whether a re-run can help (a rate limit) or not (a missing image, no replay row)."""
    if not (run.path / PREDICTIONS).is_file():
        return []
    causes: Counter[str] = Counter()
    for record in run.predictions():
        if record.get("task") == task and record.get("status") == ERROR:
            # The sample id makes every message unique: count the message around it.
            text = " ".join(str(record.get("error") or "no error message").split())
            causes[text.replace(str(record.get("sample_id")), "<id>")] += 1
    lines = [f"    {count} × {cause[:200]}" for cause, count in causes.most_common(shown)]
    if len(causes) > shown:
        lines.append(f"    … and {len(causes) - shown} other causes (the `error` field of {PREDICTIONS})")
    return lines


def summary_text(run: Run | str | Path) -> str:
    """A one-screen summary for the end of a run: per task the accuracies, the median
    error, what could not be scored and why, then cost and skipped samples."""
    run = load_run(run)
    adapter = f", adapter {run.info['adapter']}" if run.info.get("adapter") else ""
    lines = [f"{run.label}  (run {run.info.get('run_id') or run.path.name}{adapter})"]
    for task in run.tasks:
        block = run.metrics["tasks"][task]
        n, n_errors = block.get("n"), block.get("n_errors") or 0
        head = f"{task}: {n if n is not None else MISSING} samples"
        if block.get("n_parsed") is not None:
            head += f", {block['n_parsed']} with a usable answer"
        lines.append(head)
        accs = [f"{threshold_header(c)} {_pct(block.get(c))}" for c in _acc_columns([block])]
        if accs:
            lines.append("  accuracy  " + " · ".join(accs))
        distances = f"  median {_km(block.get('median_km'))} · mean {_km(block.get('mean_km'))}"
        if not _is_missing(block.get("geoscore")):
            distances += f" · GeoScore {float(block['geoscore']):.0f}"
        if not _is_missing(block.get("country_acc")):
            distances += f" · country {_pct(block.get('country_acc'))} · continent {_pct(block.get('continent_acc'))}"
        lines.append(distances)
        scenes = block.get("scene_counts") or {}
        if scenes:
            sources = block.get("scene_source_counts") or {}
            lines.append(
                "  scenes    "
                + " · ".join(f"{k} {v}" for k, v in sorted(scenes.items(), key=lambda kv: -kv[1]))
                + (
                    "  (labels from " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())) + ")"
                    if sources
                    else ""
                )
            )
        lines.append(
            f"  no usable answer: parse failures {_pct(block.get('parse_failure_rate'))}"
            f" · refusals {_pct(block.get('refusal_rate'))}"
            f" · truncated {_pct(block.get('truncated_rate'))}"
        )
        if block.get("flagged_rate"):
            flag_counts = [(k, v) for k, v in (block.get("flag_counts") or {}).items() if k in EXTRACTION_FLAGS]
            counts = ", ".join(f"{k} {v}" for k, v in sorted(flag_counts, key=lambda kv: -kv[1]))
            lines.append(
                f"  flagged   {_pct(block['flagged_rate'])} of answers read with doubt ({counts}): greval audit"
            )
        if block.get("n_overridden"):
            lines.append(f"  {block['n_overridden']} answers overridden by hand (greval audit --override)")
        if n_errors:
            lines.append(f"  {n_errors} request errors: not scored; re-run the same command to retry them")
            lines.extend(_error_causes(run, task))
    cost = describe_cost(run.info)
    if cost is not None:
        lines.append(f"cost: {cost}")
    requests = run.info.get("requests") or {}
    if requests.get("cached"):
        lines.append(
            f"{requests['cached']} of {requests.get('sent', '?')} answers came from the response cache "
            "(asked before with the same settings; --no-cache asks the model again)"
        )
    skipped = run.info.get("skipped") or {}
    if skipped:
        total = sum(int(count) for count in skipped.values())
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items(), key=lambda kv: -kv[1]))
        lines.append(f"skipped {total} samples ({reasons})")
    return "\n".join(lines) + "\n"


def comparison_folder(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Where plots of several runs go: `out`, or `compare-A-vs-B` beside the first run.

    Never one of the runs' own folders (a comparison there would show up as that run's
    plots on the leaderboard). The folder is marked with REPORT_MARKER, listing the runs.
    """
    runs = [Path(d).resolve() for d in run_dirs]
    if out is None:
        names = "-vs-".join(r.name for r in runs[:3]) + ("-and-more" if len(runs) > 3 else "")
        out = runs[0].parent / f"compare-{names}"
    out = Path(out)
    if out.resolve() in runs or (out / RUN_INFO).exists():
        raise ReportError(f"--out {out} is a run folder; a comparison goes to a folder of its own")
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_MARKER).write_text(json.dumps({"runs": [str(r) for r in runs]}, indent=2) + "\n", encoding="utf-8")
    return out
