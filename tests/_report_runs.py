"""Fixture run folders with known numbers, shared by the report and plot tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from greval.records import METRICS, PREDICTIONS, RUN_INFO, Prediction, write_json_atomic

ACC_KEYS = ("acc@1km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km")


def block(accs: tuple[float, ...], **extra: Any) -> dict[str, Any]:
    """A metrics.json task block with the given five accuracies and fixed other numbers."""
    data: dict[str, Any] = dict(zip(ACC_KEYS, accs, strict=True))
    data.update(
        n=100,
        n_errors=0,
        n_parsed=95,
        median_km=312.45,
        mean_km=1192.31,
        geoscore=2345.6,
        country_acc=0.5,
        continent_acc=0.8,
        parse_failure_rate=0.03,
        refusal_rate=0.02,
        truncated_rate=0.0,
    )
    data.update(extra)
    return data


def write_run(
    path: Path,
    tasks: dict[str, dict[str, Any]],
    info: dict[str, Any] | None = None,
    predictions: list[Prediction | dict[str, Any]] | None = None,
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        path / METRICS,
        {"tasks": tasks, "granularities": ["street", "city", "region", "country", "continent"], "earth": "haversine"},
    )
    if info is not None:
        (path / RUN_INFO).write_text(json.dumps(info), encoding="utf-8")
    if predictions is not None:
        lines = (r.to_json() if isinstance(r, Prediction) else json.dumps(r) for r in predictions)
        (path / PREDICTIONS).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def random_predictions(n: int, task: str = "geo", seed: int = 0) -> list[dict[str, Any]]:
    """n prediction records (as read_predictions returns them): most parsed, with errors
    spread from ~0.1 km to ~20,000 km, some unparsed, refused, truncated or errored, with
    urban / natural / landmark scenes."""
    rng = np.random.default_rng(seed)
    gt_lat = rng.uniform(-60, 70, n)
    gt_lon = rng.uniform(-180, 180, n)
    # Predictions offset by a log-uniform number of degrees: some very close, some far.
    offset = 10 ** rng.uniform(-3, 2, (n, 2)) * rng.choice([-1, 1], (n, 2))
    lat = np.clip(gt_lat + offset[:, 0], -90, 90)
    lon = (gt_lon + offset[:, 1] + 180) % 360 - 180
    distance = 10 ** rng.uniform(-1, 4.3, n)
    status = rng.choice(["ok", "unparsed", "refusal", "truncated", "error"], n, p=[0.9, 0.04, 0.03, 0.02, 0.01])
    scenes = rng.choice(["urban", "natural", "landmark"], n)
    records = []
    for i in range(n):
        ok = status[i] == "ok"
        records.append(
            {
                "sample_id": f"s{i:06d}",
                "task": task,
                "output": "<answer>…</answer>" if status[i] != "error" else None,
                "lat": float(lat[i]) if ok else None,
                "lon": float(lon[i]) if ok else None,
                "status": str(status[i]),
                "distance_km": float(distance[i]) if ok else None,
                "error": "HTTP 500" if status[i] == "error" else None,
                "gt_lat": float(gt_lat[i]),
                "gt_lon": float(gt_lon[i]),
                "scene": str(scenes[i]),
                "scene_source": "field",
                "usage": {},
                "cost_usd": None,
            }
        )
    return records
