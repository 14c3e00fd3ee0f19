"""Reasoning-chain quality, the pure part: how `greval judge RUN_DIR` (greval/judge.py) scores
each model chain against the reference chain with an LLM judge (key-step recall /
precision, as MME-CoT and GeoRC), and how cot.jsonl becomes metrics. No model calls here.

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
"""

from __future__ import annotations

import functools
from pathlib import Path

from greval.records import COT as COT_FILE

JUDGE_TEMPLATE = "cot_judge"
JUDGE_VERSION = "cot-judge-v1"  # bump when the prompt or the scoring rule changes
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
COT_KEYS = ("cot_score", "cot_recall", "cot_precision", "cot_n", "cot_judge_failures", "cot_skipped")


class JudgeAnswerError(ValueError):
    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


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


def iter_cot(run_dir: Path):
    """Every whole line of RUN_DIR/cot.jsonl, in the order written (greval/records.py)."""
    from greval.records import iter_jsonl

    return iter_jsonl(Path(run_dir) / COT_FILE)


def read_cot(run_dir: Path) -> list[dict]:
    """The current record per (task, sample_id) of RUN_DIR/cot.jsonl (the last one wins)."""
    from greval.records import RunFolder

    return RunFolder(run_dir).cot()


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
