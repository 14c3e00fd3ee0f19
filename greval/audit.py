"""A second opinion on every extraction, and the user's word where the parser is wrong.

Every scored record carries `flags`: the parser's doubts (greval/parse.py, "Flags") plus
`disagrees_with_simple`, set when a deliberately simple, independent extractor (the first
labelled or decimal lat/lon pair of the answer, ten lines of regex) finds a point more
than ~1 km from the parser's. `flagged_rate` in metrics.json is the share of scored
samples with at least one EXTRACTION flag; other flags (`near_border`, from the country
lookup) are about the geography, not the reading, and do not count.

`greval audit RUN_DIR` lists the flagged samples with the text around the decision.
`greval audit RUN_DIR --override ID=LAT,LON` (or `=refusal`, or `=parser` to drop an
override) stores the user's reading in `overrides.jsonl` beside predictions.jsonl; the raw
output is never touched. Overrides are applied whenever a run folder's predictions are
read (records.read_predictions), so metrics, reports, the leaderboard and comparisons
all see them, and each overridden record keeps what the parser said under `override`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greval.errors import GrevalError
from greval.parse import ParsedAnswer, parse_answer

EXTRACTION_FLAGS = (
    "coords_in_refusal",
    "null_island",
    "multiple_answers",
    "order_guess",
    "out_of_range",
    "disagrees_with_simple",
)
OVERRIDES = "overrides.jsonl"
_SAME_POINT_DEG = 0.01  # ~1 km

_NUM = r"([-+]?\d{1,3}(?:\.\d+)?)"
_SIMPLE_LABELLED = re.compile(
    rf"\blat\w*[^\w+-]{{0,4}}{_NUM}.{{0,40}}?\blo?ng?\w*[^\w+-]{{0,4}}{_NUM}", re.IGNORECASE | re.DOTALL
)
_SIMPLE_PAIR = re.compile(r"([-+]?\d{1,3}\.\d+)\s*[,;/ ]\s*([-+]?\d{1,3}\.\d+)")


def simple_extract(text: str | None) -> tuple[float, float] | None:
    """The first labelled lat/lon pair after any reasoning, else the first decimal pair."""
    if not text:
        return None
    answer = text.rsplit("</think>", 1)[-1]
    patterns = (_SIMPLE_LABELLED, _SIMPLE_PAIR) if "lat" in answer.lower() else (_SIMPLE_PAIR,)
    for pattern in patterns:
        for m in pattern.finditer(answer):
            lat, lon = float(m.group(1)), float(m.group(2))
            if abs(lat) <= 90 and abs(lon) <= 180:
                return lat, lon
    return None


def extraction_flags(text: str | None, parsed: ParsedAnswer) -> list[str]:
    """The parser's flags plus `disagrees_with_simple` (both found a point, > ~1 km apart)."""
    flags = list(parsed.flags)
    if parsed.ok:
        simple = simple_extract(text)
        if simple is not None and (
            abs(simple[0] - parsed.lat) > _SAME_POINT_DEG or abs(simple[1] - parsed.lon) > _SAME_POINT_DEG
        ):
            flags.append("disagrees_with_simple")
    return flags


def is_flagged(flags: list[str] | None) -> bool:
    """At least one extraction flag (old records without `flags` have none)."""
    return isinstance(flags, list) and any(f in EXTRACTION_FLAGS for f in flags)


# --------------------------------------------------------------------------- overrides


class OverrideError(ValueError):
    """A malformed --override (the message says which and why)."""


@dataclass(frozen=True)
class Override:
    sample_id: str
    task: str | None  # None: every task holding this sample id
    lat: float | None
    lon: float | None
    refusal: bool = False
    parser: bool = False  # drop an earlier override: the parser's reading stands again

    @classmethod
    def parse(cls, spec: str) -> Override:
        """`[TASK:]ID=LAT,LON`, `ID=refusal` or `ID=parser`."""
        key, sep, value = spec.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise OverrideError(f"--override {spec!r}: expected ID=LAT,LON, ID=refusal or ID=parser")
        task, _, sample_id = key.strip().rpartition(":")
        value = value.strip().lower()
        if value in ("refusal", "parser"):
            return cls(sample_id, task or None, None, None, refusal=value == "refusal", parser=value == "parser")
        try:
            lat, lon = (float(x) for x in value.split(","))
        except ValueError:
            raise OverrideError(f"--override {spec!r}: {value!r} is not LAT,LON, refusal or parser") from None
        if not (abs(lat) <= 90 and abs(lon) <= 180):
            raise OverrideError(f"--override {spec!r}: ({lat:g}, {lon:g}) is off the globe")
        return cls(sample_id, task or None, lat, lon)

    def matches(self, record: dict[str, Any]) -> bool:
        return record["sample_id"] == self.sample_id and self.task in (None, record["task"])


def read_overrides(run_dir: Path) -> list[Override]:
    """The overrides in force, in the order given (a later one for the same sample wins)."""
    path = Path(run_dir) / OVERRIDES
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(Override(**json.loads(line)))
    return out


def append_overrides(run_dir: Path, overrides: list[Override]) -> None:
    if not overrides:
        return
    with (Path(run_dir) / OVERRIDES).open("a", encoding="utf-8") as f:
        for o in overrides:
            f.write(json.dumps(vars(o)) + "\n")


