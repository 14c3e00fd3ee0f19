"""Plots of one or more runs, drawn from their run folders' records.

`make_plots` writes four figures (each as PNG and PDF by default):

- accuracy_vs_threshold: accuracy (%) against the distance radius, log x from 1 to 2,500 km,
  one line per run and task, the five granularities marked with metrics.json's numbers;
- error_cdf: share of samples within each distance over the whole range; answers that
  could not be used (unparsed, refused, truncated) never arrive, so a curve tops out at
  1 − its failure share;
- scene_accuracy: accuracy per scene at each granularity, grouped bars;
- map (map_<model> for several runs): each sample at its true location on a world map,
  coloured by the error band of its answer (≤ 1 / 25 / 200 / 750 / 2,500 km, beyond, or no
  usable answer), for a fixed sample of up to 2,000; lines from truth to prediction only
  with `map_lines` (`greval report --map-lines`);
- accuracy_by_model (several runs only): the runs side by side in one axis, one bar per
  run and granularity, with 95 % intervals.
The accuracy curve carries a shaded pointwise 95 % (Wilson) band and metrics.json's
bootstrap intervals on its markers; per-scene bars carry their intervals too.

matplotlib is imported inside the functions (so `import greval.report` stays cheap) and
used through `matplotlib.figure.Figure`, never pyplot: no global state, no display
needed, PNGs rendered by Agg. Everything per sample is numpy (curves are evaluated on a
fixed grid, the map draws a fixed-size sample through one LineCollection and rasterized
scatters): a 100,000-sample run plots in ~2.5 s on 2 CPU cores, 40 % of it reading
predictions.jsonl.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from greval.constants import ERROR, OK, THRESHOLDS_KM
from greval.report import GRANULARITY_NAMES, Run, load_run, threshold_km

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HALF_EARTH_KM = 20_037.5  # the farthest two points on Earth can be apart
MAX_MAP_PAIRS = 2_000
MAX_SCENE_PANELS = 12
_DPI = 150
# Fixed margins (inches-sized figures, known labels): constrained layout would measure
# every tick label on every save, which is most of a line plot's drawing time.
_MARGINS = {"left": 0.1, "right": 0.97, "bottom": 0.12, "top": 0.88}


@dataclass
class _Errors:
    """The distances of one run's task, as arrays, with what the denominators need."""

    label: str
    distances_km: np.ndarray  # sorted, only samples with a usable answer
    n_scored: int  # samples with a model answer (request errors are not scored)

    @property
    def failure_share(self) -> float:
        return 1.0 - len(self.distances_km) / self.n_scored if self.n_scored else 0.0


def _as_runs(run_dirs_or_runs: Any) -> list[Run]:
    if isinstance(run_dirs_or_runs, (str, Path, Run)):
        run_dirs_or_runs = [run_dirs_or_runs]
    return [load_run(item) for item in run_dirs_or_runs]


def _label(run: Run, task: str, runs: Sequence[Run]) -> str:
    """ "model · task", leaving out whichever part every line shares."""
    tasks = {t for r in runs for t in r.tasks}
    if len(tasks) == 1:
        return run.label
    if len(runs) == 1:
        return task
    return f"{run.label} · {task}"


