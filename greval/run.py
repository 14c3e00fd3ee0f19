"""The run loop: tasks → requests → adapter → parsed, scored records on disk.

Every answer is appended to RUN_DIR/predictions.jsonl the moment it arrives, so a
crash loses nothing that was paid for. Re-running the same command with the same
`--output` asks only for samples that are missing or errored. Identical requests from
overlapping tasks (a sample in both `urban` and `all`) are sent once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from greval import __version__
from greval.adapter import (
    Adapter,
    AdapterError,
    answer_option_names,
    check_options,
    get_adapter_class,
    missing_extra,
)
from greval.cache import with_cache
from greval.engine import Job, batched_for, dispatch
from greval.errors import GrevalError
from greval.prompts import render
from greval.provenance import ANSWER_OPTIONS, SCORING_LIBRARIES, check_resumable, git_commit, library_versions
from greval.records import (
    ERROR,
    METRICS,
    PROBLEMS,
    RUN_INFO,
    SCHEMA_VERSION,
    TRUNCATED,
    Prediction,
    PredictionWriter,
    iter_raw,
    latest_records,
    read_json,
    read_predictions,
    with_overrides,
    write_json_atomic,
)
from greval.task import TaskSpec, resolve_tasks
from greval.types import GenerationConfig, Request, Response, Sample


class RunError(GrevalError):
    """A problem with the run as asked (its folder, its options)."""


@dataclass
class RunOptions:
    adapter: str
    tasks: list[str]
    model: str | None = None
    data: str | None = None
    output: Path | None = None
    limit: int | None = None
    granularities: list[str] | None = None
    template: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int = 0
    earth: str = "haversine"
    shard: tuple[int, int] | None = None
    scene_manifest: str | None = None
    include_paths: list[Path] = field(default_factory=list)
    adapter_options: dict[str, Any] = field(default_factory=dict)
    results_root: Path = Path("results")
    progress: bool = True
    argv: list[str] | None = None


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    info: dict[str, Any]


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not (0 <= int(m[1]) < int(m[2])):
        raise RunError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4), not {text!r}")
    return int(m[1]), int(m[2])


def in_shard(sample_id: str, shard: tuple[int, int] | None) -> bool:
    # By a hash of the id, not the position: a shard keeps its samples when the data grows.
    if shard is None:
        return True
    digest = hashlib.sha1(sample_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "model"


def _default_run_dir(opts: RunOptions) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = _slug(Path(opts.model).name if opts.model else opts.adapter)
    return opts.results_root / f"{stamp}-{opts.adapter}-{label}"


def _load_task_samples(
    specs: list[TaskSpec], opts: RunOptions
) -> tuple[dict[str, list[Sample]], dict[str, str], list, list, list[Path], dict[str, int]]:
    """Samples per task; each distinct dataset is loaded once. Also the data's problems,
    those of them that left a sample out, the folders image paths are relative to, and
    each task's whole size (before --shard and --limit: what full coverage means)."""
    from greval.data import load_samples

    cache: dict[str, Any] = {}
    per_task: dict[str, list[Sample]] = {}
    hashes: dict[str, str] = {}
    problems: list = []
    skipped: list = []
    roots: list[Path] = []
    sizes: dict[str, int] = {}
    for spec in specs:
        key = repr(sorted(spec.dataset.items()))
        if key not in cache:
            result = load_samples(spec.dataset, data=opts.data, manifest=opts.scene_manifest)
            cache[key] = result
            problems.extend(result.problems)
            skipped.extend(result.problems[: result.extra["n_skipped"]])  # load_samples lists these first
            if result.root is not None:
                roots.append(Path(result.root))
        result = cache[key]
        samples = [s for s in result.samples if spec.scene is None or s.scene == spec.scene]
        if not samples:  # an empty run would only print a blank summary
            raise RunError(f"task {spec.name}: {_why_empty(spec, result)}")
        sizes[spec.name] = len(samples)
        samples = [s for s in samples if in_shard(s.sample_id, opts.shard)]
        if opts.limit is not None:
            samples = samples[: opts.limit]
        per_task[spec.name] = samples
        hashes[spec.name] = result.source_hash
    return per_task, hashes, problems, skipped, roots, sizes


