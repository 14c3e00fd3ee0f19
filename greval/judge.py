"""`greval judge RUN_DIR`: ask an LLM judge about each answered sample's reasoning chain.

The scoring rule (what the judge is asked, how its answer becomes recall, precision and
F1, and how cot_score aggregates) is pure code in greval/cot.py; this module is the
command around it: reload the reference chains, plan the requests, send them through
the run engine (greval/engine.py) and write cot.jsonl, metrics.json and run.json.

Judge calls go through greval's API adapter: retries, the response cache (a second
`greval judge` pays nothing), cost accounting and concurrency. An unparseable answer is
a real answer and sits in the cache, so its retry asks again with the next `seed`
(a fresh request, cached in turn): a re-run still never pays twice for the same answer.
"""

from __future__ import annotations

from pathlib import Path

import click

from greval.cli_options import JUDGE_SETTINGS, adapter_options, model_call_options
from greval.cot import (
    COT_FILE,
    FAILED,
    JUDGE_TEMPLATE,
    JUDGE_VERSION,
    OK,
    SKIPPED,
    JudgeAnswerError,
    add_cot_metrics,
    chain_scores,
    iter_cot,
    model_reasoning,
    parse_judgement,
    read_cot,
    render_prompt,
    template_hash,
)
from greval.errors import GrevalError

DEFAULT_JUDGE_MAX_TOKENS = 4096  # a thinking judge (Qwen3) needs room before its JSON
_ANSWER_FAILURES = ("unparseable", "invalid", "truncated")  # the judge answered, badly: retry with a new seed


class JudgeError(GrevalError):
    """A problem with `greval judge` as asked (its folder, its data)."""


def _references(info: dict, data: str | None) -> dict[str, dict[str, str | None]]:
    """task -> sample_id -> reference chain, from the run's own dataset, loaded again."""
    from greval.data import load_samples

    references: dict[str, dict[str, str | None]] = {}
    loaded: dict[str, dict[str, str | None]] = {}
    for spec in info.get("tasks") or []:
        key = repr(sorted(spec["dataset"].items()))
        if key not in loaded:
            result = load_samples(spec["dataset"], data=data)
            loaded[key] = {s.sample_id: s.gt_cot for s in result.samples}
        references[spec["name"]] = loaded[key]
    return references


def _skip_reason(pred: dict, references: dict[str, dict[str, str | None]]) -> str | None:
    """Why a prediction's chain cannot be judged, or None when it can."""
    task, sid, output = pred["task"], pred["sample_id"], pred.get("output")
    if task not in references:
        return f"task {task!r} is not in run.json"
    if sid not in references[task]:
        return "sample not in the reloaded data"
    if not (references[task][sid] or "").strip():
        return "no reference chain (gt_cot) in the data"
    if pred.get("status") == "error" or output is None:
        return "no model answer (the request errored)"
    if not output.strip():
        return "empty model output"
    return None


def judge_run(
    run_dir: Path,
    judge_model: str,
    *,
    base_url: str | None = None,
    api_key_env: str | None = None,
    concurrency: int | None = None,
    data: str | None = None,
    limit: int | None = None,
    max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS,
    adapter_options: dict | None = None,
    progress: bool = True,
) -> dict:
    """Judge every answered sample of `run_dir` not judged yet; returns run.json's "cot_judge"."""
    from collections import Counter
    from datetime import datetime, timezone

    from greval.records import METRICS, RUN_INFO, append_jsonl, read_json, write_json_atomic

    run_dir = Path(run_dir)
    if not (run_dir / RUN_INFO).exists() or not (run_dir / METRICS).exists():
        raise JudgeError(f"{run_dir} is not a finished run folder (no {RUN_INFO} / {METRICS}); run `greval run` first")
    info = read_json(run_dir / RUN_INFO)
    data = data or (info.get("args") or {}).get("data") or info.get("data_dir")
    identity = {"model": judge_model, "template_hash": template_hash()}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    skipped, work = _plan(run_dir, _references(info, data), judge_model, limit, max_tokens, now)
    if skipped:
        append_jsonl(run_dir / COT_FILE, skipped)
    options = dict(adapter_options or {})
    for name, value in (("base_url", base_url), ("api_key_env", api_key_env), ("concurrency", concurrency)):
        if value is not None:
            options[name] = value
    counts: Counter[str] = Counter()
    summaries = _send(work, judge_model, options, run_dir / COT_FILE, counts, progress) if work else []

    current = read_cot(run_dir)
    metrics = read_json(run_dir / METRICS)
    add_cot_metrics(metrics, current, int(metrics.get("seed") or info.get("seed") or 0), judge=identity)
    write_json_atomic(run_dir / METRICS, metrics)

    failed = [r for r in current if r["status"] == FAILED and r.get("judge_model") == judge_model]
    record = {
        "model": judge_model,
        "adapter": "openai",
        "base_url": base_url,
        "template": JUDGE_TEMPLATE,
        "template_version": JUDGE_VERSION,
        "template_hash": identity["template_hash"],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "definition": "per sample F1 of key-step recall (matched/reference steps) and precision "
        "(supported/model steps); cot_score = mean F1 (fraction)",
        "judged_at": now,
        "requests_this_invocation": {"sent": len(work), **counts},
        "failures": len(failed),
        "skipped": dict(Counter(r["error"] for r in current if r["status"] == SKIPPED)),
        # Every judge line on disk was paid for once (cache hits cost 0): the folder's total,
        # unknown (None) where the judge model has no price.
        **_cost_summary(run_dir),
        "adapter_summaries": summaries,
    }
    info = read_json(run_dir / RUN_INFO)  # fresh: keep everything the run wrote
    info["cot_judge"] = record
    write_json_atomic(run_dir / RUN_INFO, info)
    return record


