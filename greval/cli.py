"""The `greval` command. Heavy modules are imported inside commands, so `--help` is instant."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from greval.cli_options import RUN_SETTINGS, adapter_options, model_call_options
from greval.errors import GrevalError

EXAMPLES = """
\b
Examples:
  greval run --adapter gre --tasks urban,natural,landmark --data ~/data/GREval-Bench
  greval run --adapter openai --model gpt-4o --tasks all --data DIR --concurrency 32
  greval run --adapter replay --predictions outputs.jsonl --model "my model" --tasks all --data DIR
  greval report results/RUN_ID --format latex
  greval compare results/RUN_A results/RUN_B
"""


class _Errors(click.Group):
    """Known user errors print one line, not a traceback (unless --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (`greval report ... | head`): not an error worth a message.
            # Point stdout at devnull so the interpreter's final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo(
                "\ngreval: interrupted. Everything answered so far is saved; re-run the same command to resume.",
                err=True,
            )
            sys.exit(130)
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            known = isinstance(e, GrevalError)  # the user's to fix: one line, exit 2
            click.echo(f"greval: error: {e}" if known else f"greval: unexpected {type(e).__name__}: {e}", err=True)
            if not known:
                click.echo("(run with `greval --debug ...` for the full traceback)", err=True)
            sys.exit(2)


@click.group(
    cls=_Errors, epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="greval")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """greval: measure how well vision-language models geo-locate photos.

    Runs a model (API, local GPU VLM, or saved outputs) on GREval-Bench and other
    geolocation sets, parses each answer into coordinates, and reports the share of
    answers within 1 / 25 / 200 / 750 / 2500 km (street, city, region, country,
    continent) of the truth.
    """
    ctx.obj = {"debug": debug}


