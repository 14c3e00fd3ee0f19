"""Paired comparison on constructed runs where the right answer is known."""

import math

import numpy as np
import pytest

from greval.compare import compare_records


def _run(n, right, *, task="t", start=0, status=None):
    """n samples with gt in Paris; `right[i]` True -> answer in Paris, else in Tokyo."""
    recs = []
    for i in range(n):
        ok = right[i]
        recs.append(
            {
                "sample_id": f"s{start + i}",
                "task": task,
                "status": (status[i] if status else "ok"),
                "lat": 48.8566 if ok else 35.6762,
                "lon": 2.3522 if ok else 139.6503,
                "gt_lat": 48.8566,
                "gt_lon": 2.3522,
            }
        )
    return recs


def test_identical_runs_have_zero_difference_and_p_one():
    rng = np.random.default_rng(0)
    run = _run(60, rng.random(60) < 0.5)
    out = compare_records(run, run, n_boot=200)["tasks"]["t"]
    assert set(out) >= {"acc@1km", "acc@2500km", "geoscore", "median_km", "country_acc", "continent_acc"}
    for name, m in out.items():
        assert m["diff"] == 0, name
        assert m["p_value"] == 1.0, name
        assert m["ci"] == [0.0, 0.0], name
        assert m["n"] == 60
    assert out["acc@1km"]["test"] == "mcnemar" and out["geoscore"]["test"] == "paired-bootstrap"


def test_a_right_where_b_wrong_gives_tiny_p():
    a = _run(50, [True] * 50)
    b = _run(50, [False] * 50)
    out = compare_records(a, b, ["street"], n_boot=500)["tasks"]["t"]
    m = out["acc@1km"]
    assert (m["a"], m["b"], m["diff"]) == (1.0, 0.0, 1.0)
    assert m["p_value"] == pytest.approx(2 * 0.5**50)  # exact two-sided binomial, 50 discordant pairs
    assert out["country_acc"]["p_value"] < 1e-10 and out["continent_acc"]["diff"] == 1.0
    # Every resample favours A: the bootstrap p-value is at its floor 2/(B+1), never 0.
    assert out["geoscore"]["diff"] > 0 and out["geoscore"]["p_value"] == pytest.approx(2 / 501)
    assert out["median_km"]["diff"] < -9000 and out["median_km"]["ci"][1] < 0


def test_mcnemar_uses_only_discordant_pairs():
    # 30 both right, 10 A only, 3 B only, 7 both wrong: p = two-sided binomial(10 of 13).
    right_a = [True] * 30 + [True] * 10 + [False] * 3 + [False] * 7
    right_b = [True] * 30 + [False] * 10 + [True] * 3 + [False] * 7
    m = compare_records(_run(50, right_a), _run(50, right_b), ["street"], n_boot=100)["tasks"]["t"]["acc@1km"]
    expected = 2 * sum(math.comb(13, k) for k in range(0, 4)) / 2**13
    assert m["p_value"] == pytest.approx(expected)
    assert m["diff"] == pytest.approx(7 / 50) and m["discordant"] == {"a_only": 10, "b_only": 3}
    assert m["ci"][0] <= m["diff"] <= m["ci"][1]


def test_only_the_intersection_of_non_error_samples_is_used():
    a = _run(40, [True] * 40) + _run(10, [False] * 10, start=40)  # 10 extra samples only in A
    b_status = ["error"] * 5 + ["ok"] * 35
    b = _run(40, [True] * 40, status=b_status)  # 5 errors in B: not compared
    out = compare_records(a, b, ["street"], n_boot=100)
    m = out["tasks"]["t"]["acc@1km"]
    assert m["n"] == 35 and m["a"] == 1.0 and m["diff"] == 0.0 and m["p_value"] == 1.0


def test_refusal_counts_wrong_and_tasks_only_in_one_run_are_listed():
    a = _run(20, [True] * 20) + _run(5, [True] * 5, task="other")
    b = _run(20, [True] * 20, status=["refusal"] * 4 + ["ok"] * 16)
    out = compare_records(a, b, ["street"], n_boot=100)
    m = out["tasks"]["t"]["acc@1km"]
    assert (m["a"], m["b"], m["n"]) == (1.0, 0.8, 20)
    assert out["only_in_a"] == ["other"] and out["only_in_b"] == []


