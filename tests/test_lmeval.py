"""lm-eval interoperability (issue 10 §1): tasks written by `greval export lm-eval` run in
lm-eval's real `simple_evaluate`, and greval's replay of
lm-eval's logged samples gives exactly lm-eval's numbers."""

from __future__ import annotations

import json
import math
import os

import pytest
import yaml
from _skips import require
from click.testing import CliRunner

from greval.cli import main
from greval.testing import make_fixture_bench

lm_eval = require("lm_eval", "lmeval")

METRICS = ("acc@1km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km", "geoscore", "refusal", "parse_failure",
           "median_km")  # fmt: skip
GREVAL_KEY = {"refusal": "refusal_rate", "parse_failure": "parse_failure_rate"}


def _canned(items: list[dict]) -> dict[str, str]:
    """Answers in the styles real models write, mixing formats, hedges, refusals and misses."""
    out = {}
    for i, it in enumerate(items):
        lat, lon = it["gt_lat"], it["gt_lon"]
        out[it["sample_id"]] = [
            f'{{"latitude": {lat}, "longitude": {lon}}}',
            f"Latitude: {lat + 0.1} / Longitude: {lon}\n\nI cannot be 100% certain of this.",
            "Final answer: I cannot determine where this photo was taken.",
            f"<think>Looks tropical.</think><answer>({lat + 2.0}, {lon - 3.0})</answer>",
            '{"latitude": "0", "longitude": "0", "city": "Unknown"}',
            "It looks like a European city, maybe.",
            f"My best guess: {abs(lat)}° {'N' if lat >= 0 else 'S'}, {abs(lon) + 20}° {'E' if lon >= 0 else 'W'}",
            f'{{"lat": {-lat}, "lon": {lon + 0.3}}}',
            f"<answer>{lat + 0.01 * i}, {lon - 0.02 * i}</answer>",
            "I'm sorry, but I can't help with identifying the location of this photo.",
        ][i % 10]  # 10 styles: the urban third of the samples (every third one) meets them all
    return out


def _geoscore(record) -> float:
    from greval.score import distance_km, geoscore

    _, gt_lat, gt_lon, lat, lon, status = record
    return geoscore(distance_km(gt_lat, gt_lon, lat, lon)) if status == "ok" else 0.0


def _register_canned_model():
    """A multimodal lm-eval model class, registered in lm-eval's registry, that answers from
    `Canned.answers` by the doc's sample_id and checks that it got the photo and the prompt."""
    import lm_eval.models  # noqa: F401  (lm-eval 0.4.13 loads its own models only into an empty registry)
    from lm_eval.api.model import LM
    from lm_eval.api.registry import MODEL_REGISTRY, register_model

    if "greval-canned" in MODEL_REGISTRY:
        return MODEL_REGISTRY["greval-canned"]

    @register_model("greval-canned")
    class Canned(LM):
        MULTIMODAL = True
        answers: dict[str, str] = {}

        def generate_until(self, requests):
            for r in requests:
                text, gen, visual = r.args
                assert text.startswith("<image>") and "geolocat" in text and gen["until"] == []
                assert [im.mode for im in visual["visual"]] == ["RGB"]
            return [self.answers[r.doc["sample_id"]] for r in requests]

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    return Canned