def _errors(run: Run, runs: Sequence[Run]) -> list[_Errors]:
    """Per task of the run: its usable distances, sorted, and its scored count."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for record in run.predictions():
        by_task.setdefault(record["task"], []).append(record)
    out = []
    for task in run.tasks or sorted(by_task):
        records = by_task.get(task, [])
        scored = [r for r in records if r.get("status") != ERROR]
        distances = [r["distance_km"] for r in scored if r.get("status") == OK and r.get("distance_km") is not None]
        out.append(_Errors(_label(run, task, runs), np.sort(np.asarray(distances, dtype=float)), len(scored)))
    return out


def _granularity_axis(ax: Any, radii: Iterable[float]) -> None:
    """Log x axis with a dotted line and a name at each granularity."""
    ax.set_xscale("log")
    for radius in radii:
        ax.axvline(radius, color="0.8", linewidth=0.6, linestyle=":", zorder=0)
        name = GRANULARITY_NAMES.get(int(radius)) if float(radius).is_integer() else None
        ax.text(
            radius,
            1.0,
            f" {name}" if name else "",
            transform=ax.get_xaxis_transform(),
            fontsize=7,
            color="0.4",
            va="bottom",
            ha="center",
        )


def _radius_ticks(ax: Any, radii: Sequence[float]) -> None:
    ax.set_xticks(list(radii))
    ax.set_xticklabels([f"{r:,g} km" for r in radii])
    ax.minorticks_off()


def _wilson(share: np.ndarray, n: int, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95 % Wilson interval of a share of n samples (the curve's shaded band)."""
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def _ci_bars(ax: Any, block: dict[str, Any], points: list[tuple[float, float]], color: Any) -> None:
    """metrics.json's 95 % bootstrap intervals as error bars on the granularity markers."""
    ci = block.get("ci") or {}
    xs, ys, err = [], [], [[], []]
    for radius, value in points:
        interval = ci.get(f"acc@{radius:g}km")
        if interval and None not in interval:
            xs.append(radius)
            ys.append(100 * value)
            err[0].append(max(0.0, 100 * (value - interval[0])))
            err[1].append(max(0.0, 100 * (interval[1] - value)))
    if xs:
        ax.errorbar(xs, ys, yerr=err, fmt="none", ecolor=color, elinewidth=1, capsize=3)


def accuracy_figure(runs: Sequence[Run], *, with_curves: bool = True) -> Figure:
    """Accuracy (%) against the radius, 1 to 2,500 km, runs overlaid in one axis; markers at
    the reported granularities with their 95 % bootstrap intervals, and a shaded pointwise
    95 % (Wilson) band around each curve."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    fig.subplots_adjust(**_MARGINS)
    ax = fig.add_subplot()
    radii = sorted({threshold_km(k) for r in runs for b in r.metrics["tasks"].values() for k in b if threshold_km(k)})
    grid = np.logspace(0, np.log10(max(THRESHOLDS_KM.values())), 300)
    errors = {(id(run), e.label): e for run in runs for e in (_errors(run, runs) if with_curves else [])}
    for run in runs:
        for task, block in run.metrics["tasks"].items():
            label = _label(run, task, runs)
            points = sorted((threshold_km(k), v) for k, v in block.items() if threshold_km(k) and v is not None)
            e = errors.get((id(run), label))
            if e is not None and e.n_scored:
                # The curve between the marks, from the same records the table was scored from.
                reached = np.searchsorted(e.distances_km, grid, side="right") / e.n_scored
                (line,) = ax.plot(grid, 100 * reached, linewidth=1.3, label=label)
                color = line.get_color()
                lo, hi = _wilson(reached, e.n_scored)
                ax.fill_between(grid, 100 * lo, 100 * hi, color=color, alpha=0.15, linewidth=0)
                ax.plot([p[0] for p in points], [100 * p[1] for p in points], "o", color=color, markersize=5)
                _ci_bars(ax, block, points, color)
            elif points:
                (line,) = ax.plot([p[0] for p in points], [100 * p[1] for p in points], "o-", markersize=5, label=label)
                _ci_bars(ax, block, points, line.get_color())
    _granularity_axis(ax, radii)
    _radius_ticks(ax, radii or list(THRESHOLDS_KM.values()))
    ax.set_xlim(0.8, 3200)
    ax.set_ylim(0, 100)
    _label_curves(ax, "distance from the true location", "accuracy (%): share of samples within the distance")
    return fig


def _label_curves(ax, xlabel: str, ylabel: str) -> None:
    """Axis labels, a light horizontal grid, and a legend once there is a curve to name."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", linewidth=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="upper left")


