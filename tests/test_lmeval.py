"""lm-eval interoperability (issue 10 §1): tasks written by `greval export lm-eval` run in
lm-eval's real `simple_evaluate`, and greval's replay of lm-eval's logged samples gives
exactly lm-eval's numbers."""

from __future__ import annotations

import json
import math

import pytest
from _skips import require
from click.testing import CliRunner

from greval.cli import main
from greval.testing import make_fixture_bench

lm_eval = require("lm_eval", "lmeval")


def _canned(items: list[dict]) -> dict[str, str]:
    """Answers in the styles real models write, mixing formats, hedges and refusals."""
    out = {}
    for i, it in enumerate(items):
        lat, lon = it["gt_lat"], it["gt_lon"]
        style = i % 8
        out[it["sample_id"]] = [
            f'{{"latitude": {lat}, "longitude": {lon}}}',
            f"Latitude: {lat + 0.1} / Longitude: {lon}\n\nI cannot be 100% certain of this.",
            "Final answer: I cannot determine where this photo was taken.",
            f"<think>Looks tropical.</think><answer>({lat + 2.0}, {lon - 3.0})</answer>",
            '{"latitude": "0", "longitude": "0", "city": "Unknown"}',
            "It looks like a European city, maybe.",
            f"My best guess: {abs(lat)}° {'N' if lat >= 0 else 'S'}, {abs(lon) + 20}° {'E' if lon >= 0 else 'W'}",
            f'{{"lat": {-lat}, "lon": {lon}}}',
        ][style]
    return out


def test_lmeval_metrics_equal_greval_replay_of_its_logged_samples(tmp_path, monkeypatch):
    from lm_eval.api.model import LM
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    monkeypatch.chdir(tmp_path)
    bench = make_fixture_bench(tmp_path / "bench", n=24, seed=2)
    tasks_dir = tmp_path / "lm_tasks"
    result = CliRunner().invoke(
        main, ["export", "lm-eval", "--data", str(bench), "--tasks", "urban,all", "--out", str(tasks_dir)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tasks_dir / "greval_all.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and set(rows[0]) == {"sample_id", "gt_lat", "gt_lon", "image_path", "prompt"}
    answers = _canned(rows)

    class Canned(LM):
        MULTIMODAL = True

        def generate_until(self, requests):
            assert all("<image>" in r.args[0] and r.args[2]["visual"] for r in requests)  # photo and prompt
            return [answers[r.doc["sample_id"]] for r in requests]

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    out = lm_eval.simple_evaluate(
        model=Canned(), tasks=["greval_all", "greval_urban"], task_manager=TaskManager(include_path=str(tasks_dir)),
        log_samples=True,
    )  # fmt: skip
    tracker = EvaluationTracker(output_path=str(tmp_path / "lm_out"))  # as `lm_eval --log_samples` writes
    tracker.save_results_aggregated(results=out, samples=out["samples"])
    for task in ("greval_all", "greval_urban"):
        tracker.save_results_samples(task_name=task, samples=out["samples"][task])
    for task, greval_task in (("greval_all", "all"), ("greval_urban", "urban")):
        (samples_file,) = (tmp_path / "lm_out").rglob(f"samples_{task}_*.jsonl")
        run_dir = tmp_path / f"replay_{greval_task}"
        replay = CliRunner().invoke(main, ["run", "-q", "-a", "replay", "--predictions", str(samples_file), "-m", "canned",
                                           "--data", str(bench), "--tasks", greval_task, "-o", str(run_dir)])  # fmt: skip
        assert replay.exit_code == 0, replay.output
        ours = json.loads((run_dir / "metrics.json").read_text())["tasks"][greval_task]
        theirs = out["results"][task]
        names = {"refusal": "refusal_rate", "parse_failure": "parse_failure_rate"}
        for metric in ("acc@1km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km", "geoscore", "refusal",
                       "parse_failure", "median_km"):  # fmt: skip
            assert theirs[f"{metric},none"] == ours[names.get(metric, metric)], (task, metric)  # to the last digit
        assert 0 < ours["refusal_rate"] < 1 and 0 < ours["acc@25km"] < 1 and ours["n"] == theirs["sample_len"]
        assert math.isfinite(theirs["median_km,none"])


@pytest.mark.slow
def test_hf_multimodal_runs_an_exported_task_on_the_tiny_vlm(tmp_path, monkeypatch):
    require("transformers", "local")
    from greval.testing import build_tiny_vlm

    monkeypatch.chdir(tmp_path)
    model_dir = build_tiny_vlm(tmp_path / "tiny")
    bench = make_fixture_bench(tmp_path / "bench", n=2, seed=0)
    tasks_dir = tmp_path / "lm_tasks"
    assert CliRunner().invoke(main, ["export", "lm-eval", "--data", str(bench), "--out", str(tasks_dir)]).exit_code == 0
    from lm_eval.tasks import TaskManager

    text = (tasks_dir / "greval_all.yaml").read_text().replace("max_gen_toks: 2048", "max_gen_toks: 8")
    (tasks_dir / "greval_all.yaml").write_text(text)
    out = lm_eval.simple_evaluate(
        model="hf-multimodal", model_args=f"pretrained={model_dir},dtype=float32", device="cpu", tasks=["greval_all"],
        task_manager=TaskManager(include_path=str(tasks_dir)), apply_chat_template=True, batch_size=2,
    )  # fmt: skip
    result = out["results"]["greval_all"]
    assert result["sample_len"] == 2 and 0 <= result["parse_failure,none"] <= 1