def _why_empty(spec: TaskSpec, result: Any) -> str:
    if result.samples:
        scenes = Counter(s.scene or "unknown" for s in result.samples)
        found = ", ".join(f"{k} {v}" for k, v in scenes.most_common())
        return (
            f"none of the {len(result.samples)} samples has scene {spec.scene!r} (scenes: {found}); "
            f"use --tasks all, or label them with --scene-manifest"
        )
    if n_skipped := result.extra["n_skipped"]:
        return f"no usable sample in the data: all {n_skipped} were skipped (first: {result.problems[0]})"
    return "the data has no samples"


def _problem_kind(message: str) -> str:
    """A data problem without the values that make each message unique, for counting:
    "LON 200.0 is out of range [-180, 180]" and "LON 181 is out of range …" are one kind."""
    kind = re.split(r": | \(|;", message, maxsplit=1)[0]  # the first clause
    kind = re.sub(r" (?:'[^']*'|\"[^\"]*\"|-?\d[\d.]*(?:e[+-]?\d+)?)(?= )", "", kind)  # values
    return re.sub(r"\b(row|item) \d+ ", r"\1 ", kind).strip()


def _plan(
    specs: list[TaskSpec],
    per_task: dict[str, list[Sample]],
    adapter: Adapter,
    opts: RunOptions,
    done: set[tuple[str, str]],
) -> tuple[list[Job], dict[str, str]]:
    jobs: dict[tuple, Job] = {}
    prompt_hashes: dict[str, str] = {}
    for spec in specs:
        template = opts.template or spec.template or adapter.default_template
        gen = spec.generation
        generation = GenerationConfig(
            max_tokens=opts.max_tokens if opts.max_tokens is not None else gen.max_tokens,
            temperature=opts.temperature if opts.temperature is not None else gen.temperature,
            top_p=gen.top_p,
            seed=opts.seed,
        )
        task_hashes = set()
        for sample in per_task[spec.name]:
            request = Request(sample=sample, task=spec.name, prompt=render(template, sample), generation=generation)
            task_hashes.add(request.prompt_hash)
            if (spec.name, sample.sample_id) in done:
                continue
            key = (sample.sample_id, request.prompt_hash, generation)
            if key in jobs:
                jobs[key].targets.append((spec.name, sample))
            else:
                jobs[key] = Job(request, [(spec.name, sample)])
        # One template per task, so normally one hash; several only with per-sample fields.
        prompt_hashes[spec.name] = (
            ",".join(sorted(task_hashes)) if len(task_hashes) <= 3 else f"{len(task_hashes)} distinct"
        )
    return list(jobs.values()), prompt_hashes


def _image_ref(sample: Sample, prefixes: tuple[str, ...]) -> str | None:
    """The image path relative to the data folder when inside it (viewers join it back)."""
    if sample.image_path is None:
        return None
    image = str(sample.image_path)
    for prefix in prefixes:
        if image.startswith(prefix):
            return image[len(prefix) :]
    return image


def _record(task: str, sample: Sample, request: Request, response: Response, prefixes: tuple[str, ...]) -> Prediction:
    """The record of one answer; `distance_km` is filled in per batch by `_add_distances`."""
    from greval.audit import extraction_flags
    from greval.parse import parse_answer

    lat = lon = None
    flags: list[str] = []
    if response.error is not None:
        status = ERROR
    elif response.truncated:
        status = TRUNCATED  # an answer cut mid-way is not the model's answer
    else:
        parsed = parse_answer(response.text)
        status = getattr(parsed.status, "value", parsed.status)
        flags = extraction_flags(response.text, parsed)
        if parsed.lat is not None:
            lat, lon = parsed.lat, parsed.lon
    usage = {k: v for k, v in vars(response.usage).items() if v}
    return Prediction(
        sample_id=sample.sample_id,
        task=task,
        output=response.text,
        lat=lat,
        lon=lon,
        status=status,
        distance_km=None,
        error=response.error,
        gt_lat=sample.gt_lat,
        gt_lon=sample.gt_lon,
        scene=sample.scene,
        scene_source=sample.scene_source,
        image=_image_ref(sample, prefixes),
        prompt_hash=request.prompt_hash,
        finish_reason=response.finish_reason,
        usage=usage,
        cost_usd=response.cost_usd,
        latency_s=response.latency_s,
        attempts=response.attempts,
        cached=response.cached,
        meta=response.meta,
        flags=flags,
    )