def _cost_summary(run_dir: Path) -> dict:
    from greval.cost import cost_summary

    return cost_summary(iter_cot(run_dir), "api")


def _plan(run_dir: Path, references, judge_model: str, limit: int | None, max_tokens: int, now: str):
    """(skip records to write, [(record base, request)] to send): every answered sample not
    judged yet by this judge on this very input, at most `limit` per task. A sample whose
    cached answer was a bad one is asked again with the next seed."""
    from collections import Counter
    from dataclasses import replace

    from greval.records import read_predictions
    from greval.types import GenerationConfig, Request, Sample

    previous = {(r["task"], r["sample_id"]): r for r in read_cot(run_dir)}
    predictions = sorted(read_predictions(run_dir), key=lambda r: (r["task"], r["sample_id"]))
    generation = GenerationConfig(max_tokens=max_tokens, temperature=0.0)
    skipped: list[dict] = []
    todo: list[tuple[int, dict, Request]] = []
    per_task: Counter[str] = Counter()
    for pred in predictions:
        task, sid = pred["task"], pred["sample_id"]
        base = {"task": task, "sample_id": sid, "scene": pred.get("scene"), "judged_at": now}
        reason = _skip_reason(pred, references)
        if reason is not None:
            if previous.get((task, sid), {}).get("error") != reason:
                skipped.append({**base, "status": SKIPPED, "error": reason})
            continue
        if limit is not None and per_task[task] >= limit:
            continue
        per_task[task] += 1
        prompt = render_prompt(references[task][sid], model_reasoning(pred.get("output"), pred.get("meta")))
        request = Request(sample=Sample(sid, 0.0, 0.0), task=task, prompt=prompt, generation=generation)
        old = previous.get((task, sid))
        seed = int((old or {}).get("judge_seed") or 0)
        if old is not None and old.get("prompt_hash") == request.prompt_hash and old.get("judge_model") == judge_model:
            if old["status"] == OK:
                continue  # judged already, by this judge, on this very input
            if old.get("error_cause") in _ANSWER_FAILURES:
                seed += 1  # the cached answer is the bad one: ask afresh
        else:
            seed = 0
        todo.append((seed, {**base, "prompt_hash": request.prompt_hash}, replace(request, seed=seed)))
    todo.sort(key=lambda item: item[0])  # stable: by seed, then task and sample id, as before
    return skipped, [(base, request) for _, base, request in todo]


def _send(work, judge_model: str, options: dict, path: Path, counts, progress: bool) -> list[dict]:
    """Ask the judge (the openai adapter) for `work`; returns the adapter's run summaries."""
    import asyncio

    from tqdm.auto import tqdm

    from greval.adapter import get_adapter_class
    from greval.cache import with_cache

    with tqdm(total=len(work), unit="request", desc="greval judge", disable=not progress) as bar:
        adapter = with_cache(get_adapter_class("openai")(model=judge_model, **{**options, "seed": 0}))
        try:
            asyncio.run(_judge_all(adapter, work, judge_model, path, counts, bar))
            return [adapter.run_summary()]
        finally:
            adapter.close()