def test_reproducible_with_seed():
    rng = np.random.default_rng(1)
    a, b = _run(80, rng.random(80) < 0.6), _run(80, rng.random(80) < 0.4)
    assert compare_records(a, b, seed=5, n_boot=200) == compare_records(a, b, seed=5, n_boot=200)


def test_earth_model_matches_the_runs_metrics():
    # Regression: compare always used the haversine sphere, so for a run scored with
    # --earth geodesic its accuracies disagreed with the run's metrics.json.
    from greval.score import distance_km, summarize

    lat = 25.05 / 111.195  # due north of (0, 0): ~25.05 km on the sphere, ~24.9 km on WGS-84
    assert distance_km(0, 0, lat, 0) > 25 > distance_km(0, 0, lat, 0, earth="geodesic")
    a = [{"sample_id": "s0", "task": "t", "status": "ok", "lat": lat, "lon": 0.0, "gt_lat": 0.0, "gt_lon": 0.0}]
    b = [{**a[0], "status": "refusal", "lat": None, "lon": None}]
    for earth, hit in (("haversine", 0.0), ("geodesic", 1.0)):
        out = compare_records(a, b, ["city"], n_boot=50, earth=earth)["tasks"]["t"]["acc@25km"]
        assert out["a"] == hit == summarize(a, ["city"], n_boot=0, earth=earth, geocode=False)["acc@25km"]


# --- the CLI refuses to pair runs scored on different data (issue 8)


def _cli(*args):
    from click.testing import CliRunner

    from greval.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def _random_run(bench, out, seed=0):
    result = _cli("run", "-q", "-a", "random", "--data", bench, "--tasks", "all", "-o", out, "--seed", seed)
    assert result.exit_code == 0, result.output
    return out


def test_compare_refuses_runs_on_different_data_and_compares_the_same_data(tmp_path):
    from greval.testing import make_fixture_bench

    bench = make_fixture_bench(tmp_path / "bench", n=12, seed=0)
    other = make_fixture_bench(tmp_path / "other", n=12, seed=1)  # same ids, other places
    a = _random_run(bench, tmp_path / "a", seed=1)
    b = _random_run(bench, tmp_path / "b", seed=2)
    c = _random_run(other, tmp_path / "c", seed=2)

    same = _cli("compare", a, b)
    assert same.exit_code == 0, same.output
    assert "acc@2500km" in same.output

    refused = _cli("compare", a, c)
    assert refused.exit_code == 2
    assert "scored on different data" in refused.output and "ground truth differs for" in refused.output
    assert "95% CI" not in refused.output  # no table, no significance printed
    assert _cli("compare", a, c, "--ignore-data-hash").exit_code == 2  # other ground truth is never paired


def test_compare_refuses_a_changed_data_hash_unless_told(tmp_path):
    import json
    import shutil

    from greval.testing import make_fixture_bench

    bench = make_fixture_bench(tmp_path / "bench", n=12, seed=0)
    copy = tmp_path / "copy"
    shutil.copytree(bench, copy)
    items = json.loads((copy / "GREval-Bench.json").read_text())
    items[0]["gt_cot"] = "another reference chain"  # same ids and ground truth, other data
    (copy / "GREval-Bench.json").write_text(json.dumps(items))
    a = _random_run(bench, tmp_path / "a", seed=1)
    b = _random_run(copy, tmp_path / "b", seed=2)
    refused = _cli("compare", a, b)
    assert refused.exit_code == 2 and "data hash differs" in refused.output and "--ignore-data-hash" in refused.output
    assert _cli("compare", a, b, "--ignore-data-hash").exit_code == 0


def test_report_of_runs_on_different_data_says_so(tmp_path):
    from greval.testing import make_fixture_bench

    a = _random_run(make_fixture_bench(tmp_path / "bench", n=6, seed=0), tmp_path / "a", seed=1)
    c = _random_run(make_fixture_bench(tmp_path / "other", n=6, seed=1), tmp_path / "c", seed=2)
    b = _random_run(tmp_path / "bench", tmp_path / "b", seed=2)
    mixed = _cli("report", a, c, "--no-plots")
    assert mixed.exit_code == 0 and "all: the runs were scored on different data" in mixed.stderr
    same = _cli("report", a, b, "--no-plots")
    assert same.exit_code == 0 and "different data" not in same.stderr