@main.command(epilog=EXAMPLES)
@click.option(
    "--adapter",
    "-a",
    required=True,
    help="Model family: gre, hf, vllm, openai, anthropic, replay, random (`greval adapters`), or a path to your own adapter .py file.",
)
@click.option(
    "--tasks",
    "-t",
    help="Comma-separated task names (`greval tasks`) or task YAML paths [default: all; with --data "
    "alone, a table or photo folder is its own task].",
)
@click.option(
    "--model",
    "-m",
    help="Model name / checkpoint (hub id or local folder); for replay, the label its outputs are reported under.",
)
@click.option(
    "--data",
    "-d",
    help="Your photos: a CSV / TSV / JSONL / parquet table (image, lat, lon columns) or a folder of "
    "geotagged photos; or a local GREval-Bench copy (overrides the task's dataset location).",
)
@click.option(
    "--columns",
    help="Which table columns hold the image path, latitude, longitude (and id): image=COL,lat=COL,lon=COL.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Run folder [default: results/<run id>]. Re-running with the same folder resumes.",
)
@click.option("--granularity", help="Report only these of street,city,region,country,continent [default: all five].")
@click.option("--template", help="Prompt template name or .txt path [default: the task's].")
@click.option(
    "--max-tokens",
    "--max-new-tokens",
    "max_tokens",
    type=click.IntRange(min=1),
    help="Override the task's maximum output tokens.",
)
@click.option(
    "--temperature", type=click.FloatRange(min=0), help="Override the task's temperature (0 = greedy, the default)."
)
@click.option(
    "--seed", default=0, show_default=True, help="Seed for sampling, bootstrap intervals and the random baseline."
)
@click.option(
    "--earth",
    type=click.Choice(["haversine", "geodesic"]),
    default="haversine",
    show_default=True,
    help="Distance model: sphere of mean radius 6371.0088 km, or the WGS-84 ellipsoid.",
)
@click.option(
    "--shard", help="Run only slice I of N (I/N, I from 0), by a hash of the sample id; join with `greval merge`."
)
@click.option(
    "--scene-manifest",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV sample_id,scene overriding scene labels.",
)
@click.option(
    "--include-path",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Extra folder of task YAML files.",
)
@click.option("--predictions", type=click.Path(), help="[replay] JSONL/CSV of sample_id, output.")
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0),
    help="[api] Stop sending new requests once this many USD would be passed.",
)
@click.option(
    "--max-image-side", type=click.IntRange(min=16), help="[api] Downscale images whose longer side exceeds this."
)
@click.option(
    "--max-pixels", type=click.IntRange(min=256), help="[api, hf, vllm, gre] Downscale images above this many pixels."
)
@click.option("--min-pixels", type=click.IntRange(min=1), help="[hf, vllm, gre] Qwen-style lower pixel bound.")
@click.option(
    "--jpeg-quality", type=click.IntRange(1, 100), help="[api] JPEG quality when an image must be re-encoded."
)
@click.option("--detail", type=click.Choice(["high", "low", "auto"]), help="[openai] Image detail [default: high].")
@click.option(
    "--reasoning-effort",
    help="[openai, anthropic] Reasoning effort (low/medium/high; for anthropic also a thinking budget in tokens).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="[api] Response cache folder [default: $GREVAL_CACHE_DIR or ~/.cache/greval].",
)
@click.option(
    "--batch-size",
    callback=lambda ctx, param, v: _batch_size(v),
    help="[hf, vllm, gre] Samples per generate call, or auto: the largest that fits the GPU "
    "(the default on CUDA for hf / gre; 8 on a CPU).",
)
@click.option("--dtype", help="[hf, vllm, gre] e.g. bfloat16, float16, float32 [default: auto].")
@click.option("--device", help="[hf, gre] e.g. cuda, cuda:1, cpu.")
@click.option("--device-map", help="[hf, gre] e.g. auto to spread a large model over GPUs.")
@click.option("--attn-implementation", help="[hf, gre] e.g. sdpa, flash_attention_2.")
@click.option(
    "--trust-remote-code", is_flag=True, help="[hf, vllm] Run the checkpoint's own Python code (off unless asked)."
)
@click.option("--backend", type=click.Choice(["hf", "vllm"]), help="[gre] Inference engine [default: hf].")
@click.option("--tensor-parallel-size", type=click.IntRange(min=1), help="[vllm, gre] GPUs per model replica.")
@click.option("--data-parallel-size", type=click.IntRange(min=1), help="[vllm, gre] Model replicas.")
@click.option(
    "--gpu-memory-utilization", type=click.FloatRange(0, 1), help="[vllm, gre] Share of GPU memory vLLM may take."
)
@model_call_options(for_run=True)
@click.pass_context
def run(
    ctx: click.Context,
    adapter,
    tasks,
    model,
    data,
    columns,
    output,
    limit,
    granularity,
    template,
    max_tokens,
    temperature,
    seed,
    earth,
    shard,
    scene_manifest,
    include_path,
    extra,
    quiet,
    **adapter_flags,
) -> None:
    """Evaluate a model on one or more tasks and write a run folder.

    Writes RUN_DIR/predictions.jsonl (one record per sample, as answers arrive),
    metrics.json and run.json, then prints a summary. Options in [brackets] apply to
    those adapters only.

    Exit status: 0 every sample answered; 3 finished, but some requests failed (re-run
    the same command to retry only those); 2 bad input or options; 130 interrupted.
    """
    from greval.run import RunOptions, parse_shard
    from greval.run import run as run_eval

    options = adapter_options(adapter_flags, extra, RUN_SETTINGS)
    if max_tokens is not None:
        options["max_new_tokens"] = max_tokens
    if temperature is not None:
        options["temperature"] = temperature
    granularities = _granularities(granularity)
    opts = RunOptions(
        adapter=adapter,
        tasks=_tasks_for(tasks, data, columns),
        model=model,
        data=data,
        output=output,
        limit=limit,
        granularities=granularities,
        template=template,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        earth=earth,
        shard=parse_shard(shard) if shard else None,
        scene_manifest=scene_manifest,
        include_paths=list(include_path),
        adapter_options=options,
        progress=not quiet,
        argv=sys.argv[1:],
    )
    result = run_eval(opts)
    _print_summary(result.run_dir)
    if any((block.get("n_errors") or 0) for block in result.metrics.get("tasks", {}).values()):
        sys.exit(3)  # finished, but some samples have no answer yet: a retry loop can re-run


def _batch_size(value: str | None):
    if value is None or str(value).lower() == "auto":
        return None if value is None else "auto"
    if not str(value).isdigit() or int(value) < 1:
        raise click.BadParameter(f"{value!r} is neither a positive number nor auto", param_hint="--batch-size")
    return int(value)


def _tasks_for(tasks: str | None, data: str | None, columns: str | None) -> list:
    """--tasks, or with --data alone the user's table or photo folder as a task of its own."""
    if tasks is None and data is not None:
        from greval.own_data import data_task

        spec = data_task(data, columns)
        if spec is not None:
            return [spec]
    if columns:
        raise click.UsageError("--columns needs --data TABLE without --tasks")
    return _split(tasks or "all") or []


def _print_summary(run_dir: Path) -> None:
    from greval.report import load_run, summary_text

    click.echo(summary_text(load_run(run_dir)))
    click.echo(f"\nRun folder: {run_dir}")