def _throughput(adapter: Adapter, seconds: float, output_tokens: int, samples: int) -> dict[str, Any] | None:
    """Output tokens/s, samples/s and peak GPU memory (None off CUDA, not 0) of a local run."""
    if adapter.kind != "open-weights" or seconds <= 0 or not samples:
        return None
    peak = None
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
            peak = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    except ImportError:
        pass
    return {
        "output_tokens_per_s": round(output_tokens / seconds, 2),
        "samples_per_s": round(samples / seconds, 3),
        "seconds": round(seconds, 3),
        "batch_size": getattr(adapter, "batch_size", None),
        "peak_gpu_memory_gib": peak,
    }


def _report_data_problems(run_dir: Path, data_problems: list[tuple[str, str]], info: dict[str, Any]) -> None:
    """Samples whose image could not be read: named on stderr and in problems.txt, counted
    with the skipped samples in run.json, left out of n; the next run looks at them again."""
    messages = list(dict.fromkeys(message for _, message in data_problems))
    with (run_dir / PROBLEMS).open("a", encoding="utf-8") as f:
        f.write("".join(m + "\n" for m in messages))
    skipped = info.setdefault("skipped", {})
    skipped["image cannot be read"] = skipped.get("image cannot be read", 0) + len(messages)
    info["unreadable_images"] = len(messages)
    shown = "\n  ".join(messages[:5]) + (f"\n  … and {len(messages) - 5} more" if len(messages) > 5 else "")
    print(
        f"greval: {len(messages)} sample(s) skipped, their image cannot be read (nothing was sent for them; "
        f"fix the files and re-run to ask them; list in {run_dir / PROBLEMS}):\n  {shown}",
        file=sys.stderr,
    )


def _add_distances(records: list[Prediction], earth: str) -> None:
    """One vectorised distance call per batch instead of one per record."""
    from greval.score import distance_km

    parsed = [r for r in records if r.lat is not None]
    if not parsed:
        return
    d = distance_km(
        [r.gt_lat for r in parsed],
        [r.gt_lon for r in parsed],
        [r.lat for r in parsed],
        [r.lon for r in parsed],
        earth=earth,
    )
    for record, km in zip(parsed, d.tolist(), strict=True):
        record.distance_km = km
    from greval.geo import near_border

    gt = near_border([r.gt_lat for r in parsed], [r.gt_lon for r in parsed])
    pred = near_border([r.lat for r in parsed], [r.lon for r in parsed])
    for record, a, b in zip(parsed, gt.tolist(), pred.tolist(), strict=True):
        if a or b:  # its country decision is within the precision of the data's borders
            record.flags.append("near_border")


def score_run_dir(
    run_dir: Path, keys: set[tuple[str, str]] | None, granularities, earth: str, seed: int, records=None
) -> dict[str, Any]:
    """metrics.json from the records on disk (restricted to `keys` when given)."""
    from greval.constants import THRESHOLDS_KM
    from greval.cot import add_cot_to_run_metrics
    from greval.score import score_records

    records = read_predictions(run_dir) if records is None else records
    if keys is not None:
        records = [r for r in records if (r["task"], r["sample_id"]) in keys]
    # Answers land in completion order; sorting makes the seeded bootstrap independent of
    # it, so a resumed, concurrent or merged run gives the same intervals as a serial one.
    records.sort(key=lambda r: (r["task"], r["sample_id"]))
    metrics = score_records(records, granularities, earth=earth, seed=seed)
    # `greval judge` scored the chains into cot.jsonl; rescoring must not drop them.
    add_cot_to_run_metrics(run_dir, metrics, keys, seed)
    metrics.update(
        {
            "granularities": granularities or list(THRESHOLDS_KM),
            "earth": earth,
            "hit_rule": "distance_km <= threshold_km",
            "seed": seed,
        }
    )
    write_json_atomic(run_dir / METRICS, metrics)
    return metrics