def error_cdf_figure(runs: Sequence[Run]) -> Figure:
    """Share of scored samples within each distance; unusable answers never arrive."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    fig.subplots_adjust(**_MARGINS)
    ax = fig.add_subplot()
    grid = np.logspace(-1, np.log10(HALF_EARTH_KM), 400)
    for run in runs:
        for e in _errors(run, runs):
            if not e.n_scored:
                continue
            reached = np.searchsorted(e.distances_km, grid, side="right") / e.n_scored
            ceiling = 1.0 - e.failure_share
            (line,) = ax.plot(
                grid,
                reached,
                linewidth=1.3,
                label=f"{e.label} (no usable answer {e.failure_share:.1%}: tops at {ceiling:.1%})",
            )
            ax.axhline(ceiling, color=line.get_color(), linewidth=0.6, linestyle="--")
    _granularity_axis(ax, list(THRESHOLDS_KM.values()))
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(0, 1)
    _label_curves(ax, "error (km, great-circle distance)", "share of samples with error ≤ x")
    fig.text(
        0.5,
        0.985,
        "Unparsed, refused and truncated answers count as never within any distance, so each\n"
        "curve tops out at 1 − its failure share (dashed). Request errors are not scored.",
        fontsize=8,
        ha="center",
        va="top",
    )
    return fig


def scene_figure(runs: Sequence[Run]) -> Figure | None:
    """Accuracy per scene at each granularity, one panel per run and task; None without scenes."""
    from matplotlib.figure import Figure

    panels = [
        (run, task, block) for run in runs for task, block in run.metrics["tasks"].items() if block.get("by_scene")
    ][:MAX_SCENE_PANELS]
    if not panels:
        return None
    fig = Figure(figsize=(7.5, 3.2 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (run, task, block) in zip(axes, panels, strict=True):
        by_scene = block["by_scene"]
        groups = [("all", block)] + sorted(by_scene.items(), key=lambda kv: (-(kv[1].get("n") or 0), kv[0]))
        keys = sorted({k for _, b in groups for k in b if threshold_km(k)}, key=threshold_km)
        x = np.arange(len(keys))
        width = 0.8 / len(groups)
        for i, (scene, b) in enumerate(groups):
            values = [100 * b[k] if b.get(k) is not None else np.nan for k in keys]
            color = "0.6" if scene == "all" else None
            ax.bar(
                x + (i - (len(groups) - 1) / 2) * width,
                values,
                width,
                label=f"{scene} (n={_count(b.get('n'))})",
                color=color,
                yerr=_bar_errors(b, keys, values),
                error_kw={"elinewidth": 0.7, "capsize": 1.5, "ecolor": "0.2"},
            )
        ax.set_xticks(x)
        ax.set_xticklabels(
            [f"{GRANULARITY_NAMES.get(int(threshold_km(k) or 0), '')}\n{threshold_km(k):,g} km" for k in keys]
        )
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(_label(run, task, runs) if len(runs) > 1 or len(run.tasks) > 1 else run.label, fontsize=9)
        ax.grid(axis="y", linewidth=0.3)
        ax.legend(fontsize=7, ncols=min(len(groups), 4), loc="upper left")
    return fig


# Error bands of the map: the five granularities, then beyond; colours run from good to bad.
_BANDS = tuple(
    (km, f"≤ {km:,g} km", color)
    for km, color in zip(THRESHOLDS_KM.values(), ("#1a9850", "#91cf60", "#d9ef8b", "#fee08b", "#fc8d59"), strict=True)
) + ((np.inf, f"> {max(THRESHOLDS_KM.values()):,g} km", "#d73027"),)
_NO_ANSWER_COLOR = "0.6"


def _bar_errors(block: dict[str, Any], keys: list[str], values: list[float]) -> np.ndarray:
    """(2, k) distances from each bar's top to its 95 % interval (0 where none is known)."""
    ci = block.get("ci") or {}
    err = np.zeros((2, len(keys)))
    for j, (key, value) in enumerate(zip(keys, values, strict=True)):
        interval = ci.get(key)
        if interval and None not in interval and not np.isnan(value):
            err[:, j] = max(0.0, value - 100 * interval[0]), max(0.0, 100 * interval[1] - value)
    return err


