"""The `greval` command. Heavy modules are imported inside commands, so `--help` is instant."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

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


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _granularities(text: str | None, param_hint: str = "--granularity") -> list[str] | None:
    """The comma-separated granularity names, checked here so a typo gets one line."""
    names = _split(text)
    if names:
        from greval.score import GRANULARITIES

        bad = [g for g in names if g not in GRANULARITIES]
        if bad:
            raise click.BadParameter(f"{bad}; choose from {', '.join(GRANULARITIES)}", param_hint=param_hint)
    return names


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
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N samples of each task (a quick check).")
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
@click.option("--base-url", help="[openai, anthropic] Server URL, e.g. http://127.0.0.1:8000/v1 for `vllm serve`.")
@click.option(
    "--api-key-env",
    help="[openai, anthropic] Environment variable holding the key [default: OPENAI_API_KEY / ANTHROPIC_API_KEY].",
)
@click.option("--concurrency", type=click.IntRange(min=1), help="[api] Requests in flight at once.")
@click.option(
    "--request-timeout", type=click.FloatRange(min=0.1), help="[api] Seconds before one attempt is abandoned."
)
@click.option("--max-attempts", type=click.IntRange(min=1), help="[api] Attempts per request, retries included.")
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0),
    help="[api] Stop sending new requests once this many USD would be passed.",
)
@click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False),
    help="[api] JSON/YAML price table overriding the built-in one.",
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
@click.option("--no-cache", is_flag=True, help="[api] Do not read or write the response cache.")
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
@click.option(
    "-M",
    "--option",
    "extra",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any adapter option, value read as YAML (repeatable): -M concurrency=16 -M detail=high. "
    "Unknown keys are refused; `greval adapters NAME` lists an adapter's options.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
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

    options = {k: v for k, v in adapter_flags.items() if v not in (None, False)}
    for key, value in _model_options(extra).items():
        if key in options and options[key] != value:
            raise click.UsageError(
                f"-M {key}={value!r} contradicts the flag --{key.replace('_', '-')} {options[key]!r}"
            )
        options[key] = value
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


def _model_options(items) -> dict:
    """-M KEY=VALUE pairs, each value read as YAML (16 -> int, high -> str, [a, b] -> list)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-M")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = value
    return out


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


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format", "-f", "fmt", type=click.Choice(["md", "csv", "latex", "json"]), default="md", show_default=True
)
@click.option("--tasks", "-t", help="Only these tasks (comma-separated).")
@click.option("--scenes", is_flag=True, help="Per-scene breakdown instead of the main table.")
@click.option(
    "--plots/--no-plots",
    default=True,
    show_default=True,
    help="Also save plots (PNG and PDF): one run's in its folder, several runs' in --out.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the plots of several runs (default: compare-A-vs-B beside the first run). "
    "A run's own folder is never written by a comparison.",
)
@click.option("--map-lines", is_flag=True, help="Draw a line from each truth to its prediction on the map.")
def report(run_dirs, fmt, tasks, scenes, plots, out, map_lines) -> None:
    """Tables (to stdout) and plots for one run, or several side by side."""
    from greval.report import comparison_folder, load_run, metrics_table, render, scene_table

    runs = [load_run(d) for d in run_dirs]
    if scenes:
        import pandas as pd

        table = pd.concat([scene_table(r) for r in runs], ignore_index=True)
    else:
        table = metrics_table(runs, _split(tasks))
    click.echo(render(table, fmt))
    for note in _sample_notes(runs, _split(tasks)):
        click.echo(f"note: {note}", err=True)
    if plots:
        from greval.plots import make_plots

        out = Path(run_dirs[0]) / "plots" if len(runs) == 1 else comparison_folder(run_dirs, out)
        paths = make_plots(runs, out, map_lines=map_lines)
        click.echo(f"plots: {len(paths)} files in {out}", err=True)


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--flag", help="Only samples with this flag (e.g. multiple_answers, near_border).")
@click.option("--task", help="Only this task.")
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True)
@click.option(
    "--override",
    "overrides",
    multiple=True,
    metavar="[TASK:]ID=LAT,LON|refusal|parser",
    help="Your reading of a sample, kept in overrides.jsonl (the raw output is untouched); "
    "`parser` drops an earlier override. Repeatable. The run is re-scored.",
)
def audit(run_dir, flag, task, fmt, overrides) -> None:
    """Samples whose extracted answer is doubtful, and the text around each decision.

    Every answer gets flags where the reading is uncertain: coords_in_refusal,
    null_island, multiple_answers, order_guess, out_of_range, disagrees_with_simple
    (an independent simple extractor found another point). metrics.json reports the
    flagged share as flagged_rate. Overridden samples are listed too.
    """
    import json

    from greval import audit as A
    from greval.records import RUN_INFO, read_json, read_predictions, write_json_atomic

    records = read_predictions(run_dir)
    wanted = A.check_request(run_dir, records, flag, list(overrides))
    if wanted:
        from greval.run import score_run_dir

        A.append_overrides(run_dir, wanted)
        info = read_json(run_dir / RUN_INFO)
        info["overrides"] = [vars(o) for o in A.read_overrides(run_dir)]
        write_json_atomic(run_dir / RUN_INFO, info)
        args = info.get("args", {})
        metrics = score_run_dir(
            run_dir, None, args.get("granularities"), info.get("earth", "haversine"), info.get("seed", 0)
        )
        n = sum(b.get("n_overridden", 0) for b in metrics["tasks"].values())
        click.echo(
            f"{len(wanted)} override(s) stored in {run_dir / A.OVERRIDES}; {n} sample(s) now overridden; metrics.json re-scored",
            err=True,
        )
        records = read_predictions(run_dir)
    rows = [A.audit_row(r) for r in A.flagged(records, flag, task)]
    if fmt == "jsonl":
        click.echo("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), nl=False)
    else:
        click.echo(A.format_text(rows), nl=False)
        n_scored = sum(1 for r in records if r.get("status") != "error" and (task is None or r["task"] == task))
        click.echo(f"{len(rows)} of {n_scored} scored samples listed", err=True)


def _sample_notes(runs, tasks: list[str] | None) -> list[str]:
    """What a table's N hides: samples that errored (left out of N), and runs that
    were scored on different numbers of samples of the same task."""
    from greval.cost import describe as describe_cost
    from greval.report import prompt_label

    notes: list[str] = []
    n_by_task: dict[str, list[tuple[str, int | None]]] = {}
    for run in runs:
        cost = describe_cost(run.info)
        if cost is not None:
            notes.append(f"{run.label}: cost {cost}")
        for task, block in run.metrics["tasks"].items():
            if tasks and task not in tasks:
                continue
            notes.append(f"{run.label} / {task}: prompt {prompt_label(run.info, task)}")
            n_by_task.setdefault(task, []).append((run.label, block.get("n")))
            if block.get("n_errors"):
                notes.append(
                    f"{run.label} / {task}: {block['n_errors']} samples errored and are not in N "
                    f"(re-run the same command on {run.path} to fill them)"
                )
    for task, counts in n_by_task.items():
        if len({n for _, n in counts}) > 1:
            shown = ", ".join(f"{label} {n}" for label, n in counts)
            notes.append(f"{task}: the runs were scored on different numbers of samples ({shown})")
    return notes


@main.command()
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--granularity", help="Only these granularities.")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full comparison as JSON.")
@click.option(
    "--ignore-data-hash",
    is_flag=True,
    help="Compare runs whose data hash differs although the ground truth of every shared id agrees.",
)
def compare(run_a, run_b, granularity, seed, as_json, ignore_data_hash) -> None:
    """Is model A really better than B? Paired differences on the samples both runs answered,
    with a p-value per metric (exact McNemar for accuracies, paired bootstrap otherwise)."""
    import json

    from greval.compare import compare_records, different_data
    from greval.records import read_predictions
    from greval.report import ReportError

    names = _granularities(granularity)
    # Distances as each run measured them (metrics.json), so A and B match their own reports.
    earths = {
        json.loads((d / "metrics.json").read_text(encoding="utf-8")).get("earth", "haversine")
        if (d / "metrics.json").is_file()
        else "haversine"
        for d in (run_a, run_b)
    }
    if len(earths) > 1:
        raise ReportError(
            f"{run_a} and {run_b} measured distances on different Earth models ({', '.join(sorted(earths))})"
        )
    records_a, records_b = read_predictions(run_a), read_predictions(run_b)
    mismatch = different_data(records_a, records_b, *(_run_info(d) for d in (run_a, run_b)))
    if mismatch and not (mismatch[1] and ignore_data_hash):
        raise ReportError(f"{run_a} and {run_b}: {mismatch[0]}")
    result = compare_records(records_a, records_b, names, seed=seed, earth=earths.pop())
    if not result["tasks"]:
        only = f"A has {result['only_in_a'] or 'no answers'}, B has {result['only_in_b'] or 'no answers'}"
        raise ReportError(f"{run_a} and {run_b} have no task with answers in common ({only})")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for run, only in ((run_a, result["only_in_a"]), (run_b, result["only_in_b"])):
        if only:
            click.echo(f"not compared: task(s) {', '.join(only)} only in {run}", err=True)
    for task, metrics in result["tasks"].items():
        click.echo(f"\n{task}  (A = {run_a.name}, B = {run_b.name})")
        click.echo(f"  {'metric':<16}{'A':>12}{'B':>12}{'A-B':>12}  {'95% CI of A-B':<24}{'p':>9}  n")
        for name, m in metrics.items():
            ci = m.get("ci") or [None, None]
            cells = [_num(m.get("a")), _num(m.get("b")), _num(m.get("diff"))]
            ci_text = f"[{_num(ci[0]).strip()}, {_num(ci[1]).strip()}]"
            p = m.get("p_value")
            click.echo(
                f"  {name:<16}{cells[0]}{cells[1]}{cells[2]}  {ci_text:<24}{(f'{p:.4f}' if p is not None else '–'):>9}  {m.get('n')}"
            )