def run(opts: RunOptions) -> RunResult:
    return asyncio.run(_run(opts))


def _report_load_problems(run_dir: Path, problems: list, skipped: list) -> None:
    """The data's problems: problems.txt (this run's only) and the first five on stderr."""
    (run_dir / PROBLEMS).unlink(missing_ok=True)  # this run's problems only
    if problems:
        lines = [str(p) for p in problems]
        (run_dir / PROBLEMS).write_text("\n".join(lines) + "\n", encoding="utf-8")
        shown = "\n  ".join(lines[:5])
        more = f"\n  … and {len(problems) - 5} more in {run_dir / PROBLEMS}" if len(problems) > 5 else ""
        print(
            f"greval: {len(problems)} problem(s) in the data ({len(skipped)} samples skipped):\n  {shown}{more}",
            file=sys.stderr,
        )


def _run_info(
    opts, run_dir: Path, specs, adapter, per_task, prompt_hashes, data_hashes, roots, task_sizes, skipped
) -> dict:
    """run.json as written before any request: provenance, settings, the data's identity."""
    data_dir = roots[0] if roots else None
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    previous = read_json(run_dir / RUN_INFO) if (run_dir / RUN_INFO).exists() else {}
    info: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "adapter": opts.adapter,
        "model": opts.model,
        "kind": adapter.kind,
        "created": previous.get("created", now),
        "resumed": [*previous.get("resumed", []), now] if previous else [],
        "greval_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(*SCORING_LIBRARIES),
        "argv": opts.argv,
        "args": {
            "tasks": [s.name for s in specs],
            "data": opts.data,
            "limit": opts.limit,
            "template": opts.template,
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
            "shard": list(opts.shard) if opts.shard else None,
            "scene_manifest": opts.scene_manifest,
            "granularities": opts.granularities,
            "adapter_options": {k: v for k, v in opts.adapter_options.items() if "key" not in k.lower()},
        },
        "seed": opts.seed,
        "earth": opts.earth,
        "tasks": [s.to_dict() for s in specs],
        "prompt_hashes": prompt_hashes,
        "prompt_templates": {s.name: opts.template or s.template or adapter.default_template for s in specs},
        "data_hash": data_hashes,
        "data_dir": str(data_dir.resolve()) if data_dir else None,
        "samples_per_task": {name: len(samples) for name, samples in per_task.items()},
        "task_sizes": task_sizes,
        "skipped": dict(Counter(_problem_kind(p.message) for p in skipped)),
        "adapter_info": adapter.info(),
    }
    for key in ("cot_judge", "overrides"):  # written by `greval judge` / `greval audit`
        if key in previous:
            info[key] = previous[key]
    return info


def _check_before_loading(opts: RunOptions) -> tuple[list[TaskSpec], type[Adapter], Path]:
    """The tasks, the adapter class and the run folder, each checked before any data or
    weights load: a typo in a task, an option or a resumed folder fails in a second."""
    specs = resolve_tasks(opts.tasks, opts.include_paths)
    adapter_cls = get_adapter_class(opts.adapter)
    run_dir = Path(opts.output) if opts.output else _default_run_dir(opts)
    args = {
        "template": opts.template,
        "max_tokens": opts.max_tokens,
        "temperature": opts.temperature,
        "adapter_options": opts.adapter_options,
    }
    check_options(adapter_cls, opts.adapter_options)
    marked = answer_option_names(adapter_cls)
    check_resumable(run_dir, opts.adapter, opts.model, args, opts.seed, ANSWER_OPTIONS if marked is None else marked)
    return specs, adapter_cls, run_dir