def comparison_figure(runs: Sequence[Run]) -> Figure | None:
    """Several runs side by side in one axis: accuracy per granularity, one bar per run and
    task, with 95 % intervals. None for a single run (the other figures cover it)."""
    from matplotlib.figure import Figure

    entries = [(run, task, block) for run in runs for task, block in run.metrics["tasks"].items()]
    if len(runs) < 2 or not entries:
        return None
    keys = sorted({k for _, _, b in entries for k in b if threshold_km(k)}, key=threshold_km)
    fig = Figure(figsize=(max(7.0, 1.2 * len(keys) * len(entries) ** 0.5 + 3), 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(keys))
    width = 0.8 / len(entries)
    for i, (run, task, block) in enumerate(entries):
        values = [100 * block[k] if block.get(k) is not None else np.nan for k in keys]
        ax.bar(x + (i - (len(entries) - 1) / 2) * width, values, width, label=_label(run, task, runs),
               yerr=_bar_errors(block, keys, values), error_kw={"elinewidth": 0.7, "capsize": 2, "ecolor": "0.2"})  # fmt: skip
    ax.set_xticks(x)
    ax.set_xticklabels(
        [f"{GRANULARITY_NAMES.get(int(threshold_km(k) or 0), '')}\n{threshold_km(k):,g} km" for k in keys]
    )
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%), 95 % interval")
    ax.grid(axis="y", linewidth=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _map_samples(run: Run, max_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, prediction, distance) for a fixed sample of the scored answers: truth and
    prediction as (n, 2) lon/lat arrays; prediction and distance NaN for unusable answers."""
    records = sorted(
        (
            r
            for r in run.predictions()
            if r.get("status") != ERROR and None not in (r.get("gt_lat"), r.get("gt_lon"))
        ),
        key=lambda r: (r["task"], r["sample_id"]),
    )  # fmt: skip
    if len(records) > max_pairs:  # the same sample every time for the same records
        keep = np.sort(np.random.default_rng(0).choice(len(records), max_pairs, replace=False))
        records = [records[i] for i in keep]
    usable = [r.get("status") == OK and r.get("distance_km") is not None for r in records]
    truth = np.array([(r["gt_lon"], r["gt_lat"]) for r in records], dtype=float).reshape(-1, 2)
    pred = np.array([(r["lon"], r["lat"]) if u else (np.nan, np.nan) for r, u in zip(records, usable, strict=True)])
    km = np.array([r["distance_km"] if u else np.nan for r, u in zip(records, usable, strict=True)], dtype=float)
    return truth, pred.reshape(-1, 2), km


def _segments(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Truth-to-prediction segments on a lon/lat map; a pair across the ±180° meridian
    becomes two pieces that leave one edge and enter the other, not a line across the world."""
    dlon = pred[:, 0] - truth[:, 0]
    wraps = np.abs(dlon) > 180
    straight = np.stack([truth[~wraps], pred[~wraps]], axis=1)
    shift = np.zeros_like(truth[wraps])
    shift[:, 0] = -360 * np.sign(dlon[wraps])
    leaving = np.stack([truth[wraps], pred[wraps] + shift], axis=1)
    entering = np.stack([truth[wraps] - shift, pred[wraps]], axis=1)
    return np.concatenate([straight, leaving, entering])


def _outlines() -> list[np.ndarray] | None:
    """Country outlines if greval.geo can supply them; None draws a map with a grid only.

    Building them reads the whole Natural Earth shapefile (~0.7 s), most of a big run's
    plotting time, so the simplified rings are kept in greval's cache folder as one .npz.
    """
    try:
        from greval import geo

        outlines = geo.world_outlines
    except (ImportError, AttributeError):
        return None
    cached = _outline_cache_path()
    if cached is not None and cached.is_file():
        try:
            with np.load(cached) as data:
                return np.split(data["points"], data["ends"][:-1])
        except (OSError, ValueError, KeyError):
            pass  # unreadable or torn: rebuild below
    try:
        rings = outlines()
    except (ImportError, OSError):
        return None
    if cached is not None and rings:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(cached.name + ".tmp.npz")
            np.savez(tmp, points=np.concatenate(rings), ends=np.cumsum([len(r) for r in rings]))
            tmp.replace(cached)
        except OSError:
            pass  # a read-only home is no reason to fail a plot
    return rings


def _outline_cache_path() -> Path | None:
    """Where the outlines are cached, named after the outline data file so new data
    (another geo version, another shapefile) never reads stale rings; None: no caching."""
    try:
        from greval import geo_data

        source = geo_data._natural_earth_path()
        stat = source.stat()
        folder = geo_data.cache_dir()
    except (ImportError, AttributeError, OSError):
        return None
    return folder / f"world-outlines-v1-{source.stem}-{stat.st_size}-{int(stat.st_mtime)}.npz"


def map_figure(run: Run, *, max_pairs: int = MAX_MAP_PAIRS, lines: bool = False) -> Figure:
    """Each sample at its true location, coloured by its error band (readable at 3,000
    points); with `lines`, also a thin line from each truth to its prediction."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.4))
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.06, top=0.94)
    ax = fig.add_subplot()
    outlines = _outlines()
    if outlines:
        ax.add_collection(LineCollection(outlines, colors="0.55", linewidths=0.3, zorder=1))
    truth, pred, km = _map_samples(run, max_pairs)
    usable = ~np.isnan(km)
    if lines and usable.any():
        segments = _segments(truth[usable], pred[usable])
        ax.add_collection(LineCollection(segments, colors="0.35", linewidths=0.3, alpha=0.5, zorder=2, rasterized=True))
    lower = 0.0
    for upper, name, color in _BANDS:
        band = usable & (km > lower) & (km <= upper) if lower else usable & (km <= upper)
        lower = upper
        # Every band, empty ones too: maps of several runs then carry the same legend.
        ax.scatter(*truth[band].T.reshape(2, -1), s=6, color=color, label=f"{name} ({band.sum():,})", zorder=3,
                   rasterized=True, linewidths=0.2, edgecolors="0.3")  # fmt: skip
    if (~usable).any():
        ax.scatter(*truth[~usable].T, s=6, color=_NO_ANSWER_COLOR, marker="x", linewidths=0.6, zorder=3,
                   label=f"no usable answer ({(~usable).sum():,})", rasterized=True)  # fmt: skip
    if len(truth):
        ax.legend(fontsize=7, loc="lower left", markerscale=1.5, title="error of the answer", title_fontsize=7)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xticks(range(-180, 181, 30))
    ax.set_yticks(range(-90, 91, 30))
    ax.tick_params(labelsize=7)
    ax.grid(linewidth=0.3, color="0.85", zorder=0)
    n_scored = sum(1 for r in run.predictions() if r.get("status") != ERROR)
    shown = f"{len(truth):,} of {n_scored:,} answers" + (" (fixed random sample)" if len(truth) < n_scored else "")
    ax.set_title(
        f"{run.label}: each photo's true location, coloured by the error of the answer; {shown}"
        + ("" if outlines else " — no country outlines available"),
        fontsize=9,
    )
    return fig


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "run"


def _save(fig: Figure, out_dir: Path, name: str, formats: Sequence[str]) -> list[Path]:
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, dpi=_DPI)
        paths.append(path)
    return paths


def make_plots(
    run_dirs_or_runs: str | Path | Run | Iterable[str | Path | Run],
    out_dir: str | Path | None = None,
    formats: Sequence[str] = ("png", "pdf"),
    *,
    map_lines: bool = False,
) -> list[Path]:
    """Write the accuracy, error-CDF, per-scene and map figures; return the files written.

    `out_dir` defaults to the first run's folder + "plots". With several runs, the line
    plots compare them and each run gets its own map (map_<model>). The per-scene plot is
    left out when no run has scenes.
    """
    runs = _as_runs(run_dirs_or_runs)
    if not runs:
        raise ValueError("make_plots needs at least one run")
    out = Path(out_dir) if out_dir is not None else runs[0].path / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = _save(accuracy_figure(runs), out, "accuracy_vs_threshold", formats)
    written += _save(error_cdf_figure(runs), out, "error_cdf", formats)
    scenes = scene_figure(runs)
    if scenes is not None:
        written += _save(scenes, out, "scene_accuracy", formats)
    comparison = comparison_figure(runs)
    if comparison is not None:
        written += _save(comparison, out, "accuracy_by_model", formats)
    for run in runs:
        name = "map" if len(runs) == 1 else f"map_{_slug(run.label)}"
        written += _save(map_figure(run, lines=map_lines), out, name, formats)
    return written
