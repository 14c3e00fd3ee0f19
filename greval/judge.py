"""Reasoning-chain quality: `greval judge RUN_DIR` scores each model chain against the
reference chain with an LLM judge (key-step recall / precision, as MME-CoT and GeoRC).

GREval-Bench's own chain score (GPT-4o sorting steps into background / caption /
inference, scored with recall, RefCLIPScore and BERTScore) cannot be reproduced from the
public text. greval's documented, reproducible choice:

- Input per sample: the reference chain (the dataset's `gt_cot`) and the model's chain:
  the text inside `<think>…</think>` when the output has one (an unclosed `<think>`, cut
  by the token limit, counts up to the end), else the chain a server returned beside
  the answer (`meta["reasoning"]`: vLLM's reasoning parser, Claude's thinking), else
  the whole output.
- The judge (any chat model behind the `openai` adapter: OpenAI, or a local
  `vllm serve` of e.g. Qwen3 via `--base-url`) gets the fixed prompt
  `greval/templates/cot_judge.txt` (version `JUDGE_VERSION`, its sha256 recorded),
  text only, greedy, and answers one JSON object: `reference_steps` and `model_steps`
  (both chains split into key steps), `matched_reference_steps` (numbers, from 1, of the
  reference steps some model step states) and `supported_model_steps` (numbers of the
  model steps the reference states or directly implies).
- Per sample, with R reference steps, M model steps, m matched and s supported (distinct
  valid numbers): recall = m / R, precision = s / M (0 when M = 0), F1 = 2PR / (P + R)
  (0 when P + R = 0). The judge never sees the photo, so precision measures agreement
  with the reference: a true clue the reference does not mention is "unsupported".
- `cot_score` = mean F1 over judged samples, as a fraction like every other rate in
  metrics.json (the leaderboard and reports show it ×100: the paper's 0–100 scale);
  `cot_recall` and `cot_precision` are the means of the per-sample values; `cot_n` the
  number of judged samples; 95 % seeded bootstrap intervals in `ci`.

Failures are never scored: a judge request that failed, an answer that is not the JSON
asked for, or one whose step numbers do not exist is recorded in cot.jsonl with its
cause, left out of every mean, counted as `cot_judge_failures`, and retried by the next
`greval judge`. Samples with no reference chain or no model answer are recorded as
skipped with the reason (`cot_skipped`).

Judge calls go through greval's API adapter: retries, the response cache (a second
`greval judge` pays nothing), cost accounting and concurrency. An unparseable answer is
a real answer and sits in the cache, so its retry asks again with the next `seed`
(a fresh request, cached in turn): a re-run still never pays twice for the same answer.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from greval.cli_options import JUDGE_SETTINGS, adapter_options, model_call_options
from greval.errors import GrevalError

COT_FILE = "cot.jsonl"  # = greval.records.COT
JUDGE_TEMPLATE = "cot_judge"
JUDGE_VERSION = "cot-judge-v1"  # bump when the prompt or the scoring rule changes
DEFAULT_JUDGE_MAX_TOKENS = 4096  # a thinking judge (Qwen3) needs room before its JSON
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
COT_KEYS = ("cot_score", "cot_recall", "cot_precision", "cot_n", "cot_judge_failures", "cot_skipped")
_ANSWER_FAILURES = ("unparseable", "invalid", "truncated")  # the judge answered, badly: retry with a new seed


class JudgeError(GrevalError):
    """A problem with `greval judge` as asked (its folder, its data)."""


class JudgeAnswerError(ValueError):
    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


# ------------------------------------------------------------------------- the prompt


@functools.cache
def template_text() -> str:
    from importlib import resources

    return resources.files("greval.templates").joinpath(f"{JUDGE_TEMPLATE}.txt").read_text(encoding="utf-8").strip()


def template_hash() -> str:
    import hashlib

    return hashlib.sha256(template_text().encode()).hexdigest()[:16]


def model_reasoning(output: str, meta: dict | None = None) -> str:
    """The chain to judge: `<think>` text, else a chain returned beside the answer, else all."""
    import re

    found = re.search(r"<think>(.*?)(?:</think>|$)", output, flags=re.S | re.I)
    if found and found.group(1).strip():
        return found.group(1).strip()
    beside = (meta or {}).get("reasoning")
    if isinstance(beside, str) and beside.strip():
        return beside.strip()
    return output.strip()


def render_prompt(reference: str, reasoning: str) -> str:
    import string

    # safe_substitute: a `$` inside a chain is left alone, never an error.
    return string.Template(template_text()).safe_substitute(reference=reference.strip(), reasoning=reasoning)


# ------------------------------------------------------------------------- the answer


def parse_judgement(text: str) -> dict[str, int]:
    """The judge's answer as counts {R, M, matched, supported}; JudgeAnswerError otherwise."""
    import json
    import re

    body = re.sub(r"<think>.*?</think>", "", text, flags=re.S | re.I).strip()
    if re.match(r"<think>", body, flags=re.I):
        raise JudgeAnswerError("unparseable", "the answer is all reasoning (<think> never closed)")
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.S | re.I)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        start, end = body.find("{"), body.rfind("}")
        try:
            data = json.loads(body[start : end + 1]) if 0 <= start < end else None
        except json.JSONDecodeError:
            data = None
        if data is None:
            raise JudgeAnswerError("unparseable", f"no JSON object in the answer: {text[:200]!r}") from None
    if not isinstance(data, dict):
        raise JudgeAnswerError("unparseable", f"the answer is JSON but not an object: {type(data).__name__}")
    for key in ("reference_steps", "model_steps", "matched_reference_steps", "supported_model_steps"):
        if not isinstance(data.get(key), list):
            raise JudgeAnswerError("invalid", f"{key!r} is missing or not a list")
    n_ref, n_model = len(data["reference_steps"]), len(data["model_steps"])
    if n_ref == 0:
        raise JudgeAnswerError("invalid", "the judge found no step in the reference chain")

    def numbers(key: str, limit: int) -> set[int]:
        out = set()
        for x in data[key]:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or x != int(x) or not 1 <= x <= limit:
                raise JudgeAnswerError("invalid", f"{key} holds {x!r}, not a step number from 1 to {limit}")
            out.add(int(x))
        return out

    return {
        "reference_steps": n_ref,
        "model_steps": n_model,
        "matched": len(numbers("matched_reference_steps", n_ref)),
        "supported": len(numbers("supported_model_steps", n_model)),
    }