def _run_info(run_dir: Path) -> dict:
    import json

    path = run_dir / "run.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _num(x) -> str:
    # 12 wide: a GeoScore or km difference (-1706.0805) must not run into its neighbour.
    return f"{x:>12.4f}" if isinstance(x, (int, float)) else f"{'–':>12}"


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


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder for the static site.")
@click.option(
    "--data-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Dataset folder, for thumbnails when run.json lacks it.",
)
@click.option(
    "--granularity",
    default="country",
    show_default=True,
    help="Granularity of the significance matrix (street, city, region, country, continent).",
)
@click.option(
    "--common-samples",
    is_flag=True,
    help="Rank every run of a table on the samples all of them answered (re-scored), not on its own.",
)
def leaderboard(run_dirs, out, data_root, granularity, common_samples) -> None:
    """Build a static HTML leaderboard (SITE/index.html) that works offline from file://."""
    from greval.leaderboard import build_site
    from greval.records import RUN_INFO
    from greval.report import ReportError, load_run

    _granularities(granularity)
    from greval.report import REPORT_MARKER

    for folder in [d for d in run_dirs if (d / REPORT_MARKER).is_file()]:  # `results/*` holds comparisons too
        click.echo(f"leaderboard: skipping {folder}: a `greval report` comparison, not a run", err=True)
    run_dirs = [d for d in run_dirs if not (d / REPORT_MARKER).is_file()]
    for run_dir in run_dirs:  # a folder that is not a run: one line naming it
        load_run(run_dir)
        if not (run_dir / RUN_INFO).is_file():
            raise ReportError(f"{run_dir} is not a greval run folder: no {RUN_INFO}")
    index = build_site(
        list(run_dirs),
        out,
        data_root=data_root,
        granularity_for_significance=granularity,
        common_samples=common_samples,
    )
    click.echo(f"leaderboard: {index}")


from greval.export_lmeval import export_cli  # noqa: E402  (click + yaml; loaders import inside)
from greval.judge import judge_cli  # noqa: E402  (click only; the API client loads inside the command)
from greval.train import train_cli  # noqa: E402  (click only; torch and TRL load inside the commands)

main.add_command(export_cli)
main.add_command(judge_cli)
main.add_command(train_cli)


if __name__ == "__main__":
    main()
