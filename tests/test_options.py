"""Adapters declare their options (issue 9 §5): `-M KEY=VALUE` sets any of them, unknown
keys and wrong types are refused with exit 2 and a suggestion, and the resume guard is
built from the options marked as changing the answers."""

from __future__ import annotations

import json

from _fake_api import FakeAPI
from click.testing import CliRunner

from greval.adapter import answer_option_names, get_adapter_class
from greval.cli import main
from greval.testing import make_fixture_bench


def _run(bench, out, url, *extra):
    args = ["run", "-q", "-a", "openai", "-m", "gpt-4o", "--base-url", url, "--data", str(bench), "--tasks", "all"]
    return CliRunner().invoke(main, [*args, "-o", str(out), *extra])


def test_m_sets_an_option_refuses_typos_and_guards_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=0)
    out = tmp_path / "run"
    with FakeAPI(latency=0.05) as server:
        result = _run(bench, out, server.openai_url, "-M", "concurrency=2", "-M", "max_pixels=250000", "--limit", "4")
        assert result.exit_code == 0, result.output
        assert server.peak_in_flight <= 2
        info = json.loads((out / "run.json").read_text())
        assert info["args"]["adapter_options"]["concurrency"] == 2  # read as YAML: an int

        typo = _run(bench, out, server.openai_url, "-M", "concurency=2")
        assert typo.exit_code == 2 and "unknown option 'concurency'" in typo.output
        assert "did you mean 'concurrency'?" in typo.output and "Traceback" not in typo.output
        wrong = _run(bench, out, server.openai_url, "-M", "concurrency=abc")
        assert wrong.exit_code == 2 and "concurrency='abc'" in wrong.output and "int" in wrong.output
        clash = _run(bench, out, server.openai_url, "-M", "concurrency=2", "--concurrency", "3")
        assert clash.exit_code == 2 and "contradicts" in clash.output

        # Another image budget changes the answers: resuming would mix two kinds of answers.
        refused = _run(bench, out, server.openai_url, "-M", "concurrency=2", "-M", "max_pixels=500000")
        assert refused.exit_code == 2 and "--max-pixels 250000 -> 500000" in refused.output
        # Another concurrency changes only the speed: the run resumes and finishes.
        sent = server.count
        resumed = _run(bench, out, server.openai_url, "-M", "concurrency=4", "-M", "max_pixels=250000")
        assert resumed.exit_code == 0, resumed.output
        assert server.count == sent + 2  # only the 2 samples --limit 4 left out
    assert json.loads((out / "metrics.json").read_text())["tasks"]["all"]["n"] == 6


def test_answer_changing_options_come_from_the_marks():
    assert answer_option_names(get_adapter_class("openai")) == (
        "detail",
        "jpeg_quality",
        "max_image_side",
        "max_pixels",
        "reasoning_effort",
    )
    assert "detail" not in answer_option_names(get_adapter_class("anthropic"))
    assert answer_option_names(get_adapter_class("hf")) == ("max_pixels", "min_pixels")


def test_greval_adapters_lists_an_adapters_options():
    result = CliRunner().invoke(main, ["adapters", "openai"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "[changes the answers]" in lines["detail"] and "[changes the answers]" not in lines["concurrency"]


def test_a_user_adapter_without_options_takes_m_as_it_is(tmp_path):
    plugin = tmp_path / "echo.py"
    plugin.write_text(
        "from greval.adapter import Adapter\nfrom greval.types import Response\n\n"
        "class Echo(Adapter):\n    kind = 'offline'\n\n"
        "    def generate(self, requests):\n"
        "        lat, lon = self.options['where']\n"
        "        return [Response(text=f'{lat}, {lon}') for _ in requests]\n"
    )
    bench = make_fixture_bench(tmp_path / "bench", n=2, seed=0)
    out = tmp_path / "run"
    args = ["run", "-q", "-a", str(plugin), "--data", str(bench), "--tasks", "all", "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "-M", "where=[12.5, -3.25]"])  # nothing declared: nothing refused
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {(r["lat"], r["lon"]) for r in records} == {(12.5, -3.25)}  # a YAML list reached the adapter


def test_judge_shares_runs_options_and_refuses_typos(tmp_path, monkeypatch):
    from test_judge import JUDGE, judgement, make_run

    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    run = make_run(tmp_path, "all")[0]
    args = ["judge", str(run), "--judge-model", JUDGE, "-q"]
    typo = CliRunner().invoke(main, [*args, "-M", "concurency=2"])
    assert typo.exit_code == 2 and "did you mean 'concurrency'?" in typo.output and "Traceback" not in typo.output
    fixed = CliRunner().invoke(main, [*args, "-M", "temperature=0.7"])  # the judge's own setting
    assert fixed.exit_code == 2 and "temperature 0" in fixed.output
    with FakeAPI(latency=0.05, responder=lambda entry: judgement(2, 2, [1], [1, 2])) as api:
        clash = CliRunner().invoke(
            main, [*args, "--base-url", api.openai_url, "--concurrency", "3", "-M", "concurrency=2"]
        )
        assert clash.exit_code == 2 and "contradicts" in clash.output and api.count == 0
        result = CliRunner().invoke(main, [*args, "-M", f"base_url={api.openai_url}", "-M", "concurrency=2"])
        assert result.exit_code == 0, result.output
        assert api.count == 4 and api.peak_in_flight == 2  # four judge requests, two at a time


def test_run_settings_are_not_adapter_options(tmp_path):
    result = CliRunner().invoke(main, ["run", "-a", "random", "--data", str(tmp_path), "-M", "seed=3"])
    assert result.exit_code == 2 and "use --seed" in result.output
