"""Scoring: distances, accuracy at each granularity, GeoScore, country / continent
accuracy, failure rates and seeded bootstrap confidence intervals.

Conventions (the numbers in metrics.json follow these exactly):
- Distance: great-circle (haversine) on a sphere of radius 6371.0088 km, the mean Earth
  radius of the `haversine` package (OSV-5M's code uses 6371 km: 0.00014 % shorter).
  `earth="geodesic"` uses the WGS-84 ellipsoid instead (pyproj's Geod, vectorised).
- A hit at radius r is `d <= r`: inclusive. OSV-5M's code uses strict `d < r`; the two
  differ only for a distance exactly equal to the radius.
- GeoScore = 5000 · exp(−d / 1492.7) (GeoGuessr-style, as OSV-5M and PIGEON).
- Records with status "error" (the request failed, there is no model answer) are left
  out of everything and only counted in `n_errors`. Every other record is in n; a record
  whose status is not "ok" (refusal, truncated, no_answer, empty, out_of_range) is wrong
  at every radius, scores GeoScore 0 and is wrong for country and continent. median_km
  and mean_km are over "ok" answers only: failures never enter them silently, they are
  reported as refusal_rate, truncated_rate and parse_failure_rate (shares of n; with the
  "ok" share they add up to 1).
- Distances are recomputed here from lat/lon and gt_lat/gt_lon, so that `earth` decides
  and a stale distance_km field cannot leak in.

Confidence intervals: 95 %, percentile method over `n_boot` bootstrap resamples of the
samples, seeded (same seed, same numbers; each metric draws from its own stream, so
asking for fewer granularities leaves the others unchanged). They are computed without
materialising n × n_boot resamples, which would take minutes at 1 M records:
- 0/1 metrics (accuracies, country / continent): the mean of n Bernoulli values drawn
  with replacement is exactly Binomial(n, p̂) / n, so we draw that. Exact.
- median_km: the median of a resample of the "ok" distances. The number of ok answers
  in a resample is Binomial(n, m/n); given it (m*), the k-th smallest of m* draws from
  the empirical distribution is F⁻¹(U₍ₖ₎) with U₍ₖ₎ ~ Beta(k, m* − k + 1) (inverse
  transform is monotone), and the (k+1)-th follows as the minimum of the m* − k uniforms
  above it. Exact in distribution, O(1) per resample.
- Means (geoscore, mean_km): for n · n_boot ≤ 2·10⁷ a plain resampling (exact). Above
  that, the values are sorted into 256 equal-count strata; how many draws each stratum
  gets is drawn exactly (multinomial), and the sum within a stratum is drawn from the
  normal with that stratum's mean and spread (CLT within a narrow stratum). The error
  is far below the Monte-Carlo noise of 1,000 resamples (checked in tests against plain
  resampling).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from greval.audit import is_flagged
from greval.constants import ERROR, OK, PARSE_FAILURES, REFUSAL, STATUSES, THRESHOLDS_KM, TRUNCATED  # noqa: F401
from greval.stats import boot_mean, boot_median, boot_proportion, percentile_ci, rng_for

GRANULARITIES = THRESHOLDS_KM  # name -> km, defined once in greval/constants.py
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius, as in the haversine package
GEOSCORE_MAX = 5000.0
GEOSCORE_SCALE_KM = 1492.7

UNKNOWN_SCENE = "unknown"


# --------------------------------------------------------------------------- distances


def distance_km(lat1, lon1, lat2, lon2, earth: str = "haversine"):
    """Distance in km between points, elementwise over arrays (scalars give a scalar).

    earth="haversine": great circle on the sphere of radius 6371.0088 km (`haversine`
    package). earth="geodesic": WGS-84 ellipsoid (pyproj). NaN in any coordinate gives NaN.
    """
    arrays = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (lat1, lon1, lat2, lon2)))
    scalar = arrays[0].ndim == 0
    lat1, lon1, lat2, lon2 = (a.ravel() for a in arrays)
    shape = arrays[0].shape
    if earth == "haversine":
        from haversine import Unit, haversine_vector

        if len(lat1) == 0:
            out = np.empty(0)
        else:
            # check=False: NaN must flow through as NaN, not raise.
            out = haversine_vector(
                np.column_stack([lat1, lon1]), np.column_stack([lat2, lon2]), Unit.KILOMETERS, check=False
            )
    elif earth == "geodesic":
        out = _geod().inv(lon1, lat1, lon2, lat2)[2] / 1000.0
        out = np.where(np.isfinite(lat1 + lon1 + lat2 + lon2), out, np.nan)
    else:
        raise ValueError(f"earth must be 'haversine' or 'geodesic', not {earth!r}")
    out = np.asarray(out, dtype=np.float64).reshape(shape)
    return float(out) if scalar else out


def _geod():
    from pyproj import Geod

    return Geod(ellps="WGS84")


def geoscore(d_km):
    """5000 · exp(−d / 1492.7), elementwise."""
    return GEOSCORE_MAX * np.exp(-np.asarray(d_km, dtype=np.float64) / GEOSCORE_SCALE_KM)


def acc_key(name: str) -> str:
    """ "street" -> "acc@1km"."""
    return f"acc@{GRANULARITIES[name]:g}km"


# --------------------------------------------------------------------------- inputs


def _frame(records) -> pd.DataFrame:
    if isinstance(records, pd.DataFrame):
        frame = records
    else:
        frame = pd.DataFrame(list(records))
    for column in (
        "sample_id",
        "status",
        "lat",
        "lon",
        "gt_lat",
        "gt_lon",
        "scene",
        "scene_source",
        "flags",
        "override",
    ):
        if column not in frame.columns:
            if column in ("sample_id", "status", "gt_lat", "gt_lon") and len(frame):
                raise ValueError(f"prediction records lack the column {column!r}")
            frame = frame.assign(**{column: None})
    return frame


def _granularity_names(granularities: Iterable[str] | None) -> list[str]:
    if granularities is None:
        return list(GRANULARITIES)
    names = list(granularities)
    unknown = [g for g in names if g not in GRANULARITIES]
    if unknown:
        raise ValueError(f"unknown granularity {unknown}; known: {', '.join(GRANULARITIES)}")
    return sorted(set(names), key=list(GRANULARITIES).index)


def _floats(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


class _Scored:
    """Per-record arrays of one task's non-error records, computed once."""

    def __init__(self, frame: pd.DataFrame, names: list[str], earth: str, geocode: bool) -> None:
        status = frame["status"].astype(object).to_numpy()
        unknown = sorted({str(s) for s in status if s not in STATUSES})
        if unknown:
            raise ValueError(f"unknown record status {unknown}; expected one of {', '.join(STATUSES)}")
        keep = status != ERROR
        self.n_errors = int((~keep).sum())
        self.error_scene = _labels(frame["scene"][~keep])
        frame = frame[keep]
        self.status = status[keep]
        sample_ids = frame["sample_id"].astype(str).to_numpy()
        gt_lat, gt_lon = _floats(frame["gt_lat"]), _floats(frame["gt_lon"])
        bad_gt = ~(np.isfinite(gt_lat) & np.isfinite(gt_lon))
        if bad_gt.any():
            raise ValueError(f"sample {sample_ids[bad_gt][0]!r} has no ground-truth gt_lat/gt_lon")
        lat, lon = _floats(frame["lat"]), _floats(frame["lon"])
        self.ok = self.status == OK
        no_coords = self.ok & ~(np.isfinite(lat) & np.isfinite(lon))
        if no_coords.any():
            raise ValueError(f"sample {sample_ids[no_coords][0]!r} has status 'ok' but no lat/lon")
        # The parser never calls such an answer "ok"; a hand-made or merged file might,
        # and haversine would quietly wrap it into some distance.
        off_globe = self.ok & ~no_coords & ((np.abs(lat) > 90.0) | (np.abs(lon) > 180.0))
        if off_globe.any():
            i = np.flatnonzero(off_globe)[0]
            raise ValueError(
                f"sample {sample_ids[i]!r} has status 'ok' but lat/lon ({lat[i]:g}, {lon[i]:g}) is off the globe; "
                "its status should be 'out_of_range'"
            )
        self.n = len(self.status)
        self.distance = np.full(self.n, np.nan)
        self.distance[self.ok] = distance_km(gt_lat[self.ok], gt_lon[self.ok], lat[self.ok], lon[self.ok], earth=earth)
        self.hits = {name: self.ok & (self.distance <= GRANULARITIES[name]) for name in names}
        self.geoscore = np.where(self.ok, geoscore(np.where(self.ok, self.distance, 0.0)), 0.0)
        self.country_hit = self.continent_hit = self.near_border = None
        if geocode:
            from greval.geo import continent_of, country_of, near_border

            # A country decision within 1 km of a border is one the data's precision can flip.
            self.near_border = near_border(gt_lat, gt_lon)
            self.near_border[self.ok] |= near_border(lat[self.ok], lon[self.ok])

            gt_cc = country_of(gt_lat, gt_lon)
            pred_cc = np.full(self.n, None, dtype=object)
            pred_cc[self.ok] = country_of(lat[self.ok], lon[self.ok])
            self.country_hit = self.ok & (pred_cc != None) & (pred_cc == gt_cc)  # noqa: E711 - elementwise
            gt_ct, pred_ct = continent_of(gt_cc), continent_of(pred_cc)
            self.continent_hit = self.ok & (pred_ct != None) & (pred_ct == gt_ct)  # noqa: E711
        self.scene = _labels(frame["scene"])
        self.scene_source = _labels(frame["scene_source"])
        self.flags = frame["flags"].to_numpy(dtype=object)
        self.flagged = np.fromiter((is_flagged(f) for f in self.flags), dtype=bool, count=self.n)
        self.overridden = frame["override"].notna().to_numpy()


