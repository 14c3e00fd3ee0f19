"""Scoring rules, checked against numbers computed independently here."""

import math

import numpy as np
import pandas as pd
import pytest

import greval.stats as stats
from greval.score import GRANULARITIES, distance_km, geoscore, score_records, summarize

R = 6371.0088


def _haversine(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


def test_paris_london_haversine_matches_the_formula():
    expected = _haversine(48.8566, 2.3522, 51.5074, -0.1278)
    assert distance_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(expected, rel=1e-12)
    assert 343 < expected < 344


def test_vectorised_nan_and_scalar():
    d = distance_km(np.array([0.0, np.nan, 10.0]), np.zeros(3), np.array([1.0, 0.0, 10.0]), np.zeros(3))
    assert d[0] == pytest.approx(R * math.radians(1.0), rel=1e-12) and math.isnan(d[1]) and d[2] == 0.0
    assert isinstance(distance_km(0, 0, 0, 1), float)
    assert math.isnan(distance_km(np.nan, 0, 0, 0, earth="geodesic"))
    with pytest.raises(ValueError, match="earth"):
        distance_km(0, 0, 0, 1, earth="flat")


def test_geodesic_vs_haversine_along_equator_and_meridian():
    # WGS-84: a degree of longitude on the equator is 111.3195 km (a = 6378.137 km, longer
    # than the mean radius); a degree of latitude next to the pole is 111.694 km; one at the
    # equator 110.574 km. The sphere gives 111.1951 km for all of them.
    sphere = R * math.radians(1)
    assert distance_km(0, 0, 0, 1) == pytest.approx(sphere, rel=1e-12)
    assert distance_km(0, 0, 0, 1, earth="geodesic") == pytest.approx(6378.137 * math.radians(1), rel=1e-9)
    assert distance_km(89, 0, 90, 0, earth="geodesic") == pytest.approx(111.694, abs=0.001)
    assert distance_km(0, 0, 1, 0, earth="geodesic") == pytest.approx(110.574, abs=0.001)
    assert distance_km(0, 0, 1, 0, earth="geodesic") < sphere < distance_km(89, 0, 90, 0, earth="geodesic")


def test_geoscore_formula():
    assert geoscore(0.0) == 5000.0
    assert geoscore(1492.7) == pytest.approx(5000 / math.e)


def _rec(i, status="ok", lat=0.0, lon=0.0, gt=(0.0, 0.0), scene=None):
    return {
        "sample_id": f"s{i}",
        "task": "t",
        "status": status,
        "lat": lat,
        "lon": lon,
        "gt_lat": gt[0],
        "gt_lon": gt[1],
        "scene": scene,
    }


def _north(km):
    """A point km north of (0, 0) along the meridian (haversine sphere)."""
    return math.degrees(km / R)


@pytest.mark.parametrize("name", list(GRANULARITIES))
def test_threshold_just_inside_and_just_outside(name):
    r = GRANULARITIES[name]
    inside, outside = _north(r * (1 - 1e-6)), _north(r * (1 + 1e-6))
    recs = [_rec(0, lat=inside), _rec(1, lat=outside)]
    out = summarize(recs, [name], n_boot=0, geocode=False)
    assert out[f"acc@{r:g}km"] == 0.5
    assert list(k for k in out if k.startswith("acc@")) == [f"acc@{r:g}km"]


def _exactly_at(km):
    """A latitude whose haversine distance from (0, 0) is exactly `km` in floating point."""
    lat = _north(km)
    for _ in range(200):
        d = distance_km(lat, 0.0, 0.0, 0.0)
        if d == km:
            return lat
        lat = np.nextafter(lat, np.inf if d < km else -np.inf)
    raise AssertionError(f"no float latitude lands exactly on {km} km")


@pytest.mark.parametrize("name", ["street", "city", "region"])
def test_boundary_is_inclusive(name):
    r = GRANULARITIES[name]
    out = summarize([_rec(0, lat=_exactly_at(r))], [name], n_boot=0, geocode=False)
    assert out[f"acc@{r:g}km"] == 1.0  # d == r is a hit (OSV-5M's strict d < r would miss it)


def test_failure_statuses_count_as_wrong_and_errors_are_excluded():
    paris, london = (48.8566, 2.3522), (51.5074, -0.1278)
    recs = [
        _rec(0, lat=paris[0], lon=paris[1], gt=paris),  # exact
        _rec(1, lat=london[0], lon=london[1], gt=paris),  # 343.6 km
        _rec(2, "refusal", None, None, gt=paris),
        _rec(3, "truncated", None, None, gt=paris),
        _rec(4, "no_answer", None, None, gt=paris),
        _rec(5, "out_of_range", None, None, gt=paris),
        _rec(6, "empty", None, None, gt=paris),
        _rec(7, "error", None, None, gt=paris),
        _rec(8, "error", None, None, gt=paris),
    ]
    out = summarize(recs, n_boot=0)
    d = _haversine(*london, *paris)
    assert (out["n"], out["n_errors"], out["n_parsed"]) == (7, 2, 2)
    assert out["acc@1km"] == pytest.approx(1 / 7)
    assert out["acc@750km"] == pytest.approx(2 / 7)
    assert out["median_km"] == pytest.approx(d / 2) and out["mean_km"] == pytest.approx(d / 2)
    assert out["geoscore"] == pytest.approx((5000 + 5000 * math.exp(-d / 1492.7)) / 7)
    assert out["country_acc"] == pytest.approx(1 / 7)  # London is not France
    assert out["continent_acc"] == pytest.approx(2 / 7)
    assert out["refusal_rate"] == pytest.approx(1 / 7)
    assert out["truncated_rate"] == pytest.approx(1 / 7)
    assert out["parse_failure_rate"] == pytest.approx(3 / 7)


def test_no_parsed_answers_gives_none_not_nan():
    out = summarize([_rec(0, "refusal", None, None)], n_boot=50)
    assert out["median_km"] is None and out["mean_km"] is None and out["acc@1km"] == 0.0
    assert out["ci"]["median_km"] is None
    import json

    json.dumps(out, allow_nan=False)


def test_ocean_prediction_is_wrong_country_and_continent():
    # gt in Lisbon, prediction 300 km out in the Atlantic: no country.
    out = summarize([_rec(0, lat=38.72, lon=-13.0, gt=(38.72, -9.14))], n_boot=0)
    assert out["country_acc"] == 0.0 and out["continent_acc"] == 0.0 and out["acc@750km"] == 1.0


def test_by_scene_breakdown():
    recs = [
        _rec(0, scene="urban"),
        _rec(1, "refusal", None, None, scene="urban"),
        _rec(2, scene="natural"),
        _rec(3, "error", None, None, scene="natural"),
        _rec(4),
    ]
    out = summarize(recs, ["street"], n_boot=0, geocode=False)
    assert out["scene_counts"] == {"natural": 1, "unknown": 1, "urban": 2}
    assert set(out["by_scene"]) == {"natural", "unknown", "urban"}
    assert out["by_scene"]["urban"]["n"] == 2 and out["by_scene"]["urban"]["acc@1km"] == 0.5
    assert out["by_scene"]["urban"]["refusal_rate"] == 0.5
    assert out["by_scene"]["natural"]["n_errors"] == 1 and out["by_scene"]["natural"]["acc@1km"] == 1.0
    assert "by_scene" not in out["by_scene"]["urban"]


def _random_records(n, seed):
    rng = np.random.default_rng(seed)
    gt_lat, gt_lon = rng.uniform(-60, 60, n), rng.uniform(-180, 180, n)
    status = rng.choice(["ok"] * 6 + ["refusal", "no_answer"], n)
    d_deg = rng.exponential(3.0, n)
    return pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "task": "t",
            "status": status,
            "lat": np.where(status == "ok", np.clip(gt_lat + d_deg, -90, 90), np.nan),
            "lon": np.where(status == "ok", gt_lon, np.nan),
            "gt_lat": gt_lat,
            "gt_lon": gt_lon,
            "scene": rng.choice(["urban", "natural"], n),
        }
    )


