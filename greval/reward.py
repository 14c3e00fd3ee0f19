"""The GRE training rewards, fixed, on greval's own parser and distances.

Stage 3 of GRE (GRPO on seed images) rewards a completion with

    geo = 2 / (1 + exp(d / τ))        d = great-circle error in km

(1 at d = 0, 0.54 at d = τ, → 0 far away), plus a format
reward for `<think> … </think><answer> … </answer>`. Stage 2 (GRE30K-Judge) rewards a
True/False judgement of a given chain that matches its label.

The released reward code got three things wrong, and each has a test here:
  - it unpacked the parsed pair as (lon, lat), so the paper's own latitude-first
    answers `{"Latitude": "45.465 °", "Longitude": "9.191 °"}` scored about 0;
  - its key-value regex missed quoted keys and fell back to "the first two numbers in
    the text" (a year or a speed limit in the reasoning became the answer);
  - τ was left blank.
Here the answer is read by `greval.parse.parse_answer` (the parser evaluation uses, so
training and evaluation agree on what an answer means), distances come from
`greval.score.distance_km`, and τ must be given.

TRL calls a reward function as `f(prompts=…, completions=…, completion_ids=…, **columns,
trainer_state=…, …)` with every dataset column (other than `prompt`) as a list, one entry
per completion. `make_geo_reward`, `format_reward_trl` and `judge_reward_trl` have that
shape; the plain functions take completions as strings or as conversational messages
(`[{"role": "assistant", "content": …}]`).

No torch, TRL or transformers here: rewards are plain Python + numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from greval.parse import has_think_answer_format, parse_answer
from greval.score import GRANULARITIES, distance_km

__all__ = [
    "TAU_SCHEDULE",
    "as_label",
    "completion_text",
    "format_reward",
    "format_reward_trl",
    "geo_reward",
    "judge_reward",
    "judge_reward_trl",
    "make_geo_reward",
    "parse_judgement",
    "parse_tau",
    "tau_at_step",
    "tau_for_stage",
]

# τ by curriculum stage, from the paper's granularities (GRANULARITIES in greval.score):
# start coarse, where a random policy still earns a gradient (at d = τ the reward is
# 0.54; at 3τ it is 0.09), and tighten once the mean geo reward has stopped rising.
# At τ = 750 km a city-level answer (25 km) scores 0.98 and a wrong continent (5,000 km)
# 0.003; at τ = 25 km, 25 km scores 0.54 and 200 km 0.0007.
TAU_SCHEDULE: dict[str, float] = {
    "country": float(GRANULARITIES["country"]),  # 750 km
    "region": float(GRANULARITIES["region"]),  # 200 km
    "city": float(GRANULARITIES["city"]),  # 25 km
}

Completion = str | Sequence[Mapping[str, Any]]
TauSpec = float | Sequence[tuple[int, float]]


# --------------------------------------------------------------------------- τ


def tau_for_stage(stage: str | float) -> float:
    """τ in km for a curriculum stage name ("country", "region", "city") or a number of km."""
    if isinstance(stage, str):
        key = stage.strip().lower()
        if key in TAU_SCHEDULE:
            return TAU_SCHEDULE[key]
        try:
            value = float(key.removesuffix("km").strip())
        except ValueError:
            raise ValueError(f"unknown τ stage {stage!r}: use {', '.join(TAU_SCHEDULE)} or a number of km") from None
    else:
        value = float(stage)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"τ must be a positive number of km, not {stage!r}")
    return value


def parse_tau(spec: str) -> list[tuple[int, float]]:
    """A τ schedule from text: "country" or "750" (one τ), or steps at which τ changes,
    "country,region@300,city@800" = 750 km from step 0, 200 km from step 300, 25 km from
    step 800. Returns [(from_step, τ_km), ...] sorted by step, starting at step 0."""
    schedule: list[tuple[int, float]] = []
    for i, part in enumerate(p.strip() for p in spec.split(",")):
        if not part:
            raise ValueError(f"empty entry in τ schedule {spec!r}")
        stage, _, step_text = part.partition("@")
        if step_text:
            try:
                step = int(step_text)
            except ValueError:
                raise ValueError(f"τ schedule {spec!r}: {step_text!r} is not a step number") from None
        else:
            step = 0 if i == 0 else -1
        if step < 0 or (i == 0 and step != 0):
            raise ValueError(f"τ schedule {spec!r}: the first entry starts at step 0 and every later one needs @STEP")
        schedule.append((step, tau_for_stage(stage)))
    steps = [s for s, _ in schedule]
    if steps != sorted(set(steps)):
        raise ValueError(f"τ schedule {spec!r}: steps must increase")
    return schedule


def tau_at_step(schedule: TauSpec, step: int) -> float:
    """τ in force at a global step (a plain number is the same at every step)."""
    if isinstance(schedule, int | float):
        return tau_for_stage(schedule)
    current = None
    for from_step, tau in schedule:
        if step >= from_step:
            current = tau
    if current is None:
        raise ValueError(f"τ schedule {schedule!r} does not cover step {step}")
    return current


# --------------------------------------------------------------------------- text


def completion_text(completion: Completion) -> str:
    """The text of a completion: a string, or conversational messages whose content is a
    string or typed parts (`{"type": "text", "text": …}`); assistant turns are joined."""
    if isinstance(completion, str):
        return completion
    if completion is None:
        return ""
    texts: list[str] = []
    for message in completion:
        if not isinstance(message, Mapping) or message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, Sequence):
            texts.extend(
                part["text"]
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
            )
    return "".join(texts)


# --------------------------------------------------------------------------- rewards


def geo_reward(
    completions: Sequence[Completion],
    gt_lat: Sequence[float],
    gt_lon: Sequence[float],
    *,
    tau_km: float,
    earth: str = "haversine",
) -> list[float]:
    """`2 / (1 + exp(d / τ))` per completion, d the error in km; 0.0 when the answer
    does not parse to a coordinate (no answer, refusal, out of range, empty)."""
    tau = tau_for_stage(tau_km)
    n = len(completions)
    if len(gt_lat) != n or len(gt_lon) != n:
        raise ValueError(f"geo_reward: {n} completions but {len(gt_lat)} gt_lat and {len(gt_lon)} gt_lon")
    truth_lat = np.asarray(gt_lat, dtype=np.float64)
    truth_lon = np.asarray(gt_lon, dtype=np.float64)
    bad = ~(np.isfinite(truth_lat) & np.isfinite(truth_lon))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"geo_reward: row {i} has no valid ground truth ({gt_lat[i]!r}, {gt_lon[i]!r})")
    parsed = [parse_answer(completion_text(c)) for c in completions]
    rewards = np.zeros(n)
    ok = np.array([p.ok for p in parsed], dtype=bool)
    if ok.any():
        lat = np.array([p.lat for p, good in zip(parsed, ok, strict=True) if good], dtype=np.float64)
        lon = np.array([p.lon for p, good in zip(parsed, ok, strict=True) if good], dtype=np.float64)
        d = np.atleast_1d(distance_km(truth_lat[ok], truth_lon[ok], lat, lon, earth=earth))
        # 2 / (1 + e^x) = 2·exp(-log(1 + e^x)): no overflow warning for x in the thousands.
        rewards[ok] = 2.0 * np.exp(-np.logaddexp(0.0, d / tau))
    return rewards.tolist()


def format_reward(completions: Sequence[Completion]) -> list[float]:
    """1.0 when a completion is exactly `<think>…</think><answer>…</answer>` AND the
    answer parses to a coordinate, else 0.0.

    Requiring a parseable answer (not just the tags) stops the policy from collecting
    the format reward with `<answer>somewhere</answer>`; the geo reward alone cannot tell
    that apart from a far-off guess, since both get ~0 at a tight τ.
    """
    out: list[float] = []
    for c in completions:
        text = completion_text(c)
        out.append(1.0 if has_think_answer_format(text) and parse_answer(text).ok else 0.0)
    return out


_THINK_SPAN = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.IGNORECASE | re.DOTALL)
_VERDICT = re.compile(r"(?<![A-Za-z])(true|false)(?![A-Za-z])", re.IGNORECASE)


def parse_judgement(text: str | None) -> bool | None:
    """The True/False verdict in a judge completion, or None when there is none.

    Read from the last `<answer>` block outside `<think>` when there is one, else from
    the text outside `<think>`; the LAST "true"/"false" word there is the verdict
    ("not True, but False" is False)."""
    if not isinstance(text, str):
        return None
    outside = _THINK_SPAN.sub(" ", text)
    blocks = _ANSWER_BLOCK.findall(outside)
    region = blocks[-1] if blocks else outside
    words = _VERDICT.findall(region)
    if not words:
        return None
    return words[-1].lower() == "true"


_TRUE_WORDS = {"true", "t", "yes", "y", "1", "correct"}
_FALSE_WORDS = {"false", "f", "no", "n", "0", "incorrect"}


def as_label(value: Any) -> bool:
    """A judge label as a bool: True/False, 1/0, or the strings true/false, yes/no, 1/0,
    correct/incorrect (any case). Anything else raises ValueError."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueError(f"not a True/False label: {value!r}")