def _labels(series: pd.Series) -> np.ndarray:
    """Scene labels as strings; missing or empty ones become "unknown"."""
    codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
    names = np.array([str(u) if str(u) != "" else UNKNOWN_SCENE for u in uniques] + [UNKNOWN_SCENE], dtype=object)
    return names[codes]  # the NA sentinel -1 picks the last entry


def _plain(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _summary(s: _Scored, idx: np.ndarray, names: list[str], seed: int, n_boot: int, group: str) -> dict[str, Any]:
    n = len(idx)
    status = s.status[idx]
    ok = s.ok[idx]
    ok_d = s.distance[idx][ok]
    out: dict[str, Any] = {"n": n, "n_errors": 0, "n_parsed": int(ok.sum())}
    ci: dict[str, list[float] | None] = {}

    def share(mask: np.ndarray) -> float | None:
        return float(mask.mean()) if n else None

    binary = {acc_key(name): s.hits[name][idx] for name in names}
    for key, hits in binary.items():
        out[key] = share(hits)
    out["median_km"] = _plain(np.median(ok_d)) if len(ok_d) else None
    out["mean_km"] = _plain(ok_d.mean()) if len(ok_d) else None
    out["geoscore"] = share(s.geoscore[idx]) if n else None
    for key, hits in (("country_acc", s.country_hit), ("continent_acc", s.continent_hit)):
        out[key] = share(hits[idx]) if hits is not None else None
        if hits is not None:
            binary[key] = hits[idx]
    out["parse_failure_rate"] = share(np.isin(status, PARSE_FAILURES))
    out["refusal_rate"] = share(status == REFUSAL)
    out["truncated_rate"] = share(status == TRUNCATED)
    # Doubtful readings (greval/audit.py): extraction flags only; near_border is geography.
    out["flagged_rate"] = share(s.flagged[idx])
    out["flag_counts"] = dict(
        sorted(Counter(f for flags in s.flags[idx] if isinstance(flags, list) for f in flags).items())
    )
    out["n_overridden"] = int(s.overridden[idx].sum())
    out["near_border_rate"] = share(s.near_border[idx]) if s.near_border is not None else None
    out["scene_counts"] = _counts(s.scene[idx])
    out["scene_source_counts"] = _counts(s.scene_source[idx])

    if n_boot > 0:
        for key, hits in binary.items():
            ci[key] = percentile_ci(boot_proportion(hits, rng_for(seed, key, group), n_boot))
        ci["geoscore"] = percentile_ci(boot_mean(s.geoscore[idx], n, rng_for(seed, "geoscore", group), n_boot))
        ci["median_km"] = percentile_ci(boot_median(ok_d, n, rng_for(seed, "median_km", group), n_boot))
        ci["mean_km"] = percentile_ci(boot_mean(ok_d, n, rng_for(seed, "mean_km", group), n_boot))
    out["ci"] = ci
    return out


def _counts(labels: np.ndarray) -> dict[str, int]:
    counts = pd.Series(labels, dtype=object).value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(counts.items())}