def _replay(samples_file, bench, greval_task, run_dir) -> dict:
    args = ["run", "-q", "-a", "replay", "--predictions", str(samples_file), "-m", "lm-eval outputs",
            "--data", str(bench), "--tasks", greval_task, "-o", str(run_dir)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return json.loads((run_dir / "metrics.json").read_text())["tasks"][greval_task]


def test_lmeval_metrics_equal_greval_replay_of_its_logged_samples(tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    make_fixture_bench(tmp_path / "bench", n=150, seed=2, image_size=(32, 32))
    tasks_dir = tmp_path / "lm_tasks"
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["export", "lm-eval", "--data", "bench", "--tasks", "urban,all", "--out", "lm_tasks"]
    )
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tasks_dir / "greval_all.yaml").read_text().replace("!function", ""))
    assert config["task"] == "greval_all" and config["output_type"] == "generate_until"
    aggregations = {m["metric"]: m["aggregation"] for m in config["metric_list"]}
    assert aggregations == {**{m: "mean" for m in METRICS[:5]}, "refusal": "mean", "parse_failure": "mean",
                            "geoscore": "utils.agg_geoscore", "median_km": "utils.agg_median_km"}  # fmt: skip
    rows = [json.loads(line) for line in (tasks_dir / "greval_all.jsonl").read_text().splitlines()]
    assert len(rows) == 150 and {"sample_id", "gt_lat", "gt_lon", "image_path"} <= set(rows[0])
    assert len((tasks_dir / "greval_urban.jsonl").read_text().splitlines()) == 50  # every third sample is urban
    _register_canned_model().answers = _canned(rows)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the task folder's paths hold from any working directory
    out = lm_eval.simple_evaluate(
        model="greval-canned", tasks=["greval_all", "greval_urban"],
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False), log_samples=True,
    )  # fmt: skip
    _log_samples(out, tmp_path / "lm_out")
    for task, greval_task in (("greval_all", "all"), ("greval_urban", "urban")):
        (samples_file,) = (tmp_path / "lm_out").rglob(f"samples_{task}_*.jsonl")
        ours = _replay(samples_file, tmp_path / "bench", greval_task, tmp_path / f"replay_{greval_task}")
        theirs = out["results"][task]
        for metric in METRICS:
            assert theirs[f"{metric},none"] == ours[GREVAL_KEY.get(metric, metric)], (task, metric)  # every digit
        assert ours["n"] == theirs["sample_len"] and ours["n_errors"] == 0
        assert 0 < ours["refusal_rate"] < 1 and 0 < ours["parse_failure_rate"] < 1 and 0 < ours["acc@1km"] < 1
        assert math.isfinite(theirs["median_km,none"]) and isinstance(theirs["acc@1km_stderr,none"], float)
    # The check can tell: lm-eval's own `mean` of these GeoScores (a left-to-right sum) is off in the last digits.
    per_sample = [s["geoscore"] for s in out["samples"]["greval_all"]]  # the records process_results kept
    scores = [(r[0], float(_geoscore(r))) for r in per_sample]
    assert sum(v for _, v in sorted(scores)) / len(scores) != out["results"]["greval_all"]["geoscore,none"]


