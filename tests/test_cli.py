"""The CLI's other commands, driven as a user would: tasks, data validate, report, compare,
adapters; and the installed package (a built wheel) carrying its tasks and adapters."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from greval.cli import main
from greval.testing import make_fixture_bench

REPO = Path(__file__).resolve().parents[1]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def bench(tmp_path):
    return make_fixture_bench(tmp_path / "bench", n=24, seed=3)


def test_tasks_lists_counts_per_scene(bench):
    result = cli("tasks", "--data", bench)
    assert result.exit_code == 0, result.output
    rows = json.loads((bench / "GREval-Bench.json").read_text())
    scenes = Counter(r["scene"] for r in rows)
    counts = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert counts["all"] == str(len(rows))
    for scene in ("urban", "natural", "landmark"):
        assert counts[scene] == str(scenes[scene])


def test_data_validate_names_the_broken_sample(bench):
    assert cli("data", "validate", "--data", bench).exit_code == 0
    rows = json.loads((bench / "GREval-Bench.json").read_text())
    (bench / rows[2]["image_path"]).write_bytes(b"not an image")
    (bench / rows[5]["image_path"]).unlink()
    result = cli("data", "validate", "--data", bench)
    assert result.exit_code == 1
    assert rows[2]["sample_id"] in result.output and rows[5]["sample_id"] in result.output


def test_report_and_compare_on_real_runs(tmp_path, bench):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("run", "-q", "--adapter", "random", "--data", bench, "--output", a).exit_code == 0
    assert cli("run", "-q", "--adapter", "random", "--seed", "7", "--data", bench, "--output", b).exit_code == 0

    result = cli("report", a, b, "--format", "json", "--no-plots")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)  # notes (prompts, errored samples) go to stderr
    assert "note: random / all: prompt gre " in result.stderr
    assert len(rows) == 2 and {r["n"] for r in rows} == {24}

    result = cli("report", a, "--format", "csv")
    assert result.exit_code == 0
    assert sorted(p.suffix for p in (a / "plots").iterdir()).count(".png") >= 3

    same = cli("compare", a, a, "--json")
    assert same.exit_code == 0, same.output
    metrics = json.loads(same.output)["tasks"]["all"]
    assert metrics["acc@2500km"]["diff"] == 0 and metrics["acc@2500km"]["p_value"] == 1.0


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    result = cli("report", tmp_path)
    assert result.exit_code == 2 and "not a greval run folder" in result.output


def test_adapters_lists_every_builtin():
    result = cli("adapters")
    assert result.exit_code == 0
    assert set(result.output.split()) >= {"anthropic", "gre", "hf", "openai", "random", "replay", "vllm"}


def test_a_user_adapter_file_runs(tmp_path, bench):
    plugin = tmp_path / "paris.py"
    plugin.write_text(
        "from greval.adapter import Adapter\nfrom greval.types import Response\n\n"
        "class Paris(Adapter):\n    kind = 'open-weights'\n\n"
        "    def generate(self, requests):\n        return [Response(text='48.8566, 2.3522') for _ in requests]\n"
    )
    out = tmp_path / "run"
    result = cli("run", "-q", "--adapter", plugin, "--data", bench, "--output", out)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {(r["lat"], r["lon"]) for r in records} == {(48.8566, 2.3522)}


@pytest.mark.slow
def test_built_wheel_carries_tasks_templates_and_adapters(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("greval-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "greval/adapters/replay.py",
        "greval/adapters/openai.py",
        "greval/tasks/urban.yaml",
        "greval/tasks/_greval_bench.yaml",
        "greval/templates/gre.txt",
        "greval/leaderboard_templates/index.html",
        "greval/leaderboard_templates/greval.js",
        "greval/cli.py",
    ):
        assert needed in names, needed
    # Installed alone (no source tree on the path), the console entry point answers.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True
    )
    code = f"import sys; sys.path.insert(0, {str(target)!r}); from greval.task import available_tasks; import greval; print(greval.__file__); print(sorted(available_tasks()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(target) in out and "'urban'" in out


@pytest.mark.parametrize(("adapter", "blocked", "extra"), [("openai", "openai", "api"), ("hf", "torch", "local")])
def test_a_missing_extra_is_named_with_its_install_command(tmp_path, bench, adapter, blocked, extra):
    # Importing a module whose sys.modules entry is None raises ModuleNotFoundError, as
    # on a machine where only `pip install greval` (the core) was run.
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # a local checkpoint folder: torch is the first need
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from greval.cli import main\n"
        f"main(['run', '-q', '--adapter', {adapter!r}, '--model', {str(model)!r}, '--data', {str(bench)!r},"
        f" '--output', {str(tmp_path / 'r')!r}])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2
    assert f"needs the '{blocked}' package, which is not installed: pip install 'greval[{extra}]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_report_of_several_runs_never_writes_into_a_run_folder(tmp_path, bench):
    results = tmp_path / "results"
    a, b = results / "a", results / "b"
    assert cli("run", "-q", "--adapter", "random", "--data", bench, "--output", a).exit_code == 0
    assert cli("run", "-q", "--adapter", "random", "--seed", "7", "--data", bench, "--output", b).exit_code == 0
    before = sorted(p.name for p in a.iterdir())

    result = cli("report", a, b, "--format", "csv")
    assert result.exit_code == 0, result.output
    out = results / "compare-a-vs-b"
    assert f"in {out}" in result.output
    assert sorted(p.name for p in a.iterdir()) == before  # A's folder is untouched: no plots of B in it
    assert any(p.suffix == ".png" for p in out.iterdir())

    chosen = tmp_path / "figs"
    assert cli("report", a, b, "--out", chosen).exit_code == 0 and any(chosen.glob("*.png"))
    refused = cli("report", a, b, "--out", b)
    assert refused.exit_code == 2 and "is a run folder" in refused.output

    site = cli("leaderboard", *sorted(results.iterdir()), "--out", tmp_path / "site")
    assert site.exit_code == 0, site.output
    assert f"skipping {out}" in site.output


def test_template_gre_r1_is_vlm_r1s_question_and_runs_record_and_show_it(tmp_path, bench):
    from greval.prompts import load_template

    text = load_template("gre-r1").template
    suffix = (
        "First output the thinking process in <think> </think> tags and then output the final answer "
        "in <answer> </answer> tags."
    )
    assert text.endswith(" " + suffix) and "latitude and longitude" in text  # a plain question, then VLM-R1's
    out = tmp_path / "r1"
    assert (
        cli("run", "-q", "--adapter", "random", "--template", "gre-r1", "--data", bench, "--output", out).exit_code == 0
    )
    info = json.loads((out / "run.json").read_text())
    assert info["prompt_templates"] == {"all": "gre-r1"}
    result = cli("report", out, "--no-plots")
    assert f"prompt gre-r1 {info['prompt_hashes']['all'][:8]}" in result.stderr
