"""`greval export lm-eval`: GREval-Bench (or any greval task) as lm-eval tasks.

    greval export lm-eval --data ~/data/GREval-Bench --tasks urban,natural,landmark,all --out TASKDIR
    lm_eval --model hf-multimodal --model_args pretrained=MODEL --include_path TASKDIR \
        --tasks greval_urban --apply_chat_template --log_samples --output_path OUT
    greval run --adapter replay --predictions OUT/…/samples_greval_urban_….jsonl --tasks urban --data …

TASKDIR gets, per task, `greval_<task>.yaml` (output_type generate_until) and
`greval_<task>.jsonl` (one row per sample: sample_id, gt_lat, gt_lon, the absolute
image_path and the rendered greval prompt), plus one `utils.py`. `doc_to_image` opens
the photo, `doc_to_text` is greval's prompt template, and `process_results` reads the
answer with greval's own parser. The metrics (acc@1km … acc@2500km, geoscore, refusal,
parse_failure: means over the samples; median_km: the median over parsed answers) are
aggregated by greval's own scorer (greval.score.summarize) over the samples in sample-id
order, exactly as `greval run` scores them, so the same outputs give the same numbers
in both harnesses to the last digit.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from greval.constants import ACC_KEYS

METRICS = (*ACC_KEYS, "geoscore", "refusal", "parse_failure")
LOWER_IS_BETTER = {"refusal", "parse_failure", "median_km"}

UTILS = '''"""lm-eval hooks for tasks written by `greval export lm-eval`: greval parses and scores."""

from PIL import Image

from greval.parse import parse_answer
from greval.score import summarize

_FROM_GREVAL = {"refusal": "refusal_rate", "parse_failure": "parse_failure_rate"}


def doc_to_text(doc):
    return "<image>" + doc["prompt"]


def doc_to_image(doc):
    with Image.open(doc["image_path"]) as image:
        return [image.convert("RGB")]


def process_results(doc, results):
    """One item per metric: the sample and greval's reading of its answer."""
    parsed = parse_answer(results[0])
    item = (str(doc["sample_id"]), doc["gt_lat"], doc["gt_lon"], parsed.lat, parsed.lon, parsed.status.value)
    return {name: item for name in METRICS}


def _score(items, key):
    records = [
        {"sample_id": sid, "gt_lat": gla, "gt_lon": glo, "lat": lat, "lon": lon, "status": status}
        for sid, gla, glo, lat, lon, status in sorted(items)
    ]
    value = summarize(records, n_boot=0, geocode=False)[_FROM_GREVAL.get(key, key)]
    return float("nan") if value is None else value


'''


def _utils_source() -> str:
    names = [*METRICS, "median_km"]
    hooks = "".join(f"def {_hook(name)}(items):\n    return _score(items, {name!r})\n\n\n" for name in names)
    return UTILS.replace("\n_FROM_GREVAL", f"\nMETRICS = {names!r}\n_FROM_GREVAL", 1) + hooks


def _hook(metric: str) -> str:
    """The aggregation function's name in utils.py: agg_acc_1km, agg_geoscore, ..."""
    return "agg_" + metric.replace("@", "_")


def _task_yaml(task: str, rows_file: str, max_gen_toks: int) -> dict:
    metrics = [
        {
            "metric": name,
            "aggregation": f"!function utils.{_hook(name)}",
            "higher_is_better": name not in LOWER_IS_BETTER,
        }
        for name in [*METRICS, "median_km"]
    ]
    return {
        "task": f"greval_{task}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": rows_file}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "!function utils.doc_to_text",
        "doc_to_image": "!function utils.doc_to_image",
        "doc_to_target": "",
        "process_results": "!function utils.process_results",
        "generation_kwargs": {"until": [], "max_gen_toks": max_gen_toks, "do_sample": False},
        "metric_list": metrics,
        "metadata": {"version": 1, "exported_by": "greval export lm-eval"},
    }


def _unquote_functions(text: str) -> str:
    import re

    return re.sub(r"'(!function [A-Za-z_.0-9]+)'", r"\1", text)


def export(data: str | Path | None, tasks: list[str], out: str | Path, template: str | None = None) -> list[Path]:
    """Write the lm-eval task folder; returns the YAML files written."""
    import yaml

    from greval.data import load_samples
    from greval.prompts import render
    from greval.task import resolve_tasks

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in resolve_tasks(tasks):
        result = load_samples(spec.dataset, data=data)
        samples = sorted(
            (s for s in result.samples if spec.scene is None or s.scene == spec.scene), key=lambda s: s.sample_id
        )
        name = template or spec.template or "coords"
        rows = out / f"greval_{spec.name}.jsonl"
        with rows.open("w", encoding="utf-8") as f:
            for s in samples:
                if s.image_path is None:
                    continue  # lm-eval opens photos by path: rows without a file cannot be asked
                row = {"sample_id": s.sample_id, "gt_lat": s.gt_lat, "gt_lon": s.gt_lon,
                       "image_path": str(Path(s.image_path).resolve()), "prompt": render(name, s)}  # fmt: skip
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        path = out / f"greval_{spec.name}.yaml"
        path.write_text(_unquote_functions(yaml.safe_dump(
            _task_yaml(spec.name, str(rows.resolve()), spec.generation.max_tokens), sort_keys=False, width=1000
        )), encoding="utf-8")  # fmt: skip
        written.append(path)
    (out / "utils.py").write_text(_utils_source(), encoding="utf-8")
    return written


@click.group("export")
def export_cli() -> None:
    """Write greval tasks in other harnesses' formats."""


@export_cli.command("lm-eval")
@click.option("--data", "-d", help="Local dataset folder or file (as for `greval run --data`).")
@click.option("--tasks", "-t", default="all", show_default=True, help="Comma-separated greval task names.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Task folder.")
@click.option("--template", help="Prompt template [default: the task's, else coords].")
def lmeval_command(data, tasks, out, template) -> None:
    """lm-eval task YAML + rows + utils.py: run GREval-Bench inside lm-eval.

    \b
    greval export lm-eval --data ~/data/GREval-Bench --tasks urban,all --out lm_tasks
    lm_eval --model hf-multimodal --model_args pretrained=MODEL --include_path lm_tasks \\
        --tasks greval_urban --apply_chat_template --log_samples --output_path out
    """
    written = export(data, [t.strip() for t in tasks.split(",") if t.strip()], out, template)
    for path in written:
        click.echo(f"wrote {path} (lm-eval task {path.stem})")
    click.echo(f"run: lm_eval --model hf-multimodal --model_args pretrained=MODEL --include_path {out} "
               f"--tasks {','.join(p.stem for p in written)} --apply_chat_template --log_samples --output_path OUT")  # fmt: skip