def test_export_names_unreadable_photos_and_leaves_them_out(tmp_path):
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=1)
    (bench / "imgs" / "fx-00001.jpg").unlink()
    (bench / "imgs" / "fx-00004.jpg").write_bytes(b"not a jpeg")
    result = CliRunner().invoke(main, ["export", "lm-eval", "--data", str(bench), "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "(2 samples left out)" in result.output
    assert "fx-00001" in result.output and "fx-00004" in result.output and "not an image" in result.output
    ids = [json.loads(line)["sample_id"] for line in (tmp_path / "t" / "greval_all.jsonl").read_text().splitlines()]
    assert ids == ["fx-00000", "fx-00002", "fx-00003", "fx-00005"]


def test_photos_held_as_bytes_are_written_for_lmeval(tmp_path):
    datasets = require("datasets", "hub")
    from greval.lmeval_hooks import doc_to_image

    bench = make_fixture_bench(tmp_path / "bench", n=3, seed=4)
    encoded = [(bench / "imgs" / f"fx-0000{i}.jpg").read_bytes() for i in range(3)]
    features = datasets.Features({"image": datasets.Image(), "latitude": datasets.Value("float64"),
                                  "longitude": datasets.Value("float64")})  # fmt: skip
    table = {"image": [{"bytes": b, "path": None} for b in encoded], "latitude": [1.0, 2.0, 3.0],
             "longitude": [4.0, 5.0, 6.0]}  # fmt: skip
    datasets.Dataset.from_dict(table, features=features).save_to_disk(str(tmp_path / "ds"))
    (tmp_path / "mine.yaml").write_text("name: mine\ndataset:\n  format: hf\ntemplate: coords\n")
    out = tmp_path / "t"
    result = CliRunner().invoke(main, ["export", "lm-eval", "--data", str(tmp_path / "ds"),
                                       "--tasks", str(tmp_path / "mine.yaml"), "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "greval_mine.jsonl").read_text().splitlines()]
    assert [r["gt_lat"] for r in rows] == [1.0, 2.0, 3.0]
    for row, data in zip(rows, encoded, strict=True):
        assert os.path.isabs(row["image_path"]) and open(row["image_path"], "rb").read() == data
        assert doc_to_image(row)[0].size == (224, 224)


def test_replay_says_what_is_wrong_with_an_lmeval_file(tmp_path):
    doc = {"doc_id": 0, "resps": [["x"]], "filtered_resps": ["x"], "filter": "none"}
    bad = tmp_path / "samples_other_task.jsonl"
    bad.write_text(json.dumps({**doc, "doc": {"question": "2+2"}}) + "\n")
    bench = make_fixture_bench(tmp_path / "bench", n=2)
    args = ["run", "-q", "-a", "replay", "--data", str(bench), "-o", str(tmp_path / "r"), "--predictions"]
    result = CliRunner().invoke(main, [*args, str(bad)])
    assert result.exit_code != 0 and "doc has no sample_id" in result.output and ":1:" in result.output
    two = tmp_path / "samples_two_filters.jsonl"
    row = {**doc, "doc": {"sample_id": "fx-00000"}}
    two.write_text(json.dumps(row) + "\n" + json.dumps({**row, "filter": "strict"}) + "\n")
    result = CliRunner().invoke(main, [*args, str(two)])
    assert result.exit_code != 0 and "filters 'none' and 'strict'" in result.output


def _log_samples(out: dict, output_path) -> None:
    """Write lm-eval's results and samples files as `lm_eval --log_samples --output_path` does."""
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(output_path))
    tracker.save_results_aggregated(results=out, samples=out["samples"])
    for task, samples in out["samples"].items():
        tracker.save_results_samples(task_name=task, samples=samples)


@pytest.mark.slow
def test_hf_multimodal_runs_an_exported_task_on_the_tiny_vlm(tmp_path):
    """lm-eval's own hf-multimodal model, chat template applied (what `lm_eval --model
    hf-multimodal … --apply_chat_template --log_samples` runs), then greval's replay of its
    samples file gives lm-eval's numbers."""
    require("transformers", "local")
    from lm_eval.tasks import TaskManager

    from greval.testing import build_tiny_vlm

    model_dir = build_tiny_vlm(tmp_path / "tiny")
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=0)
    tasks_dir = tmp_path / "lm_tasks"
    result = CliRunner().invoke(main, ["export", "lm-eval", "-d", str(bench), "-t", "urban", "-o", str(tasks_dir)])
    assert result.exit_code == 0, result.output
    text = (tasks_dir / "greval_urban.yaml").read_text().replace("max_gen_toks: 2048", "max_gen_toks: 8")
    (tasks_dir / "greval_urban.yaml").write_text(text)
    out = lm_eval.simple_evaluate(
        model="hf-multimodal", model_args=f"pretrained={model_dir},dtype=float32", device="cpu",
        tasks=["greval_urban"], task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
        apply_chat_template=True, batch_size=2, log_samples=True,
    )  # fmt: skip
    _log_samples(out, tmp_path / "lm_out")
    theirs = out["results"]["greval_urban"]
    (samples_file,) = (tmp_path / "lm_out").rglob("samples_greval_urban_*.jsonl")
    ours = _replay(samples_file, bench, "urban", tmp_path / "replay")
    assert ours["n"] == theirs["sample_len"] == 2
    for metric in METRICS[:-1]:
        assert theirs[f"{metric},none"] == ours[GREVAL_KEY.get(metric, metric)], metric
    if ours["median_km"] is None:  # nothing parsed: greval says None, lm-eval NaN (never a false 0)
        assert math.isnan(theirs["median_km,none"])
    else:
        assert theirs["median_km,none"] == ours["median_km"]
