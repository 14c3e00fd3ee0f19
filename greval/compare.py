"""Is model A really better than model B? Paired comparison of two runs.

Per task, only the (task, sample_id) pairs that both runs hold and neither errored are
compared, so both models are judged on exactly the same images. Scoring rules are
those of greval.score (non-ok answers are wrong, GeoScore 0; median_km over each run's
ok answers).

- 0/1 metrics (acc@…, country_acc, continent_acc): exact McNemar test, i.e. a two-sided
  binomial test of the discordant pairs (A right / B wrong vs. A wrong / B right) against
  1/2 (scipy.stats.binomtest); p = 1 when there are none. The CI of the difference is a
  paired bootstrap drawn exactly: the four (A, B) outcome counts of a resample of pairs
  are Multinomial(n, observed shares).
- geoscore: paired bootstrap of the per-pair difference (the same exact / stratified
  resampling of means as in greval.score).
- median_km: paired bootstrap, resampling pairs and recomputing both medians (each over
  its run's ok answers in the resample), in chunks of resamples. p-value of a bootstrap:
  2 · min(share of replicates ≤ 0, share ≥ 0), capped at 1 (resolution 1 / n_boot: a
  p of 0 means below 1 / n_boot).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from greval.score import ERROR, _frame, _granularity_names, _Scored, acc_key
from greval.stats import boot_mean, percentile_ci, rng_for


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p from the discordant counts (only A right, only B right):
    a binomial test of a_only against 1/2; 1 when there are none."""
    from scipy.stats import binomtest

    discordant = a_only + b_only
    return 1.0 if discordant == 0 else min(1.0, float(binomtest(a_only, discordant, 0.5).pvalue))


def _mcnemar(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_boot: int) -> dict[str, Any]:
    n = len(a)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    discordant = a_only + b_only
    p = mcnemar_p(a_only, b_only)
    shares = [a_only / n, b_only / n, 1.0 - discordant / n]
    counts = rng.multinomial(n, shares, size=n_boot)
    diffs = (counts[:, 0] - counts[:, 1]) / n
    return {
        "a": float(a.mean()),
        "b": float(b.mean()),
        "diff": (a_only - b_only) / n,
        "ci": percentile_ci(diffs),
        "p_value": min(1.0, p),
        "n": n,
        "test": "mcnemar",
        "discordant": {"a_only": a_only, "b_only": b_only},
    }


def _bootstrap_p(replicates: np.ndarray) -> float | None:
    replicates = replicates[np.isfinite(replicates)]
    if len(replicates) == 0:
        return None
    # (1 + count) / (1 + B): a bootstrap p-value is never below 1/(B+1), so 1,000
    # resamples can say "p < 0.001" but never "p = 0".
    b = len(replicates)
    tail = min(np.sum(replicates <= 0), np.sum(replicates >= 0))
    return float(min(1.0, 2.0 * (1 + tail) / (1 + b)))


def _boot_result(a: float | None, b: float | None, replicates: np.ndarray, n: int) -> dict[str, Any]:
    diff = None if a is None or b is None else a - b
    return {
        "a": a,
        "b": b,
        "diff": diff,
        "ci": percentile_ci(replicates),
        "p_value": _bootstrap_p(replicates),
        "n": n,
        "test": "paired-bootstrap",
    }