@main.command("tasks")
@click.option("--include-path", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", "-d", help="Count samples in this local dataset folder.")
def tasks_cmd(include_path, data) -> None:
    """List tasks with their scene filter and sample counts."""
    from greval.data import load_samples
    from greval.task import available_tasks, load_task_file

    datasets: dict[str, list | str] = {}  # each dataset loaded once; a string says why not
    reasons: dict[str, str] = {}
    for name, path in available_tasks(list(include_path)).items():
        spec = load_task_file(path)
        key = repr(sorted(spec.dataset.items()))
        if key not in datasets:
            try:
                datasets[key] = load_samples(spec.dataset, data=data).samples
            except Exception as e:  # no local copy, or another dataset's format: still list the task
                datasets[key] = "?" if data else "? (--data DIR)"
                reasons[name] = str(e).splitlines()[0][:200]
        samples = datasets[key]
        count = (
            samples
            if isinstance(samples, str)
            else str(sum(spec.scene is None or s.scene == spec.scene for s in samples))
        )
        click.echo(f"{name:<14} {count:>16}  {spec.description}")
    if data:
        for name, reason in reasons.items():
            click.echo(f"? {name}: {reason}", err=True)


@main.command()
@click.argument("name", required=False)
def adapters(name) -> None:
    """List the built-in adapters, or one adapter's options (what -M KEY=VALUE sets)."""
    from greval.adapter import RUN_OPTIONS, builtin_names, declared_options, get_adapter_class

    if name is None:
        for known in builtin_names():
            click.echo(known)
        click.echo("(`greval adapters NAME` lists its options)", err=True)
        return
    fields = declared_options(get_adapter_class(name)) or {}
    for key, f in sorted(fields.items()):
        mark = "  [changes the answers]" if f.metadata.get("answer") else ""
        click.echo(f"{key:24} {f.type!s:18} {f.metadata.get('help', '')}{mark}")
    click.echo(f"(and, from the run: {', '.join(sorted(RUN_OPTIONS))})", err=True)


@main.group()
def data() -> None:
    """Dataset tools."""


@data.command()
@click.option("--data", "-d", "data_path", required=True, help="Dataset folder or file (the forms `run --data` takes).")
@click.option("--task", help="Task whose dataset format to check against [default: the --data's own form, else all].")
@click.option("--columns", help="As for `greval run`: image=COL,lat=COL,lon=COL for a table.")
@click.option(
    "--max-pixels", type=int, default=89_478_485, show_default=True, help="Flag images above this many pixels."
)
@click.option(
    "--scene-manifest", type=click.Path(exists=True, dir_okay=False), help="CSV sample_id,scene to check too."
)
@click.option("--decode", is_flag=True, help="Decode every image fully (slower; catches truncated JPEGs).")
def validate(data_path, task, columns, max_pixels, scene_manifest, decode) -> None:
    """Check a dataset: every problem with its sample id; exit code 1 when any."""
    from greval.task import resolve_tasks
    from greval.validate import validate as check

    spec = resolve_tasks(_tasks_for(task, data_path, columns))[0]
    problems = check(spec.dataset, data=data_path, max_pixels=max_pixels, manifest=scene_manifest, decode=decode)
    for p in problems:
        click.echo(str(p))
    click.echo(f"{len(problems)} problem(s) found" if problems else "no problems found", err=True)
    sys.exit(1 if problems else 0)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Folder for the merged run.")
def merge(run_dirs, output) -> None:
    """Join shard runs (`--shard I/N`) of one model into one run folder."""
    from greval.merge import merge_runs

    merge_runs(list(run_dirs), output)
    _print_summary(output)
    from greval.records import RUN_INFO, read_json

    missing = read_json(output / RUN_INFO).get("missing_shards")
    if missing:
        click.echo(
            f"greval: warning: shard(s) {', '.join(missing)} not among the merged runs: part of the data is missing",
            err=True,
        )


from greval.cli_results import (  # noqa: E402  (click only, like the commands below)
    _granularities,
    _split,
    audit,
    compare,
    leaderboard,
    report,
)
from greval.export_lmeval import export_cli  # noqa: E402  (click + yaml; loaders import inside)
from greval.judge import judge_cli  # noqa: E402  (click only; the API client loads inside the command)
from greval.train import train_cli  # noqa: E402  (click only; torch and TRL load inside the commands)

for _command in (report, audit, compare, leaderboard, export_cli):
    main.add_command(_command)
main.add_command(judge_cli)
main.add_command(train_cli)


if __name__ == "__main__":
    main()