async def _run(opts: RunOptions) -> RunResult:
    from tqdm.auto import tqdm

    from greval.cost import cost_summary

    started = time.time()
    specs, adapter_cls, run_dir = _check_before_loading(opts)
    # Data before the adapter: a bad --data path should not wait for 16 GB of weights.
    per_task, data_hashes, problems, skipped, roots, task_sizes = _load_task_samples(specs, opts)
    if not opts.progress:  # --quiet also hushes the Hub's and transformers' loading bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    options = dict(opts.adapter_options)
    options.setdefault("seed", opts.seed)
    try:
        adapter = with_cache(adapter_cls(model=opts.model, **options))  # fails fast: missing key, missing weights
    except ModuleNotFoundError as e:  # a library imported on first use (torch, vllm, ...)
        raise AdapterError(missing_extra(opts.adapter, e)) from e
    try:
        done = {(r["task"], r["sample_id"]) for r in read_predictions(run_dir) if r.get("status") != ERROR}
        jobs, prompt_hashes = _plan(specs, per_task, adapter, opts, done)
        jobs = batched_for(adapter, jobs)
        planned = {(spec.name, s.sample_id) for spec in specs for s in per_task[spec.name]}
        prefixes = tuple(dict.fromkeys(f"{d}{os.sep}" for root in roots for d in (root, root.resolve())))
        run_dir.mkdir(parents=True, exist_ok=True)
        _report_load_problems(run_dir, problems, skipped)
        info = _run_info(
            opts, run_dir, specs, adapter, per_task, prompt_hashes, data_hashes, roots, task_sizes, skipped
        )
        write_json_atomic(run_dir / RUN_INFO, info)

        counts: Counter[str] = Counter()
        cost, unpriced, output_tokens = 0.0, 0, 0
        data_problems: list[tuple[str, str]] = []  # (task, message) of unreadable images

        with PredictionWriter(run_dir) as writer:

            def on_done(batch: list[Job], responses: list[Response]) -> None:
                nonlocal cost, unpriced, output_tokens
                records = []
                for job, response in zip(batch, responses, strict=True):
                    if response.data_problem:  # nothing was asked: no record, asked again next run
                        data_problems.extend((task, response.data_problem) for task, _ in job.targets)
                        continue
                    counts["errors" if response.error else "answered"] += 1
                    counts["cached"] += bool(response.cached)
                    cost += response.cost_usd or 0.0
                    output_tokens += 0 if response.cached else response.usage.output_tokens
                    unpriced += response.cost_usd is None and response.error is None
                    for i, (task, sample) in enumerate(job.targets):
                        record = _record(task, sample, job.request, response, prefixes)
                        if i > 0:  # one answer serves several tasks: its cost is counted once
                            record.cost_usd = 0.0 if record.cost_usd is not None else None
                            record.meta = {**record.meta, "shared_answer_of_task": job.targets[0][0]}
                        records.append(record)
                _add_distances(records, opts.earth)
                writer.write_many(records)

            unit = "request" if adapter.kind == "api" else "sample"
            with tqdm(
                total=len(jobs),
                unit=unit,
                disable=not opts.progress or not jobs,
                desc=f"greval {opts.adapter}",
                dynamic_ncols=True,
            ) as bar:
                dispatch_started = time.perf_counter()
                await dispatch(adapter, jobs, on_done, bar)
                dispatch_s = time.perf_counter() - dispatch_started

        if data_problems:
            _report_data_problems(run_dir, data_problems, info)
        raw = list(iter_raw(run_dir))  # one pass over the file for metrics and cost
        records = with_overrides(run_dir, latest_records(raw))
        metrics = score_run_dir(run_dir, planned, opts.granularities, opts.earth, opts.seed, records)
        info.update(
            {
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "duration_s": round(time.time() - started, 3),
                "requests": {"planned": len(planned), "already_done": len(planned & done), "sent": len(jobs), **counts},
                # Every line on disk is a response that was paid for (cache hits cost 0),
                # so the folder's total survives crashes and resumes; unpriced is unknown.
                **cost_summary(raw, adapter.kind),
                "cost_usd_this_invocation": None if unpriced and adapter.kind == "api" else round(cost, 6),
                "throughput": _throughput(adapter, dispatch_s, output_tokens, counts["answered"] - counts["cached"]),
            }
        )
        if hasattr(adapter, "run_summary"):
            info["adapter_summary"] = adapter.run_summary()
        write_json_atomic(run_dir / RUN_INFO, info)
        return RunResult(run_dir=run_dir, metrics=metrics, info=info)
    finally:
        adapter.close()
