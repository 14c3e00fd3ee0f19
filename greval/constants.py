"""Names every module shares, defined once: the five granularities and the record statuses.

A granularity is a name, a radius in km, and the metric key `acc@<km>km` it gives; a
hit is `distance <= km` (see greval/score.py). Statuses: "ok" (a usable coordinate),
the parse failures "no_answer", "empty", "out_of_range" (greval.parse), "refusal", and
two from the run: "error" (no model answer: not scored, retried) and "truncated" (cut by
the token limit: counted wrong).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Granularity:
    name: str  # street, city, region, country, continent
    km: float

    @property
    def key(self) -> str:
        """The metric key in metrics.json: "acc@25km"."""
        return f"acc@{self.km:g}km"

    @property
    def title(self) -> str:
        return self.name.capitalize()


GRANULARITY_LIST = (
    Granularity("street", 1.0),
    Granularity("city", 25.0),
    Granularity("region", 200.0),
    Granularity("country", 750.0),
    Granularity("continent", 2500.0),
)
THRESHOLDS_KM: dict[str, float] = {g.name: g.km for g in GRANULARITY_LIST}
ACC_KEYS: tuple[str, ...] = tuple(g.key for g in GRANULARITY_LIST)

OK, ERROR, REFUSAL, TRUNCATED = "ok", "error", "refusal", "truncated"
PARSE_FAILURES = ("no_answer", "empty", "out_of_range")
STATUSES = (OK, ERROR, REFUSAL, TRUNCATED, *PARSE_FAILURES)