def judge_reward(completions: Sequence[Completion], label: Sequence[Any]) -> list[float]:
    """1.0 when the completion's True/False verdict equals the label, else 0.0 (a
    completion without a verdict is wrong)."""
    if len(label) != len(completions):
        raise ValueError(f"judge_reward: {len(completions)} completions but {len(label)} labels")
    out: list[float] = []
    for c, y in zip(completions, label, strict=True):
        verdict = parse_judgement(completion_text(c))
        out.append(1.0 if verdict is not None and verdict == as_label(y) else 0.0)
    return out


# --------------------------------------------------------------------------- TRL shape


def make_geo_reward(tau: TauSpec, *, earth: str = "haversine") -> Callable[..., list[float]]:
    """A TRL reward function (`f(completions, gt_lat, gt_lon, **kwargs)`) for a fixed τ
    or a step schedule [(from_step, τ_km), ...] read against `trainer_state.global_step`."""
    if isinstance(tau, int | float):
        tau_for_stage(tau)  # fail now, not at the first step
    elif not tau:
        raise ValueError("τ schedule is empty")

    def geo_reward_trl(
        completions: Sequence[Completion],
        gt_lat: Sequence[float],
        gt_lon: Sequence[float],
        trainer_state: Any = None,
        **_: Any,
    ) -> list[float]:
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        return geo_reward(completions, gt_lat, gt_lon, tau_km=tau_at_step(tau, step), earth=earth)

    geo_reward_trl.__name__ = "geo_reward"  # TRL logs rewards under the function's name
    return geo_reward_trl


def format_reward_trl(completions: Sequence[Completion], **_: Any) -> list[float]:
    return format_reward(completions)


format_reward_trl.__name__ = "format_reward"


def judge_reward_trl(completions: Sequence[Completion], label: Sequence[Any], **_: Any) -> list[float]:
    return judge_reward(completions, label)


judge_reward_trl.__name__ = "judge_reward"