async def _judge_all(adapter, work, judge_model: str, path: Path, counts, bar) -> None:
    """Send `work` through the run engine, writing records the moment each answer arrives.
    Identical prompts (a sample in both `urban` and `all` with the same output, asked with
    the same seed) are sent once and shared."""
    from greval.engine import Job, dispatch
    from greval.records import append_jsonl

    jobs: dict[tuple, Job] = {}
    for base, request in work:
        key = (request.prompt_hash, request.seed)
        if key in jobs:
            jobs[key].targets.append(base)
        else:
            jobs[key] = Job(request, [base])

    def on_done(batch: list[Job], responses: list) -> None:
        for job, response in zip(batch, responses, strict=True):
            seed = job.request.seed or 0
            records = [
                _judge_record(b, response, seed=seed, judge_model=judge_model, adapter=adapter) for b in job.targets
            ]
            for record in records[1:]:  # one answer paid once
                record["cost_usd"] = 0.0 if record["cost_usd"] is not None else None
                record["shared_answer_of_task"] = records[0]["task"]
            for record in records:
                counts[record["status"]] += 1
                counts["cached"] += bool(response.cached)
            append_jsonl(path, records)
            bar.update(len(records) - 1)  # dispatch counts the request itself

    await dispatch(adapter, list(jobs.values()), on_done, bar)


def _judge_record(base: dict, response, *, seed: int, judge_model: str, adapter) -> dict:
    record = {
        **base,
        "status": FAILED,
        "judge_model": judge_model,
        "judge_base_url": adapter.base_url or adapter.provider_url,
        "judge_seed": seed,
        "template_version": JUDGE_VERSION,
        "template_hash": template_hash(),
        "prompt_hash": base.get("prompt_hash"),
        "raw": response.text,
        "reference_steps": None,
        "model_steps": None,
        "matched": None,
        "supported": None,
        "recall": None,
        "precision": None,
        "f1": None,
        "error": None,
        "error_cause": None,
        "usage": {k: v for k, v in vars(response.usage).items() if v},
        "cost_usd": response.cost_usd,
        "cached": response.cached,
        "attempts": response.attempts,
    }
    if response.error is not None:
        record.update(error=response.error, error_cause="request")
    elif response.truncated:
        record.update(error="the judge's answer was cut by --max-tokens", error_cause="truncated")
    else:
        try:
            counts = parse_judgement(response.text or "")
        except JudgeAnswerError as e:
            record.update(error=str(e), error_cause=e.cause)
        else:
            recall, precision, f1 = chain_scores(counts)
            record.update(counts, status=OK, recall=recall, precision=precision, f1=f1)
    return record


@click.command("judge")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--judge-model", required=True, help="Judge chat model, e.g. gpt-4.1 or Qwen/Qwen3-32B (vLLM).")
@click.option("--data", "-d", help="Dataset folder with the reference chains [default: the run's].")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=16),
    default=DEFAULT_JUDGE_MAX_TOKENS,
    show_default=True,
    help="The judge's output limit (thinking judges need room).",
)
@model_call_options(for_run=False)
def judge_cli(run_dir, judge_model, data, max_tokens, limit, extra, quiet, **adapter_flags) -> None:
    """Score reasoning chains of RUN_DIR against the reference chains with an LLM judge.

    Writes RUN_DIR/cot.jsonl (one record per sample: the judge's raw answer, key-step
    counts, recall, precision, F1, or the error) and adds cot_score (mean F1),
    cot_recall, cot_precision, cot_n, cot_judge_failures and intervals to metrics.json.
    Re-running judges only samples not judged yet or whose judging failed.

    Exit status: 0 every answered sample judged; 3 some judge calls failed (re-run).
    """
    import sys

    from greval.adapter import check_options, get_adapter_class

    options = adapter_options(adapter_flags, extra, JUDGE_SETTINGS)  # the flags and -M set the openai adapter's options
    check_options(get_adapter_class("openai"), options)
    # A JudgeError reaches greval's CLI error handler: one line, exit status 2.
    record = judge_run(
        run_dir,
        judge_model,
        base_url=options.pop("base_url", None),
        api_key_env=options.pop("api_key_env", None),
        concurrency=options.pop("concurrency", None),
        data=data,
        limit=limit,
        max_tokens=max_tokens,
        adapter_options=options,
        progress=not quiet,
    )
    from greval.cost import describe as describe_cost
    from greval.records import METRICS, read_json

    metrics = read_json(run_dir / METRICS)
    for task, block in metrics.get("tasks", {}).items():
        if "cot_n" not in block:
            continue
        score = block.get("cot_score")
        shown = "—" if score is None else f"{100 * score:.1f}"
        click.echo(
            f"{task}: CoT {shown} (recall {_pct(block.get('cot_recall'))}, precision {_pct(block.get('cot_precision'))}) "
            f"over {block['cot_n']} chains; {block['cot_judge_failures']} judge failures, {block['cot_skipped']} skipped"
        )
    for reason, n in record["skipped"].items():
        click.echo(f"skipped {n}: {reason}")
    click.echo(f"judge cost: {describe_cost(record)} (cot.jsonl in {run_dir})")
    if record["failures"]:
        click.echo(f"{record['failures']} judge failures recorded with their cause: re-run to retry them", err=True)
        sys.exit(3)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"