def chain_scores(counts: dict[str, int]) -> tuple[float, float, float]:
    """(recall, precision, F1) from the judge's counts (see the module docstring)."""
    recall = counts["matched"] / counts["reference_steps"]
    precision = counts["supported"] / counts["model_steps"] if counts["model_steps"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return recall, precision, f1


# ------------------------------------------------------------------------- cot.jsonl


def iter_cot(run_dir: Path):
    """Every whole line of RUN_DIR/cot.jsonl, in the order written (greval/records.py)."""
    from greval.records import iter_jsonl

    return iter_jsonl(Path(run_dir) / COT_FILE)


def read_cot(run_dir: Path) -> list[dict]:
    """The current record per (task, sample_id) of RUN_DIR/cot.jsonl (the last one wins)."""
    from greval.records import RunFolder

    return RunFolder(run_dir).cot()


def _append(path: Path, records: list[dict]) -> None:
    from greval.records import append_jsonl

    append_jsonl(path, records)


# ------------------------------------------------------------------------- metrics


def add_cot_metrics(metrics: dict, records: list[dict], seed: int, keys=None, judge: dict | None = None) -> None:
    """Add the cot keys to each task block (and its by_scene blocks) of `metrics`, in place.

    `records` are cot.jsonl's current records; only those of `judge` (model, template
    hash) count when given, and only (task, sample_id) in `keys` when given."""
    import numpy as np

    from greval.score import UNKNOWN_SCENE
    from greval.stats import boot_mean, percentile_ci, rng_for

    if judge:
        records = [
            r
            for r in records
            if r.get("status") == SKIPPED
            or (r.get("judge_model") == judge.get("model") and r.get("template_hash") == judge.get("template_hash"))
        ]
    if keys is not None:
        records = [r for r in records if (r["task"], r["sample_id"]) in keys]
    records = sorted(records, key=lambda r: (r["task"], r["sample_id"]))  # order-free bootstrap

    def block(recs: list[dict], group: str) -> dict:
        ok = [r for r in recs if r["status"] == OK]
        out: dict = {"cot_n": len(ok)}
        out["cot_judge_failures"] = sum(r["status"] == FAILED for r in recs)
        out["cot_skipped"] = sum(r["status"] == SKIPPED for r in recs)
        ci = {}
        for key, field in (("cot_score", "f1"), ("cot_recall", "recall"), ("cot_precision", "precision")):
            values = np.array([r[field] for r in ok], dtype=np.float64)
            out[key] = float(values.mean()) if len(values) else None
            ci[key] = percentile_ci(boot_mean(values, len(values), rng_for(seed, key, group), 1000))
        out["ci"] = ci
        return out

    for task, task_block in metrics.get("tasks", {}).items():
        recs = [r for r in records if r["task"] == task]
        if not recs:
            continue
        found = block(recs, "")
        task_block.setdefault("ci", {}).update(found.pop("ci"))
        task_block.update(found)
        for scene, scene_block in (task_block.get("by_scene") or {}).items():
            in_scene = [r for r in recs if (r.get("scene") or UNKNOWN_SCENE) == scene]
            found = block(in_scene, f"scene:{scene}")
            scene_block.setdefault("ci", {}).update(found.pop("ci"))
            scene_block.update(found)


def add_cot_to_run_metrics(run_dir: Path, metrics: dict, keys=None, seed: int = 0) -> None:
    """For the run loop's rescoring: carry the chain scores of cot.jsonl into `metrics`."""
    from greval.records import RUN_INFO, read_json

    run_dir = Path(run_dir)
    if not (run_dir / COT_FILE).exists():
        return
    info = read_json(run_dir / RUN_INFO) if (run_dir / RUN_INFO).exists() else {}
    add_cot_metrics(metrics, read_cot(run_dir), seed, keys, info.get("cot_judge"))


# ------------------------------------------------------------------------- the run


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
    import asyncio
    from collections import Counter
    from dataclasses import replace
    from datetime import datetime, timezone

    from greval.adapter import get_adapter_class
    from greval.cost import cost_summary
    from greval.records import METRICS, RUN_INFO, read_json, read_predictions, write_json_atomic
    from greval.types import GenerationConfig, Request, Sample

    run_dir = Path(run_dir)
    if not (run_dir / RUN_INFO).exists() or not (run_dir / METRICS).exists():
        raise JudgeError(f"{run_dir} is not a finished run folder (no {RUN_INFO} / {METRICS}); run `greval run` first")
    info = read_json(run_dir / RUN_INFO)
    data = data or (info.get("args") or {}).get("data") or info.get("data_dir")

    references = _references(info, data)

    identity = {"model": judge_model, "template_hash": template_hash()}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    previous = {(r["task"], r["sample_id"]): r for r in read_cot(run_dir)}
    predictions = sorted(read_predictions(run_dir), key=lambda r: (r["task"], r["sample_id"]))
    generation = GenerationConfig(max_tokens=max_tokens, temperature=0.0)
    skipped: list[dict] = []
    todo: dict[int, list[tuple[dict, Request]]] = {}  # seed -> work
    per_task: Counter[str] = Counter()
    for pred in predictions:
        task, sid = pred["task"], pred["sample_id"]
        base = {"task": task, "sample_id": sid, "scene": pred.get("scene"), "judged_at": now}
        reference = references.get(task, {}).get(sid)
        output = pred.get("output")
        reason = _skip_reason(pred, references)
        if reason is not None:
            if previous.get((task, sid), {}).get("error") != reason:
                skipped.append({**base, "status": SKIPPED, "error": reason})
            continue
        if limit is not None and per_task[task] >= limit:
            continue
        per_task[task] += 1
        prompt = render_prompt(reference, model_reasoning(output, pred.get("meta")))
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
        todo.setdefault(seed, []).append(({**base, "prompt_hash": request.prompt_hash}, request))

    path = run_dir / COT_FILE
    if skipped:
        _append(path, skipped)
    cls = get_adapter_class("openai")
    options = dict(adapter_options or {})
    for name, value in (("base_url", base_url), ("api_key_env", api_key_env), ("concurrency", concurrency)):
        if value is not None:
            options[name] = value
    summaries, counts = [], Counter()
    n_todo = sum(len(v) for v in todo.values())
    if n_todo:
        from tqdm.auto import tqdm

        with tqdm(total=n_todo, unit="request", desc="greval judge", disable=not progress) as bar:
            adapter = cls(model=judge_model, **{**options, "seed": 0})
            try:
                work = [(base, replace(request, seed=seed)) for seed, items in sorted(todo.items()) for base, request in items]
                asyncio.run(_judge_all(adapter, work, judge_model, path, counts, bar))
                summaries.append(adapter.run_summary())
            finally:
                adapter.close()

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
        "requests_this_invocation": {"sent": n_todo, **counts},
        "failures": len(failed),
        "skipped": dict(Counter(r["error"] for r in current if r["status"] == SKIPPED)),
        # Every judge line on disk was paid for once (cache hits cost 0): the folder's total,
        # unknown (None) where the judge model has no price.
        **cost_summary(iter_cot(run_dir), "api"),
        "adapter_summaries": summaries,
    }
    info = read_json(run_dir / RUN_INFO)  # fresh: keep everything the run wrote
    info["cot_judge"] = record
    write_json_atomic(run_dir / RUN_INFO, info)
    return record


async def _judge_all(adapter, work, judge_model: str, path: Path, counts, bar) -> None:
    """Send `work` through the run engine, writing records the moment each answer arrives.
    Identical prompts (a sample in both `urban` and `all` with the same output, asked with
    the same seed) are sent once and shared."""
    from greval.engine import Job, dispatch

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
            records = [_judge_record(b, response, seed=seed, judge_model=judge_model, adapter=adapter) for b in job.targets]
            for record in records[1:]:  # one answer paid once
                record["cost_usd"] = 0.0 if record["cost_usd"] is not None else None
                record["shared_answer_of_task"] = records[0]["task"]
            for record in records:
                counts[record["status"]] += 1
                counts["cached"] += bool(response.cached)
            _append(path, records)
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


# ------------------------------------------------------------------------- the command


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