def _median_diffs(da: np.ndarray, db: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Replicates of median(A ok distances) − median(B ok distances) over resampled pairs.

    NaN marks a non-ok answer; a replicate where either side has no ok answer is NaN.
    """
    n = len(da)
    out = np.full(n_boot, np.nan)
    chunk = max(1, 20_000_000 // max(n, 1))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a replicate with no ok answer: NaN
            out[start:stop] = np.nanmedian(da[idx], axis=1) - np.nanmedian(db[idx], axis=1)
    return out


def _median(d: np.ndarray) -> float | None:
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) else None


def compare_task(
    a: pd.DataFrame,
    b: pd.DataFrame,
    names: list[str],
    *,
    seed: int,
    n_boot: int,
    group: str = "",
    earth: str = "haversine",
) -> dict[str, Any]:
    """Paired comparison of two runs' records of one task (errors already dropped)."""
    a = a.drop_duplicates("sample_id", keep="last").set_index(a["sample_id"].astype(str).rename("_key"))
    b = b.drop_duplicates("sample_id", keep="last").set_index(b["sample_id"].astype(str).rename("_key"))
    common = a.index.intersection(b.index).sort_values()
    a, b = a.loc[common].reset_index(drop=True), b.loc[common].reset_index(drop=True)
    n = len(common)
    if n == 0:
        return {}
    sa, sb = _Scored(a, names, earth, True), _Scored(b, names, earth, True)
    out: dict[str, Any] = {}
    binary = {acc_key(name): (sa.hits[name], sb.hits[name]) for name in names}
    binary["country_acc"] = (sa.country_hit, sb.country_hit)
    binary["continent_acc"] = (sa.continent_hit, sb.continent_hit)
    for key, (ha, hb) in binary.items():
        if key.startswith("acc@"):
            out[key] = _mcnemar(ha, hb, rng_for(seed, "compare", key, group), n_boot)
    diff = sa.geoscore - sb.geoscore
    out["geoscore"] = _boot_result(
        float(sa.geoscore.mean()),
        float(sb.geoscore.mean()),
        boot_mean(diff, n, rng_for(seed, "compare", "geoscore", group), n_boot),
        n,
    )
    out["median_km"] = _boot_result(
        _median(sa.distance),
        _median(sb.distance),
        _median_diffs(sa.distance, sb.distance, rng_for(seed, "compare", "median_km", group), n_boot),
        n,
    )
    for key in ("country_acc", "continent_acc"):
        ha, hb = binary[key]
        out[key] = _mcnemar(ha, hb, rng_for(seed, "compare", key, group), n_boot)
    return out


def compare_records(
    records_a,
    records_b,
    granularities: Sequence[str] | None = None,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    earth: str = "haversine",
) -> dict[str, Any]:
    """{"tasks": {task: {metric: {"a", "b", "diff", "ci", "p_value", "n", "test"}}}}.

    Tasks present in only one run are skipped (listed under "only_in_a" / "only_in_b").
    Distances use `earth` as in greval.score ("haversine" sphere by default, or
    "geodesic"): pass the runs' own setting so the numbers match their metrics.json.
    """
    names = _granularity_names(granularities)
    fa, fb = _frame(records_a), _frame(records_b)
    for frame, label in ((fa, "A"), (fb, "B")):
        if len(frame) and "task" not in frame.columns:
            raise ValueError(f"run {label}'s records lack the column 'task'")
    fa = fa[fa["status"] != ERROR] if len(fa) else fa
    fb = fb[fb["status"] != ERROR] if len(fb) else fb
    tasks_a = set(fa["task"]) if len(fa) else set()
    tasks_b = set(fb["task"]) if len(fb) else set()
    result: dict[str, Any] = {"tasks": {}}
    for task in sorted(tasks_a & tasks_b, key=str):
        metrics = compare_task(
            fa[fa["task"] == task],
            fb[fb["task"] == task],
            names,
            seed=seed,
            n_boot=n_boot,
            group=str(task),
            earth=earth,
        )
        if metrics:
            result["tasks"][str(task)] = metrics
    result["only_in_a"] = sorted(map(str, tasks_a - tasks_b))
    result["only_in_b"] = sorted(map(str, tasks_b - tasks_a))
    return result


def _same_truth(a: tuple, b: tuple) -> bool:
    """Two (lat, lon) ground truths agree: equal to 1e-9°, or both unknown."""
    if any(v is None for v in (*a, *b)):
        return all(v is None for v in (*a, *b))
    return all(abs(float(x) - float(y)) <= 1e-9 for x, y in zip(a, b, strict=True))


def _hashes(info: dict[str, Any], tasks: set[str]) -> dict[str, str]:
    """run.json's data hash per task (an old run.json may hold one hash for every task)."""
    raw = info.get("data_hash") or {}
    return dict(raw) if isinstance(raw, dict) else {task: str(raw) for task in tasks}


def different_data(records_a, records_b, info_a: dict[str, Any], info_b: dict[str, Any]) -> tuple[str, bool] | None:
    """Why two runs were not scored on the same data, or None when they were.

    Returns (message, hash_only): hash_only is True when the ground truth of every shared
    id agrees and only the data hash differs (another annotation file, say), which the caller may
    choose to accept. Pairing samples by id across different data would compare answers
    to different questions, so a mismatch in ground truth is never accepted.
    """
    truth_a = {(r["task"], str(r["sample_id"])): (r.get("gt_lat"), r.get("gt_lon")) for r in records_a}
    shared = differ = 0
    example = None
    for r in records_b:
        key = (r["task"], str(r["sample_id"]))
        if key not in truth_a:
            continue
        shared += 1
        mine, theirs = truth_a[key], (r.get("gt_lat"), r.get("gt_lon"))
        if not _same_truth(mine, theirs):
            differ += 1
            example = example or f"{key[1]}: ({mine[0]}, {mine[1]}) vs ({theirs[0]}, {theirs[1]})"
    if differ:
        return (
            f"the runs were scored on different data: the ground truth differs for {differ} of {shared} "
            f"shared sample ids (e.g. {example}); a paired comparison would compare answers to different photos",
            False,
        )
    tasks = {r["task"] for r in records_a} | {r["task"] for r in records_b}
    hashes_a, hashes_b = _hashes(info_a, tasks), _hashes(info_b, tasks)
    changed = sorted(
        t for t in set(hashes_a) & set(hashes_b) if hashes_a[t] and hashes_b[t] and hashes_a[t] != hashes_b[t]
    )
    if changed:
        shown = ", ".join(f"{t} {hashes_a[t][:12]} vs {hashes_b[t][:12]}" for t in changed)
        return (
            f"the runs were scored on different data: the data hash differs ({shown}), although the ground truth "
            f"of the {shared} shared ids agrees (the annotation file changed: other samples or other fields); "
            "pass --ignore-data-hash to compare them anyway",
            True,
        )
    return None
