"""The lm-eval hooks of tasks written by `greval export lm-eval` (their utils.py imports
these): greval's prompt, greval's parser, greval's scorer.

Rules (they make lm-eval's numbers equal to `greval run --adapter replay` of lm-eval's
logged samples, to the last digit):
- `process_results` reads the answer (lm-eval's first, filtered response) with
  greval.parse and scores that one sample with greval.score.summarize. acc@1km …
  acc@2500km, refusal and parse_failure are its 0/1 values, averaged by lm-eval's
  `mean`: a sum of 0/1 values is exact in any order, so the mean is greval's.
- geoscore and median_km keep the sample's record (sample_id, gt_lat, gt_lon, lat, lon,
  status) and are computed over all records by greval's scorer (`agg_geoscore`,
  `agg_median_km`), records in sample-id order as `greval run` scores them. lm-eval's
  `mean` would add the GeoScores in another order (a last-digit difference), and its
  `median` takes the upper middle of all values; greval's median_km is over parsed
  answers only (the mean of the two middle ones for an even count), NaN when none parsed.
- lm-eval does not say whether an answer stopped at `max_gen_toks`, so an answer cut
  short is parsed like any other (greval's own runs mark it `truncated`).
"""

from __future__ import annotations

from typing import Any

from greval.constants import ACC_KEYS

# lm-eval metric -> greval metrics.json key, for the metrics lm-eval averages itself.
MEANS: dict[str, str] = {
    **{key: key for key in ACC_KEYS},
    "refusal": "refusal_rate",
    "parse_failure": "parse_failure_rate",
}
OVER_ALL = ("geoscore", "median_km")  # aggregated by greval's scorer over all records
LOWER_IS_BETTER = {"refusal", "parse_failure", "median_km"}
_FIELDS = ("sample_id", "gt_lat", "gt_lon", "lat", "lon", "status")


def doc_to_text(doc: dict[str, Any]) -> str:
    """The photo, then greval's prompt (rendered at export); `<image>` is lm-eval's placeholder."""
    return "<image>" + doc["prompt"]


def doc_to_image(doc: dict[str, Any]) -> list:
    """The photo as RGB, as greval's own adapters read it."""
    from PIL import Image

    with Image.open(doc["image_path"]) as image:
        return [image.convert("RGB")]


def record(doc: dict[str, Any], text: str | None) -> tuple:
    """greval's reading of one answer: (sample_id, gt_lat, gt_lon, lat, lon, status)."""
    from greval.parse import parse_answer

    parsed = parse_answer(text)
    status = getattr(parsed.status, "value", parsed.status)
    return (str(doc["sample_id"]), float(doc["gt_lat"]), float(doc["gt_lon"]), parsed.lat, parsed.lon, status)


def _summary(records: list[tuple]) -> dict[str, Any]:
    from greval.score import summarize

    rows = [dict(zip(_FIELDS, r, strict=True)) for r in sorted(records, key=lambda r: r[0])]
    return summarize(rows, n_boot=0, geocode=False)


def process_results(doc: dict[str, Any], results: list) -> dict[str, Any]:
    """One value per metric for one sample (see the module docstring)."""
    one = record(doc, results[0] if results else None)
    scored = _summary([one])
    return {**{name: float(scored[key]) for name, key in MEANS.items()}, **{name: one for name in OVER_ALL}}


def _over_all(items: list, key: str) -> float:
    value = _summary([tuple(item) for item in items])[key] if items else None
    return float("nan") if value is None else float(value)


def agg_geoscore(items: list) -> float:
    """greval's GeoScore: the mean over all samples, 0 for an unparsed answer."""
    return _over_all(items, "geoscore")


def agg_median_km(items: list) -> float:
    """greval's median_km: the median distance of the parsed answers; NaN when none parsed."""
    return _over_all(items, "median_km")
