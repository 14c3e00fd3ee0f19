"""End to end through the CLI: a fixture dataset, a replay file whose answers sit at
known distances from the truth, and exact metrics."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from click.testing import CliRunner

from greval.cli import main
from greval.records import read_predictions
from greval.testing import make_fixture_bench

R_KM = 6371.0088  # the haversine package's mean Earth radius, the default Earth model
THRESHOLDS = (1, 25, 200, 750, 2500)

# Distances (km) of the parsed answers; each threshold gets one just inside, one just outside.
DISTANCES = [0.0, 0.3] + [t * f for t in THRESHOLDS for f in (1 - 1e-6, 1 + 1e-6)] + [5000.0]
FORMATS = [
    '{{"latitude": {lat:.10f}, "longitude": {lon:.10f}}}',
    '<think>The signs are in Portuguese.</think><answer>{{"Latitude": "{lat:.10f} °", "Longitude": "{lon:.10f} °"}}</answer>',
    "Longitude: {lon:.10f}, Latitude: {lat:.10f}",
    "My final answer is ({lat:.10f}, {lon:.10f}).",
]


def _moved(lat: float, lon: float, d_km: float) -> tuple[float, float]:
    """A point d_km away along the meridian, towards the equator (never past a pole)."""
    dlat = math.degrees(d_km / R_KM)
    return (lat - dlat if lat > 0 else lat + dlat), lon


@pytest.fixture()
def bench(tmp_path):
    folder = make_fixture_bench(tmp_path / "bench", n=24, seed=0)
    rows = json.loads((folder / "GREval-Bench.json").read_text())
    return folder, rows


def _replay_file(tmp_path, rows):
    """Rows 0..k: known distances; then a refusal, garbage, a truncated-looking text; one row missing."""
    lines, expected = [], {}
    for i, row in enumerate(rows):
        sid = row["sample_id"]
        if i < len(DISTANCES):
            lat, lon = _moved(row["gt_lat"], row["gt_lon"], DISTANCES[i])
            lines.append({"sample_id": sid, "output": FORMATS[i % len(FORMATS)].format(lat=lat, lon=lon)})
            expected[sid] = ("ok", DISTANCES[i])
        elif i == len(DISTANCES):
            lines.append({"sample_id": sid, "output": "I'm sorry, but I can't determine where this photo was taken."})
            expected[sid] = ("refusal", None)
        elif i == len(DISTANCES) + 1:
            lines.append({"sample_id": sid, "output": "lorem ipsum, a lovely day"})
            expected[sid] = ("no_answer", None)
        elif i == len(DISTANCES) + 2:
            expected[sid] = ("error", None)  # no row: the replay adapter records an error
        else:
            lines.append({"sample_id": sid, "output": f'{{"lat": {row["gt_lat"]}, "lon": {row["gt_lon"]}}}'})
            expected[sid] = ("ok", 0.0)
    path = tmp_path / "outputs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path, expected


def _run(*args):
    result = CliRunner().invoke(main, ["run", "--quiet", *map(str, args)])
    return result


def test_replay_run_gives_exact_metrics_and_resumes(tmp_path, bench):
    folder, rows = bench
    replay, expected = _replay_file(tmp_path, rows)
    out = tmp_path / "run"
    args = [
        "--adapter",
        "replay",
        "--predictions",
        replay,
        "--model",
        "fixture-model",
        "--data",
        folder,
        "--tasks",
        "all,urban",
        "--output",
        out,
    ]
    result = _run(*args)
    assert result.exit_code == 3, result.output

    urban = {r["sample_id"] for r in rows if r.get("scene") == "urban"}
    records = read_predictions(out)
    assert len(records) == len(rows) + len(urban)
    by_id = {r["sample_id"]: r for r in records if r["task"] == "all"}
    for sid, (status, dist) in expected.items():
        assert by_id[sid]["status"] == status, (sid, by_id[sid])
        if dist is None:
            assert by_id[sid]["lat"] is None and by_id[sid]["distance_km"] is None
        else:
            assert by_id[sid]["distance_km"] == pytest.approx(dist, rel=1e-7, abs=1e-6)

    metrics = json.loads((out / "metrics.json").read_text())["tasks"]["all"]
    scored = [v for v in expected.values() if v[0] != "error"]
    n = len(scored)
    dists = [d for s, d in scored if s == "ok"]
    assert metrics["n"] == n and metrics["n_errors"] == 1 and metrics["n_parsed"] == len(dists)
    for t in THRESHOLDS:
        assert metrics[f"acc@{t}km"] == pytest.approx(sum(d <= t for d in dists) / n, abs=1e-12)
    assert metrics["median_km"] == pytest.approx(statistics.median(dists), rel=1e-6)
    assert metrics["mean_km"] == pytest.approx(statistics.fmean(dists), rel=1e-6)
    assert metrics["geoscore"] == pytest.approx(sum(5000 * math.exp(-d / 1492.7) for d in dists) / n, rel=1e-6)
    assert metrics["refusal_rate"] == pytest.approx(1 / n)
    assert metrics["parse_failure_rate"] == pytest.approx(1 / n)
    lo, hi = metrics["ci"]["acc@750km"]
    assert lo <= metrics["acc@750km"] <= hi
    assert json.loads((out / "metrics.json").read_text())["tasks"]["urban"]["n"] + (
        1 if rows[len(DISTANCES) + 2]["sample_id"] in urban else 0
    ) == len(urban)

    info = json.loads((out / "run.json").read_text())
    assert info["adapter"] == "replay" and info["model"] == "fixture-model"
    assert info["prompt_hashes"]["all"] and info["data_hash"]["all"]

    # Same command again: nothing answered is asked again; only the errored sample is retried.
    lines_before = (out / "predictions.jsonl").read_text().count("\n")
    assert _run(*args).exit_code == 3
    retried = 1 + (rows[len(DISTANCES) + 2]["sample_id"] in urban)
    assert (out / "predictions.jsonl").read_text().count("\n") == lines_before + retried

    # The missing output appears: the re-run fills it in and the sample now counts.
    missing = rows[len(DISTANCES) + 2]
    with replay.open("a") as f:
        f.write(
            json.dumps({"sample_id": missing["sample_id"], "output": f"{missing['gt_lat']}, {missing['gt_lon']}"})
            + "\n"
        )
    assert _run(*args).exit_code == 0  # every sample answered now
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]["all"]
    assert metrics["n"] == len(rows) and metrics["n_errors"] == 0


def test_crash_torn_line_is_redone(tmp_path, bench):
    folder, rows = bench
    replay, _ = _replay_file(tmp_path, rows)
    out = tmp_path / "run"
    args = ["--adapter", "replay", "--predictions", replay, "--data", folder, "--tasks", "all", "--output", out]
    assert _run(*args).exit_code == 3
    path = out / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]) + lines[5][:40])  # a crash mid-write
    assert _run(*args).exit_code == 3
    records = read_predictions(out)
    assert sorted(r["sample_id"] for r in records) == sorted(r["sample_id"] for r in rows)


def test_malformed_predictions_file_is_one_clear_error(tmp_path, bench):
    folder, _ = bench
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sample_id": "a", "output": "1, 2"}\n{"sample_id": "b", "output": \n')
    result = _run("--adapter", "replay", "--predictions", bad, "--data", folder, "--output", tmp_path / "r")
    assert result.exit_code == 2
    assert f"{bad}:2" in result.output and "Traceback" not in result.output


def test_unknown_task_and_adapter_are_clear(tmp_path, bench):
    folder, _ = bench
    result = _run("--adapter", "nope", "--data", folder)
    assert result.exit_code == 2 and "unknown adapter 'nope'" in result.output
    result = _run("--adapter", "random", "--tasks", "mars", "--data", folder)
    assert result.exit_code == 2 and "unknown task 'mars'" in result.output


def test_random_baseline_is_seeded_and_on_land(tmp_path, bench):
    from greval.geo import country_of

    folder, rows = bench
    outs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert _run("--adapter", "random", "--data", folder, "--seed", seed, "--output", tmp_path / name).exit_code == 0
        outs.append({r["sample_id"]: (r["lat"], r["lon"]) for r in read_predictions(tmp_path / name)})
    assert outs[0] == outs[1] and outs[0] != outs[2]
    lats, lons = zip(*outs[0].values(), strict=True)
    assert all(c is not None for c in country_of(list(lats), list(lons)))


def test_shards_merge_to_the_full_run(tmp_path, bench):
    folder, rows = bench
    replay, _ = _replay_file(tmp_path, rows)
    common = ["--adapter", "replay", "--predictions", replay, "--model", "m", "--data", folder, "--tasks", "all"]
    assert _run(*common, "--output", tmp_path / "full").exit_code == 3
    for i in range(3):
        assert _run(*common, "--shard", f"{i}/3", "--output", tmp_path / f"s{i}").exit_code in (0, 3)
    sizes = [len(read_predictions(tmp_path / f"s{i}")) for i in range(3)]
    assert sum(sizes) == len(rows) and all(sizes)
    result = CliRunner().invoke(
        main, ["merge", *(str(tmp_path / f"s{i}") for i in range(3)), "--output", str(tmp_path / "merged")]
    )
    assert result.exit_code == 0, result.output
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())["tasks"]["all"]
    merged = json.loads((tmp_path / "merged" / "metrics.json").read_text())["tasks"]["all"]
    assert merged == full


def test_help_is_fast_and_imports_no_torch():
    import subprocess
    import sys

    code = "import sys; from greval.cli import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")


def test_granularity_narrows_and_csv_replay_reads(tmp_path, bench):
    folder, rows = bench
    replay = tmp_path / "outputs.csv"
    lines = ["sample_id,output"] + [f'{r["sample_id"]},"{r["gt_lat"]}, {r["gt_lon"]}"' for r in rows]
    replay.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    args = [
        "--adapter",
        "replay",
        "--predictions",
        replay,
        "--data",
        folder,
        "--granularity",
        "street,city",
        "--output",
        out,
    ]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["tasks"]["all"]
    assert metrics["granularities"] == ["street", "city"]
    assert {k for k in block if k.startswith("acc@")} == {"acc@1km", "acc@25km"}
    assert block["acc@1km"] == 1.0 and block["n"] == len(rows)
    assert _run(*args[:-2], "--granularity", "block", "--output", tmp_path / "x").exit_code == 2