def test_cis_are_reproducible_and_contain_the_estimate():
    recs = _random_records(400, 1)
    a = summarize(recs, seed=3, n_boot=300, geocode=False)
    b = summarize(recs, seed=3, n_boot=300, geocode=False)
    c = summarize(recs, seed=4, n_boot=300, geocode=False)
    assert a["ci"] == b["ci"]
    assert a["ci"] != c["ci"]
    for key, (lo, hi) in a["ci"].items():
        assert lo <= a[key] <= hi, key
        assert lo < hi, key
    # narrowing the granularities leaves the other intervals unchanged
    assert summarize(recs, ["city"], seed=3, n_boot=300, geocode=False)["ci"]["acc@25km"] == a["ci"]["acc@25km"]


def test_ci_width_matches_binomial_theory():
    recs = _random_records(2000, 2)
    out = summarize(recs, ["region"], n_boot=2000, geocode=False)
    p, n = out["acc@200km"], out["n"]
    lo, hi = out["ci"]["acc@200km"]
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n), rel=0.12)


def test_bootstrap_shortcuts_agree_with_plain_resampling():
    rng = np.random.default_rng(0)
    values = rng.exponential(1000, 3001)
    plain = []
    for _ in range(3000):
        c = rng.binomial(4000, 3001 / 4000)
        draw = values[rng.integers(0, 3001, c)]
        plain.append((np.median(draw), draw.mean()))
    plain = np.array(plain)
    med = stats.boot_median(values, 4000, stats.rng_for(0, "m"), 3000)
    strat = stats.stratified_sums(np.sort(values), np.full(3000, 3001), stats.rng_for(0, "s")) / 3001
    for ours, theirs in ((med, plain[:, 0]), (strat, plain[:, 1])):
        assert np.percentile(ours, [2.5, 97.5]) == pytest.approx(np.percentile(theirs, [2.5, 97.5]), rel=0.02)