def summarize(
    records,
    granularities: Sequence[str] | None = None,
    *,
    earth: str = "haversine",
    seed: int = 0,
    n_boot: int = 1000,
    geocode: bool = True,
) -> dict[str, Any]:
    """Metrics of one task's prediction records (DataFrame or list of dicts).

    See the module docstring for the rules. With geocode=False, country_acc and
    continent_acc are None (no reverse geocoding is done). n_boot=0 skips the CIs.
    """
    names = _granularity_names(granularities)
    scored = _Scored(_frame(records), names, earth, geocode)
    out = _summary(scored, np.arange(scored.n), names, seed, n_boot, group="")
    out["n_errors"] = scored.n_errors
    by_scene = {}
    for scene in sorted(set(scored.scene.tolist())):
        idx = np.flatnonzero(scored.scene == scene)
        by_scene[scene] = _summary(scored, idx, names, seed, n_boot, group=f"scene:{scene}")
        by_scene[scene]["n_errors"] = int((scored.error_scene == scene).sum())
    out["by_scene"] = by_scene
    return out


def score_records(records, granularities: Sequence[str] | None = None, **kw) -> dict[str, Any]:
    """{"tasks": {task: summarize(records of that task)}} for records of many tasks."""
    frame = _frame(records)
    if len(frame) and "task" not in frame.columns:
        raise ValueError("prediction records lack the column 'task'")
    tasks: dict[str, Any] = {}
    if len(frame):
        for task, group in frame.groupby("task", sort=True):
            tasks[str(task)] = summarize(group, granularities, **kw)
    return {"tasks": tasks}


def as_records(records: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as a DataFrame with the columns scoring reads (missing optional ones None)."""
    return _frame(records)