def apply_overrides(records: list[dict[str, Any]], overrides: list[Override]) -> list[dict[str, Any]]:
    """Rewrite the overridden records in place; each keeps the parser's reading under
    `override`. Returns those given coordinates, whose `distance_km` the caller sets."""
    if not overrides:
        return []
    by_id: dict[str, list[Override]] = {}
    for o in overrides:
        by_id.setdefault(o.sample_id, []).append(o)
    moved = []
    for record in records:
        mine = [o for o in by_id.get(record["sample_id"], ()) if o.matches(record)]
        if not mine or record.get("status") == "error":  # no answer to override: re-run first
            continue
        last = mine[-1]
        if last.parser:
            continue
        record["override"] = {"status": record["status"], "lat": record.get("lat"), "lon": record.get("lon")}
        if last.refusal:
            record.update(status="refusal", lat=None, lon=None, distance_km=None)
        else:
            record.update(status="ok", lat=last.lat, lon=last.lon, distance_km=None)
            moved.append(record)
    return moved


# --------------------------------------------------------------------------- listing


def context(text: str | None, record: dict[str, Any], width: int = 120) -> str:
    """The text around the decision, the decision itself between [[ and ]]: the parser's
    span (ParsedAnswer.span) when re-reading the output gives the record's reading, else
    around the chosen latitude, else the answer's end."""
    if not text:
        return ""
    span = _decision_span(text, record)
    if span is None:
        snippet = text[-2 * width :]
        return ("…" if len(text) > 2 * width else "") + " ".join(snippet.split())
    a, b = span
    lo, hi = max(0, a - width), min(len(text), b + width)
    middle = text[a:b] if b - a <= 2 * width else text[a : a + width] + " … " + text[b - width : b]
    out = ("…" if lo else "") + text[lo:a] + "[[" + middle + "]]" + text[b:hi] + ("…" if hi < len(text) else "")
    return " ".join(out.split())


def _decision_span(text: str, record: dict[str, Any]) -> tuple[int, int] | None:
    said = record.get("override") or record  # what the parser said, before any override
    parsed = parse_answer(text)
    if parsed.span is not None and parsed.status.value == said.get("status") and parsed.lat == said.get("lat"):
        return parsed.span
    if said.get("lat") is None:
        return None
    digits = f"{abs(float(said['lat'])):.6f}".rstrip("0").rstrip(".")
    at = text.rfind(digits[: max(4, len(digits) - 2)])
    return None if at < 0 else (at, at + len(digits))


def flagged(records: list[dict[str, Any]], flag: str | None = None, task: str | None = None) -> list[dict[str, Any]]:
    """Records with an extraction flag (or the named flag, which may be any flag), sorted."""
    out = []
    for r in records:
        flags = r.get("flags") or []
        if task is not None and r["task"] != task:
            continue
        if (flag in flags) if flag else (is_flagged(flags) or "override" in r):
            out.append(r)
    return sorted(out, key=lambda r: (r["task"], str(r["sample_id"])))


def audit_row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": record["task"],
        "sample_id": record["sample_id"],
        "status": record["status"],
        "lat": record.get("lat"),
        "lon": record.get("lon"),
        "flags": record.get("flags") or [],
        "override": record.get("override"),
        "context": context(record.get("output"), record),
    }


def format_text(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        point = "–" if row["lat"] is None else f"({row['lat']:.4f}, {row['lon']:.4f})"
        was = ""
        if row["override"]:
            o = row["override"]
            was = f"  [overridden; parser said {o['status']}" + (
                f" ({o['lat']:.4f}, {o['lon']:.4f})]" if o.get("lat") is not None else "]"
            )
        lines.append(f"{row['task']}/{row['sample_id']}  {row['status']} {point}  {', '.join(row['flags'])}{was}")
        lines.append(f"    {row['context']}")
    return "\n".join(lines) + ("\n" if lines else "")


# --------------------------------------------------------------------------- the command


class AuditError(GrevalError):
    """A user error of `greval audit` (bad folder, unknown flag or sample)."""


KNOWN_FLAGS = (*EXTRACTION_FLAGS, "near_border")


def check_request(
    run_dir: Path, records: list[dict[str, Any]], flag: str | None, specs: list[str], task: str | None = None
) -> list[Override]:
    """The overrides asked for, checked against the run: every sample named must exist."""
    if not records:
        raise AuditError(f"{run_dir} holds no predictions.jsonl records: is it a greval run folder?")
    if flag is not None and flag not in KNOWN_FLAGS:
        raise AuditError(f"unknown flag {flag!r}; known: {', '.join(KNOWN_FLAGS)}")
    tasks = sorted({r["task"] for r in records})
    if task is not None and task not in tasks:
        raise AuditError(f"--task {task!r}: the run has no such task; its tasks: {', '.join(tasks)}")
    try:
        overrides = [Override.parse(spec) for spec in specs]
    except OverrideError as e:
        raise AuditError(str(e)) from None
    for o in overrides:
        hits = [r for r in records if o.matches(r)]
        if not hits:
            raise AuditError(f"--override: no sample {o.sample_id!r}" + (f" in task {o.task!r}" if o.task else ""))
        if o.task is None and len(hits) > 1 and len({(r.get("gt_lat"), r.get("gt_lon")) for r in hits}) > 1:
            tasks = ", ".join(sorted(r["task"] for r in hits))
            raise AuditError(f"--override: {o.sample_id!r} names different samples in {tasks}; write TASK:ID=…")
    return overrides