def test_score_records_groups_by_task_and_rejects_bad_input():
    recs = [_rec(0), {**_rec(1), "task": "u"}]
    out = score_records(recs, ["street"], n_boot=0, geocode=False)
    assert set(out["tasks"]) == {"t", "u"} and out["tasks"]["u"]["n"] == 1
    with pytest.raises(ValueError, match="s9"):
        summarize([_rec(9, lat=None)], n_boot=0)
    with pytest.raises(ValueError, match="bogus"):
        summarize([_rec(0, "bogus")], n_boot=0)
    with pytest.raises(ValueError, match="s5"):
        summarize([_rec(5, gt=(None, 0.0))], n_boot=0)


def test_cis_do_not_depend_on_record_order():
    # Regression: the mean intervals (geoscore, mean_km) resampled the values in record
    # order, so reordering predictions.jsonl moved them.
    recs = _random_records(300, 5)
    shuffled = recs.sample(frac=1.0, random_state=1)
    a = summarize(recs, seed=2, n_boot=200, geocode=False)
    b = summarize(shuffled, seed=2, n_boot=200, geocode=False)
    assert a["ci"] == b["ci"]
    assert a["by_scene"]["urban"]["ci"] == b["by_scene"]["urban"]["ci"]


def test_ok_record_with_coordinates_off_the_globe_is_rejected():
    # Regression: an "ok" record with lat 95 was scored with a wrapped haversine distance.
    with pytest.raises(ValueError, match="s7.*out_of_range"):
        summarize([_rec(7, lat=95.0, lon=0.0)], n_boot=0, geocode=False)
    with pytest.raises(ValueError, match="s8"):
        summarize([_rec(8, lat=0.0, lon=-180.5)], n_boot=0, geocode=False)
    # the edges of the globe are fine
    assert summarize([_rec(9, lat=-90.0, lon=180.0)], n_boot=0, geocode=False)["n_parsed"] == 1
