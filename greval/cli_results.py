"""`greval report`, `audit`, `compare` and `leaderboard`: the commands that read run
folders (greval/cli.py holds `run` and the group; these are added to it)."""

from __future__ import annotations

from pathlib import Path

import click


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


@click.command()
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


@click.command()
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
    wanted = A.check_request(run_dir, records, flag, list(overrides), task)
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


@click.command()
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


@click.command()
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
