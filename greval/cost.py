"""What a run cost, and when greval cannot say: never a false zero.

A response's `cost_usd` is None when its model has no price (greval/pricing.py). A total
over responses is therefore one of:

- "known": every paid-for response was priced; `cost_usd` is their sum (cache hits and
  the second task served by a shared answer cost 0, which is known);
- "partial": some were priced and some not; `cost_usd` is None (the total is unknown),
  `cost_usd_priced` the sum of those priced and `cost_unpriced_responses` how many not;
- "unknown": none was priced; `cost_usd` is None;
- "not_applicable": local and offline models (no API bill); `cost_usd` is None.

Errored requests and skipped samples are not counted either way (nothing was billed). Every surface
(the run summary, `greval report`, the leaderboard and its JSON) shows "unknown" or "n/a"
for a None, and never "$0.00".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

KNOWN, PARTIAL, UNKNOWN, NOT_APPLICABLE = "known", "partial", "unknown", "not_applicable"
_NO_RESPONSE = ("error", "skipped")  # a failed call, or a sample the judge did not ask about


def cost_summary(records: Iterable[dict[str, Any]], kind: str | None) -> dict[str, Any]:
    """{"cost_usd", "cost_status", "cost_usd_priced", "cost_unpriced_responses"} of records."""
    priced, unpriced, total = 0, 0, 0.0
    for r in records:
        if r.get("status") in _NO_RESPONSE and r.get("cost_usd") is None:
            continue
        cost = r.get("cost_usd")
        if cost is None:
            unpriced += 1
        else:
            priced += 1
            total += float(cost)
    if kind not in (None, "api") and not priced:
        status = NOT_APPLICABLE
    elif unpriced == 0:
        status = KNOWN
    else:
        status = PARTIAL if priced else UNKNOWN
    return {
        "cost_usd": round(total, 6) if status == KNOWN else None,
        "cost_status": status,
        "cost_usd_priced": round(total, 6),
        "cost_unpriced_responses": unpriced,
    }


def merged(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The cost of several runs (merged shards): known only when every part is known."""
    parts = list(summaries)
    statuses = {p.get("cost_status") or (KNOWN if p.get("cost_usd") is not None else UNKNOWN) for p in parts}
    priced = sum(float(p.get("cost_usd_priced", p.get("cost_usd")) or 0.0) for p in parts)
    unpriced = sum(int(p.get("cost_unpriced_responses") or 0) for p in parts)
    if statuses <= {NOT_APPLICABLE}:
        status = NOT_APPLICABLE
    elif statuses <= {KNOWN, NOT_APPLICABLE}:
        status = KNOWN
    elif statuses & {KNOWN, PARTIAL} and priced:
        status = PARTIAL
    else:
        status = UNKNOWN
    return {
        "cost_usd": round(priced, 6) if status == KNOWN else None,
        "cost_status": status,
        "cost_usd_priced": round(priced, 6),
        "cost_unpriced_responses": unpriced,
    }


def describe(info: dict[str, Any]) -> str | None:
    """One line for a summary: "$1.2345", "unknown (…)", or None when there is no bill."""
    status = info.get("cost_status")
    cost = info.get("cost_usd")
    if status is None:  # a run.json from before cost_status: its number stands if it is a bill
        if cost is None:
            return None
        return f"${float(cost):,.4f}" if info.get("kind") == "api" or float(cost) > 0 else None
    if status == KNOWN:
        return f"${float(cost):,.4f}"
    if status == PARTIAL:
        return (
            f"unknown ({info.get('cost_unpriced_responses')} responses have no price; the priced ones "
            f"cost ${float(info.get('cost_usd_priced') or 0):,.4f}: add the model with --prices)"
        )
    if status == UNKNOWN:
        return "unknown (the model has no price in greval's table: pass --prices FILE)"
    return None
