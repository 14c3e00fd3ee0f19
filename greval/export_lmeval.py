"""`greval export lm-eval`: greval tasks (GREval-Bench, your own photos) as lm-eval tasks.

    greval export lm-eval --data ~/data/GREval-Bench --tasks urban,natural,landmark,all --out TASKDIR
    lm_eval --model hf-multimodal --model_args pretrained=MODEL --include_path TASKDIR \
        --tasks greval_urban --apply_chat_template --log_samples --output_path OUT
    greval run --adapter replay --predictions OUT/…/samples_greval_urban_….jsonl --tasks urban --data …

TASKDIR gets, per task, `greval_<task>.yaml` (output_type generate_until) and
`greval_<task>.jsonl` (one row per sample, in sample-id order: sample_id, gt_lat, gt_lon,
the absolute image_path and the prompt rendered from greval's template), plus one
`utils.py` that imports greval's hooks (greval/lmeval_hooks.py: the metric rules are
there). Paths in the YAML and rows are absolute, so lm-eval runs from any folder.

The samples are those `greval run` would ask with the same --data, --tasks and
--scene-manifest. A sample whose photo cannot be opened is left out and named (lm-eval
would stop at it); its replay then records it as an error, which greval leaves out of n
as lm-eval did. Photos held as bytes in a dataset (`format: hf`, a format plugin) are
written to TASKDIR/images/ so lm-eval can open them by path.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from greval.lmeval_hooks import LOWER_IS_BETTER, MEANS, OVER_ALL
from greval.types import Sample, image_problem

UTILS = '''"""lm-eval hooks of the tasks `greval export lm-eval` wrote: greval's prompt, parser and
scorer. The rules are in greval/lmeval_hooks.py (pip install greval in lm-eval's environment)."""

from greval.lmeval_hooks import (  # noqa: F401
    agg_geoscore,
    agg_median_km,
    doc_to_image,
    doc_to_text,
    process_results,
)
'''


@dataclass
class ExportResult:
    tasks: dict[str, int] = field(default_factory=dict)  # lm-eval task name -> rows written
    yaml_files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the data's problems, as `greval run` lists them
    left_out: set[str] = field(default_factory=set)  # ids of samples skipped by the loader or unreadable


def lmeval_name(task: str) -> str:
    """greval task name -> lm-eval task name: `greval_` + the name, in characters lm-eval's
    --tasks accepts (a task named after `my photos.csv` becomes greval_my_photos)."""
    return "greval_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", task)


def _metric_list() -> list[dict[str, Any]]:
    names = [*MEANS, *OVER_ALL]
    return [
        {
            "metric": name,
            "aggregation": "mean" if name in MEANS else f"!function utils.agg_{name}",
            "higher_is_better": name not in LOWER_IS_BETTER,
        }
        for name in names
    ]


def _task_yaml(name: str, rows_file: Path, generation: Any) -> dict[str, Any]:
    # greval's decoding settings; `until: []` so that no stop string cuts a reasoning chain
    # (lm-eval's default for generate_until stops at the first blank line).
    gen: dict[str, Any] = {"until": [], "max_gen_toks": generation.max_tokens, "do_sample": not generation.greedy}
    if not generation.greedy:
        gen.update(temperature=generation.temperature, top_p=generation.top_p)
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(rows_file)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "!function utils.doc_to_text",
        "doc_to_image": "!function utils.doc_to_image",
        "doc_to_target": "",
        "process_results": "!function utils.process_results",
        "generation_kwargs": gen,
        "metric_list": _metric_list(),
        "metadata": {"version": 1, "exported_by": "greval export lm-eval"},
    }


def _dump_yaml(config: dict[str, Any]) -> str:
    """YAML with lm-eval's `!function` tags unquoted (safe_dump would quote them as strings)."""
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, width=1000, allow_unicode=True)
    return re.sub(r"'(!function [A-Za-z_.0-9]+)'", r"\1", text)


def _image_path(sample: Sample, images: Path) -> Path:
    """A path lm-eval can open: the sample's own file, or its bytes written under `images`."""
    if sample.image_path is not None:
        return Path(sample.image_path).expanduser().resolve()
    data = sample.image_bytes()
    suffix = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg" if data[:2] == b"\xff\xd8" else ".img"
    path = images / (hashlib.sha256(data).hexdigest()[:32] + suffix)  # named by content: no clash between datasets
    images.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        path.write_bytes(data)
    return path.resolve()


def _checked_image(sample: Sample, images: Path, seen: dict[int, Path | str]) -> Path | str:
    """The openable image path of `sample`, or the message saying why it cannot be used.
    Opening reads the header only (format and size), not the pixels: cheap for 3,000 photos."""
    key = id(sample)  # a sample in several tasks (urban and all) is checked once
    if key not in seen:
        from PIL import Image

        try:
            path = _image_path(sample, images)
            with Image.open(path) as image:
                image.size  # noqa: B018 - the header is parsed on open; a non-image raises there
            seen[key] = path
        except Exception as exc:  # any unreadable image: name it and go on with the others
            seen[key] = image_problem(sample, exc)
    return seen[key]


def _samples(spec: Any, data: str | None, manifest: str | None, cache: dict[str, Any], out: ExportResult) -> list:
    """The task's samples in sample-id order; each dataset is loaded once and its problems kept."""
    from greval.data import load_samples

    key = repr(sorted(spec.dataset.items()))
    if key not in cache:
        cache[key] = result = load_samples(spec.dataset, data=data, manifest=manifest)
        out.problems.extend(str(p) for p in result.problems)
        skipped = result.problems[: result.extra.get("n_skipped", 0)]  # load_samples lists these first
        out.left_out.update(str(p.sample_id or p.where) for p in skipped)
    result = cache[key]
    return sorted((s for s in result.samples if spec.scene is None or s.scene == spec.scene), key=lambda s: s.sample_id)


def export(
    data: str | Path | None,
    tasks: list[Any],
    out: str | Path,
    template: str | None = None,
    scene_manifest: str | None = None,
    include_paths: list[Path] | None = None,
) -> ExportResult:
    """Write the lm-eval task folder `out` for `tasks` (names, YAML paths or TaskSpecs)."""
    from greval.prompts import render
    from greval.task import resolve_tasks

    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = None if data is None else str(data)
    cache: dict[str, Any] = {}
    seen: dict[int, Path | str] = {}
    result = ExportResult()
    for spec in resolve_tasks(tasks, include_paths):
        name = lmeval_name(spec.name)
        rows = out / f"{name}.jsonl"
        n = 0
        with rows.open("w", encoding="utf-8") as f:
            for s in _samples(spec, data, scene_manifest, cache, result):
                image = _checked_image(s, out / "images", seen)
                if isinstance(image, str):
                    if s.sample_id not in result.left_out:
                        result.problems.append(image)
                        result.left_out.add(s.sample_id)
                    continue
                row = {"sample_id": s.sample_id, "gt_lat": s.gt_lat, "gt_lon": s.gt_lon, "image_path": str(image),
                       "prompt": render(template or spec.template or "coords", s)}  # fmt: skip
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        if n == 0:
            raise click.ClickException(f"task {spec.name}: no sample with a readable photo to export")
        path = out / f"{name}.yaml"
        path.write_text(_dump_yaml(_task_yaml(name, rows, spec.generation)), encoding="utf-8")
        result.tasks[name] = n
        result.yaml_files.append(path)
    (out / "utils.py").write_text(UTILS, encoding="utf-8")
    return result


@click.group("export")
def export_cli() -> None:
    """Write greval tasks in other harnesses' formats."""


@export_cli.command("lm-eval")
@click.option("--data", "-d", help="Dataset folder or your photos' table / folder (as for `greval run --data`).")
@click.option("--tasks", "-t", help="Comma-separated greval task names [default: all; with --data alone, its task].")
@click.option("--columns", help="Table columns as for `greval run`: image=COL,lat=COL,lon=COL.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Task folder.")
@click.option("--template", help="Prompt template name or .txt path [default: the task's, else coords].")
@click.option("--scene-manifest", type=click.Path(exists=True, dir_okay=False), help="CSV sample_id,scene.")
@click.option("--include-path", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
def lmeval_command(data, tasks, columns, out, template, scene_manifest, include_path) -> None:
    """lm-eval task YAML + rows + utils.py: run GREval-Bench inside lm-eval.

    \b
    greval export lm-eval --data ~/data/GREval-Bench --tasks urban,all --out lm_tasks
    lm_eval --model hf-multimodal --model_args pretrained=MODEL --include_path lm_tasks \\
        --tasks greval_urban --apply_chat_template --log_samples --output_path out
    greval run --adapter replay --predictions out/*/samples_greval_urban_*.jsonl --tasks urban --data …
    """
    from greval.errors import GrevalError

    try:
        names: list[Any] = [t.strip() for t in (tasks or "all").split(",") if t.strip()]
        if tasks is None and data is not None:
            from greval.own_data import data_task

            spec = data_task(data, columns)
            names = [spec] if spec is not None else names
        elif columns:
            raise click.UsageError("--columns needs --data TABLE without --tasks")
        result = export(data, names, out, template, scene_manifest, list(include_path))
    except GrevalError as e:
        raise click.ClickException(str(e)) from None
    if result.problems:
        shown = "\n  ".join(result.problems[:5])
        more = f"\n  … and {len(result.problems) - 5} more" if len(result.problems) > 5 else ""
        click.echo(f"greval: {len(result.problems)} problem(s) in the data ({len(result.left_out)} samples left "
                   f"out):\n  {shown}{more}", err=True)  # fmt: skip
    for path in result.yaml_files:
        click.echo(f"wrote {path} (lm-eval task {path.stem}, {result.tasks[path.stem]} samples)")
    click.echo(f"run: lm_eval --model hf-multimodal --model_args pretrained=MODEL --include_path {out} "
               f"--tasks {','.join(result.tasks)} --apply_chat_template --log_samples --output_path OUT")  # fmt: skip
